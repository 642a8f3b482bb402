"""Config files and data folders: read or check them, or say in one line what to do.

Shared by the agent and the collector, so both give the same messages. Every error is a
`ConfigError` whose message names no file (the caller puts the path or the key in
front): the command line prints it as one line and exits 2, never with a traceback.

Text encodings: TOML is UTF-8, but Windows editors also write UTF-8 with a byte order
mark (Notepad before Windows 10 1903, PowerShell 5's `Out-File -Encoding utf8`) and
UTF-16 (PowerShell 5's `>` and `Out-File` default, "Unicode" in Notepad's Save As).
Those are decoded by their byte order mark; UTF-16 without one is recognised by its
zero bytes (a TOML file is almost all ASCII, so every other byte is 0). Anything else
that is not UTF-8 (a legacy code page, say) is refused with "save it as UTF-8".
"""

from __future__ import annotations

import codecs
import errno
import os
import tempfile
from pathlib import Path

from ledwatch.errors import ConfigError

SAVE_AS_UTF8 = "save it as UTF-8"

# Longest first: the UTF-32 LE mark starts with the UTF-16 LE one.
_BOMS: tuple[tuple[bytes, str, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16"),
)


def _utf16_without_bom(raw: bytes) -> str | None:
    """`utf-16-le` / `utf-16-be` when the zero bytes sit on one side of every pair."""
    if len(raw) < 2 or len(raw) % 2:
        return None
    even, odd = raw[0::2].count(0), raw[1::2].count(0)
    half = len(raw) // 4
    if odd >= half and even * 20 <= odd:
        return "utf-16-le"
    if even >= half and odd * 20 <= even:
        return "utf-16-be"
    return None


def decode_text(raw: bytes) -> str:
    """The text of a config file: UTF-8, or UTF-8 / UTF-16 / UTF-32 marked by a byte order
    mark, or UTF-16 without one; else `ConfigError` ending in "save it as UTF-8"."""
    for bom, codec, name in _BOMS:
        if raw.startswith(bom):
            try:
                return raw[len(bom) :].decode(codec)
            except UnicodeDecodeError as exc:
                raise ConfigError(
                    f"starts with a {name} byte order mark but is not valid {name} "
                    f"(byte {exc.start + len(bom)}): {SAVE_AS_UTF8}"
                ) from None
    if b"\0" in raw:
        utf16 = _utf16_without_bom(raw)
        if utf16 is not None:
            try:
                return raw.decode(utf16)
            except UnicodeDecodeError:
                pass
        raise ConfigError(f"is not a text file (it contains zero bytes): {SAVE_AS_UTF8}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start]
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"is not UTF-8 (byte 0x{bad:02x} on line {line}; a legacy code page such as "
            f"Windows-1252?): {SAVE_AS_UTF8}"
        ) from None


def read_config_text(path: Path) -> str:
    """Read and decode a config file (see `decode_text`); `OSError` is left to the caller."""
    return decode_text(path.read_bytes())


# What an operator can do about each folder problem; {key} is the setting that names it.
_PROBLEMS: dict[int, tuple[str, str]] = {
    errno.EACCES: ("permission denied", "run as a user that can write it or set {key}"),
    errno.EPERM: ("permission denied", "run as a user that can write it or set {key}"),
    errno.EROFS: ("read-only file system", "set {key} to a folder on a writable disk"),
    errno.ENOSPC: ("no space left on the disk", "free some space or set {key}"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or set {key}"),
    errno.ENOTDIR: ("a file is in the way", "remove or rename that file or set {key}"),
    errno.EEXIST: ("a file is in the way", "remove or rename that file or set {key}"),
    errno.ENAMETOOLONG: ("the path is too long", "set {key} to a shorter path"),
}


def folder_problem(exc: OSError, key: str) -> str:
    """`<problem>: <what to do>` for an `OSError` met while creating or writing a folder."""
    default = (exc.strerror or str(exc), "check it or set {key}")
    problem, todo = _PROBLEMS.get(exc.errno or 0, default)
    return f"{problem}: {todo.format(key=key)}"


def check_writable_dir(path: Path, key: str, create: bool = True) -> None:
    """Make sure the data folder `path` (the setting `key`) can be created and written.

    With `create`, the folder (and its parents) is created; without it (a config check)
    nothing is left behind: the folder, or the nearest parent that exists, is probed
    with a temporary file that is removed again. A real write is tried rather than
    `os.access`, which says yes to root even on a read-only disk. Raises `ConfigError`
    `"<key> <path>: <problem>: <what to do>"`.
    """
    target = path
    try:
        if create:
            path.mkdir(parents=True, exist_ok=True)
        else:
            while not target.exists() and target.parent != target:
                target = target.parent
        if not target.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(target))
        fd, probe = tempfile.mkstemp(prefix=".ledwatch-write-check-", dir=target)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"{key} {path}: {folder_problem(exc, key)}") from None

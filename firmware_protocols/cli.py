"""`ledwatch decode <family> HEX... | --file CAPTURE [--json]`: dissect captured frames.

Examples::

    ledwatch decode novastar 55 AA 00 32 FE 00 01 00 00 00 00 00 00 00 00 0A 00 01 91 56
    ledwatch decode novastar 55AA0032FE0001...9156 AA:55:00:32:... --json
    ledwatch decode novastar --file capture.txt      # one frame or chunk per line
    sniffer | ledwatch decode novastar --file - --json

Arguments are joined into one byte stream, so frames may span arguments (an unquoted
`55 AA 00 ...` is one argument per byte). Exit status: 0 every frame good, 1 some error
item (garbage, bad checksum, truncated frame, unparsable line), 2 usage error.
The dissecting itself is `firmware_protocols.dissect` (pure); this module parses the
arguments and prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from firmware_protocols.dissect import (
    Dissector,
    FrameItem,
    Item,
    dissect_capture,
    dissect_novastar,
    has_errors,
    parse_hex,
)
from ledwatch.errors import UsageError

# family -> bytes -> items; a new controller family adds its dissector here.
DISSECTORS: dict[str, Dissector] = {"novastar": dissect_novastar}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ledwatch decode",
        description="Dissect captured controller frames: header fields, register names, "
        "decoded status values; garbage, bad checksums and truncated frames are reported.",
    )
    p.add_argument("family", choices=sorted(DISSECTORS), help="controller family")
    p.add_argument("hex", nargs="*", metavar="HEX",
                   help="bytes in hex (spaces, colons and 0x allowed); all joined into one "
                   "stream")
    p.add_argument("--file", metavar="FILE",
                   help="capture file, one frame or stream chunk per line ('-' = stdin); "
                   "blank lines, # comments and leading timestamps / > < markers are ignored")
    p.add_argument("--json", action="store_true", help="one JSON object per frame or error")
    return p  # fmt: skip


def _read_lines(name: str) -> list[str]:
    if name == "-":
        return sys.stdin.read().splitlines()
    try:
        return Path(name).read_text("utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise UsageError(f"--file {name}: {exc.strerror}") from None


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_intermixed_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), as a return code
        return int(exc.code or 0)
    dissect = DISSECTORS[args.family]
    try:
        if args.file is not None and args.hex:
            raise UsageError("give HEX arguments or --file, not both")
        if args.file is not None:
            items: list[Item] = dissect_capture(_read_lines(args.file), dissect)
        elif args.hex:
            items = dissect(parse_hex(" ".join(args.hex)))
        else:
            raise UsageError("nothing to decode: give HEX arguments or --file FILE")
    except UsageError as exc:
        print(f"ledwatch decode: {exc}", file=sys.stderr)
        return 2
    for item in items:
        print(json.dumps(item.to_json()) if args.json else item.to_text())
    if not args.json:
        frames = sum(isinstance(it, FrameItem) for it in items)
        print(f"-- {frames} frame(s), {len(items) - frames} error(s)")
    return 1 if has_errors(items) else 0


if __name__ == "__main__":
    sys.exit(main())

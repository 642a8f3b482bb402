"""Secrets come from a file or an environment variable, never the command line or a log.

Shared by the agent's and the collector's settings so both fail the same way, naming
the option (`mqtt.password_file: cannot read ...`).
"""

from __future__ import annotations

import os
from pathlib import Path

from ledwatch.errors import ConfigError


def read_secret(file: Path | None, env: str | None, key: str) -> str | None:
    """The secret from `file` (line endings stripped) or environment variable `env`.

    `key` is the dotted option prefix for messages, e.g. `mqtt.password`. Only line
    endings are stripped: a password may begin or end with a space.
    """
    if file is not None:
        try:
            return file.read_text("utf-8").strip("\r\n")
        except OSError as exc:
            raise ConfigError(f"{key}_file: cannot read {str(file)!r}: {exc.strerror}") from None
    if env:
        value = os.environ.get(env)
        if value is None:
            raise ConfigError(f"{key}_env: environment variable {env!r} is not set")
        return value
    return None

"""Option validation and URL checks shared by the families' drivers.

Each driver validates its `[screens.controller]` table once with a pydantic model
(`extra="forbid"`); `validate` turns the first validation error into a `ConfigError`
naming `<prefix>.<key>` (NovaStar's options use it with their sub-tables' prefixes,
`parse_options` is the `controller` one), and `check_card_counts` / `card_counts` are
the `cards_per_port` rules every family with ports shares.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Final, Self, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ledwatch.errors import ConfigError

M = TypeVar("M", bound=BaseModel)
# A check's message may name the key it is about ("layout[2].card: ..."): moved into the path.
_SUBKEY: Final = re.compile(r"^((?:[a-z_]+|\[\d+\]|\.[a-z_]+)+): ")


def validate(model: type[M], options: dict[str, Any] | None, prefix: str) -> M:
    """`model` from `options`; the first problem raises `ConfigError` naming
    `<prefix>.<key>`, including keys a check names itself ("layout[2].card: ...")."""
    try:
        return model.model_validate(options or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        key = prefix
        for part in err["loc"]:
            key += f"[{part}]" if isinstance(part, int) else f".{part}"
        msg = str(err["msg"]).removeprefix("Value error, ")
        m = _SUBKEY.match(msg)
        if m:
            key += m[1] if m[1][0] in "[." else f".{m[1]}"
            msg = msg[m.end() :]
        raise ConfigError(f"{key}: {msg}") from None


def parse_options(model: type[M], options: dict[str, Any]) -> M:
    """Validate once; a bad value raises `ConfigError("controller.<key>: <why>")`."""
    return validate(model, options, "controller")


def check_card_counts(cards: int | list[int], most: int) -> int | list[int]:
    """`cards_per_port`: one count for every port or one per port, each 0..`most`."""
    counts = [cards] if isinstance(cards, int) else cards
    if any(not 0 <= n <= most for n in counts):
        raise ValueError(f"each count must be 0..{most}")
    return cards


def card_counts(cards: int | list[int], ports: int) -> list[int]:
    """The count of every port; ValueError (naming `cards_per_port`) when a list of
    counts does not have one per port."""
    if isinstance(cards, int):
        return [cards] * ports
    if len(cards) != ports:
        raise ValueError(f"cards_per_port: {len(cards)} counts for {ports} ports")
    return list(cards)


def check_url(url: str, schemes: dict[str, int]) -> str:
    """`scheme://HOST[:PORT]` with a scheme from `schemes` (scheme -> default port);
    ValueError says what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        raise ValueError(f"must start with {' or '.join(s + '://' for s in schemes)}")
    if not parts.hostname:
        raise ValueError(f"needs a host: {parts.scheme}://HOST[:PORT]")
    _ = parts.port  # raises ValueError for a bad port
    if parts.path not in ("", "/"):
        raise ValueError("takes no path: give only scheme://HOST[:PORT]")
    return url


def host_port(url: str, schemes: dict[str, int]) -> tuple[str, str, int]:
    """(scheme, host, port) of a checked URL, the scheme's default port filled in."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    return parts.scheme, parts.hostname, parts.port or schemes[parts.scheme]


class FamilyOptions(BaseModel):
    """What every newer family's options share: a checked `url` (schemes and default
    ports in `SCHEMES`) and the reconnect backoff bounds. Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")
    SCHEMES: ClassVar[dict[str, int]] = {}

    url: str
    reconnect_min_s: float = Field(1.0, gt=0, le=3600)
    reconnect_max_s: float = Field(60.0, gt=0, le=3600)

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return check_url(url, cls.SCHEMES)

    @model_validator(mode="after")
    def _backoff(self) -> Self:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s: below reconnect_min_s")
        return self

    def endpoint(self) -> tuple[str, str, int]:
        """(scheme, host, port) of `url`, the scheme's default port filled in."""
        return host_port(self.url, self.SCHEMES)

"""What the Colorlight, COEX and Tessera emulators share: the fault schedule and its
checks, the screen's card ids, slow sine drift for readings, and (for the HTTP ones)
the real HTTP server. A family subclass declares `FAMILY`, `RULES` (the fault kinds it
can show) and `UNSUPPORTED` (those it cannot, with the reason) and answers requests.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar, Self

from firmware_protocols.emulators.faults import (
    Clock,
    FamilyFault,
    FaultRule,
    FaultSchedule,
    make_fault,
    parse_fault_spec,
)
from firmware_protocols.emulators.http_base import HttpReply, HttpRequest, JsonHttpServer
from ledwatch.errors import UsageError


class FamilyEmulator:
    FAMILY: ClassVar[str]
    RULES: ClassVar[Mapping[str, FaultRule]]
    UNSUPPORTED: ClassVar[Mapping[str, str]]

    def __init__(
        self, layout: Sequence[int], faults: Iterable[FamilyFault], clock: Clock = time.monotonic
    ) -> None:
        self.layout = list(layout)  # cabinets per port/output; empty when there are none
        self.faults = FaultSchedule(clock)
        for f in faults:
            self.schedule(f)

    @classmethod
    def fault(cls, kind: str, at_s: float = 0.0, target: str | None = None,
              duration_s: float | None = None) -> FamilyFault:  # fmt: skip
        """A fault of this family, validated (`UsageError` says what is wrong or why
        the family cannot show it)."""
        return make_fault(cls.FAMILY, cls.RULES, kind, at_s, target, duration_s, cls.UNSUPPORTED)

    @classmethod
    def parse_fault(cls, spec: str) -> FamilyFault:
        """A fault of this family from its CLI form `kind[@at_s][+duration_s][:target]`
        (NovaStar's syntax), validated as `fault` does."""
        return parse_fault_spec(cls.FAMILY, cls.RULES, spec, cls.UNSUPPORTED)

    def card_ids(self) -> list[str]:
        return [f"p{p}c{i}" for p, n in enumerate(self.layout) for i in range(n)]

    def schedule(self, f: FamilyFault) -> None:
        """Start `f` `f.at_s` seconds after the emulator started."""
        self.check(f)
        self.faults.schedule(f)

    def inject(self, f: FamilyFault) -> None:
        """Start `f` `f.at_s` seconds from now (0 = at once)."""
        self.check(f)
        self.faults.inject(f)

    def check(self, f: FamilyFault) -> None:
        """Refuse a fault aimed at a cabinet this screen does not have."""
        key = f.card_key
        if key is not None and not (key[0] < len(self.layout) and key[1] < self.layout[key[0]]):
            raise UsageError(f"fault {f.kind}: no cabinet {f.card} (cabinets: {self.card_ids()})")

    def link_down(self) -> bool:
        return self.faults.any("link_drop")

    def wave(self, base: float, amp: float, period_s: float, phase: float) -> float:
        """A reading drifting slowly (deterministic per phase) so dashboards move."""
        return round(base + amp * math.sin(self.faults.elapsed() / period_s + phase), 1)

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class HttpFamilyEmulator(FamilyEmulator):
    """A family answering HTTP: `app(request)` on a real server (`serve_http`)."""

    def __init__(
        self, layout: Sequence[int], faults: Iterable[FamilyFault], clock: Clock = time.monotonic
    ) -> None:
        super().__init__(layout, faults, clock)
        self.server = JsonHttpServer(self.app, refuse=self.link_down)

    def app(self, req: HttpRequest) -> HttpReply:
        raise NotImplementedError

    def serve_http(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen; returns the bound (host, port) (port 0 = any free one)."""
        return self.server.serve(host, port)

    def stop(self) -> None:
        self.server.stop()

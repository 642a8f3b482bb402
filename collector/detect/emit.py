"""What one screen has reported: active findings, root causes and flapping (pure).

Three things can keep a finding key active, and it is reported once when the first of
them starts and once when the last one ends:
* its rule (debounced state, see debounce.py), after the flapping filter below;
* a synthesized root cause (screen dark, link break, a PSU that took its cabinet
  dark): active while any of its effects is;
* prediction (predict.py) for the predictive faults.

Flapping: a rule that activates again within `flap_window_ms` of an earlier activation
is flapping. Its finding is re-reported with `flapping=True` (the ticket is marked) and
its clears are held back until the fault has stayed away for `flap_clear_ms`, so a
loose cable keeps one ticket open instead of re-opening it every few minutes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from collector.detect.findings import Fault, Finding, Priority


@dataclass(slots=True)
class _Flap:
    opened: list[int] = field(default_factory=list)  # recent activation times
    flapping: bool = False
    clear_at: int | None = None  # the rule cleared at this time; report pending


@dataclass(slots=True)
class Report:
    """The content of a finding except its key parts and activity."""

    ts_ms: int
    detail: str = ""
    value: float | None = None
    priority: Priority | None = None
    evidence: dict[str, Any] | None = None
    predicted_failure_ms: int | None = None


@dataclass(slots=True)
class Emitter:
    """Per-screen reporting state; `out` collects the findings in order."""

    site: str
    screen: str
    flap_window_ms: int
    flap_clear_ms: int
    rule_on: set[str] = field(default_factory=set)
    predicted: set[str] = field(default_factory=set)
    synth: dict[str, set[str]] = field(default_factory=dict)  # root key -> effect keys
    root_of: dict[str, str] = field(default_factory=dict)  # effect key -> root key
    flaps: dict[str, _Flap] = field(default_factory=dict)
    out: list[Finding] = field(default_factory=list)

    def key(self, component: str, fault: Fault) -> str:
        return f"{self.site}/{self.screen}/{component}/{fault.value}"

    def is_active(self, key: str) -> bool:
        return key in self.rule_on or key in self.synth or key in self.predicted

    def _finding(self, key: str, active: bool, rep: Report, *, flapping: bool = False) -> None:
        component, _, fault = key[len(self.site) + len(self.screen) + 2:].rpartition("/")
        self.out.append(
            Finding(
                self.site,
                self.screen,
                component,
                Fault(fault),
                active,
                rep.ts_ms,
                rep.detail,
                rep.value,
                root=self.root_of.get(key),
                rule_priority=rep.priority,
                flapping=flapping,
                predicted_failure_ms=rep.predicted_failure_ms,
                evidence=rep.evidence,
            )
        )

    # -- rules --------------------------------------------------------------------------

    def rule_opened(
        self, key: str, rep: Report, root: Callable[[], tuple[str, Report] | None]
    ) -> None:
        """The rule's debounced state became active; `root` finds its root cause."""
        flap = self.flaps.get(key)
        if flap is None:
            flap = self.flaps[key] = _Flap()
        flap.opened = [t for t in flap.opened if rep.ts_ms - t <= self.flap_window_ms]
        flap.opened.append(rep.ts_ms)
        if flap.clear_at is not None:  # came back while its clear was held: still open
            flap.clear_at = None
            self.rule_on.add(key)
            return
        was_active = self.is_active(key)
        self.rule_on.add(key)
        if len(flap.opened) > 1:
            flap.flapping = True
        if was_active:
            return
        found = root()
        if found is not None:
            root_key, root_rep = found
            self.root_of[key] = root_key
            self.synth_add(root_key, key, root_rep)
        self._finding(key, True, rep, flapping=flap.flapping)

    def rule_cleared(self, key: str, rep: Report) -> None:
        flap = self.flaps.get(key)
        if flap is not None and flap.flapping:
            flap.clear_at = rep.ts_ms
            return
        self._release(key, rep)

    def due_clears(self, now_ms: int) -> list[tuple[str, int]]:
        """Held-back clears whose quiet time has passed by `now_ms`: (key, due time)."""
        return [
            (key, f.clear_at + self.flap_clear_ms)
            for key, f in self.flaps.items()
            if f.clear_at is not None and f.clear_at + self.flap_clear_ms <= now_ms
        ]

    def release_flap(self, key: str, rep: Report) -> None:
        flap = self.flaps.pop(key, None)
        if flap is not None:
            flap.clear_at = None
        rep.detail = rep.detail or "stopped flapping"
        self._release(key, rep)

    def _release(self, key: str, rep: Report) -> None:
        self.rule_on.discard(key)
        if self.is_active(key):
            return  # still held by its effects or a prediction
        self._finding(key, False, rep)
        root_key = self.root_of.pop(key, None)
        if root_key is not None:
            effects = self.synth.get(root_key)
            if effects is not None:
                effects.discard(key)
                if not effects:
                    del self.synth[root_key]
                    if not self.is_active(root_key):
                        self._finding(root_key, False, Report(rep.ts_ms, "every effect cleared"))

    # -- synthesized roots and predictions ----------------------------------------------

    def synth_add(self, root_key: str, effect_key: str, rep: Report) -> None:
        was_active = self.is_active(root_key)
        self.synth.setdefault(root_key, set()).add(effect_key)
        if not was_active:
            self._finding(root_key, True, rep)

    def predict(self, key: str, active: bool, rep: Report) -> None:
        if active == (key in self.predicted):
            return
        was_active = self.is_active(key)
        if active:
            self.predicted.add(key)
            if not was_active:
                self._finding(key, True, rep)
        else:
            self.predicted.discard(key)
            if not self.is_active(key):
                self._finding(key, False, rep)

"""The benchmark's fleet, written from the payload contract (ledwatch.telemetry/1) alone.

`Fleet(spec, site)` is `spec.screens` screens of `spec.cards` receiving cards, each card
with 2 PSUs, one agent per screen, polled every `spec.interval_s`. Readings are drawn
from the seed once per screen as `VARIANTS` sets and cycled poll by poll, so building a
snapshot is a dict and one orjson call (the live publisher must keep its pace), while
consecutive polls of a screen still differ like real ones.

Faults are injected from the first poll on and stay: a dead module (module_faults 1, one
module short) on every screen whose index is 0 mod 5, and a failed PSU (ok false, no
output) on every screen whose index is 1 mod 5. `Fleet.faults` lists them as the
tickets the collector's default rules should open (`module_fault` on `card/<id>`,
`psu_failed` on `psu/<id>`); `faults=False` makes a healthy fleet. `add_module_fault`
adds one while the fleet runs (the latency probe).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import orjson

from ledwatch.contract import SCHEMA_TELEMETRY, check_id, telemetry_topic

PSUS_PER_CARD: Final = 2
MODULES_PER_CARD: Final = 8
VARIANTS: Final = 8
CARDS_PER_PORT: Final = 50
MODULE_FAULT: Final = "module_fault"
PSU_FAILED: Final = "psu_failed"


@dataclass(frozen=True, slots=True)
class FleetSpec:
    screens: int = 20
    cards: int = 100
    interval_s: float = 10.0
    seed: int = 1

    def __post_init__(self) -> None:
        if self.screens < 1 or self.cards < 1 or self.interval_s <= 0:
            raise ValueError("screens and cards must be at least 1, interval_s above 0")

    @property
    def interval_ms(self) -> int:
        return max(1, round(self.interval_s * 1000))


@dataclass(frozen=True, slots=True)
class InjectedFault:
    """A fault the fleet carries, as the ticket it should give: (screen, component, fault)."""

    screen: str
    component: str
    fault: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.screen, self.component, self.fault)


def card_ids(cards: int) -> list[str]:
    return [f"p{i // CARDS_PER_PORT}c{i % CARDS_PER_PORT}" for i in range(cards)]


def fault_card(screen_index: int, cards: int) -> int:
    """The card that carries a screen's injected fault (spread over the screen)."""
    return (screen_index * 7 + 3) % cards


@dataclass
class _Screen:
    name: str
    agent: str
    topic: str
    seq: int
    variants: list[dict[str, Any]]  # cards, psus, controller, env, stats per variant
    module_faults: list[int] | None = None  # a fault added while running (all variants)
    modules_connected: list[int] | None = None


class Fleet:
    """Snapshots of one site's screens; `seq` per screen starts at 1 and only grows."""

    def __init__(self, spec: FleetSpec, site: str, faults: bool = True) -> None:
        self.spec = spec
        self.with_faults = faults
        self.site = check_id(site, "site")
        self.ids = card_ids(spec.cards)
        self.psu_ids = [f"{c}-psu{k}" for c in self.ids for k in range(1, PSUS_PER_CARD + 1)]
        self.faults: list[InjectedFault] = []
        self.screens: list[_Screen] = [self._screen(i) for i in range(spec.screens)]

    def _screen(self, index: int) -> _Screen:
        spec = self.spec
        rnd = random.Random(f"{spec.seed}/{self.site}/{index}")
        name, agent = f"s{index:03d}", f"pc{index:03d}"
        n, n_psu = spec.cards, len(self.psu_ids)
        base_temp = [rnd.uniform(32.0, 42.0) for _ in range(n)]
        base_vout = [rnd.uniform(4.95, 5.1) for _ in range(n_psu)]
        faulty = self.with_faults
        dead_module = fault_card(index, n) if faulty and index % 5 == 0 else None
        failed_psu = PSUS_PER_CARD * fault_card(index, n) if faulty and index % 5 == 1 else None
        if dead_module is not None:
            self.faults.append(InjectedFault(name, f"card/{self.ids[dead_module]}", MODULE_FAULT))
        if failed_psu is not None:
            self.faults.append(InjectedFault(name, f"psu/{self.psu_ids[failed_psu]}", PSU_FAILED))
        ports = [i // CARDS_PER_PORT for i in range(n)]
        index_on_port = [i % CARDS_PER_PORT for i in range(n)]
        width = max(1, min(n, 10))
        variants = []
        for _ in range(VARIANTS):
            faults = [0] * n
            connected = [MODULES_PER_CARD] * n
            if dead_module is not None:
                faults[dead_module] = 1
                connected[dead_module] = MODULES_PER_CARD - 1
            ok = [True] * n_psu
            vout = [round(v + rnd.uniform(-0.02, 0.02), 2) for v in base_vout]
            iout = [round(rnd.uniform(18.0, 26.0), 1) for _ in range(n_psu)]
            ptemp = [round(rnd.uniform(38.0, 48.0), 1) for _ in range(n_psu)]
            pfan = [float(rnd.randrange(2400, 2800, 10)) for _ in range(n_psu)]
            if failed_psu is not None:
                ok[failed_psu], vout[failed_psu], iout[failed_psu] = False, 0.0, 0.0
            temps = [round(t + rnd.uniform(-0.5, 0.5), 1) for t in base_temp]
            variants.append({
                "controller": {"online": True, "link": "up", "model": "MCTRL4K",
                               "signal_ok": True, "brightness_pct": 80.0,
                               "temp_c": round(rnd.uniform(44.0, 46.0), 1)},
                "cards": {
                    "id": self.ids, "port": ports, "index": index_on_port,
                    "row": [i // width for i in range(n)], "col": [i % width for i in range(n)],
                    "online": [True] * n, "temp_c": temps,
                    "voltage_v": [round(rnd.uniform(4.95, 5.15), 2) for _ in range(n)],
                    "module_faults": faults, "modules_connected": connected,
                    "modules_total": [MODULES_PER_CARD] * n,
                },
                "psus": {"id": self.psu_ids, "card": [p.split("-")[0] for p in self.psu_ids],
                         "ok": ok, "vout_v": vout, "iout_a": iout, "temp_c": ptemp,
                         "fan_rpm": pfan},
                "env": {"temp_c": round(rnd.uniform(24.0, 26.0), 1),
                        "humidity_pct": round(rnd.uniform(38.0, 42.0), 1),
                        "smoke": False, "door_open": False, "fan_rpm": 1800.0},
                "stats": {"queue_depth": 0, "poll_ms": round(rnd.uniform(120.0, 190.0), 1),
                          "poll_errors": 0, "uptime_s": 86400.0},
            })  # fmt: skip
        topic = telemetry_topic(self.site, name)
        return _Screen(name, agent, topic, 0, variants)

    # -- snapshots -------------------------------------------------------------------------

    def snapshot(self, screen: int, ts_ms: int) -> dict[str, Any]:
        """The next snapshot of screen number `screen` (its seq goes up by one)."""
        st = self.screens[screen]
        st.seq += 1
        v = st.variants[st.seq % VARIANTS]
        cards = v["cards"]
        if st.module_faults is not None:
            cards = {**cards, "module_faults": st.module_faults,
                     "modules_connected": st.modules_connected}  # fmt: skip
        return {
            "schema": SCHEMA_TELEMETRY, "site": self.site, "screen": st.name, "agent": st.agent,
            "seq": st.seq, "ts": ts_ms, "controller": v["controller"], "cards": cards,
            "psus": v["psus"], "env": v["env"], "stats": v["stats"],
        }  # fmt: skip

    def payload(self, screen: int, ts_ms: int) -> tuple[str, bytes]:
        return self.screens[screen].topic, orjson.dumps(self.snapshot(screen, ts_ms))

    def backlog(self, n: int, end_ms: int) -> Iterator[tuple[str, bytes, dict[str, Any]]]:
        """`n` snapshots as an agent fleet makes them: poll after poll, every screen per
        poll, the last poll ending at `end_ms` (so a backlog lies in the recent past)."""
        screens = self.spec.screens
        polls = -(-n // screens)
        step = self.spec.interval_ms
        for k in range(n):
            poll, screen = divmod(k, screens)
            ts = end_ms - (polls - 1 - poll) * step - screen * 3
            doc = self.snapshot(screen, ts)
            yield self.screens[screen].topic, orjson.dumps(doc), doc

    def polls_per_screen(self, n: int) -> int:
        """Polls the screen with the fewest gets in a backlog of `n` (faults need 3)."""
        return n // self.spec.screens

    def add_module_fault(self, screen: int, card: int, faults: int = 2) -> InjectedFault:
        """From the next poll on, card number `card` of the screen reports dead modules."""
        st = self.screens[screen]
        base = st.variants[0]["cards"]
        mf = list(st.module_faults if st.module_faults is not None else base["module_faults"])
        mc = list(st.modules_connected if st.modules_connected is not None
                  else base["modules_connected"])  # fmt: skip
        mf[card], mc[card] = faults, MODULES_PER_CARD - faults
        st.module_faults, st.modules_connected = mf, mc
        return InjectedFault(st.name, f"card/{self.ids[card]}", MODULE_FAULT)

    def healthy_cards(self, screen: int) -> list[int]:
        """Cards of the screen that carry no fault (where a new one can be injected)."""
        st = self.screens[screen]
        mf = st.module_faults if st.module_faults is not None else \
            st.variants[0]["cards"]["module_faults"]
        return [i for i, f in enumerate(mf) if f == 0]

"""The fleet-month generator: contract-valid output, labels that agree with the data,
determinism per seed and a mix that changes with the seed."""

from __future__ import annotations

import collections
import gzip
import itertools
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import numpy as np
import pytest
from fleet_helpers import Generated, ScreenData, generate

from ledwatch.bench.detection.generator import (
    CONFIG_FILE,
    INCIDENTS_FILE,
    SCHEDULE_JITTER_MS,
    TELEMETRY_FILE,
    FleetParams,
    plan_fleet,
)
from ledwatch.bench.detection.labels import (
    GLITCH_KINDS,
    HOUR_MS,
    INCIDENT_KINDS,
    MINUTE_MS,
    NON_INCIDENT_KINDS,
    Label,
)
from ledwatch.contract import (
    SCHEMA_STATUS,
    SCHEMA_TELEMETRY,
    parse_topic,
    status_topic,
    telemetry_schema,
    telemetry_topic,
    validate_telemetry,
)

POLL_MS = 120_000


def _col(doc: dict[str, Any], section: str, key: str, ident: str) -> Any:
    cols = doc[section]
    return cols[key][cols["id"].index(ident)]


def _card(doc: dict[str, Any], key: str, card: str) -> Any:
    return _col(doc, "cards", key, card)


def _name(component: str) -> str:
    return component.split("/", 1)[1]


def _screen(gen: Generated, lab: Label) -> ScreenData:
    return gen.screens[(lab.site, lab.screen)]


# -- the contract -------------------------------------------------------------------------------
def test_every_snapshot_follows_the_payload_contract(small_fleet: Generated) -> None:
    validator = jsonschema.Draft7Validator(telemetry_schema())
    forms: collections.Counter[str] = collections.Counter()
    for n, line in enumerate(small_fleet.lines):
        doc, topic = line["payload"], line["topic"]
        if doc["schema"] == SCHEMA_STATUS:
            assert topic == status_topic(doc["site"], doc["agent"])
            assert doc["state"] in ("online", "offline")
            continue
        assert doc["schema"] == SCHEMA_TELEMETRY
        validate_telemetry(doc)  # fastjsonschema + every column as long as its id column
        if n % 200 == 0:
            validator.validate(doc)
        if topic is None:
            forms["bare"] += 1
        else:
            forms["topic"] += 1
            assert topic == telemetry_topic(doc["site"], doc["screen"])
            info = parse_topic(topic)
            assert (info.site, info.name) == (doc["site"], doc["screen"])
    assert forms["topic"] > 3 * forms["bare"] > 0  # mostly the topic form, some bare


def test_file_order_seq_and_statuses(small_fleet: Generated) -> None:
    ts = [line["payload"]["ts"] for line in small_fleet.lines]
    assert ts == sorted(ts)  # all screens interleaved in global ts order
    first = small_fleet.lines[: len(small_fleet.fleet.agents)]
    assert {d["payload"]["state"] for d in first} == {"online"}  # births before any snapshot
    assert {d["payload"]["agent"] for d in first} == set(small_fleet.fleet.agents)
    for data in small_fleet.screens.values():
        seq = [d["seq"] for d in data.docs]
        assert all(b == a + 1 for a, b in itertools.pairwise(seq))
        assert len({d["agent"] for d in data.docs}) == 1


def test_fleet_layout(small_fleet: Generated) -> None:
    fleet = small_fleet.fleet
    assert len(fleet.sites) >= 3
    assert {s.outdoor for s in fleet.screens} == {True, False}
    for s in fleet.screens:
        doc = small_fleet.screens[(s.site, s.screen)].docs[0]
        cards, psus = doc["cards"], doc["psus"]
        assert 2 <= len(doc["controller"]["ports_expected"]) <= 4
        for ident, port, index in zip(cards["id"], cards["port"], cards["index"], strict=True):
            assert ident == f"p{port}c{index}"
        assert all(r is not None and c is not None for r, c in zip(cards["row"], cards["col"],
                                                                     strict=True))
        assert len(set(zip(cards["row"], cards["col"], strict=True))) == len(cards["id"])
        for ident, card in zip(psus["id"], psus["card"], strict=True):
            assert ident.startswith(f"{card}-psu")
        ZoneInfo(s.tz)


def test_normal_readings_are_in_range(small_fleet: Generated) -> None:
    """Away from labelled windows: temps below 75 °C, vout 4.7-5.3, fans 1200-2000 rpm,
    humidity 30-60 %, no door/smoke/module faults."""
    for (site, screen), data in small_fleet.screens.items():
        busy = [lab for lab in small_fleet.labels if lab.site == site and
                lab.screen in (screen, "-") and lab.kind != "heat"]  # fmt: skip
        quiet = np.ones(len(data.ts), bool)
        for lab in busy:
            quiet &= ~((data.ts >= lab.start_ms - HOUR_MS) & (data.ts < lab.end_ms + HOUR_MS))
        # a PSU replaced after a death has another nominal voltage; still in range
        for doc in (d for d, q in zip(data.docs, quiet, strict=True) if q):
            cards = doc["cards"]
            for on, t, fan, hum, mod, door, smoke in zip(
                cards["online"], cards["temp_c"], cards["fan_rpm"], cards["humidity_pct"],
                cards["module_faults"], cards["door_open"], cards["smoke"], strict=True,
            ):  # fmt: skip
                if not on:
                    continue
                assert 15 < t < 75 and 1150 < fan < 2050 and 29 < hum < 61
                assert mod == 0 and door is False and smoke is False
            for v in doc["psus"]["vout_v"]:
                assert v is None or 4.7 < v < 5.3
            if doc["controller"]["online"] and any(cards["online"]):
                assert doc["controller"]["signal_ok"] is True


# -- labels agree with the data ------------------------------------------------------------------
def _check_psu_death(gen: Generated, lab: Label) -> None:
    data = _screen(gen, lab)
    psu, card = _name(lab.root), _name(lab.effects[0])
    assert lab.dark_ms is not None and lab.start_ms < lab.dark_ms < lab.end_ms
    vout = [_col(d, "psus", "vout_v", psu) for d in data.docs]

    def mean(a: int, b: int) -> float:
        vals = [v for v in vout[data.at(a):data.at(b)] if v is not None]
        return float(np.mean(vals))

    before = mean(lab.start_ms - 2 * HOUR_MS, lab.start_ms)
    late = mean(lab.dark_ms - 3 * HOUR_MS, lab.dark_ms - 20 * MINUTE_MS)
    day_ahead = mean(lab.dark_ms - 25 * HOUR_MS, lab.dark_ms - 23 * HOUR_MS)
    assert before - late > 0.12  # it really declines
    assert before - day_ahead > 0.03  # and the decline is in the data a day ahead
    if lab.note.startswith("shallow"):
        assert min(v for v in vout[data.at(lab.start_ms):data.at(lab.dark_ms) - 2]
                   if v is not None) > 4.6  # a fixed 4.6 V threshold never sees it
    k_dark = data.at(lab.dark_ms)
    assert data.ts[k_dark] == lab.dark_ms
    death = [v for v in vout[k_dark - 2:k_dark] if v is not None]
    assert min(death) <= 3.1  # one or two polls at 0-3 V before the cabinet goes dark
    for d in data.between(lab.dark_ms, lab.end_ms):
        assert _card(d, "online", card) is False and _card(d, "temp_c", card) is None
        assert _col(d, "psus", "vout_v", psu) is None and _col(d, "psus", "ok", psu) is None
    assert _card(data.docs[data.at(lab.end_ms)], "online", card) is True
    assert _card(data.docs[k_dark - 1], "online", card) is True


def _offline_cards(doc: dict[str, Any]) -> set[str]:
    return {c for c, on in zip(doc["cards"]["id"], doc["cards"]["online"], strict=True) if not on}


def _check_window(gen: Generated, lab: Label, inside: Any, outside: Any = None) -> None:
    """`inside(doc)` at every poll of the window; `outside(doc)` (default: not inside) at
    the polls right before and after it."""
    data = _screen(gen, lab)
    docs = data.between(lab.start_ms, lab.end_ms)
    assert docs, lab
    assert docs[0]["ts"] == lab.start_ms
    for d in docs:
        assert inside(d), (lab, d["ts"])
    outside = outside or (lambda d: not inside(d))
    k0, k1 = data.at(lab.start_ms), data.at(lab.end_ms)
    if k0 > 0:
        assert outside(data.docs[k0 - 1]), lab
    if k1 < len(data.docs):
        assert data.docs[k1]["ts"] == lab.end_ms
        assert outside(data.docs[k1]), lab


def _check(gen: Generated, lab: Label) -> None:  # one case per kind
    kind = lab.kind
    root = _name(lab.root) if "/" in lab.root else lab.root
    every = lambda d: len(_offline_cards(d)) == len(d["cards"]["id"])  # noqa: E731
    if kind == "psu_death":
        _check_psu_death(gen, lab)
    elif kind == "psu_sag_recovers":
        _check_window(gen, lab, lambda d: _col(d, "psus", "vout_v", root) < 4.6,
                      lambda d: _col(d, "psus", "vout_v", root) > 4.75)  # fmt: skip
    elif kind in ("card_offline", "glitch_card_offline"):
        _check_window(gen, lab, lambda d: _offline_cards(d) == {root})
    elif kind in ("port_break", "glitch_port"):
        port, index = (int(x) for x in root[1:].split("c"))
        gone = {f"p{port}c{i}" for i in range(index, 64)}

        def broken(d: dict[str, Any]) -> bool:
            off = _offline_cards(d)
            return bool(off) and off <= gone and root in off and f"p{port}c{index - 1}" not in off

        _check_window(gen, lab, broken, lambda d: not _offline_cards(d))
        assert all(c in lab.effects for c in (f"card/{x}" for x in _offline_cards(
            _screen(gen, lab).docs[_screen(gen, lab).at(lab.start_ms)])))  # fmt: skip
    elif kind in ("screen_dark", "glitch_screen_dark"):
        _check_window(gen, lab, lambda d: every(d) and d["controller"]["online"],
                      lambda d: not _offline_cards(d))  # fmt: skip
    elif kind in ("controller_lost", "glitch_controller"):
        def lost(d: dict[str, Any]) -> bool:
            c = d["controller"]
            return (c["online"] is False and c["link"] == "down" and every(d)
                    and all(v is None for v in d["psus"]["vout_v"]))  # fmt: skip

        _check_window(gen, lab, lost, lambda d: d["controller"]["online"])
    elif kind in ("signal_lost", "glitch_signal"):
        _check_window(gen, lab, lambda d: d["controller"]["signal_ok"] is False
                      and d["controller"]["online"])  # fmt: skip
    elif kind in ("module_fault", "glitch_module"):
        _check_window(gen, lab, lambda d: (_card(d, "module_faults", root) or 0) > 0
                      or not _card(d, "online", root),
                      lambda d: _card(d, "module_faults", root) == 0)  # fmt: skip
    elif kind == "over_temp":
        def hot(d: dict[str, Any]) -> bool:
            others = [t for c, t in zip(d["cards"]["id"], d["cards"]["temp_c"], strict=True)
                      if c != root and t is not None]  # fmt: skip
            return _card(d, "temp_c", root) > 79.5 and max(others) < 75

        _check_window(gen, lab, hot, lambda d: _card(d, "temp_c", root) < 80.5)
    elif kind == "screen_hot":
        _check_window(gen, lab, lambda d: max(d["cards"]["temp_c"]) > 74.5,
                      lambda d: max(d["cards"]["temp_c"]) < 75.5)  # fmt: skip
        mid = _screen(gen, lab).docs[_screen(gen, lab).at((lab.start_ms + lab.end_ms) // 2)]
        assert min(mid["cards"]["temp_c"]) > 75
    elif kind in ("fan_stopped", "glitch_fan"):
        _check_window(gen, lab, lambda d: not _card(d, "online", root)
                      or _card(d, "fan_rpm", root) < 300)  # fmt: skip
    elif kind in ("door_open", "glitch_door", "smoke", "glitch_smoke"):
        key = "smoke" if "smoke" in kind else "door_open"
        _check_window(gen, lab, lambda d: _card(d, key, root) is True and d["env"][key] is True,
                      lambda d: d["env"][key] is False)  # fmt: skip
    elif kind == "glitch_temp":
        _check_window(gen, lab, lambda d: _card(d, "temp_c", root) == 120.0)
    elif kind == "glitch_vout":
        _check_window(gen, lab, lambda d: _col(d, "psus", "vout_v", root) == 0.0)
    elif kind == "glitch_humidity":
        _check_window(gen, lab, lambda d: _card(d, "humidity_pct", root) > 90
                      and d["env"]["humidity_pct"] > 90)  # fmt: skip
    elif kind == "flapping":
        docs = _screen(gen, lab).between(lab.start_ms, lab.end_ms)
        states = [_card(d, "online", root) for d in docs]
        drops = sum(1 for a, b in zip([True, *states], states, strict=False) if a and not b)
        assert states[0] is False and states[-1] is False and drops >= 3
        runs = [len(list(g)) for _, g in itertools.groupby(states)]
        assert all(2 <= r <= 5 for r in runs)
    elif kind == "running_hot":
        data = _screen(gen, lab)
        mid = [d for d in data.between(lab.start_ms + 6 * HOUR_MS, lab.end_ms)
               if _card(d, "online", root)]  # fmt: skip
        diffs = [_card(d, "temp_c", root) - float(np.median([t for t in d["cards"]["temp_c"]
                                                             if t is not None])) for d in mid]
        assert 7 < float(np.median(diffs)) < 17
        assert max(_card(d, "temp_c", root) for d in mid) < 75
    elif kind in ("agent_offline", "glitch_agent"):
        for screen in lab.screens:
            data = gen.screens[(lab.site, screen)]
            assert not data.between(lab.start_ms, lab.end_ms)
            k = data.at(lab.start_ms)
            assert lab.start_ms - POLL_MS - 1000 <= data.ts[k - 1] < lab.start_ms  # ts jitter
            assert lab.end_ms <= data.ts[k] < lab.end_ms + POLL_MS
        states = [line["payload"]["state"] for line in gen.lines
                  if line["payload"]["schema"] == SCHEMA_STATUS and lab.start_ms <=
                  line["payload"]["ts"] <= lab.end_ms]  # fmt: skip
        assert states == (["offline", "online"] if kind == "agent_offline" else [])
    elif kind == "schedule_off":
        _check_schedule(gen, lab)
    elif kind == "heat":
        docs = _screen(gen, lab).between(lab.start_ms, lab.end_ms)
        temps = [t for d in docs for t in d["cards"]["temp_c"] if t is not None]
        assert 35 < max(temps) < 72  # warm, and below the 75 °C of a fault
    elif kind == "null_sensor":
        _check_null(gen, lab)
    else:  # pragma: no cover
        raise AssertionError(f"no check for {kind}")


def _check_null(gen: Generated, lab: Label) -> None:
    docs = _screen(gen, lab).between(lab.start_ms, lab.end_ms)
    assert len(docs) >= 20
    for d in docs:
        if lab.root == "screen":
            assert all(t is None for t in d["cards"]["temp_c"]) and d["env"]["temp_c"] is None
            assert all(d["cards"]["online"])
        elif lab.root.startswith("psu/"):
            assert _col(d, "psus", "vout_v", _name(lab.root)) is None
            assert _card(d, "online", _name(lab.effects[0])) is True
        else:
            card = _name(lab.root)
            key = "temp_c" if "temp" in lab.note else "fan_rpm"
            assert _card(d, "online", card) is True and _card(d, key, card) is None


def _check_schedule(gen: Generated, lab: Label) -> None:
    screen = next(s for s in gen.fleet.screens if (s.site, s.screen) == (lab.site, lab.screen))
    zone = ZoneInfo(screen.tz)
    docs = _screen(gen, lab).between(lab.start_ms, lab.end_ms)
    dark = [all(not on for on in d["cards"]["online"]) for d in docs]
    assert sum(dark) >= 0.8 * len(dark)
    assert all(d["controller"]["online"] for d in docs)
    if screen.signal_off:
        assert sum(d["controller"]["signal_ok"] is False for d in docs) >= 0.8 * len(docs)
    offs = {e["off"] for e in screen.schedule}

    def near(ms: int, hhmm: str) -> bool:
        local = datetime.fromtimestamp(ms / 1000, zone)
        for day in (-1, 0, 1):
            t = datetime.combine(local.date(), datetime.strptime(hhmm, "%H:%M").time(), zone)
            delta = abs(local.timestamp() - t.timestamp() - day * 86400) * 1000
            if delta <= SCHEDULE_JITTER_MS + POLL_MS:
                return True
        return False

    if lab.start_ms > gen.fleet.params.start_ms + POLL_MS:
        assert any(near(lab.start_ms, o.split("-")[0]) for o in offs), lab
    if lab.end_ms < gen.fleet.params.end_ms - POLL_MS:
        assert any(near(lab.end_ms, o.split("-")[1]) for o in offs), lab


def test_labels_agree_with_the_data(small_fleet: Generated) -> None:
    kinds = collections.Counter(lab.kind for lab in small_fleet.labels)
    assert set(INCIDENT_KINDS) <= set(kinds)  # this fixture has one of every kind
    assert set(NON_INCIDENT_KINDS) <= set(kinds)
    for lab in small_fleet.labels:
        assert lab.incident == (lab.kind in INCIDENT_KINDS)
        assert lab.hard == (lab.kind in INCIDENT_KINDS and lab.kind != "running_hot")
        assert lab.start_ms < lab.end_ms
        _check(small_fleet, lab)


def test_labels_name_components_that_exist(small_fleet: Generated) -> None:
    for lab in small_fleet.labels:
        if lab.screen == "-":
            assert lab.root.startswith("agent/") and lab.screens
            continue
        doc = _screen(small_fleet, lab).docs[0]
        known = {"screen", "controller", "env"}
        known |= {f"card/{c}" for c in doc["cards"]["id"]}
        known |= {f"link/{c}" for c in doc["cards"]["id"]}
        known |= {f"psu/{p}" for p in doc["psus"]["id"]}
        assert lab.root in known and set(lab.effects) <= known, lab


# -- the replay config --------------------------------------------------------------------------
def test_collector_toml_holds_the_schedules(small_fleet: Generated) -> None:
    cfg = tomllib.loads((small_fleet.out / CONFIG_FILE).read_text())
    assert set(cfg) == {"influx", "database", "detect"}
    assert cfg["influx"] == {"output": "none"}
    assert cfg["database"]["url"] == f"sqlite:///{(small_fleet.out / 'tickets.db').resolve()}"
    sites = cfg["detect"]["sites"]
    assert set(sites) == set(small_fleet.fleet.sites)
    scheduled = 0
    for s in small_fleet.fleet.screens:
        assert sites[s.site]["timezone"] == s.tz
        section = sites[s.site].get("screens", {}).get(s.screen)
        if not s.schedule:
            assert section is None
            continue
        scheduled += 1
        assert section["timezone"] == s.tz
        assert section["schedule"] == s.schedule
        for entry in section["schedule"]:
            assert set(entry) == {"days", "off"}
    assert scheduled >= 1


# -- seeds ------------------------------------------------------------------------------------
def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", seed=5, screens=2, days=1.5)
    b = generate(tmp_path / "b", seed=5, screens=2, days=1.5)
    for name in (TELEMETRY_FILE, INCIDENTS_FILE):
        assert (a.out / name).read_bytes() == (b.out / name).read_bytes()
    with gzip.open(a.out / TELEMETRY_FILE) as fh:
        assert fh.readline()


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_default_month_mix(seed: int) -> None:
    fleet = plan_fleet(FleetParams(seed=seed))
    assert fleet.params.n_polls * len(fleet.screens) == 259_200
    assert fleet.screen_days == 360
    incidents = [lab for lab in fleet.labels if lab.incident]
    assert 40 <= len(incidents) <= 80
    kinds = collections.Counter(lab.kind for lab in incidents)
    assert set(kinds) == set(INCIDENT_KINDS)
    others = collections.Counter(lab.kind for lab in fleet.labels if not lab.incident)
    assert set(GLITCH_KINDS) <= set(others) and others["null_sensor"] >= 4
    assert others["schedule_off"] >= 100 and others["heat"] >= 20
    deaths = [lab for lab in incidents if lab.kind == "psu_death"]
    assert any(lab.note.startswith("shallow") for lab in deaths)
    assert any(lab.note.startswith("deep") for lab in deaths)
    for lab in deaths:
        assert lab.dark_ms is not None
        assert 36 * HOUR_MS <= lab.dark_ms - lab.start_ms <= 121 * HOUR_MS
    assert 3 <= len(fleet.sites) <= 4
    assert 1 <= sum(1 for s in fleet.screens if s.schedule) <= 6


def test_seeds_give_different_months() -> None:
    mixes = []
    for seed in (1, 2, 3):
        fleet = plan_fleet(FleetParams(seed=seed))
        mixes.append(sorted((lab.kind, lab.site, lab.screen, lab.start_ms)
                            for lab in fleet.labels if lab.incident))  # fmt: skip
    counts = [collections.Counter(k for k, *_ in m) for m in mixes]
    assert counts[0] != counts[1] != counts[2] != counts[0]
    assert not set(mixes[0]) & set(mixes[1])

"""Smart Modbus PSUs in the agent: `[[screens.psus]]` config, merge, and the real chain.

End to end: NovaStar emulator (TCP) + Modbus PSU emulator (Modbus TCP, real pymodbus
server) + the agent's poll (`run_once` without MQTT) into the real SQLite outbox.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from agent.drivers.novastar.driver import parse_options
from agent.outbox import Kind
from agent.reading import merge_psus, psu_events
from agent.runtime import Agent, build_psu_sources
from agent.settings import AgentSettings, load_settings, parse_settings
from firmware_protocols.emulators.modbus_psu import ModbusPsuEmulator
from firmware_protocols.emulators.novastar import NovastarEmulator
from ledwatch.contract import validate_telemetry
from ledwatch.errors import ConfigError

FAST = {"timeout_ms": 150, "retries": 0}


def raw_settings(psus: list[dict[str, Any]], tmp_path: Path | None = None) -> dict[str, Any]:
    return {
        "agent": {"id": "pc1", "site": "psu-site", "poll_interval_s": 1,
                  "data_dir": str((tmp_path or Path("/nonexistent")) / "data")},
        "screens": [{"id": "wall", "controller": {"driver": "novastar"}, "psus": psus}],
    }  # fmt: skip


def bad(psus: list[dict[str, Any]]) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_settings(raw_settings(psus))
    return str(exc.value)


UNIT = {"slave": 1, "id": "psu-a"}


# -- configuration --------------------------------------------------------------------------
def test_psus_config_errors_name_the_key() -> None:
    ok = {"url": "modbus-tcp://127.0.0.1:1502", "units": [UNIT]}
    msg = bad([ok, {"url": "modbus-tcp://h", "units": [{"slave": 0, "id": "psu-b"}]}])
    assert msg.startswith("screens[0].psus[1].units[0].slave: "), msg
    msg = bad([ok, {"url": "modbus-tcp://h", "units": [{"slave": 2, "id": "b"},
                                                       {"slave": 2, "id": "c"}]}])  # fmt: skip
    assert msg == "screens[0].psus[1].units[1].slave: duplicate 2 (already units[0].slave)"
    msg = bad([ok, {"url": "modbus-tcp://h", "units": [{"slave": 1, "id": "psu-a"}]}])
    assert msg == "screens[0].psus[1].units[0].id: duplicate 'psu-a' (already psus[0].units[0].id)"
    msg = bad([{"url": "modbus-tcp://h", "map": "no_such_psu", "units": [UNIT]}])
    assert msg.startswith("screens[0].psus[0].map: unknown register map 'no_such_psu'"), msg
    msg = bad([{"url": "modbus-udp://h", "units": [UNIT]}])
    assert msg.startswith("screens[0].psus[0].url: scheme must be"), msg
    msg = bad([{"url": "modbus-tcp://h", "units": [UNIT], "baud": 9600}])
    assert msg.startswith("screens[0].psus[0].baud: unknown key"), msg
    msg = bad([{"url": "modbus-tcp://h", "units": [{"slave": 1, "id": "a", "card": "c1"}]}])
    assert msg.startswith("screens[0].psus[0].units[0].card: 'c1' is not a receiving card"), msg
    assert bad([{"url": "modbus-tcp://h", "units": []}]).startswith("screens[0].psus[0].units: ")


def test_psus_from_toml_with_a_map_next_to_the_config(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parents[2] / "firmware_protocols" / "registermaps"
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "mine.toml").write_text(
        (shipped / "meanwell_drs_npb.toml").read_text("utf-8"), "utf-8"
    )
    config = tmp_path / "agent.toml"
    config.write_text(
        textwrap.dedent(
            """
            [agent]
            id = "pc1"
            site = "psu-site"

            [[screens]]
            id = "wall"
            [screens.controller]
            driver = "novastar"
            url = "tcp://127.0.0.1:5200"
            cards_per_port = 2

            [[screens.psus]]
            url = "modbus-tcp://127.0.0.1:1502"
            map = "maps/mine.toml"
            [[screens.psus.units]]
            slave = 1
            id = "p0c0-psu1"
            card = "p0c0"

            [[screens.psus]]
            url = "modbus-rtu:///dev/ttyUSB1?baud=9600"
            [[screens.psus.units]]
            slave = 7
            id = "aux-psu"
            """
        ),
        "utf-8",
    )
    settings = load_settings(config)
    buses = settings.screens[0].psus
    assert [b.url for b in buses] == ["modbus-tcp://127.0.0.1:1502",
                                      "modbus-rtu:///dev/ttyUSB1?baud=9600"]  # fmt: skip
    assert buses[0].map == str(tmp_path / "maps" / "mine.toml")  # relative to the config
    assert buses[1].map == "meanwell_drs_npb" and buses[1].units[0].slave == 7
    (tmp_path / "maps" / "mine.toml").unlink()
    with pytest.raises(ConfigError, match=r"screens\[0\]\.psus\[0\]\.map: .*cannot read"):
        load_settings(config)


def test_sample_config_examples_load(tmp_path: Path) -> None:
    """agent/sample.toml as shipped, and with its commented layout and PSU examples on."""
    sample = Path(__file__).resolve().parents[2] / "agent" / "sample.toml"
    assert load_settings(sample).screens[0].psus == []
    text = sample.read_text("utf-8")
    head, sep, tail = text.partition("# Where each receiving card hangs")
    example = re.compile(r"^# (\[\[screens\.|[a-z_]+ = )", re.MULTILINE)
    on = tmp_path / "agent.toml"
    on.write_text(head + sep + example.sub(r"\1", tail), "utf-8")
    settings = load_settings(on)
    screen = settings.screens[0]
    assert [u.id for u in screen.psus[0].units] == ["p0c0-psu1", "p0c0-psu2"]
    positions = parse_options(screen.controller.options()).positions()
    assert positions["p0c4"] == (1, 3) and positions["p1c0"] == (2, 0)
    assert len(build_psu_sources(settings)["lobby"]) == 1


# -- the pure merge -----------------------------------------------------------------------------
RAILS: dict[str, list[Any]] = {
    "id": ["p0c0-psu1", "p0c0-psu2", "p0c1-psu1"],
    "card": ["p0c0", "p0c0", "p0c1"],
    "ok": [True, True, False],
    "vout_v": [5.01, 4.98, 4.2],
    "iout_a": [None, None, None],
    "temp_c": [None, None, None],
    "fan_rpm": [None, None, None],
}


def bus(**rows: tuple[Any, ...]) -> dict[str, list[Any]]:
    base: dict[str, list[Any]] = {
        k: [] for k in ("id", "card", "ok", "vout_v", "iout_a", "temp_c", "fan_rpm", "faults")
    }
    for ident, (ok, vout, iout, faults) in rows.items():
        for k, v in zip(("id", "card", "ok", "vout_v", "iout_a", "temp_c", "fan_rpm", "faults"),
                        (ident, None, ok, vout, iout, 40.0 if vout is not None else None,
                         2400.0 if vout is not None else None, faults), strict=True):  # fmt: skip
            base[k].append(v)
    return base


def test_merge_replaces_rails_and_appends_others() -> None:
    smart = bus(**{"p0c1-psu1": (False, 4.3, 18.0, "output_off"), "aux": (True, 5.1, 2.0, "")})
    merged = merge_psus(RAILS, [smart])
    assert merged["id"] == ["p0c0-psu1", "p0c0-psu2", "p0c1-psu1", "aux"]
    assert {len(col) for col in merged.values()} == {4}
    assert list(merged)[:7] == list(RAILS) and "faults" in merged
    assert merged["vout_v"] == [5.01, 4.98, 4.3, 5.1]  # the smart unit's own reading wins
    assert merged["iout_a"] == [None, None, 18.0, 2.0]
    assert merged["card"] == ["p0c0", "p0c0", "p0c1", None]  # the rail's card is kept
    assert merged["faults"] == [None, None, "output_off", ""]
    assert RAILS["vout_v"] == [5.01, 4.98, 4.2]  # inputs untouched


def test_merge_keeps_the_rail_where_the_smart_unit_is_silent() -> None:
    silent = bus(**{"p0c1-psu1": (None, None, None, None), "aux": (None, None, None, None)})
    merged = merge_psus(RAILS, [silent])
    assert merged["vout_v"] == [5.01, 4.98, 4.2, None] and merged["ok"][2:] == [False, None]
    assert merge_psus({"id": [], "ok": [], "vout_v": []}, []) == {"id": [], "ok": [],
                                                                  "vout_v": []}  # fmt: skip


def test_psu_events_only_for_smart_ids() -> None:
    before: dict[str, list[Any]] = {
        "id": ["a", "b", "c"], "ok": [True, False, True], "faults": ["", "x", ""]
    }  # fmt: skip
    after: dict[str, list[Any]] = {
        "id": ["a", "b", "c"],
        "ok": [False, True, None],
        "faults": ["fan_fail", "", None],
    }
    assert psu_events(None, after, ["a", "b", "c"]) == []
    assert psu_events(before, after, ["a", "b", "c"]) == [
        {"event": "psu_failed", "component": "psu/a", "faults": "fan_fail"},
        {"event": "psu_recovered", "component": "psu/b"},
    ]
    assert psu_events(before, after, ["b"]) == [{"event": "psu_recovered", "component": "psu/b"}]


# -- end to end: both emulators, the agent's poll, the real outbox -------------------------------
@pytest.fixture
def controller() -> Iterator[NovastarEmulator]:
    emu = NovastarEmulator(ports=1, cards=2, psus=2)
    yield emu
    emu.stop()


@pytest.fixture
def psu_bus() -> Iterator[ModbusPsuEmulator]:
    with ModbusPsuEmulator(3, seed=3) as emu:
        yield emu


def agent_settings(tmp_path: Path, controller: NovastarEmulator, psu_url: str) -> AgentSettings:
    host, port = controller.serve_tcp()
    raw = raw_settings(
        [
            {
                "url": psu_url,
                **FAST,
                "units": [
                    {"slave": 1, "id": "p0c0-psu1", "card": "p0c0"},  # replaces a rail
                    {"slave": 2, "id": "p0c1-psu2", "card": "p0c1"},  # replaces a rail
                    {"slave": 3, "id": "aux-psu"},  # appended
                ],
            }
        ],
        tmp_path,
    )
    raw["screens"][0]["controller"] = {
        "driver": "novastar", "url": f"tcp://{host}:{port}", "cards_per_port": 2,
        "psus_per_cabinet": 2, "timeout_ms": 200, "retries": 1,
    }  # fmt: skip
    return parse_settings(raw)


def poll(agent: Agent) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One poll through the agent; the telemetry doc and events it put in the outbox."""
    assert agent.run_once(5.0)
    msgs = agent.outbox.next_batch(1000)
    agent.outbox.ack_batch([m.id for m in msgs])
    tele = [orjson.loads(m.payload) for m in msgs if m.kind == Kind.TELEMETRY]
    assert len(tele) == 1
    return tele[0], [orjson.loads(m.payload) for m in msgs if m.kind == Kind.EVENT]


def rows(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    psus = doc["psus"]
    return {ident: {k: v[i] for k, v in psus.items()} for i, ident in enumerate(psus["id"])}


def test_smart_psus_in_the_snapshot_end_to_end(
    tmp_path: Path, controller: NovastarEmulator, psu_bus: ModbusPsuEmulator
) -> None:
    agent = Agent(agent_settings(tmp_path, controller, psu_bus.url), publish=False)
    try:
        doc, _ = poll(agent)
        validate_telemetry(doc)
        assert doc["controller"]["online"] is True and all(doc["cards"]["online"])
        psus = rows(doc)
        assert list(psus) == ["p0c0-psu1", "p0c0-psu2", "p0c1-psu1", "p0c1-psu2", "aux-psu"]
        assert {len(col) for col in doc["psus"].values()} == {5}
        for ident, slave in (("p0c0-psu1", 1), ("p0c1-psu2", 2), ("aux-psu", 3)):
            values, _ = psu_bus.snapshot(slave)
            row = psus[ident]
            assert row["ok"] is True and row["faults"] == ""
            assert row["vout_v"] == pytest.approx(values["vout_v"], abs=0.05)
            assert row["iout_a"] == pytest.approx(values["iout_a"], abs=1.0)
            assert row["temp_c"] is not None and row["fan_rpm"] is not None
        # Rails without a smart unit keep the monitoring card's reading only.
        assert psus["p0c0-psu2"]["iout_a"] is None and psus["p0c0-psu2"]["faults"] is None
        assert psus["p0c0-psu2"]["vout_v"] == pytest.approx(5.0, abs=0.2)
        assert psus["aux-psu"]["card"] is None and psus["p0c1-psu2"]["card"] == "p0c1"
        assert doc["stats"]["poll_errors"] == 0

        psu_bus.inject(2, "die")
        doc, events = poll(agent)
        validate_telemetry(doc)
        dead = rows(doc)["p0c1-psu2"]
        assert dead["ok"] is False and dead["vout_v"] == 0.0 and "output_off" in dead["faults"]
        failed = [e for e in events if e["event"] == "psu_failed"]
        assert [e["component"] for e in failed] == ["psu/p0c1-psu2"]
        assert "output_off" in failed[0]["detail"]["faults"]
        assert agent.pollers[0].status()["psus_answered"] == 3
    finally:
        agent.stop()


def test_a_dead_bus_gives_nulls_and_counts_errors(
    tmp_path: Path, controller: NovastarEmulator, psu_bus: ModbusPsuEmulator
) -> None:
    agent = Agent(agent_settings(tmp_path, controller, psu_bus.url), publish=False)
    try:
        first, _ = poll(agent)
        assert rows(first)["aux-psu"]["ok"] is True and first["stats"]["poll_errors"] == 0
        psu_bus.stop()  # the gateway is gone: refused connections from now on
        doc, _ = poll(agent)
        validate_telemetry(doc)
        assert doc["controller"]["online"] is True and all(doc["cards"]["online"])
        psus = rows(doc)
        assert set(psus["aux-psu"].values()) == {"aux-psu", None}
        # A replaced rail falls back to the monitoring card's view of it.
        rail = psus["p0c1-psu2"]
        assert rail["vout_v"] == pytest.approx(5.0, abs=0.2) and rail["ok"] is True
        assert rail["iout_a"] is None and rail["faults"] is None
        assert doc["stats"]["poll_errors"] >= 1
        again, _ = poll(agent)  # the poll goes on, each poll counts the dead bus again
        assert again["stats"]["poll_errors"] > doc["stats"]["poll_errors"]
        assert again["seq"] == doc["seq"] + 1
    finally:
        agent.stop()


def test_check_config_tests_each_psu_bus(
    tmp_path: Path, controller: NovastarEmulator, psu_bus: ModbusPsuEmulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`ledwatch agent --check-config` reads every Modbus bus once and says how many answer."""
    from agent.cli import check_config

    settings = agent_settings(tmp_path, controller, psu_bus.url)
    assert check_config(settings) == 0
    out = capsys.readouterr().out
    assert f"psus[0] {psu_bus.url}: OK 3/3 units answering" in out, out

    psu_bus.stop()  # the bus is gone: the check fails and says so, it does not crash
    assert check_config(settings) == 1
    out = capsys.readouterr().out
    assert f"psus[0] {psu_bus.url}: FAIL 0/3 units answering" in out, out

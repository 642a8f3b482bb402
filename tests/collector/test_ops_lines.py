"""The collector's own series (collector/influx/ops.py): lines, types, nulls, the scheduler.

A field whose type changes is refused by InfluxDB for the rest of the shard ("field type
conflict"), so the tests check types through the real line parser and, once, by writing
both spellings of a value to a real InfluxDB 1.6.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import update

from collector.influx.ops import (
    COLLECTOR_FIELDS,
    POKE_GAP_MS,
    RETRY_MS,
    OpsScheduler,
    collector_line,
    collector_stats,
    day_start_ms,
    kpi_fields,
    kpi_line,
    month_of,
    open_ticket_line,
)
from collector.influx.writers import parse_line
from collector.metrics import Metrics
from collector.notify.memory import MemoryOutbox
from collector.notify.sender import Sender
from collector.notify.settings import NotifySettings
from collector.pipeline import WriteStats
from collector.service import Collector
from collector.settings import settings_from_dict
from collector.tickets import TicketService, db
from collector.tickets.kpis import Kpis
from collector.tickets.models import Ticket

MIN = 60_000
MIDNIGHT = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp() * 1000)
NOW = MIDNIGHT + 10 * 60 * MIN + 17 * MIN + 42_123  # 2026-03-01 10:17:42.123 UTC


def parse(line: str) -> tuple[str, dict[str, str], dict[str, Any], int | None]:
    return parse_line(line)


# -- collector ------------------------------------------------------------------------------


@dataclasses.dataclass
class _PoolView:
    """The one attribute of a WritePool that collector_stats reads (a real WriteStats)."""

    stats: WriteStats


def test_collector_stats_from_the_real_counters() -> None:
    metrics = Metrics()
    metrics.inc("received", 5, label="telemetry")
    metrics.inc("received", 2, label="event")
    metrics.inc("dead_letters", 1, label="json")
    metrics.inc("write_errors", 3, label="retryable")
    metrics.inc("stored_points", 700)
    metrics.set("connected", True)
    pool = _PoolView(WriteStats(in_flight=2, held_messages=9, writes=4, write_seconds=0.5))
    sender = Sender(MemoryOutbox(), {}, lambda: NOW, NotifySettings())
    stats = collector_stats(metrics, pool, sender, now_s=metrics.started_ts + 12.5)
    assert stats["received"] == 7 and stats["dead_letters"] == 1 and stats["write_errors"] == 3
    assert (stats["stored_points"], stats["writes_in_flight"], stats["write_requests"]) == (
        700, 2, 4)
    assert stats["uptime_s"] == 12.5 and stats["broker_connected"] is True
    assert stats["notify_sent"] == 0 and stats["notify_channels_down"] == 0
    # Every key it produces is a field of the measurement (nothing silently dropped).
    assert set(stats) <= {name for name, _ in COLLECTOR_FIELDS}
    # Not started: no pool, no sender, and their fields are simply absent.
    bare = collector_stats(metrics, None, None)
    assert "writes_in_flight" not in bare and "notify_sent" not in bare


def test_collector_line_types_never_change() -> None:
    """Counters are `i` even when handed a float, durations floats even when an int."""
    a = collector_line("c-1", {"received": 3, "write_seconds": 2, "uptime_s": 10,
                               "write_failing": False, "pending": 0}, NOW)
    b = collector_line("c-1", {"received": 3.0, "write_seconds": 0.25, "uptime_s": 10.5,
                               "write_failing": True, "pending": 1.0}, NOW)
    assert a is not None and b is not None
    for line in (a, b):
        m, tags, fields, ts = parse(line)
        assert (m, tags, ts) == ("collector", {"collector": "c-1"}, NOW)
        assert isinstance(fields["received"], int) and isinstance(fields["pending"], int)
        assert isinstance(fields["write_seconds"], float)
        assert isinstance(fields["uptime_s"], float)
        assert isinstance(fields["write_failing"], bool)
    assert "received=3i" in a and "write_seconds=2.0" in a


def test_collector_line_escapes_and_omits() -> None:
    line = collector_line("collector 1,a=b", {"received": 1, "dead_letters": None,
                                              "not_a_field": 5}, NOW)
    assert line is not None
    assert line.startswith("collector,collector=collector\\ 1\\,a\\=b received=1i ")
    _, tags, fields, _ = parse(line)
    assert tags == {"collector": "collector 1,a=b"} and fields == {"received": 1}
    assert collector_line("c", {"dead_letters": None}, NOW) is None


# -- kpi --------------------------------------------------------------------------------------


def full_kpis(site: str | None = None) -> Kpis:
    """Every KPI set, the float ones with whole values (the case that tempts an `i`)."""
    return Kpis(
        month="2026-03", site=site, tickets_opened=4, tickets_closed=2, satisfaction_rate=1,
        surveyed=1, cycle_compliance_rate=0.5, repeat_service_rate=0, mtta_min=12,
        mttr_min=95.5, response_compliance_rate=1, onsite_compliance_rate=0.25,
        availability=1, screens=3, downtime_min=0, failures_by_component={"card": 3, "psu": 1},
        response_breaches=1, onsite_breaches=0, inspection_compliance_rate=1.0,
        followup_compliance_rate=0.0, inspections_due=2, followups_due=1,
        mtbf_h_by_model={"psu": {"MW LRS-200": 720.0, "odd model,x=1": None}},
    )


def test_kpi_line_follows_declared_types() -> None:
    m, tags, fields, ts = parse(kpi_line(full_kpis(), day_start_ms(NOW)))
    assert (m, tags, ts) == ("kpi", {"scope": "fleet"}, day_start_ms(NOW))
    assert fields["month"] == "2026-03"
    floats = {f.name for f in dataclasses.fields(Kpis) if "float" in str(f.type)
              and "dict" not in str(f.type)}
    ints = {f.name for f in dataclasses.fields(Kpis) if str(f.type) == "int"}
    assert floats and ints
    for name in floats:
        assert isinstance(fields[name], float), name
    for name in ints:
        assert isinstance(fields[name], int) and not isinstance(fields[name], bool), name
    assert fields["failures_card"] == 3 and fields["failures_psu"] == 1
    assert fields["mtbf_h_psu_MW LRS-200"] == 720.0
    assert "mtbf_h_psu_odd model,x=1" not in fields  # None: left out


def test_kpi_line_covers_every_kpi() -> None:
    """A KPI added to the dataclass with a type ops.py cannot store fails here."""
    names = {key for key, _ in kpi_fields(full_kpis())}
    for f in dataclasses.fields(Kpis):
        if f.name in ("month", "site"):
            continue
        if f.name.endswith(("_by_component", "_by_model")):
            prefix = f.name.split("_by_")[0]
            assert any(n.startswith(prefix + "_") for n in names), f.name
        else:
            assert f.name in names, f.name


def test_kpi_line_omits_nulls_and_tags_the_site() -> None:
    empty = Kpis(month="2026-03", site="acme hq", tickets_opened=0, tickets_closed=0,
                 satisfaction_rate=None, surveyed=0, cycle_compliance_rate=None,
                 repeat_service_rate=None, mtta_min=None, mttr_min=None,
                 response_compliance_rate=None, onsite_compliance_rate=None, availability=None,
                 screens=0, downtime_min=0.0)
    line = kpi_line(empty, 0)
    assert line.startswith("kpi,scope=site,site=acme\\ hq month=\"2026-03\",tickets_opened=0i,")
    _, tags, fields, _ = parse(line)
    assert tags == {"scope": "site", "site": "acme hq"}
    assert "availability" not in fields and "mtta_min" not in fields
    assert not any(k.startswith(("failures_", "mtbf_h_")) for k in fields)


def test_kpi_day_and_month_are_utc() -> None:
    assert day_start_ms(NOW) == MIDNIGHT
    assert month_of(NOW) == "2026-03" and month_of(day_start_ms(NOW) - 1) == "2026-02"


@pytest.mark.services
def test_whole_valued_floats_do_not_conflict_in_influxdb(influxdb1: Any) -> None:
    """InfluxDB 1.6 takes a rate of exactly 1 and then 0.5 into the same field."""
    one = full_kpis("ops-types")
    half = dataclasses.replace(one, availability=0.5, satisfaction_rate=0.5, mtta_min=1.5)
    influxdb1.write("\n".join([kpi_line(one, NOW - MIN), kpi_line(half, NOW)]), precision="ms")
    rows = influxdb1.rows("SELECT availability, tickets_opened FROM kpi WHERE site = 'ops-types'")
    assert [r["availability"] for r in rows] == [1, 0.5]


# -- open_ticket --------------------------------------------------------------------------------


def ticket(**changes: Any) -> Ticket:
    base = dict(
        id=7, key="k", site="acme", screen="lobby", component="card/c4", fault="card_offline",
        priority="P2", state="open", source="auto", detail="", reporter=None, engineer=None,
        opened_ms=NOW - 10 * MIN, reopened_ms=None, acknowledged_ms=None, dispatched_ms=None,
        arrived_ms=None, cleared_ms=None, resolved_ms=None, closed_ms=None,
        response_due_ms=NOW + 5 * MIN, onsite_due_ms=NOW + 120 * MIN,
        resolve_due_ms=NOW + 480 * MIN, repair_due_ms=None, in_warranty=None, reopen_count=0,
        repeat_of=None, root_cause=None, resolution=None, product_fault=True,
    )
    base.update(changes)
    return Ticket(**base)  # type: ignore[arg-type]


def fields_of(t: Ticket, now_ms: int = NOW) -> dict[str, Any]:
    m, tags, fields, ts = parse(open_ticket_line(t, now_ms))
    assert m == "open_ticket"
    assert tags == {"priority": t.priority, "screen": t.screen, "site": t.site,
                    "ticket": str(t.id)}
    assert ts == now_ms  # never floored: a rewrite would keep fields the newer one left out
    return fields


def test_open_ticket_counts_down_every_clock() -> None:
    f = fields_of(ticket())
    assert f["response_left_min"] == pytest.approx(5.0)
    assert f["onsite_left_min"] == pytest.approx(120.0)
    assert f["resolve_left_min"] == pytest.approx(480.0)
    assert (f["open"], f["state"], f["fault"], f["component"]) == (
        True, "open", "card_offline", "card/c4")
    assert (f["response_breached"], f["onsite_breached"], f["paused"]) == (False, False, False)
    assert f["escalation_level"] == 0 and isinstance(f["escalation_level"], int)


def test_open_ticket_types_are_stable_for_whole_minutes() -> None:
    """A deadline exactly 5 minutes away is still the float 5.0, never `5i`."""
    t = ticket(response_due_ms=NOW - NOW % MIN + 5 * MIN)
    line = open_ticket_line(t, NOW - NOW % MIN)
    assert "response_left_min=5.0," in line
    f = fields_of(t, NOW - NOW % MIN)
    for key in ("response_left_min", "onsite_left_min", "resolve_left_min"):
        assert isinstance(f[key], float)


def test_open_ticket_drops_clocks_once_their_step_is_done() -> None:
    acked = fields_of(ticket(state="acknowledged", acknowledged_ms=NOW - MIN))
    assert "response_left_min" not in acked and "onsite_left_min" in acked
    arrived = fields_of(ticket(state="on_site", acknowledged_ms=NOW - 3 * MIN,
                               dispatched_ms=NOW - 2 * MIN, arrived_ms=NOW - MIN))
    assert "onsite_left_min" not in arrived and "resolve_left_min" in arrived
    # The fault went away (verifying): nobody needs to respond or go, the fix is due.
    verifying = fields_of(ticket(state="verifying", cleared_ms=NOW - MIN))
    assert set(verifying) & {"response_left_min", "onsite_left_min"} == set()
    assert "resolve_left_min" in verifying
    resolved = fields_of(ticket(state="resolved", acknowledged_ms=NOW - 3 * MIN,
                                resolved_ms=NOW - MIN, resolution="remote"))
    assert not any(k.endswith("_left_min") for k in resolved)


def test_open_ticket_overdue_is_negative_and_breached() -> None:
    late = fields_of(ticket(response_due_ms=NOW - 3 * MIN, escalation_level=2))
    assert late["response_left_min"] == pytest.approx(-3.0)
    assert late["response_breached"] is True and late["escalation_level"] == 2
    recorded = fields_of(ticket(state="acknowledged", acknowledged_ms=NOW - MIN,
                                response_due_ms=NOW - 2 * MIN, response_breached_ms=NOW - 2 * MIN))
    assert recorded["response_breached"] is True and "response_left_min" not in recorded
    in_time = fields_of(ticket(state="acknowledged", acknowledged_ms=NOW - 3 * MIN,
                               response_due_ms=NOW - 2 * MIN))
    assert in_time["response_breached"] is False


def test_open_ticket_clock_is_frozen_while_paused() -> None:
    paused = fields_of(ticket(paused_ms=NOW - 4 * MIN))
    assert paused["paused"] is True
    assert paused["response_left_min"] == pytest.approx(9.0)  # due - pause start


def test_open_ticket_escapes_strings_and_tags() -> None:
    t = ticket(component='psu/"p 1",x', fault="manual", screen="-")
    f = fields_of(t)
    assert f["component"] == 'psu/"p 1",x'


# -- the scheduler, on a real ticket database ------------------------------------------------------


class Clock:
    def __init__(self, now_ms: int) -> None:
        self.ms = now_ms

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def svc(tmp_path: Any, clock: Clock) -> Any:
    """A real ticket service (SQLite) on the test's clock."""
    service = TicketService(f"sqlite:///{tmp_path / 'tickets.db'}", clock=clock)
    yield service
    service.close()


def measurements(lines: list[str]) -> list[str]:
    return [line.split(",", 1)[0] for line in lines]


def test_scheduler_writes_everything_at_start_then_only_what_is_due(svc: Any, clock: Clock
                                                                      ) -> None:
    calls: list[int] = []

    def stats() -> dict[str, Any]:
        calls.append(clock.ms)
        return {"received": len(calls)}

    svc.create_manual("acme", "lobby", "screen", "dark", "phone", priority="P1")
    ops = OpsScheduler("c-1", stats, tickets=svc, screens=lambda: [("acme", "lobby")],
                       clock_ms=clock)
    first = ops.due_lines()
    assert sorted(set(measurements(first))) == ["collector", "kpi", "open_ticket"]
    kpis = [parse(line) for line in first if line.startswith("kpi,")]
    assert {tuple(sorted(t.items())) for _, t, _, _ in kpis} == {
        (("scope", "fleet"),), (("scope", "site"), ("site", "acme"))}
    assert all(ts == day_start_ms(NOW) for *_, ts in kpis)
    assert all(f["tickets_opened"] == 1 for _, _, f, _ in kpis)
    assert ops.due_lines() == []  # nothing due: not even the counters were read
    assert len(calls) == 1
    clock.ms += 10_000 - NOW % 10_000  # the next 10 s slot
    assert measurements(ops.due_lines()) == ["collector"]
    clock.ms = NOW - NOW % MIN + MIN  # the next minute
    assert set(measurements(ops.due_lines())) == {"collector", "open_ticket"}


def test_scheduler_without_tickets_writes_only_the_collector() -> None:
    ops = OpsScheduler("c-1", lambda: {"received": 1}, clock_ms=Clock(NOW))
    assert measurements(ops.due_lines()) == ["collector"]


def test_zero_interval_switches_a_measurement_off(svc: Any, clock: Clock) -> None:
    ops = OpsScheduler("c-1", lambda: {"received": 1}, tickets=svc, clock_ms=clock,
                       collector_interval_s=0, kpi_interval_s=0)
    assert measurements(ops.due_lines()) == []  # no ticket open: no open_ticket point
    svc.create_manual("acme", "lobby", "screen", "dark", "phone", priority="P1")
    clock.ms += POKE_GAP_MS
    assert measurements(ops.due_lines()) == ["open_ticket"]  # the change poked it


def test_ticket_changes_refresh_open_tickets_and_mark_what_left(svc: Any, clock: Clock
                                                                 ) -> None:
    ops = OpsScheduler("c-1", dict, tickets=svc, clock_ms=clock, collector_interval_s=0,
                       kpi_interval_s=0)
    assert ops.due_lines() == []
    a, _ = svc.create_manual("acme", "lobby", "card/c1", "dark cabinet", "phone", priority="P3")
    b, _ = svc.create_manual("acme", "lobby", "card/c2", "dark cabinet", "phone", priority="P3")
    # The change poked the job, but the first refresh waits POKE_GAP_MS after the last.
    clock.ms += POKE_GAP_MS
    lines = ops.due_lines()
    assert sorted(parse(x)[1]["ticket"] for x in lines) == [str(a.id), str(b.id)]
    assert ops.due_lines() == []

    # b's priority is raised (a later stage of its fault), a is closed.
    with svc.engine.begin() as conn:
        conn.execute(update(db.tickets).where(db.tickets.c.id == b.id).values(priority="P1"))
    svc.acknowledge(a.id, "desk")
    svc.resolve(a.id, "desk")
    svc.close_ticket(a.id, "desk")
    clock.ms += POKE_GAP_MS
    points = [parse(x) for x in ops.due_lines()]
    by_series = {(t["ticket"], t["priority"]): f for _, t, f, _ in points}
    assert by_series[(str(a.id), "P3")] == {"open": False, "state": "closed"}
    assert by_series[(str(b.id), "P3")] == {"open": False, "state": "moved"}
    assert by_series[(str(b.id), "P1")]["open"] is True
    assert len(points) == 3
    # Marked once: the next minute writes b alone.
    clock.ms += MIN
    assert [parse(x)[1]["ticket"] for x in ops.due_lines()] == [str(b.id)]


def test_a_failing_job_is_counted_and_retried_never_raised(svc: Any, clock: Clock,
                                                           tmp_path: Any) -> None:
    errors: list[str] = []
    broken = {"on": True}

    def stats() -> dict[str, Any]:
        if broken["on"]:
            raise RuntimeError("counters unavailable")
        return {"received": 1}

    ops = OpsScheduler("c-1", stats, tickets=svc, clock_ms=clock, on_error=errors.append)
    # The ticket database loses its tables under the kpi and open_ticket jobs: SQLite
    # opens a new, empty file where it was.
    svc.close()
    for path in tmp_path.glob("tickets.db*"):
        path.unlink()
    assert ops.due_lines() == []
    assert ops.errors == 3 and len(errors) == 3 and "counters unavailable" in errors[0]
    clock.ms += 10_000  # a new slot, but within the retry wait: nothing is tried
    assert ops.due_lines() == [] and ops.errors == 3
    broken["on"] = False
    clock.ms = NOW + RETRY_MS
    lines = ops.due_lines()
    assert measurements(lines) == ["collector"]
    assert parse(lines[0])[2]["ops_errors"] == 3  # counted before this round's failures
    assert ops.errors == 5  # the ticket jobs failed again


def test_in_a_cluster_one_member_writes_the_fleet_series(svc: Any) -> None:
    """kpi (and open_ticket) are fleet-wide: of two members only the care member writes
    them; both write their own `collector` point."""
    written = {}
    for me in ("coll-a", "coll-b"):
        settings = settings_from_dict({
            "mqtt": {"client_id": me}, "influx": {"output": "none"},
            "cluster": {"members": ["coll-a", "coll-b"]}, "care": {"enabled": False}})
        collector = Collector(settings, tickets=svc)
        written[me] = (collector.ownership.runs_care,
                       set(measurements(collector.ops.due_lines())))
    assert sorted(written.values()) == [(False, {"collector"}), (True, {"collector", "kpi"})]

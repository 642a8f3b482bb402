"""The scorer against hand-made labels and tickets (the ticket JSON of the REST API)."""

from __future__ import annotations

from typing import Any

import pytest

from ledwatch.bench.detection.labels import DAY_MS, HOUR_MS, MINUTE_MS, Label
from ledwatch.bench.detection.scorer import (
    Ticket,
    assign,
    format_report,
    score,
    score_line,
)

T0 = 1_790_812_800_000  # 2026-10-01T00:00Z
SITE, SCREEN = "berlin-mitte", "facade-1"


def label(id_: str, kind: str, root: str, start: int, end: int, *, effects: tuple[str, ...] = (),
          hard: bool = True, incident: bool = True, dark: int | None = None,
          screen: str = SCREEN, screens: tuple[str, ...] = ()) -> Label:  # fmt: skip
    return Label(id=id_, kind=kind, hard=hard, site=SITE, screen=screen, root=root,
                 effects=list(effects), start_ms=start, end_ms=end, dark_ms=dark,
                 incident=incident, screens=list(screens))  # fmt: skip


_ids = iter(range(1, 10_000))


def ticket(component: str, opened: int, *steps: tuple[int, str, str], fault: str = "x",
           screen: str = SCREEN, id_: int | None = None) -> dict[str, Any]:  # fmt: skip
    """A ticket as GET /api/v1/tickets/{id} returns it; `steps` = (ts, step, to_state)."""
    history = [{"ts_ms": opened, "actor": "detector", "step": "open", "from_state": None,
                "to_state": "open", "note": ""}]  # fmt: skip
    state = "open"
    for ts, step, to_state in steps:
        history.append({"ts_ms": ts, "actor": "detector", "step": step, "from_state": state,
                        "to_state": to_state, "note": ""})  # fmt: skip
        state = to_state
    return {"id": id_ if id_ is not None else next(_ids), "key": "k", "site": SITE,
            "screen": screen, "component": component, "fault": fault, "priority": "P2",
            "state": state, "opened_ms": opened, "reopen_count": 0, "history": history,
            "effects": [], "flapping": False, "predicted_failure_ms": None}  # fmt: skip


CARD_OFF = label("I001", "card_offline", "card/p0c3", T0 + DAY_MS, T0 + DAY_MS + 3 * HOUR_MS,
                 effects=("psu/p0c3-psu1", "psu/p0c3-psu2"))  # fmt: skip
DARK = T0 + 5 * DAY_MS
PSU_DEATH = label("I002", "psu_death", "psu/p1c2-psu1", DARK - 60 * HOUR_MS, DARK + 4 * HOUR_MS,
                  effects=("card/p1c2", "psu/p1c2-psu2"), dark=DARK)  # fmt: skip
GLITCH = label("N001", "glitch_temp", "card/p0c7", T0 + 8 * DAY_MS, T0 + 8 * DAY_MS + 2 * MINUTE_MS,
               effects=("env",), hard=False, incident=False)  # fmt: skip
LABELS = [CARD_OFF, PSU_DEATH, GLITCH]


def perfect() -> list[dict[str, Any]]:
    return [
        ticket("card/p0c3", CARD_OFF.start_ms + 4 * MINUTE_MS,
               (CARD_OFF.end_ms + 2 * MINUTE_MS, "clear", "verifying")),
        ticket("psu/p1c2-psu1", DARK - 30 * HOUR_MS, (PSU_DEATH.end_ms + MINUTE_MS, "clear",
                                                      "verifying")),
    ]  # fmt: skip


def test_a_perfect_detector_passes() -> None:
    report = score(perfect(), LABELS, screen_days=10)
    assert report.recall == 1.0
    assert report.false_alerts == [] and report.glitch_alerts == []
    assert report.tickets_per_incident == 1.0
    (death,) = report.psu_leads
    assert death.lead_ms == 30 * HOUR_MS
    assert report.passed
    line = score_line(report)
    assert line == ("score: recall 1.000 | false alerts 0.0/1000 screen-days | tickets/incident "
                    "1.00 | psu lead min 30.0 h | glitch tickets 0 | PASS")  # fmt: skip
    text = format_report(report)
    assert text.endswith(line) and "card_offline" in text and "glitch_temp" in text


def test_no_tickets_fails_everything_but_false_alerts() -> None:
    report = score([], LABELS, screen_days=10)
    assert report.recall == 0.0 and report.false_per_1000 == 0.0 and not report.passed
    assert report.psu_unflagged == 1
    assert "FAIL" in score_line(report) and "(1 unflagged)" in score_line(report)


def test_late_ticket_is_found_but_not_in_time() -> None:
    late = [ticket("card/p0c3", CARD_OFF.start_ms + 11 * MINUTE_MS), perfect()[1]]
    report = score(late, LABELS, screen_days=10)
    res = next(r for r in report.incidents if r.label is CARD_OFF)
    assert res.in_time is False and res.tickets and res.delay_ms == 11 * MINUTE_MS
    assert report.recall == 0.5
    on_time = [ticket("card/p0c3", CARD_OFF.start_ms + 10 * MINUTE_MS), perfect()[1]]
    assert score(on_time, LABELS, screen_days=10).recall == 1.0


def test_an_early_ticket_is_a_false_alert_and_misses() -> None:
    early = [ticket("card/p0c3", CARD_OFF.start_ms - 6 * MINUTE_MS), perfect()[1]]
    report = score(early, LABELS, screen_days=10)
    assert len(report.false_alerts) == 1 and report.recall == 0.5
    assert report.false_per_1000 == pytest.approx(100.0)


def test_every_reopening_is_an_alert() -> None:
    t = perfect()
    # re-opened by the detector inside the incident: the same ticket, no false alert
    t[0] = ticket("card/p0c3", CARD_OFF.start_ms + 4 * MINUTE_MS,
                  (CARD_OFF.start_ms + HOUR_MS, "clear", "verifying"),
                  (CARD_OFF.start_ms + 2 * HOUR_MS, "recur", "open"),
                  # and two days later by the detector and by a person: two false alerts
                  (CARD_OFF.end_ms + 2 * DAY_MS, "recur", "open"),
                  (CARD_OFF.end_ms + 2 * DAY_MS + HOUR_MS, "reopen", "open"))  # fmt: skip
    report = score(t, LABELS, screen_days=10)
    assert report.n_alerts == 5
    assert [a.step for a in report.false_alerts] == ["recur", "reopen"]
    res = next(r for r in report.incidents if r.label is CARD_OFF)
    assert len(res.alerts) == 2 and len(res.tickets) == 1
    assert report.tickets_per_incident == 1.0


def test_two_tickets_for_one_incident() -> None:
    t = [*perfect(), ticket("psu/p0c3-psu1", CARD_OFF.start_ms + 5 * MINUTE_MS)]
    report = score(t, LABELS, screen_days=10)
    assert report.tickets_per_incident == 1.5 and not report.false_alerts
    assert "tickets/incident 1.50" in score_line(report)
    assert "incidents with more than one ticket" in format_report(report)


def test_glitch_ticket_counts_and_fails() -> None:
    t = [*perfect(), ticket("env", GLITCH.start_ms + 2 * MINUTE_MS, fault="temp_high")]
    report = score(t, LABELS, screen_days=10)
    assert len(report.glitch_alerts) == 1 and len(report.false_alerts) == 1
    assert report.non_incidents["glitch_temp"] == (1, 1)
    assert not report.passed and "glitch tickets 1" in score_line(report)
    assert "<- glitch_temp N001" in format_report(report)


def test_other_site_screen_or_component_does_not_match() -> None:
    t = perfect()
    t[0]["screen"] = "other-1"
    assert score(t, LABELS, screen_days=10).recall == 0.5
    t = perfect()
    t[0]["component"] = "card/p0c4"
    assert score(t, LABELS, screen_days=10).recall == 0.5
    t = perfect()
    t[0]["site"] = "tokyo-shibuya"
    assert score(t, LABELS, screen_days=10).recall == 0.5


@pytest.mark.parametrize(("kind", "root", "component"), [
    ("screen_dark", "screen", "controller"),
    ("screen_dark", "screen", "screen"),
    ("controller_lost", "controller", "screen"),
    ("signal_lost", "controller", "controller"),
])  # fmt: skip
def test_screen_level_roots_accept_screen_and_controller(kind: str, root: str,
                                                         component: str) -> None:  # fmt: skip
    lab = label("I009", kind, root, T0 + DAY_MS, T0 + DAY_MS + HOUR_MS)
    report = score([ticket(component, T0 + DAY_MS + 2 * MINUTE_MS)], [lab], screen_days=1)
    assert report.recall == 1.0 and not report.false_alerts


def test_agent_incident_matches_agent_and_its_screens() -> None:
    lab = label("I010", "agent_offline", "agent/berlin-pc1", T0 + DAY_MS, T0 + DAY_MS + HOUR_MS,
                screen="-", screens=("facade-1", "lobby-1"))  # fmt: skip
    agent = ticket("agent/berlin-pc1", T0 + DAY_MS + 90_000, screen="-")
    stale = ticket("screen", T0 + DAY_MS + 5 * MINUTE_MS, screen="lobby-1")
    report = score([agent, stale], [lab], screen_days=2)
    assert report.recall == 1.0 and not report.false_alerts
    assert report.tickets_per_incident == 2.0
    card = ticket("card/p0c1", T0 + DAY_MS + 5 * MINUTE_MS, screen="lobby-1")
    assert len(score([agent, card], [lab], screen_days=2).false_alerts) == 1


def test_psu_death_lead_time_and_hard_start() -> None:
    # flagged on the cabinet's card 26 h ahead and still open when it goes dark
    on_card = [perfect()[0], ticket("card/p1c2", DARK - 26 * HOUR_MS)]
    report = score(on_card, LABELS, screen_days=10)
    assert report.psu_leads[0].lead_ms == 26 * HOUR_MS and report.passed
    # flagged only 20 h ahead: found in time, but short of the 24 h target
    short = [perfect()[0], ticket("psu/p1c2-psu1", DARK - 20 * HOUR_MS)]
    report = score(short, LABELS, screen_days=10)
    assert report.recall == 1.0 and not report.passed
    assert "not flagged >= 24 h" in "; ".join(report.failures())
    # a ticket only when the cabinet went dark: in time (hard start = dark_ms), lead 0
    at_dark = [perfect()[0], ticket("psu/p1c2-psu1", DARK + 3 * MINUTE_MS)]
    report = score(at_dark, LABELS, screen_days=10)
    assert report.recall == 1.0 and report.psu_unflagged == 1
    # more than 7 days before the onset is too early to be this PSU's warning
    too_early = [perfect()[0], ticket("psu/p1c2-psu1", PSU_DEATH.start_ms - 8 * DAY_MS)]
    report = score(too_early, LABELS, screen_days=10)
    assert len(report.false_alerts) == 1 and report.psu_unflagged == 1


def test_a_warning_cleared_before_the_death_does_not_count_unless_it_recurs() -> None:
    cleared = ticket("psu/p1c2-psu1", DARK - 30 * HOUR_MS, (DARK - 10 * HOUR_MS, "clear",
                                                            "verifying"))  # fmt: skip
    report = score([perfect()[0], cleared], LABELS, screen_days=10)
    assert report.recall == 0.5  # nothing was open when the cabinet went dark
    assert report.psu_leads[0].lead_ms == 30 * HOUR_MS  # but the warning was there
    recurred = ticket("psu/p1c2-psu1", DARK - 30 * HOUR_MS,
                      (DARK - 10 * HOUR_MS, "clear", "verifying"),
                      (DARK + 4 * MINUTE_MS, "recur", "open"))  # fmt: skip
    report = score([perfect()[0], recurred], LABELS, screen_days=10)
    assert report.recall == 1.0 and report.tickets_per_incident == 1.0
    closed = ticket("psu/p1c2-psu1", DARK - 30 * HOUR_MS, (DARK - HOUR_MS, "close", "closed"))
    assert score([perfect()[0], closed], LABELS, screen_days=10).recall == 0.5


def test_an_alert_goes_to_the_incident_it_falls_in() -> None:
    # a card_offline on the same card three days before a PSU death on that card: the
    # card's ticket falls in both windows (the death's reaches 7 days back)
    lab = label("I003", "card_offline", "card/p1c2", DARK - 4 * DAY_MS,
                DARK - 4 * DAY_MS + HOUR_MS)  # fmt: skip
    alert = Ticket.from_json(ticket("card/p1c2", DARK - 4 * DAY_MS + 4 * MINUTE_MS)).alerts()[0]
    assert assign(alert, [PSU_DEATH, lab]) is lab
    warn = Ticket.from_json(ticket("card/p1c2", DARK - 2 * DAY_MS)).alerts()[0]
    assert assign(warn, [PSU_DEATH, lab]) is PSU_DEATH


def test_ticket_without_history_uses_opened_ms() -> None:
    t = perfect()
    for x in t:
        del x["history"]
    report = score(t, LABELS, screen_days=10)
    assert report.recall == 1.0 and report.n_alerts == 2


def test_running_hot_is_not_counted_in_recall() -> None:
    lab = label("I004", "running_hot", "card/p0c1", T0 + DAY_MS, T0 + 4 * DAY_MS, hard=False)
    report = score([], [lab], screen_days=4)
    assert report.recall == 1.0 and report.hard == []
    warn = ticket("card/p0c1", T0 + DAY_MS + 6 * HOUR_MS, fault="running_hot")
    report = score([warn], [lab], screen_days=4)
    assert report.incidents[0].tickets == [warn["id"]] and not report.false_alerts

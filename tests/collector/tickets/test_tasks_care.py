"""The care job end to end (collector/care.py) on a real ticket database (SQLite and
PostgreSQL): the installed base from the live directory, tasks from the acceptance date,
task_due / task_overdue and the quarterly report's report_ready through the real SQL
outbox and sender to a real webhook receiver and a real SMTP server on 127.0.0.1.

acme/main was accepted 2025-10-15: inspections due 2026-01-15, 04-15, ...; follow-ups
2025-12-15 (before the first run: not owed), 2026-02-15, 04-15, ...
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from ticket_helpers import Clock, ms

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "notify"))
from notify_helpers import HttpReceiver, Reply, Request, SmtpReceiver, wait_until

from collector.care import run_care_jobs
from collector.notify import Sender, build_channels
from collector.notify.routing import Router
from collector.notify.webhook import verify
from collector.settings import CollectorSettings, settings_from_dict
from collector.state import ScreenDirectory, ScreenState
from collector.tickets import TicketService
from collector.tickets.outbox import SqlOutbox

SECRET = "care-test-secret-0123456789"


def _snapshot() -> dict[str, Any]:
    return {
        "schema": "ledwatch.telemetry/1", "site": "acme", "screen": "main", "agent": "pc1",
        "seq": 1, "ts": ms("2026-01-10T00:00"),
        "controller": {"online": True, "model": "MCTRL4K"},
        "cards": {"id": ["p0c0", "p0c1"], "online": [True, True], "temp_c": [40.0, 41.0],
                  "voltage_v": [5.0, 5.0], "module_faults": [0, 0], "model": ["A8s", "A8s"],
                  "modules_total": [8, 8]},
        "psus": {"id": ["psu-1"], "ok": [True], "vout_v": [5.1], "model": ["DRS-480-24"]},
        "env": {},
    }


@pytest.fixture
def receivers() -> Iterator[tuple[HttpReceiver, SmtpReceiver]]:
    def respond(request: Request) -> Reply:
        good = verify(SECRET, request.headers.get("x-ledwatch-timestamp", ""), request.body,
                      request.headers.get("x-ledwatch-signature", ""), now=time.time())
        return (200 if good else 401), {}, b""

    hook, mail = HttpReceiver(respond).start(), SmtpReceiver().start()
    yield hook, mail
    hook.stop()
    mail.stop()


def _settings(tmp_path: Path, hook: HttpReceiver, mail: SmtpReceiver,
              monkeypatch: pytest.MonkeyPatch) -> CollectorSettings:
    monkeypatch.setenv("CARE_HOOK_SECRET", SECRET)
    return settings_from_dict({
        "influx": {"output": "none"},
        "notify": {
            "channels": {
                "hook": {"type": "webhook", "url": f"{hook.url}/hook",
                         "secret_env": "CARE_HOOK_SECRET", "timeout_s": 5},
                "mail": {"type": "smtp", "host": "127.0.0.1", "port": mail.port,
                         "sender": "ledwatch@example.com", "to": ["desk@example.com"],
                         "timeout_s": 5},
            },
            "routes": [{"events": ["task_due", "task_overdue", "report_ready"],
                        "levels": [["hook", "mail"]]}],
        },
        "reports": {"folder": str(tmp_path / "reports"), "formats": ["html"],
                    "complete_tasks": True},
        "care": {"task_notice_days": 7, "inventory_interval_min": 60},
        "contracts": {"sites": {"acme": {"screens": {"main": {
            "acceptance_date": "2025-10-15"}}}}},
    })


def _deliver(sender: Sender, hook: HttpReceiver, mail: SmtpReceiver, posts: int) -> None:
    """Sender rounds until the receivers hold `posts` notifications each."""
    def done() -> bool:
        sender.run_once()
        return len(hook.posts("/hook")) >= posts and len(mail.mails) >= posts

    wait_until(done, timeout_s=20)


def test_the_care_job_schedules_notifies_and_reports(
    make_service: Callable[..., TicketService], clock: Clock, tmp_path: Path,
    receivers: tuple[HttpReceiver, SmtpReceiver], monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook, mail = receivers
    settings = _settings(tmp_path, hook, mail, monkeypatch)
    svc = make_service(settings.contracts)
    svc.router = Router(settings.notify)
    sender = Sender(SqlOutbox(svc.engine), build_channels(settings.notify), svc.now_ms,
                    settings.notify)
    live = ScreenDirectory()
    live.update(ScreenState("acme", "main", "pc1", 1, ms("2026-01-10T00:00"), _snapshot(),
                            ms("2026-01-10T00:00")))

    clock.set("2026-01-10T00:00")
    first = run_care_jobs(svc, settings, screens=live)
    assert first.errors == ()
    assert (first.inventory_recorded, first.tasks_created, first.due_notified) == (1, 2, 1)
    [report] = first.reports  # 2025-Q4, the quarter just ended
    path = tmp_path / "reports" / "2025-Q4" / "acme" / "main.html"
    assert report.paths == (path,) and path.read_text().count("acme") > 0
    assert report.summary.startswith("acme/main 2025-Q4: availability")
    base = {(r.kind, r.model): r.quantity for r in svc.inventory("acme", "main")}
    assert base == {("controller", "MCTRL4K"): 1, ("module", "A8s"): 16,
                    ("psu", "DRS-480-24"): 1, ("receiving_card", "A8s"): 2}
    inspection = svc.tasks(kind="inspection")[0]
    assert inspection.due_ms == ms("2026-01-15T00:00")
    assert (inspection.done_by, inspection.report) == ("collector (report)", str(path))
    assert [t.due_ms for t in svc.tasks(kind="follow_up")] == [ms("2026-02-15T00:00")]

    _deliver(sender, hook, mail, 2)
    bodies = [orjson.loads(r.body) for r in hook.posts("/hook")]
    assert [b["event"] for b in bodies] == ["task_due", "report_ready"]  # one task: in order
    assert bodies[0]["task"]["kind"] == "inspection" and "ticket" not in bodies[0]
    assert bodies[0]["task"]["priority"] == "P4"
    assert bodies[1]["note"] == report.summary
    assert bodies[1]["report"]["paths"] == [str(path)]
    assert bodies[1]["report"]["task"]["id"] == inspection.id
    subjects = [m.message["Subject"] for m in mail.mails]
    assert subjects == ["[LEDwatch P4] acme/main remote inspection due 2026-01-15: task due",
                        "[LEDwatch P4] acme/main inspection report 2025-Q4: report ready"]
    assert mail.mails[1].message["X-LEDwatch-Task"] == str(inspection.id)
    assert report.summary in mail.mails[1].message.get_content()

    # The same moment again: nothing new anywhere.
    again = run_care_jobs(svc, settings, screens=live)
    assert (again.inventory_recorded, again.tasks_created, again.due_notified,
            again.reports) == (0, 0, 0, ())
    assert sender.run_once() == 0

    # Nobody called by Feb 15: the follow-up is overdue (it was never "due" at a run).
    clock.set("2026-02-16T00:00")
    late = run_care_jobs(svc, settings, screens=live)
    assert (late.inventory_recorded, late.due_notified, late.overdue_notified) == (1, 0, 1)
    _deliver(sender, hook, mail, 3)
    last = orjson.loads(hook.posts("/hook")[-1].body)
    assert (last["event"], last["task"]["state"], last["task"]["due_ms"]) == (
        "task_overdue", "overdue", ms("2026-02-15T00:00"))
    # Every post was signed (the receiver refused bad signatures with 401: given up, and
    # the ids would not match the mails'), each notification once per channel.
    for r in hook.posts("/hook"):
        assert verify(SECRET, r.headers["x-ledwatch-timestamp"], r.body,
                      r.headers["x-ledwatch-signature"], now=time.time())
    ids = [r.headers["x-ledwatch-notification-id"] for r in hook.posts("/hook")]
    assert len(set(ids)) == 3 and all(i.endswith("-hook-0") for i in ids)
    assert [m.message["X-LEDwatch-Notification-Id"] for m in mail.mails] == [
        i.replace("-hook-0", "-mail-0") for i in ids]
    assert sender.stats()["given_up"] == 0


def test_a_failing_duty_does_not_stop_the_others(
    make_service: Callable[..., TicketService], clock: Clock, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_from_dict({
        "influx": {"output": "none"},
        "reports": {"folder": str(tmp_path / "reports"), "formats": ["html"]},
        "contracts": {"sites": {"acme": {"screens": {"main": {
            "acceptance_date": "2025-10-15"}}}}},
    })
    svc = make_service(settings.contracts)
    clock.set("2026-01-10T00:00")
    (tmp_path / "reports").write_text("a file where the folder should be")
    live = ScreenDirectory()
    broken = _snapshot() | {"site": "acme", "screen": "side", "cards": "not columns"}
    live.update(ScreenState("acme", "side", "pc1", 1, 0, broken, 0))
    summary = run_care_jobs(svc, settings, screens=live)
    assert summary.tasks_created == 2  # scheduled although the reports failed
    assert [e.split(":")[0] for e in summary.errors] == ["inspection reports"]
    assert "care:" in summary.line() and "1 failed" in summary.line()
    assert run_care_jobs(svc, settings.model_copy(update={"care": settings.care.model_copy(
        update={"enabled": False})}), screens=live).tasks_created == 0


def test_a_report_left_for_a_person_and_written_again_after_a_crash(
    make_service: Callable[..., TicketService], clock: Clock, tmp_path: Path,
    receivers: tuple[HttpReceiver, SmtpReceiver], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """complete_tasks off (the default): the report is attached to the inspection task,
    which stays open for the person who reads it. A run that dies after recording the
    report but before publishing its files is repeated whole: same task, one
    notification per channel (fixed ids), the files then on disk."""
    from collector.reports.schedule import generate_due
    from collector.reports.source import ReportSource

    hook, mail = receivers
    settings = _settings(tmp_path, hook, mail, monkeypatch)
    reports = settings.reports.model_copy(update={"complete_tasks": False})
    svc = make_service(settings.contracts)
    svc.router = Router(settings.notify)
    clock.set("2026-01-10T00:00")
    svc.schedule_tasks()
    source = ReportSource(None, "no history in this test")
    [first] = generate_due(svc, source, reports, contracts=settings.contracts)
    task = svc.tasks(kind="inspection")[0]
    assert (task.done_ms, task.report) == (None, str(first.paths[0]))
    first.paths[0].unlink()  # as if the files had never been published
    [again] = generate_due(svc, source, reports, contracts=settings.contracts)
    assert again.paths == first.paths and again.paths[0].exists()
    assert svc.tasks(kind="inspection")[0].report == str(first.paths[0])
    assert generate_due(svc, source, reports, contracts=settings.contracts) == []  # on disk
    outbox = SqlOutbox(svc.engine)
    assert [p.notification.event for p in outbox.due(clock.ms, 10)] == ["report_ready"] * 2
    assert outbox.counts()["waiting"] == 2  # one per channel, not one per run


def test_alertmanager_and_pagerduty_take_task_events(
    make_service: Callable[..., TicketService], clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Task events to an Alertmanager and a PagerDuty endpoint (a real HTTP server on
    127.0.0.1 answering like them): an alert of their own, never in the ticket registry;
    a PagerDuty trigger keyed by the task, severity from the task priority."""
    from collector.notify import load_notify

    def respond(request: Request) -> Reply:
        return (202 if request.path == "/v2/enqueue" else 200), {}, b""

    receiver = HttpReceiver(respond).start()
    try:
        monkeypatch.setenv("CARE_PD_KEY", "k" * 32)
        notify = load_notify({
            "channels": {"am": {"type": "alertmanager", "url": receiver.url, "resend_s": 60},
                         "pd": {"type": "pagerduty", "url": f"{receiver.url}/v2/enqueue",
                                "routing_key_env": "CARE_PD_KEY"}},
            "routes": [{"levels": [["am", "pd"]]}],
        })
        svc = make_service({"sites": {"acme": {"screens": {"main": {
            "acceptance_date": "2026-01-10"}}}}})
        svc.router = Router(notify)
        clock.set("2026-03-05T00:00")
        svc.schedule_tasks()
        assert svc.notify_tasks(priority="P3") == (1, 0)
        channels = build_channels(notify)
        sender = Sender(SqlOutbox(svc.engine), channels, svc.now_ms, notify)
        wait_until(lambda: sender.run_once() == 0 and len(receiver.posts()) >= 2)
        am = orjson.loads(receiver.posts("/api/v2/alerts")[0].body)
        assert [a["labels"]["alertname"] for a in am] == ["ledwatch_task_due"]
        labels = am[0]["labels"]
        assert (labels["site"], labels["screen"], labels["task"], labels["priority"]) == (
            "acme", "main", "follow_up", "P3")
        assert am[0]["annotations"]["summary"] == (
            "P3 acme/main follow-up contact due 2026-03-10: task due")
        assert channels["am"].active == {}  # type: ignore[attr-defined]
        pd = orjson.loads(receiver.posts("/v2/enqueue")[0].body)
        assert (pd["event_action"], pd["dedup_key"], pd["payload"]["severity"]) == (
            "trigger", f"task/acme/main/follow_up/{ms('2026-03-10T00:00')}", "warning")
        assert pd["payload"]["custom_details"]["kind"] == "follow_up"
        assert sender.stats()["given_up"] == 0
    finally:
        receiver.stop()

"""Routing: first matching route wins, `continue` adds, levels are the escalation ladder."""

from __future__ import annotations

import pytest

from collector.notify.model import Event
from collector.notify.routing import Router, levels, targets
from collector.notify.settings import NotifySettings, load_notify


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> NotifySettings:
    monkeypatch.setenv("HOOK", "h" * 20)
    monkeypatch.setenv("PD", "p" * 32)
    mail = {"type": "smtp", "sender": "ledwatch@example.com", "to": ["desk@example.com"]}
    return load_notify(
        {
            "channels": {
                "mail": mail,
                "hook": {"type": "webhook", "url": "http://127.0.0.1:9/", "secret_env": "HOOK"},
                "am": {"type": "alertmanager"},
                "pd": {"type": "pagerduty", "routing_key_env": "PD"},
            },
            "routes": [
                {   # 0: the flagship screen's breaches page at once
                    "sites": ["acme"], "screens": ["lobby"],
                    "events": ["response_breached", "onsite_breached"],
                    "levels": [["pd"]], "continue": True,
                },
                {   # 1: acme's urgent tickets: mail the night shift, escalate to PagerDuty
                    "sites": ["acme"], "priorities": ["P1", "P2"],
                    "levels": [["mail", "hook", "am"], ["pd"], ["mail"]],
                    "to": ["night@example.com"],
                },
                {   # 2: everything else
                    "levels": [["mail", "hook"]],
                },
            ],
        }
    )


def test_first_matching_route_wins(settings: NotifySettings) -> None:
    got = targets(settings, "acme", "lobby", "P1", Event.OPENED)
    assert got == [("mail", ("night@example.com",)), ("hook", ()), ("am", ())]
    # P3 at acme does not match route 1: the catch-all, with the channel's own recipients
    assert targets(settings, "acme", "lobby", "P3", Event.OPENED) == [("mail", ()), ("hook", ())]
    assert targets(settings, "other", "s1", "P1", Event.CLOSED) == [("mail", ()), ("hook", ())]


def test_continue_adds_the_next_matching_route(settings: NotifySettings) -> None:
    got = targets(settings, "acme", "lobby", "P2", Event.RESPONSE_BREACHED)
    assert got == [("pd", ()), ("mail", ("night@example.com",)), ("hook", ()), ("am", ())]
    # another screen: route 0's screen filter fails, so only route 1
    got = targets(settings, "acme", "hall", "P2", Event.RESPONSE_BREACHED)
    assert [c for c, _ in got] == ["mail", "hook", "am"]


def test_escalation_levels(settings: NotifySettings) -> None:
    assert targets(settings, "acme", "hall", "P1", Event.ESCALATED, level=1) == [("pd", ())]
    assert targets(settings, "acme", "hall", "P1", Event.ESCALATED, level=2) == [
        ("mail", ("night@example.com",))
    ]
    assert targets(settings, "acme", "hall", "P1", Event.ESCALATED, level=3) == []
    assert targets(settings, "acme", "hall", "P1", Event.ESCALATED, level=-1) == []
    assert levels(settings, "acme", "P1") == 3
    assert levels(settings, "acme", "P4") == 1
    assert levels(settings, "other", "P1", screen="s1") == 1


def test_levels_of_a_screen_and_an_event(settings: NotifySettings) -> None:
    # Route 0 (breaches of acme/lobby, one level, continue) and route 1 (three levels).
    assert levels(settings, "acme", "P1", screen="lobby", event=Event.RESPONSE_BREACHED) == 3
    assert levels(settings, "acme", "P3", screen="lobby", event=Event.RESPONSE_BREACHED) == 1


def test_no_route_no_targets() -> None:
    empty = load_notify({})
    assert targets(empty, "acme", "lobby", "P1", Event.OPENED) == []
    assert levels(empty, "acme", "P1") == 0


def test_event_given_as_its_stored_string(settings: NotifySettings) -> None:
    assert targets(settings, "x", "y", "P4", "opened") == [("mail", ()), ("hook", ())]  # type: ignore[arg-type]


def test_a_pair_named_twice_is_notified_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK", "h" * 20)
    settings = load_notify(
        {
            "channels": {
                "hook": {"type": "webhook", "url": "http://127.0.0.1:9/", "secret_env": "HOOK"}
            },
            "routes": [
                {"levels": [["hook", "hook"]], "continue": True},
                {"levels": [["hook"]]},
            ],
        }
    )
    assert targets(settings, "a", "b", "P1", Event.OPENED) == [("hook", ())]


def test_router_binds_the_settings_for_the_ticket_core(settings: NotifySettings) -> None:
    router = Router(settings)
    assert router.targets("acme", "hall", "P1", "escalated", 1) == [("pd", ())]
    assert router.levels("acme", "P1") == 3
    with pytest.raises(ValueError):
        router.targets("acme", "hall", "P1", "exploded", 0)

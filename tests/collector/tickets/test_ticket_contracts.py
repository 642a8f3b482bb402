from __future__ import annotations

from datetime import date

import pytest
from ticket_helpers import ms

from collector.detect.findings import Fault, Priority
from collector.tickets import ContractBook, ContractTerms
from ledwatch.errors import ConfigError


def test_defaults_are_the_domain_figures() -> None:
    t = ContractTerms()
    assert (t.response_min, t.onsite_h, t.repair_h) == (20, 48, 48)
    assert t.resolve_h == {Priority.P1: 8, Priority.P2: 24, Priority.P3: 48, Priority.P4: 120}
    assert (t.warranty_months, t.warranty_restart_downtime_days, t.repeat_window_days) == (
        12,
        30,
        30,
    )
    assert t.satisfied(4) and not t.satisfied(3)
    assert t.acceptance_date is None


def test_layers_default_site_screen() -> None:
    book = ContractBook.from_config(
        {
            "default": {"response_min": 30, "resolve_h": {"P1": 6}},
            "sites": {
                "acme": {
                    "onsite_h": 24,
                    "resolve_h": {"P2": 12},
                    "screens": {"lobby": {"onsite_h": 3, "acceptance_date": "2026-01-15"}},
                }
            },
        }
    )
    other = book.terms("zeta", "x")
    assert other.response_min == 30 and other.onsite_h == 48
    acme = book.terms("acme", "hall")
    assert acme.response_min == 30 and acme.onsite_h == 24
    assert acme.resolve_h[Priority.P1] == 6 and acme.resolve_h[Priority.P2] == 12
    assert acme.resolve_h[Priority.P4] == 120
    lobby = book.terms("acme", "lobby")
    assert lobby.onsite_h == 3 and lobby.acceptance_date == date(2026, 1, 15)
    assert lobby.resolve_h[Priority.P2] == 12


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"sites": {"acme": {"response_min": -1}}}, "contracts.sites.acme.response_min"),
        ({"sites": {"acme": {"resolve_h": {"P9": 1}}}}, "contracts.sites.acme.resolve_h.P9"),
        ({"sites": {"acme": {"bogus": 1}}}, "contracts.sites.acme.bogus"),
        ({"default": {"survey_satisfied_min": 6}}, "contracts.default.survey_satisfied_min"),
        (
            {"sites": {"acme": {"screens": {"lobby": {"priority_overrides": {"smoke": "P7"}}}}}},
            "contracts.sites.acme.screens.lobby.priority_overrides.smoke",
        ),
        (
            {
                "sites": {
                    "acme": {
                        "major_events": [
                            {"start": "2026-03-02T00:00:00", "end": "2026-03-01T00:00:00"}
                        ]
                    }
                }
            },
            "contracts.sites.acme.major_events.0",
        ),
        ({"sites": {"Acme Corp": {}}}, "contracts.sites.Acme Corp"),
        ({"sites": {"acme": 5}}, "contracts.sites.acme"),
        ({"other": {}}, "contracts.other"),
    ],
)
def test_bad_config_names_the_key(raw: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        ContractBook.from_config(raw)
    assert str(err.value).startswith(key + ":"), str(err.value)


def test_priority_override_and_major_event() -> None:
    book = ContractBook.from_config(
        {
            "sites": {
                "acme": {
                    "priority_overrides": {"door_open": "P2"},
                    "major_events": [
                        {
                            "name": "launch",
                            "screen": "main",
                            "start": "2026-03-10T18:00:00Z",
                            "end": "2026-03-10T23:00:00Z",
                        }
                    ],
                }
            }
        }
    )
    t = book.terms("acme", "main")
    assert t.priority_for(Fault.DOOR_OPEN, "main", ms("2026-03-01T00:00")) is Priority.P2
    assert t.priority_for(Fault.FAN_STOPPED, "main", ms("2026-03-01T00:00")) is Priority.P3
    assert t.priority_for(Fault.FAN_STOPPED, "main", ms("2026-03-10T19:00")) is Priority.P1
    assert t.priority_for(Fault.FAN_STOPPED, "main", ms("2026-03-10T23:00")) is Priority.P3
    assert t.priority_for(Fault.FAN_STOPPED, "side", ms("2026-03-10T19:00")) is Priority.P3

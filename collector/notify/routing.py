"""Routing: which channels (and e-mail recipients) hear of a ticket change. Pure.

Routes are tried in order and the first whose filters (sites, screens, priorities,
events) all match is used, like Alertmanager's routing tree; a route with `continue =
true` lets the next matching routes add their targets too. A route's `levels` are the
escalation ladder: level 0 hears of every matching change, level n of what escalation
sends to level n. The ticket side calls these inside its transaction, once per change,
and writes one outbox row per returned target.
"""

from __future__ import annotations

from collector.notify.model import Event
from collector.notify.settings import NotifySettings, RouteSettings, SmtpChannelSettings

Target = tuple[str, tuple[str, ...]]  # (channel name, recipients; empty: the channel's own)


def _routes(
    settings: NotifySettings, site: str, screen: str | None, priority: str, event: Event | None
) -> list[RouteSettings]:
    chosen = []
    for route in settings.routes:
        if route.matches(site, screen, str(priority), event):
            chosen.append(route)
            if not route.continue_:
                break
    return chosen


def targets(
    settings: NotifySettings,
    site: str,
    screen: str,
    priority: str,
    event: Event,
    level: int = 0,
) -> list[Target]:
    """(channel, recipients) for this change at escalation `level`, each pair once.

    [] when no route matches or the matching routes have no such level. Recipients are
    the route's `to` for smtp channels (empty: the channel's `to`) and () otherwise.
    """
    out: dict[Target, None] = {}
    for route in _routes(settings, site, screen, priority, Event(event)):
        if not 0 <= level < len(route.levels):
            continue
        for name in route.levels[level]:
            smtp = isinstance(settings.channels.get(name), SmtpChannelSettings)
            out[(name, tuple(route.to) if smtp else ())] = None
    return list(out)


def levels(
    settings: NotifySettings,
    site: str,
    priority: str,
    *,
    screen: str | None = None,
    event: Event = Event.ESCALATED,
) -> int:
    """How many escalation levels the routes for `event` (default ESCALATED) have.

    0 when no route matches. Escalating from level n goes to n + 1 while n + 1 < levels.
    Without `screen` a route's `screens` filter is not asked (it matches); pass it
    whenever a route may filter on screens.
    """
    return max((len(r.levels) for r in _routes(settings, site, screen, priority, event)), default=0)


class Router:
    """`targets` and `levels` bound to one NotifySettings: what the ticket core holds.

    The ticket side passes events as their stored strings; they are checked here.
    """

    def __init__(self, settings: NotifySettings) -> None:
        self.settings = settings

    def targets(
        self, site: str, screen: str, priority: str, event: Event | str, level: int = 0
    ) -> list[Target]:
        return targets(self.settings, site, screen, priority, Event(event), level)

    def levels(
        self,
        site: str,
        priority: str,
        *,
        screen: str | None = None,
        event: Event | str = Event.ESCALATED,
    ) -> int:
        return levels(self.settings, site, priority, screen=screen, event=Event(event))

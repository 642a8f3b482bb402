"""Channels from settings, and the start-up reachability check.

Adding a channel type is a settings class (settings.CHANNEL_SETTINGS), a Channel class
and one entry in `_FACTORIES`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from collector.notify.alertmanager import AlertmanagerChannel, OpenTickets
from collector.notify.channel import Channel
from collector.notify.errors import DeliveryFailed
from collector.notify.model import Event
from collector.notify.pagerduty import PagerDutyChannel
from collector.notify.routing import targets
from collector.notify.settings import (
    AlertmanagerChannelSettings,
    NotifySettings,
    PagerDutyChannelSettings,
    SmtpChannelSettings,
    WebhookChannelSettings,
)
from collector.notify.smtp import SmtpChannel
from collector.notify.webhook import WebhookChannel


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def build_channels(
    settings: NotifySettings,
    *,
    open_tickets: OpenTickets | None = None,
    clock_ms: Callable[[], int] = _wall_ms,
) -> dict[str, Channel]:
    """One Channel per `[notify.channels.<name>]`; reads the secrets (ConfigError naming them).

    `open_tickets` (optional) returns the open tickets as `GET /api/v1/tickets/{id}` shows
    them; Alertmanager channels use it to re-learn their firing alerts after a restart.
    """
    secrets = settings.read_secrets()
    channels: dict[str, Channel] = {}
    for name, cs in settings.channels.items():
        secret = secrets[name]
        channel: Channel
        if isinstance(cs, SmtpChannelSettings):
            channel = SmtpChannel(name, cs, secret.get("password"), settings.desk_link)
        elif isinstance(cs, WebhookChannelSettings):
            channel = WebhookChannel(name, cs, secret["secret"] or "", settings.desk_link)
        elif isinstance(cs, AlertmanagerChannelSettings):
            channel = AlertmanagerChannel(
                name,
                cs,
                settings.desk_link,
                clock_ms=clock_ms,
                open_tickets=open_tickets,
                wants=_routed_to(settings, name),
                retry_s=settings.retry_min_s,
            )
        elif isinstance(cs, PagerDutyChannelSettings):
            channel = PagerDutyChannel(name, cs, secret["routing_key"] or "", settings.desk_link)
        else:  # pragma: no cover - settings validation admits no other type
            raise TypeError(f"no channel for {type(cs).__name__}")
        channels[name] = channel
    return channels


def _routed_to(settings: NotifySettings, name: str) -> Callable[[dict[str, Any]], bool]:
    """Would an `opened` of this ticket reach channel `name` at level 0?"""

    def wants(ticket: dict[str, Any]) -> bool:
        found = targets(
            settings,
            str(ticket.get("site")),
            str(ticket.get("screen")),
            str(ticket.get("priority")),
            Event.OPENED,
        )
        return any(channel == name for channel, _ in found)

    return wants


def check_channels(
    settings: NotifySettings, channels: dict[str, Channel] | None = None
) -> list[str]:
    """Problems reaching each channel now, one message each naming its key; [] if all fine.

    Checks run in parallel, each bounded by its channel's `timeout_s`. Channels built
    here (none passed) are closed again.
    """
    own = channels is None
    built = build_channels(settings) if channels is None else channels

    def one(channel: Channel) -> str | None:
        try:
            channel.check()
        except DeliveryFailed as exc:
            return f"{channel.key}: unreachable: {exc}"
        except Exception as exc:  # a check must report, never abort the start-up
            return f"{channel.key}: check failed: {type(exc).__name__}: {exc}"
        return None

    try:
        if not built:
            return []
        with ThreadPoolExecutor(max_workers=min(8, len(built))) as pool:
            results = list(pool.map(one, built.values()))
        return [problem for problem in results if problem]
    finally:
        if own:
            for channel in built.values():
                channel.close()

"""Notifications: ticket changes delivered to e-mail, webhooks, Alertmanager and PagerDuty.

The ticket side writes `Notification`s into its outbox (same transaction as the
change, targets from `routing.targets`); the `Sender` delivers them through the
channels `build_channels` makes from `[notify]`. docs/notifications.md has the whole
picture, the config and each receiver's contract.
"""

from collector.notify.build import build_channels, check_channels
from collector.notify.channel import Channel
from collector.notify.errors import DeliveryFailed, PermanentFailure, TemporaryFailure
from collector.notify.memory import MemoryOutbox
from collector.notify.model import Event, Notification, OutboxStore, Pending
from collector.notify.routing import Router, levels, targets
from collector.notify.sender import Sender
from collector.notify.settings import NotifySettings, load_notify

__all__ = [
    "Channel",
    "DeliveryFailed",
    "Event",
    "MemoryOutbox",
    "Notification",
    "NotifySettings",
    "OutboxStore",
    "Pending",
    "PermanentFailure",
    "Router",
    "Sender",
    "TemporaryFailure",
    "build_channels",
    "check_channels",
    "levels",
    "load_notify",
    "targets",
]

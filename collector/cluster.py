"""Several collectors, one fleet: each agent's messages are handled by one collector.

Mosquitto hands a shared subscription's messages round-robin, so with N collectors in
one share group each would see every Nth snapshot of a screen, and per-screen detection
state (debounce, rolling medians, trends, agent silence) would be split N ways. Instead
each agent is *owned* by one member of a fixed list (`[cluster] members`), chosen by
rendezvous hashing of (site, agent):

* route "filter" (any broker): every collector subscribes to every topic without
  `$share`, and keeps the messages of the agents it owns; the others are acknowledged
  at once, unread (a look at the payload's first bytes finds the agent). The broker
  keeps each agent's messages in order per subscriber, so each owner sees all of its
  agents' snapshots, events and statuses, in order: detection runs as in one collector.
* route "broker": the broker routes every message of one publisher to one subscriber of
  the share group (EMQX `shared_subscription_strategy = hash_clientid`); the collector
  keeps everything it gets.

Rendezvous hashing (highest random weight) keeps an agent with its owner whatever the
order of the list, and moves only 1/N of the agents when a member is added. The hash is
BLAKE2b of the names, the same in every process (Python's own `hash` is salted).
Membership is static: a member that is down keeps its agents, whose messages the broker
queues in its persistent session until it is back (nothing lost, detection delayed);
docs/scaling.md says how to add one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import orjson

from ledwatch.contract import EVENT_FILTER, STATUS_FILTER, TELEMETRY_FILTER, TOPIC_ROOT, shared

# What the LEDwatch agent writes first (orjson, no spaces): the agent id is the fourth
# key. A producer writing another order costs a JSON parse, never a wrong owner.
_HEAD = re.compile(
    rb'\{"schema":"ledwatch\.(?:telemetry|event)/1","site":"[a-z0-9][a-z0-9_-]{0,63}",'
    rb'"screen":"[a-z0-9][a-z0-9_-]{0,63}","agent":"([a-z0-9][a-z0-9_-]{0,63})"'
)
_CARE = ("", "care")  # the (site, agent) whose owner runs the fleet-wide care job


def _weight(member: str, site: str, agent: str) -> int:
    digest = hashlib.blake2b(f"{member}\0{site}\0{agent}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(members: Sequence[str], site: str, agent: str) -> str:
    """The member that owns `agent` of `site` (rendezvous hashing)."""
    return max(members, key=lambda m: (_weight(m, site, agent), m))


def agent_of(topic: str, payload: bytes | bytearray) -> tuple[str, str]:
    """(site, agent) of a LEDwatch message; agent "" when the payload does not say (a
    dead letter to be: still exactly one collector must count it)."""
    parts = topic.split("/")
    site = parts[2] if len(parts) > 2 else ""
    if len(parts) == 6 and parts[3] == "agent":
        return site, parts[4]
    found = _HEAD.match(payload)
    if found:
        return site, found.group(1).decode()
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return site, ""
    agent = doc.get("agent") if isinstance(doc, dict) else None
    return site, agent if isinstance(agent, str) else ""


class Ownership:
    """Which messages this collector keeps; one per collector, used from paho's thread."""

    def __init__(self, members: Sequence[str], me: str, route: str = "filter") -> None:
        self.members = tuple(members)
        self.me = me
        self.filtering = route == "filter" and len(self.members) > 1
        self._mine: dict[tuple[str, str], bool] = {}

    def filters(self, share_group: str | None) -> list[str]:
        """The subscriptions: everything plainly when filtering; through the share group
        when the broker routes (all three kinds, so one agent's statuses and events go
        where its telemetry goes); else telemetry shared, events and statuses to all."""
        kinds = [TELEMETRY_FILTER, EVENT_FILTER, STATUS_FILTER]
        if self.filtering:
            return kinds
        if len(self.members) > 1:
            return [shared(share_group, f) for f in kinds]
        return [shared(share_group, TELEMETRY_FILTER), EVENT_FILTER, STATUS_FILTER]

    def owns(self, site: str, agent: str) -> bool:
        key = (site, agent)
        mine = self._mine.get(key)
        if mine is None:
            if len(self._mine) > 1_000_000:  # bounded: agents are many, not unbounded
                self._mine.clear()
            mine = self._mine[key] = (not self.filtering
                                      or owner(self.members, site, agent) == self.me)
        return mine

    def keeps(self, topic: str, payload: bytes | bytearray) -> bool:
        """Whether this collector handles the message (always, when not filtering)."""
        if not self.filtering or not topic.startswith(TOPIC_ROOT):
            return True
        return self.owns(*agent_of(topic, payload))

    @property
    def runs_care(self) -> bool:
        """The fleet-wide care job (tasks, reports) runs on one member only."""
        return len(self.members) <= 1 or owner(self.members, *_CARE) == self.me

"""Ownership of agents among the collectors of a cluster (collector/cluster.py)."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from collector.cluster import Ownership, agent_of, owner
from collector.settings import settings_from_dict
from ledwatch.contract import SCHEMA_TELEMETRY, status_topic, telemetry_topic
from ledwatch.errors import ConfigError

MEMBERS = ["collector-a", "collector-b", "collector-c", "collector-d"]
AGENTS = [("acme", f"pc{i}") for i in range(4000)]


def test_every_agent_has_one_owner_whatever_the_list_order() -> None:
    forward = {a: owner(MEMBERS, *a) for a in AGENTS}
    assert forward == {a: owner(list(reversed(MEMBERS)), *a) for a in AGENTS}
    shares = Counter(forward.values())
    assert set(shares) == set(MEMBERS)
    assert all(800 <= n <= 1200 for n in shares.values()), shares  # ~1,000 each
    views = [Ownership(MEMBERS, m) for m in MEMBERS]
    for site, agent in AGENTS[:500]:
        assert sum(v.owns(site, agent) for v in views) == 1


def test_a_new_member_takes_only_its_share() -> None:
    before = {a: owner(MEMBERS, *a) for a in AGENTS}
    after = {a: owner([*MEMBERS, "collector-e"], *a) for a in AGENTS}
    moved = [a for a in AGENTS if before[a] != after[a]]
    assert all(after[a] == "collector-e" for a in moved)  # nobody else's agents move
    assert 600 <= len(moved) <= 1000, len(moved)  # ~1/5 of 4,000


def doc(agent: str) -> dict[str, object]:
    return {"schema": SCHEMA_TELEMETRY, "site": "acme", "screen": "lobby", "agent": agent,
            "seq": 1}


def test_the_agent_is_read_from_the_payload_or_the_topic() -> None:
    topic = telemetry_topic("acme", "lobby")
    assert agent_of(topic, orjson.dumps(doc("pc-7"))) == ("acme", "pc-7")  # the fast look
    reordered = orjson.dumps({"seq": 1, "agent": "pc-8", "site": "acme"})
    assert agent_of(topic, reordered) == ("acme", "pc-8")  # another producer's key order
    nested_first = b'{"stats": {"agent": "x"}, "agent": "pc-9"}'
    assert agent_of(topic, nested_first) == ("acme", "pc-9")  # the top-level key counts
    assert agent_of(topic, b"not json") == ("acme", "")  # one owner still counts it
    assert agent_of(status_topic("acme", "pc-3"), b"{}") == ("acme", "pc-3")


def test_each_message_is_kept_by_exactly_one_member() -> None:
    views = [Ownership(MEMBERS, m) for m in MEMBERS]
    for i in range(200):
        payload = orjson.dumps(doc(f"pc{i}"))
        assert sum(v.keeps(telemetry_topic("acme", "lobby"), payload) for v in views) == 1
    assert sum(v.keeps(telemetry_topic("acme", "lobby"), b"garbage") for v in views) == 1
    assert sum(v.runs_care for v in views) == 1


def test_subscriptions_per_route() -> None:
    alone = Ownership([], "c1").filters("collectors")
    assert alone[0].startswith("$share/collectors/") and not alone[1].startswith("$share")
    assert not any(f.startswith("$share") for f in Ownership(MEMBERS, MEMBERS[0]).filters("g"))
    routed = Ownership(MEMBERS, MEMBERS[0], route="broker")
    assert all(f.startswith("$share/g/") for f in routed.filters("g"))
    assert not routed.filtering and routed.keeps("ledwatch/v1/x", b"")


@pytest.mark.parametrize(("cluster", "message"), [
    ({"members": ["a", "b"]}, "mqtt.client_id 'me' is not one of them"),
    ({"members": ["me", "me"]}, "a collector is named twice"),
])
def test_bad_cluster_settings_say_what_is_wrong(cluster: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from_dict({"mqtt": {"client_id": "me"}, "cluster": cluster})

"""The signed webhook against a local HTTP receiver that verifies with the documented snippet."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from notify_helpers import HttpReceiver, Reply, Request, notification

from collector.notify import build_channels, check_channels, load_notify
from collector.notify.errors import PermanentFailure, TemporaryFailure
from collector.notify.model import Event
from collector.notify.webhook import WebhookChannel, sign, verify

DOC = Path(__file__).resolve().parents[3] / "docs" / "notifications.md"
SECRET = "whsec-0123456789abcdef"
MakeHttp = Callable[..., HttpReceiver]


def _doc_snippet() -> Callable[..., bool]:
    """The verification code from docs/notifications.md, run as a receiver would run it."""
    text = DOC.read_text("utf-8")
    block = re.search(r"<!-- snippet: verify-webhook.*?-->\s*```python\n(.*?)```", text, re.S)
    assert block, "docs/notifications.md lost its verify-webhook snippet"
    imports = re.findall(r"^\s*(?:import|from) (\w+)", block[1], re.M)
    assert set(imports) <= {"hashlib", "hmac", "time"}, imports  # standalone: no LEDwatch
    namespace: dict[str, Any] = {}
    exec(compile(block[1], str(DOC), "exec"), namespace)
    check: Callable[..., bool] = namespace["ledwatch_signature_ok"]
    return check


SNIPPET = _doc_snippet()


def verifying(status: int = 200) -> Callable[[Request], Reply]:
    """A receiver that answers 401 unless the documented check passes, else `status`."""

    def respond(request: Request) -> Reply:
        good = SNIPPET(SECRET, request.headers.get("x-ledwatch-timestamp", ""), request.body,
                       request.headers.get("x-ledwatch-signature", ""))
        return (status if good else 401), {}, b""

    return respond


def _channel(url: str, monkeypatch: pytest.MonkeyPatch, clock_s: Callable[[], float] | None = None
             ) -> WebhookChannel:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    settings = load_notify({"channels": {"hook": {
        "type": "webhook", "url": url, "secret_env": "HOOK_SECRET", "timeout_s": 5}}})
    channel = build_channels(settings)["hook"]
    assert isinstance(channel, WebhookChannel)
    if clock_s is not None:
        channel._clock_s = clock_s
    return channel


def test_signed_post_is_verified_by_the_documented_snippet(
    http_receiver: MakeHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = http_receiver(verifying(202))
    note = notification(Event.RESPONSE_BREACHED, note="response deadline passed", level=1)
    _channel(receiver.url + "/hooks/ledwatch", monkeypatch).send(note)
    [request] = receiver.posts("/hooks/ledwatch")
    h = request.headers
    assert h["content-type"] == "application/json"
    assert h["x-ledwatch-notification-id"] == h["idempotency-key"] == note.id
    assert h["x-ledwatch-event"] == "response_breached"
    assert h["x-ledwatch-signature"].startswith("sha256=")
    assert abs(int(h["x-ledwatch-timestamp"]) - time.time()) < 60
    assert h["user-agent"].startswith("LEDwatch/")
    body = json.loads(request.body)
    assert body == {
        "schema": "ledwatch.notification/1",
        "id": note.id,
        "event": "response_breached",
        "created_ms": note.created_ms,
        "level": 1,
        "note": "response deadline passed",
        "ticket": note.ticket,
    }


def test_replayed_request_is_refused_by_the_snippet_and_verify() -> None:
    body = b'{"id":"x"}'
    now = 1_772_388_000
    signature = sign(SECRET, now, body)
    expected = "sha256=" + hmac.new(SECRET.encode(), f"{now}.".encode() + body,
                                    hashlib.sha256).hexdigest()
    assert signature == expected
    for check in (SNIPPET, verify):
        assert check(SECRET, str(now), body, signature, now=now + 299)
        assert not check(SECRET, str(now), body, signature, now=now + 301)  # replay
        assert not check(SECRET, str(now), body, signature, now=now - 301)  # from the future
        assert not check(SECRET, str(now), body + b" ", signature, now=now)  # body changed
        assert not check(SECRET, str(now + 1), body, signature, now=now)  # timestamp changed
        assert not check("another-secret-value", str(now), body, signature, now=now)
        assert not check(SECRET, "soon", body, signature, now=now)
    assert verify(SECRET, now, body, signature, now=now + 30, tolerance_s=10) is False


def test_every_attempt_is_signed_afresh(
    http_receiver: MakeHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An hour-old notification still passes the 5-minute check: the time is the attempt's."""
    receiver = http_receiver(verifying())
    clock = [time.time() - 3600.0]
    channel = _channel(receiver.url, monkeypatch, clock_s=lambda: clock[0])
    note = notification()
    with pytest.raises(PermanentFailure, match="HTTP 401"):  # signed an hour ago: refused
        channel.send(note)
    clock[0] = time.time()
    channel.send(note)
    first, second = receiver.posts()
    assert first.body == second.body
    assert first.headers["x-ledwatch-signature"] != second.headers["x-ledwatch-signature"]


@pytest.mark.parametrize(
    ("status", "headers", "failure"),
    [
        (200, {}, None),
        (204, {}, None),
        (408, {}, TemporaryFailure),
        (429, {"Retry-After": "30"}, TemporaryFailure),
        (500, {}, TemporaryFailure),
        (503, {}, TemporaryFailure),
        (400, {}, PermanentFailure),
        (404, {}, PermanentFailure),
        (410, {}, PermanentFailure),
        (301, {"Location": "https://elsewhere.example/"}, PermanentFailure),
    ],
)
def test_answers_decide_delivered_retry_or_give_up(
    http_receiver: MakeHttp,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    headers: dict[str, str],
    failure: type[Exception] | None,
) -> None:
    receiver = http_receiver(lambda _r: (status, headers, b"receiver says no"))
    channel = _channel(receiver.url, monkeypatch)
    if failure is None:
        channel.send(notification())
        return
    with pytest.raises(failure, match=f"HTTP {status}: receiver says no") as err:
        channel.send(notification())
    if status == 429:
        assert isinstance(err.value, TemporaryFailure) and err.value.retry_after_s == 30.0
    if status == 301:
        assert "elsewhere.example" in str(err.value)


def test_receiver_down_is_temporary_and_check_names_the_key(
    free_port: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    with pytest.raises(TemporaryFailure, match="ConnectError"):
        _channel(url, monkeypatch).send(notification())
    settings = load_notify({"channels": {"hook": {
        "type": "webhook", "url": url, "secret_env": "HOOK_SECRET", "timeout_s": 2}}})
    [problem] = check_channels(settings)
    assert problem.startswith("notify.channels.hook: unreachable: HEAD " + url)


def test_check_accepts_any_http_answer(
    http_receiver: MakeHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = http_receiver(lambda _r: (405, {}, b""))
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    settings = load_notify({"channels": {"hook": {
        "type": "webhook", "url": receiver.url, "secret_env": "HOOK_SECRET"}}})
    assert check_channels(settings) == []
    assert [r.method for r in receiver.requests] == ["HEAD"]

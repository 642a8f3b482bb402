"""Receivers the notification tests run on 127.0.0.1, and ticket / notification builders.

`HttpReceiver` is a stdlib HTTP server in a thread that records every request and
answers through a callable the test sets; `SmtpReceiver` is aiosmtpd's threaded
controller with the TLS and AUTH options a test asks for. Both stop when the test's
fixture ends and, as a guard against a test that forgets, after `LIFETIME_S` anyway.
"""

from __future__ import annotations

import email
import email.policy
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from collector.notify.model import Event, Notification, OutboxStore

LIFETIME_S = 120.0
T0 = 1_772_388_000_000  # 2026-03-01T18:00:00Z
MIN = 60_000


def ticket(**over: Any) -> dict[str, Any]:
    """A ticket shaped like `GET /api/v1/tickets/{id}` (TicketDetailPublic)."""
    base: dict[str, Any] = {
        "id": 42,
        "key": "acme/lobby/screen/screen_dark",
        "site": "acme",
        "screen": "lobby",
        "component": "screen",
        "fault": "screen_dark",
        "priority": "P1",
        "state": "open",
        "source": "auto",
        "detail": "whole screen dark: 0 of 24 cabinets lit",
        "reporter": None,
        "engineer": None,
        "opened_ms": T0,
        "reopened_ms": None,
        "acknowledged_ms": None,
        "dispatched_ms": None,
        "arrived_ms": None,
        "cleared_ms": None,
        "resolved_ms": None,
        "closed_ms": None,
        "response_due_ms": T0 + 20 * MIN,
        "onsite_due_ms": T0 + 48 * 60 * MIN,
        "resolve_due_ms": T0 + 8 * 60 * MIN,
        "repair_due_ms": None,
        "spare_due": False,
        "in_warranty": True,
        "reopen_count": 0,
        "repeat_of": None,
        "root_cause": None,
        "resolution": None,
        "product_fault": True,
        "flapping": False,
        "predicted_failure_ms": None,
        "allowed_steps": ["acknowledge"],
        "history": [
            {"ts_ms": T0, "actor": "detector", "step": "open", "from_state": None,
             "to_state": "open", "note": ""}
        ],
        "survey": None,
        "effects": [
            {"component": "card/p0c3", "fault": "card_offline", "first_ms": T0,
             "last_ms": T0, "active": True}
        ],
        "evidence": {"lit": 0, "cabinets": 24},
    }
    base.update(over)
    return base


def notification(
    event: Event | str = Event.OPENED,
    channel: str = "hook",
    n: int = 1,
    ticket_id: int = 42,
    created_ms: int | None = None,
    **over: Any,
) -> Notification:
    """A notification with id `t<ticket>-<n>-<event>-<channel>`."""
    event = Event(event)
    fields: dict[str, Any] = {
        "id": f"t{ticket_id}-{n}-{event}-{channel}",
        "event": event,
        "ticket": ticket(id=ticket_id, key=f"acme/lobby/screen/screen_dark-{ticket_id}"),
        "created_ms": T0 + n if created_ms is None else created_ms,
        "channel": channel,
        "level": 0,
    }
    fields.update(over)
    return Notification(**fields)


def wait_until(predicate: Callable[[], Any], timeout_s: float = 10.0, step_s: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout_s} s: {predicate}")
        time.sleep(step_s)


# -- HTTP -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


Reply = tuple[int, dict[str, str], bytes]


def ok(_request: Request) -> Reply:
    return 200, {}, b""


class HttpReceiver:
    """A threaded HTTP server on 127.0.0.1; `respond(request) -> (status, headers, body)`."""

    def __init__(self, respond: Callable[[Request], Reply] = ok, port: int = 0) -> None:
        self.respond = respond
        self.port = port
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._guard: threading.Timer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5  # a stuck client must not hold a handler thread

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                with receiver._lock:
                    receiver.requests.append(request)
                status, headers, payload = receiver.respond(request)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_HEAD = do_PUT = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._guard = _guard(self.stop)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        _cancel(self._guard)

    def posts(self, path: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and path in (None, r.path)]


# -- SMTP -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Mail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    login: str | None
    tls: bool


@dataclass
class SmtpReceiver:
    """aiosmtpd on 127.0.0.1 with the options a test needs.

    `starttls`: a server SSLContext offered via STARTTLS (then required); `implicit_tls`:
    TLS from the first byte; `users`: AUTH required, login -> password;
    `exclude_auth`: mechanisms not offered (to force LOGIN); `rcpt_reply` /
    `data_reply`: answer RCPT / DATA with this instead of 250.
    """

    port: int = 0
    starttls: ssl.SSLContext | None = None
    implicit_tls: ssl.SSLContext | None = None
    users: dict[str, str] | None = None
    exclude_auth: tuple[str, ...] = ()
    rcpt_reply: str | None = None
    data_reply: str | None = None
    mails: list[Mail] = field(default_factory=list)
    auth_seen: list[tuple[str, str]] = field(default_factory=list)  # (mechanism, login)
    _controller: Controller | None = None
    _guard: threading.Timer | None = None

    def start(self) -> Self:
        receiver = self

        class Handler:
            async def handle_RCPT(
                self, server: SMTP, session: Session, envelope: Envelope, address: str,
                rcpt_options: list[str],
            ) -> str:
                if receiver.rcpt_reply:
                    return receiver.rcpt_reply
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(
                self, server: SMTP, session: Session, envelope: Envelope
            ) -> str:
                if receiver.data_reply:
                    return receiver.data_reply
                content = envelope.content
                raw = content if isinstance(content, bytes) else str(content).encode()
                message = email.message_from_bytes(raw, policy=email.policy.default)
                assert isinstance(message, EmailMessage)
                login = session.auth_data.login.decode() if session.auth_data else None
                receiver.mails.append(
                    Mail(
                        str(envelope.mail_from),
                        tuple(envelope.rcpt_tos),
                        message,
                        login,
                        server.transport is not None
                        and server.transport.get_extra_info("sslcontext") is not None,
                    )
                )
                return "250 Message accepted"

        def authenticate(
            server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
        ) -> AuthResult:
            assert isinstance(auth_data, LoginPassword)
            login, password = auth_data.login.decode(), auth_data.password.decode()
            receiver.auth_seen.append((mechanism, login))
            good = (receiver.users or {}).get(login) == password
            # handled=False: aiosmtpd answers the failure itself (535)
            return AuthResult(success=good, handled=False, auth_data=auth_data if good else None)

        options: dict[str, Any] = {}
        if self.starttls is not None:
            options.update(tls_context=self.starttls, require_starttls=True)
        if self.users is not None:
            options.update(
                authenticator=authenticate,
                auth_required=True,
                auth_require_tls=self.starttls is not None or self.implicit_tls is not None,
                auth_exclude_mechanism=list(self.exclude_auth),
            )
        controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port or _free_port(),
            ssl_context=self.implicit_tls,
            server_hostname="smtp.test",
            ready_timeout=10.0,
            **options,
        )
        controller.start()
        self.port = controller.port
        self._controller = controller
        self._guard = _guard(self.stop)
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()
        _cancel(self._guard)


def _guard(stop: Callable[[], None]) -> threading.Timer:
    """Stop a test server after LIFETIME_S even if its test never does."""
    timer = threading.Timer(LIFETIME_S, stop)
    timer.daemon = True
    timer.start()
    return timer


def _cancel(timer: threading.Timer | None) -> None:
    if timer is not None and timer is not threading.current_thread():
        timer.cancel()


def _free_port() -> int:
    import services  # scripts/services.py, on sys.path through tests/conftest.py

    return services.free_port()


@dataclass(frozen=True)
class Certs:
    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


# Every outbox backend runs test_notify_outbox.py; a backend is (store, add).
Backend = tuple[OutboxStore, Callable[[Notification], object]]

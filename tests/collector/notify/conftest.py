"""Fixtures for the notification tests: receivers, dev certificates, outbox backends."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from notify_helpers import Backend, Certs, HttpReceiver, SmtpReceiver

from collector.notify.memory import MemoryOutbox
from collector.notify.model import Notification

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A dev CA and a server certificate for 127.0.0.1 (deploy/tls/make-dev-certs.sh)."""
    out = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["sh", str(ROOT / "deploy" / "tls" / "make-dev-certs.sh"), str(out), "probe"],
        check=True, capture_output=True, timeout=60,
    )
    return Certs(out / "ca.crt", out / "server.crt", out / "server.key")


def _factory(cls: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """Make started receivers of `cls` for one test; all stop when it ends."""
    made: list[Any] = []

    def make(*args: Any, **kwargs: Any) -> Any:
        receiver = cls(*args, **kwargs)
        made.append(receiver)
        return receiver.start()

    yield make
    for receiver in made:
        receiver.stop()


@pytest.fixture
def http_receiver() -> Iterator[Callable[..., HttpReceiver]]:
    """Factory: `http_receiver(respond=..., port=0)` returns a started HttpReceiver."""
    yield from _factory(HttpReceiver)


@pytest.fixture
def smtp_receiver() -> Iterator[Callable[..., SmtpReceiver]]:
    """Factory: `smtp_receiver(starttls=ctx, users={...}, ...)` returns a started one."""
    yield from _factory(SmtpReceiver)


# Every outbox backend runs test_notify_outbox.py; a backend is (store, add).
# The SQL outbox joins by adding a param here that builds its store on a fresh database.


def _memory(_tmp_path: Path) -> Backend:
    store = MemoryOutbox()
    return store, store.add


def _sql(tmp_path: Path) -> Backend:
    """The collector's own outbox: the notifications table of a real ticket database."""
    from sqlalchemy import insert, select

    from collector.tickets import TicketService, db
    from collector.tickets.outbox import SqlOutbox

    service = TicketService(f"sqlite:///{tmp_path / 'tickets.db'}")
    store = SqlOutbox(service.engine)

    def add(n: Notification) -> bool:
        ticket_id = int(n.ticket.get("id", 0))
        with service.engine.begin() as conn:  # the rows' tickets, as the service has them
            t = db.tickets
            if conn.execute(select(t.c.id).where(t.c.id == ticket_id)).first() is None:
                conn.execute(insert(t).values(
                    id=ticket_id, key=f"k{ticket_id}", site="s", screen="x", component="c",
                    fault="manual", priority="P3", state="open", source="manual", detail="",
                    opened_ms=0, response_due_ms=0, onsite_due_ms=0, resolve_due_ms=0,
                    reopen_count=0, product_fault=True))
        return store.add(n)

    return store, add


OUTBOX_BACKENDS: dict[str, Callable[[Path], Backend]] = {"memory": _memory, "sql": _sql}


@pytest.fixture(params=sorted(OUTBOX_BACKENDS))
def outbox(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    factory: Callable[[Path], Backend] = OUTBOX_BACKENDS[request.param]
    return factory(tmp_path)

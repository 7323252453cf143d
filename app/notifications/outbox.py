"""The outbox shared by webhooks and print jobs (ADR 0010, 0012): rows written in the transaction
of the change they announce, claimed by a worker with a lease, sent outside any transaction,
their outcome recorded in a new one, retried with exponential back-off until the last attempt.

Nothing here holds a transaction (nor SQLite's write lock, nor a row lock) while a message is on
the wire: `claim` commits before it returns, and the caller settles each row in a new unit of work.
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine, select
from sqlmodel import col

from app.clock import utcnow
from app.db import SessionFactory, unit_of_work

log = logging.getLogger("homeward.outbox")


class OutboxRow(Protocol):
    id: int | None
    status: str
    attempts: int
    next_attempt_at: datetime


R = TypeVar("R", bound=OutboxRow)


@dataclass(frozen=True)
class Retry:
    """How often a row is tried: `max_attempts` in all, waiting `backoff_seconds` after the first
    failure and twice as long after each next one."""

    max_attempts: int
    backoff_seconds: float

    def next_attempt(self, attempts: int, now: datetime) -> datetime | None:
        """When to try again after `attempts` failed attempts; None when that was the last."""
        if attempts >= self.max_attempts:
            return None
        return now + timedelta(seconds=self.backoff_seconds * 2 ** (attempts - 1))


def claim(
    factory: SessionFactory,
    model: type[R],
    *,
    status: str,
    limit: int,
    lease: timedelta,
    on_claim: Callable[[R, datetime], None] | None = None,
) -> list[R]:
    """Rows of `model` in `status` that are due, oldest first, leased to the caller (their next
    attempt pushed `lease` ahead, `on_claim` applied) and committed, so no other worker takes
    them meanwhile."""
    with unit_of_work(factory) as session:
        now = utcnow()
        table: Any = model  # the Protocol does not know the mapped columns
        query = (
            select(model)
            .where(table.status == status, table.next_attempt_at <= now)
            .order_by(col(table.id))
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            # Two workers (server processes) never wait for, nor take, each other's rows.
            query = query.with_for_update(skip_locked=True)
        due = list(session.execute(query).scalars())
        for row in due:
            if on_claim is not None:
                on_claim(row, now)
            row.next_attempt_at = now + lease
            session.add(row)
        return due


def has_own_connections(factory: SessionFactory) -> bool:
    """Whether `factory`'s sessions take connections of their own from an engine's pool; a
    factory bound to one connection (a test's rolled-back transaction) must not be shared with a
    second thread, since a connection is not thread-safe."""
    with factory() as session:
        return isinstance(session.get_bind(), Engine)


class Worker:
    """A daemon thread running `work(factory)` (which returns how many rows it handled) every
    `poll_seconds`, at once when woken, and again straight away while it finds work."""

    def __init__(
        self,
        name: str,
        factory: SessionFactory,
        work: Callable[[SessionFactory], int],
        *,
        poll_seconds: float,
        join_seconds: float,
    ) -> None:
        self.name, self.factory, self.work = name, factory, work
        self.poll_seconds, self.join_seconds = poll_seconds, join_seconds
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            shareable = has_own_connections(self.factory)
        except Exception:
            log.exception("%s not started: no session", self.name)
            return
        if not shareable:
            log.info("%s not started: its sessions share one connection", self.name)
            return
        while not self._stop.is_set():
            # Cleared before the round, so a wake-up that arrives during it starts the next one.
            self._wake.clear()
            try:
                handled = self.work(self.factory)
            except Exception:  # one broken round must not stop the worker
                log.exception("%s: round failed", self.name)
                handled = 0
            if not handled:
                self._wake.wait(self.poll_seconds)

    def start(self) -> "Worker":
        self.thread.start()
        return self

    def wake(self) -> None:
        """Start a round now (e.g. right after a commit that queued something)."""
        self._wake.set()

    def close(self) -> None:
        """Stop after the current round, waiting for it up to `join_seconds` (sends are bounded
        by their timeouts)."""
        self._stop.set()
        self._wake.set()
        if self.thread.ident is not None:
            self.thread.join(timeout=self.join_seconds)

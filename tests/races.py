"""One interleaving of concurrent transactions, provoked deterministically on PostgreSQL: a holder
transaction keeps a row locked, uncommitted; each contender runs in a thread of its own and is seen
waiting on a lock (pg_stat_activity) before the next starts; then the holder ends. Every wait is
bounded, so a deadlock or a hang fails the test instead of stopping it."""

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine, select, text
from sqlmodel import Session, col

from app.audit.actions import AuditAction, EntityType
from app.audit.models import AuditEvent
from app.auth.permissions import Role
from app.db import SessionFactory, session_factory_for
from app.main import create_app
from tests.helpers import Api, make_user

TIMEOUT_S = 30.0


@contextmanager
def committed_api(engine: Engine, settings) -> Iterator[tuple[Api, SessionFactory]]:
    """The test driver on a database whose every request commits for real: (api, factory)."""
    factory = session_factory_for(engine)
    with TestClient(create_app(settings, factory)) as client, factory() as session:
        yield Api(client, session, settings), factory


def headers_of_new(api: Api, role: Role) -> dict[str, str]:
    """A fresh user's headers, so two contenders never share (and touch) one token row."""
    return api.headers_for(make_user(api.db, api.settings, roles=[role]))


def lock_waiters(engine: Engine) -> int:
    """How many sessions of the test database are waiting for a lock right now."""
    with engine.connect() as connection:
        return connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar_one()


def wait_for_lock_waiters(engine: Engine, count: int, timeout: float = TIMEOUT_S) -> None:
    """Return once `count` sessions wait for a lock; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while (waiting := lock_waiters(engine)) < count:
        assert time.monotonic() < deadline, f"{waiting} session(s) waiting, expected {count}"
        time.sleep(0.02)


class Contender:
    """A call running in a thread of its own from construction on."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self._outcome: Any = None
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self._outcome = call()
        except BaseException as exc:  # an unexpected error (a 500) is a failure of the test
            self._outcome = exc

    def outcome(self, timeout: float = TIMEOUT_S) -> Any:
        """The call's result or exception; fails if it has not finished within `timeout`."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"still running after {timeout} s: deadlock or hang"
        return self._outcome

    def response(self, timeout: float = TIMEOUT_S) -> Response:
        """The HTTP response the call returned (an exception is a server error: it fails)."""
        outcome = self.outcome(timeout)
        assert isinstance(outcome, Response), f"no response: {outcome!r}"
        return outcome


def batch_moves(session: Session, batch_id: int) -> list[tuple[str, str]]:
    """The batch's status changes in the audit trail, oldest first: (from, to)."""
    events = session.execute(
        select(AuditEvent)
        .where(
            AuditEvent.action == AuditAction.BATCH_STATUS_CHANGED.value,
            AuditEvent.entity_type == EntityType.BATCH.value,
            AuditEvent.entity_id == batch_id,
        )
        .order_by(col(AuditEvent.seq))
    ).scalars()
    return [
        (json.loads(e.old_values or "{}")["status"], json.loads(e.new_values or "{}")["status"])
        for e in events
    ]

"""Writing and reading the audit trail. `record()` is called by the service that makes a change,
inside that change's transaction (AUD-1, AUD-4)."""

import csv
import hashlib
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import bindparam, insert, or_, select, text
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col

from app.audit.actions import AuditAction, EntityType
from app.audit.chain import (
    GENESIS,
    GLOBAL_SCOPE,
    ROW_COLUMNS,
    Verification,
    canonical_json,
    event_hash,
    verify,
)
from app.audit.models import AuditEvent
from app.auth.models import User
from app.auth.permissions import Permission
from app.clock import utcnow

Actor = User | str  # a user, or the name of a non-human actor ("system", "anonymous")


def _lock_scope(session: Session, scope: str) -> None:
    """Serialize appends to one chain. SQLite's BEGIN IMMEDIATE already serializes all writers."""
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(scope.encode()).digest()[:8], "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


# The hash of a chain's last event (statement built once: it runs on every change).
_HEAD = (
    select(AuditEvent.hash)
    .where(col(AuditEvent.scope) == bindparam("scope"))
    .order_by(col(AuditEvent.seq).desc())
    .limit(1)
)
_APPEND = insert(AuditEvent.__table__).returning(  # type: ignore[attr-defined]
    AuditEvent.__table__.c.seq,  # type: ignore[attr-defined]
    sort_by_parameter_order=True,
)
_PENDING = "homeward_pending_audit_events"
HASHED_FIELDS = ROW_COLUMNS[2:]  # everything an event's hash covers (after seq and hash)


def record(
    session: Session,
    *,
    actor: Actor,
    action: AuditAction,
    entity_type: EntityType,
    entity_id: int | None,
    coi: str | None,
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    reason: str | None = None,
) -> AuditEvent:
    """Add one event to the chain of `coi` (or, for `coi=None`, the global chain of records of
    no patient) in the current transaction. There is no default: every caller names its chain,
    so a patient's event can never land where the patient's own trail cannot see it.

    The event is appended when the transaction commits, as its last statements: the chain lock
    is held only for the append and the commit, never while the request does anything else.
    A rolled-back transaction appends nothing. The event's `seq`, `prev_hash` and `hash` are set
    by that commit.
    """
    event = AuditEvent(
        scope=coi or GLOBAL_SCOPE,
        prev_hash="",
        hash="",
        occurred_at=utcnow(),
        actor_id=actor.id if isinstance(actor, User) else None,
        actor=actor.username if isinstance(actor, User) else actor,
        action=action.value,
        entity_type=entity_type.value,
        entity_id=entity_id,
        old_values=canonical_json(old),
        new_values=canonical_json(new),
        reason=reason,
    )
    # Begin the transaction now if nothing has yet: its rollback must drop the pending event.
    session.connection()
    session.info.setdefault(_PENDING, []).append(event)
    return event


@sa_event.listens_for(OrmSession, "before_commit")
def _append_pending(session: OrmSession) -> None:
    pending: list[AuditEvent] = session.info.pop(_PENDING, [])
    if not pending:
        return
    heads: dict[str, str] = {}
    # Chains locked in one order (by scope name), so two transactions that append to the same
    # two chains cannot deadlock.
    for scope in sorted({event.scope for event in pending}):
        _lock_scope(session, scope)
        heads[scope] = session.execute(_HEAD, {"scope": scope}).scalar_one_or_none() or GENESIS
    rows = []
    for event in pending:
        event.prev_hash = heads[event.scope]
        fields = {column: getattr(event, column) for column in HASHED_FIELDS}
        event.hash = heads[event.scope] = event_hash(**fields)
        rows.append(fields | {"hash": event.hash})
    # A Core INSERT: the ORM's unit of work cost more CPU than the append itself.
    seqs = session.execute(_APPEND, rows).scalars().all()
    for event, seq in zip(pending, seqs, strict=True):
        event.seq = seq


@sa_event.listens_for(OrmSession, "after_soft_rollback")
def _drop_pending(session: OrmSession, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:
        session.info.pop(_PENDING, None)


def scope_visible_to(permissions: frozenset[Permission]) -> str | None:
    """The one chain a reader may see, or None for all: patients' trails hold personal data,
    so without PATIENT_AUDIT_READ (an admin) only the global chain is visible (DESIGN §11)."""
    return None if Permission.PATIENT_AUDIT_READ in permissions else GLOBAL_SCOPE


def events(
    session: Session,
    *,
    entity_type: EntityType | None = None,
    entity_id: int | None = None,
    scope: str | None = None,
    limit: int | None = 1000,
    offset: int = 0,
) -> Sequence[AuditEvent]:
    """Events matching every given filter, oldest first."""
    query = select(AuditEvent)
    if entity_type is not None:
        query = query.where(AuditEvent.entity_type == entity_type.value)
    if entity_id is not None:
        query = query.where(AuditEvent.entity_id == entity_id)
    if scope is not None:
        query = query.where(AuditEvent.scope == scope)
    query = query.order_by(col(AuditEvent.seq)).offset(offset).limit(limit)
    return session.execute(query).scalars().all()


def events_of_entities(
    session: Session, entities: dict[EntityType, Iterable[int]]
) -> Sequence[AuditEvent]:
    """Every event about any of the given entities, oldest first, in one query."""
    clauses = [
        (col(AuditEvent.entity_type) == kind.value) & col(AuditEvent.entity_id).in_(list(ids))
        for kind, ids in entities.items()
    ]
    if not clauses:
        return []
    query = select(AuditEvent).where(or_(*clauses)).order_by(col(AuditEvent.seq))
    return session.execute(query).scalars().all()


CSV_COLUMNS = (
    "seq",
    "occurred_at",
    "actor",
    "action",
    "entity_type",
    "entity_id",
    "old_values",
    "new_values",
    "reason",
    "hash",
)


def to_csv(rows: Iterable[AuditEvent]) -> str:
    """A trail as CSV (AUD-5), one event a line, times in UTC."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for event in rows:
        writer.writerow(
            [
                event.seq,
                event.occurred_at.isoformat(),
                event.actor,
                event.action,
                event.entity_type,
                event.entity_id if event.entity_id is not None else "",
                event.old_values or "",
                event.new_values or "",
                event.reason or "",
                event.hash,
            ]
        )
    return buffer.getvalue()


# The canonical timestamp text (chain.timestamp()) computed by the database, so verification never
# builds a datetime per row. SQLite stores "YYYY-MM-DD HH:MM:SS.ffffff" in UTC (db.UTCDateTime).
_CANONICAL_TIME_SQL = {
    "sqlite": "replace(occurred_at, ' ', 'T') || 'Z'",
    "postgresql": "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
}


def verify_chain(session: Session, *, scope: str | None = None) -> Verification:
    """Re-hash every event (or one scope's) in `seq` order and name the first broken one (AUD-3).

    Reads through the raw driver cursor, in batches: this loop must check 100 000 events/s.
    """
    dialect = session.get_bind().dialect.name
    columns = [_CANONICAL_TIME_SQL[dialect] if c == "occurred_at" else c for c in ROW_COLUMNS]
    where = "" if scope is None else "WHERE scope = %(scope)s"
    if dialect == "sqlite":
        where = where.replace("%(scope)s", ":scope")
    sql = f"SELECT {', '.join(columns)} FROM audit_event {where} ORDER BY seq"
    driver = session.connection().connection.driver_connection
    # A named (server-side) cursor streams on PostgreSQL instead of loading the whole table.
    cursor = driver.cursor(name="audit_verify") if dialect == "postgresql" else driver.cursor()
    try:
        cursor.execute(sql, {"scope": scope})

        def rows() -> Iterator[tuple[Any, ...]]:
            while batch := cursor.fetchmany(10_000):
                yield from batch

        return verify(rows())
    finally:
        cursor.close()

"""Writing and reading the audit trail. `record()` is called by the service that makes a change,
inside that change's transaction (AUD-1, AUD-4)."""

import csv
import io
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Text,
    bindparam,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col

from app.audit import records
from app.audit.actions import AuditAction, EntityType
from app.audit.chain import (
    GENESIS,
    GLOBAL_SCOPE,
    ROW_COLUMNS,
    Tail,
    Verification,
    canonical_json,
    content_around_prev_hash,
    event_hash,
    verify,
)
from app.audit.models import AuditEvent, AuditHead
from app.auth.models import User
from app.auth.permissions import Permission
from app.clock import utcnow

Actor = User | str  # a user, or the name of a non-human actor ("system", "anonymous")


_HEADS = AuditHead.__table__  # type: ignore[attr-defined]
_EVENTS = AuditEvent.__table__  # type: ignore[attr-defined]
HASHED_FIELDS = ROW_COLUMNS[2:]  # everything an event's hash covers (after seq and hash)
# A scope's head row, locked (FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE already
# serializes writers): the lock that serializes appends to one chain (ADR 0018).
_LOCK_HEAD = (
    select(_HEADS.c.count, _HEADS.c.last_hash)
    .where(_HEADS.c.scope == bindparam("scope"))
    .with_for_update()
)
# The first append to a scope makes its head; two racing first appends: one waits for the other.
_NEW_HEAD = text(
    "INSERT INTO audit_head (scope, count, last_seq, last_hash) "
    "VALUES (:scope, 0, 0, :genesis) ON CONFLICT (scope) DO NOTHING"
).bindparams(genesis=GENESIS)
_SET_HEAD = (
    update(_HEADS)
    .where(_HEADS.c.scope == bindparam("b_scope"))
    .values(count=bindparam("b_count"), last_seq=bindparam("b_seq"), last_hash=bindparam("b_hash"))
)
_APPEND = insert(_EVENTS).returning(_EVENTS.c.seq, sort_by_parameter_order=True)
# PostgreSQL, a transaction with one event (a scan, a refusal's aftermath; a change that writes
# rows has its snapshot event too): lock the chain's head, append the event hashed on the head's
# last hash, and move the head, in ONE statement, the transaction's last before its commit: the
# chain lock is held for this statement and the commit only (ADR 0034, after ADR 0018). The
# hash is the one `event_hash` gives: PostgreSQL's sha256 of the canonical content, whose two
# parts around prev_hash come from `content_around_prev_hash`.
_HEAD = (
    select(_HEADS.c.scope, _HEADS.c.count, _HEADS.c.last_hash)
    .where(_HEADS.c.scope == bindparam("e_scope"))
    .with_for_update()
    .cte("head")
)
_CONTENT = bindparam("before", type_=Text) + _HEAD.c.last_hash + bindparam("after", type_=Text)
_APPENDED = (
    insert(_EVENTS)
    .from_select(
        ["hash", *HASHED_FIELDS],
        select(
            func.encode(
                func.sha256(func.convert_to(_CONTENT, literal_column("'UTF8'"))),
                literal_column("'hex'"),
            ),
            *(
                _HEAD.c.last_hash
                if column == "prev_hash"
                else bindparam(f"e_{column}", type_=_EVENTS.c[column].type)
                for column in HASHED_FIELDS
            ),
        ).select_from(_HEAD),
    )
    .returning(_EVENTS.c.seq, _EVENTS.c.prev_hash, _EVENTS.c.hash)
    .cte("appended")
)
_APPEND_ALONE = (
    update(_HEADS)
    .where(_HEADS.c.scope == _HEAD.c.scope, _APPENDED.c.prev_hash == _HEAD.c.last_hash)
    .values(count=_HEAD.c.count + 1, last_seq=_APPENDED.c.seq, last_hash=_APPENDED.c.hash)
    .returning(_APPENDED.c.seq, _APPENDED.c.prev_hash, _APPENDED.c.hash)
)
_PENDING = "homeward_pending_audit_events"


@dataclass(slots=True)
class PendingEvent:
    """An event recorded in a transaction and appended to its chain at the commit, which sets
    its `seq`, `prev_hash` and `hash`. A plain object, not an ORM row: it is never added to the
    session (the append is a Core INSERT), and building a SQLModel row validated every field
    on the hot path of every write."""

    scope: str
    occurred_at: datetime
    actor_id: int | None
    actor: str
    action: str
    entity_type: str
    entity_id: int | None
    old_values: str | None
    new_values: str | None
    reason: str | None
    prev_hash: str = ""
    hash: str = ""
    seq: int | None = None


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
) -> PendingEvent:
    """Add one event to the chain of `coi` (or, for `coi=None`, the global chain of records of
    no patient) in the current transaction. There is no default: every caller names its chain,
    so a patient's event can never land where the patient's own trail cannot see it.

    The event is appended when the transaction commits, as its last statements: the chain lock
    is held only for the append and the commit, never while the request does anything else.
    A rolled-back transaction appends nothing. The event's `seq`, `prev_hash` and `hash` are set
    by that commit.
    """
    event = _new_event(
        coi or GLOBAL_SCOPE,
        (actor.id, actor.username) if isinstance(actor, User) else (None, actor),
        action,
        entity_type,
        entity_id,
        old,
        new,
        reason,
    )
    # Begin the transaction now if nothing has yet: its rollback must drop the pending event.
    session.connection()
    session.info.setdefault(_PENDING, []).append(event)
    return event


@sa_event.listens_for(OrmSession, "before_commit")
def _append_pending(session: OrmSession) -> None:
    """Append the transaction's events, and the snapshots of the rows it wrote, to their chains
    and move each chain's head: the transaction's last statements (ADR 0014, ADR 0018)."""
    session.flush()  # the rows written since the last flush are snapshotted too
    pending: list[PendingEvent] = session.info.pop(_PENDING, [])
    pending[:0] = _snapshot_events(session, pending)
    if not pending:
        return
    # Core statements on the connection: the ORM's execution layer is not needed here.
    connection = session.connection()
    alone = len(pending) == 1 and connection.dialect.name == "postgresql"
    if alone and _append_alone(connection, pending[0]):
        return  # else (the chain has no head yet) its first event takes the general way
    heads: dict[str, str] = {}
    counts: dict[str, int] = {}
    # Heads locked in one order (by scope name), so two transactions that append to the same
    # two chains cannot deadlock.
    for scope in sorted({event.scope for event in pending}):
        row = connection.execute(_LOCK_HEAD, {"scope": scope}).first()
        if row is None:
            connection.execute(_NEW_HEAD, {"scope": scope})
            row = connection.execute(_LOCK_HEAD, {"scope": scope}).one()
        counts[scope], heads[scope] = row
    rows = []
    for event in pending:
        event.prev_hash = heads[event.scope]
        fields = {column: getattr(event, column) for column in HASHED_FIELDS}
        event.hash = heads[event.scope] = event_hash(**fields)
        rows.append(fields | {"hash": event.hash})
    # A Core INSERT: the ORM's unit of work cost more CPU than the append itself.
    seqs = connection.execute(_APPEND, rows).scalars().all()
    last_seq: dict[str, int] = {}
    for event, seq in zip(pending, seqs, strict=True):
        event.seq = last_seq[event.scope] = seq
        counts[event.scope] += 1
    connection.execute(
        _SET_HEAD,
        [
            {"b_scope": scope, "b_count": counts[scope], "b_seq": seq, "b_hash": heads[scope]}
            for scope, seq in last_seq.items()
        ],
    )


def _append_alone(connection: Connection, event: PendingEvent) -> bool:
    """Append `event` to its chain with `_APPEND_ALONE`; False if the chain has no head yet."""
    fields = {column: getattr(event, column) for column in HASHED_FIELDS if column != "prev_hash"}
    before, after = content_around_prev_hash(**fields)
    values = {f"e_{column}": value for column, value in fields.items()}
    row = connection.execute(_APPEND_ALONE, values | {"before": before, "after": after}).first()
    if row is None:
        return False
    event.seq, event.prev_hash, event.hash = row
    return True


def _snapshot_events(session: OrmSession, pending: list[PendingEvent]) -> list[PendingEvent]:
    """One `records.written` event per chain holding the state of every tracked row the
    transaction wrote (AUD-7), by the actor of the transaction's first event in that chain."""
    written = records.take_written(session)
    if not written:
        return []
    actors = {}
    for event in reversed(pending):
        actors[event.scope] = actors[None] = (event.actor_id, event.actor)
    snapshots = []
    for scope, rows in sorted(written.items()):
        actor = actors.get(scope) or actors.get(None) or (None, "system")
        snapshots.append(
            _new_event(scope, actor, AuditAction.RECORDS_WRITTEN, EntityType.RECORD, None,
                       None, {"rows": rows}, None)
        )  # fmt: skip
    return snapshots


def _new_event(
    scope: str,
    actor: tuple[int | None, str],
    action: AuditAction,
    entity_type: EntityType,
    entity_id: int | None,
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    reason: str | None,
) -> PendingEvent:
    """An event not yet in its chain: its seq, prev_hash and hash are set by the append."""
    return PendingEvent(
        scope=scope,
        prev_hash="",
        hash="",
        occurred_at=utcnow(),
        actor_id=actor[0],
        actor=actor[1],
        action=action.value,
        entity_type=entity_type.value,
        entity_id=entity_id,
        old_values=canonical_json(old),
        new_values=canonical_json(new),
        reason=reason,
    )


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


def read_snapshot(session: Session) -> None:
    """Make the session's next transaction one snapshot on PostgreSQL (REPEATABLE READ), so the
    heads and the events it reads are of one moment; SQLite's read transactions already are."""
    bind = session.get_bind()
    # A session on a connection (tests, migrations) reads in that connection's transaction.
    postgresql = isinstance(bind, Engine) and bind.dialect.name == "postgresql"
    if postgresql and not session.in_transaction():
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def heads(session: Session, scope: str | None = None) -> dict[str, Tail]:
    """Each scope's head as kept by the appends: {scope: Tail}."""
    query = select(_HEADS.c.scope, _HEADS.c.count, _HEADS.c.last_seq, _HEADS.c.last_hash)
    if scope is not None:
        query = query.where(_HEADS.c.scope == scope)
    return {row[0]: Tail(*row[1:]) for row in session.execute(query)}


def verify_chain(session: Session, *, scope: str | None = None) -> Verification:
    """Re-hash every event (or one scope's) in `seq` order and name the first broken one (AUD-3),
    then check that each chain ends exactly at its head (AUD-7): a chain that lost its last
    events, or a head with no chain, is not ok (`bad_scope`, `detail`).

    Reads through the raw driver cursor, in batches: this loop must check 100 000 events/s.
    """
    read_snapshot(session)
    kept = heads(session, scope)
    result = _verify_events(session, scope)
    if not result.ok:
        return result
    for name in sorted(kept.keys() | result.tails.keys()):
        detail = _head_mismatch(name, kept.get(name), result.tails.get(name))
        if detail is not None:
            return replace(result, ok=False, bad_scope=name, detail=detail)
    return result


def _head_mismatch(scope: str, head: Tail | None, tail: Tail | None) -> str | None:
    if head == tail:
        return None
    if head is None:
        return f"Chain {scope} has {tail.count if tail else 0} events but no head."
    if tail is None or tail.count < head.count:
        return (
            f"Chain {scope} ends early: {tail.count if tail else 0} events, but its head "
            f"records {head.count} ending at seq {head.last_seq}; events were removed."
        )
    return (
        f"Chain {scope} does not end where its head says (seq {head.last_seq}, "
        f"{head.count} events): {tail.count} events ending at seq {tail.last_seq}."
    )


def _verify_events(session: Session, scope: str | None) -> Verification:
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


@dataclass(frozen=True, slots=True)
class TrailCheck:
    """The whole verification (AUD-3, AUD-7): events, heads, then every tracked record."""

    chain: Verification
    records: records.RecordsCheck | None  # None when the chain itself is broken

    @property
    def ok(self) -> bool:
        return self.chain.ok and self.records is not None and self.records.ok

    @property
    def detail(self) -> str:
        if self.chain.first_bad_seq is not None:
            return f"Event seq {self.chain.first_bad_seq} is not what was recorded."
        if self.chain.detail is not None:
            return self.chain.detail
        if self.records is not None and self.records.first_bad_record is not None:
            return self.records.first_bad_record.detail
        return "The audit trail and every tracked record are intact."


def verify_trail(session: Session) -> TrailCheck:
    """Verify the chains and heads, then (only if they hold: the snapshots are read from them)
    that every tracked row is in the state its trail last recorded."""
    chain = verify_chain(session)
    if not chain.ok:
        return TrailCheck(chain, None)
    return TrailCheck(chain, records.verify_records(session.connection()))


def write_baseline(
    session: Session, *, batch_rows: int = 500, tables: Collection[str] | None = None
) -> int:
    """Snapshot every tracked row (of `tables`, default all) as it is now into its patient's
    chain (`records.baseline`), for rows written before snapshots existed (migration 0011) or
    before their table was tracked (migration 0022). Streams the tables and appends `batch_rows`
    rows at a time. Returns how many rows were snapshotted."""
    connection = session.connection()
    total = 0
    for table, names in records.existing_tables(connection):
        if tables is not None and table not in tables:
            continue
        stream = records.current_rows(connection, table, names)
        while rows := {(table, row_id): state for row_id, state in islice(stream, batch_rows)}:
            scopes = records.scopes_of(connection, rows)
            by_scope: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for key, state in rows.items():
                by_scope[scopes[key]].append({"table": table, "id": key[1], "state": state})
            session.info[_PENDING] = [
                _new_event(
                    scope,
                    (None, "migration"),
                    AuditAction.RECORDS_BASELINE,
                    EntityType.RECORD,
                    None,
                    None,
                    {"rows": entries},
                    None,
                )
                for scope, entries in sorted(by_scope.items())
            ]
            _append_pending(session)
            total += len(rows)
    return total


REBUILD_HEADS = """
INSERT INTO audit_head (scope, count, last_seq, last_hash)
SELECT e.scope, c.n, e.seq, e.hash
FROM audit_event e
JOIN (SELECT scope, count(*) AS n, max(seq) AS m FROM audit_event GROUP BY scope) c ON e.seq = c.m
WHERE true
ON CONFLICT (scope) DO UPDATE
  SET count = excluded.count, last_seq = excluded.last_seq, last_hash = excluded.last_hash
"""


def rebuild_heads(connection: Connection) -> None:
    """Set every scope's head from its events as they are: for events written without the
    append (migration 0011 of an existing trail, the bench's bulk-loaded chain). Never for
    repairs: a head rebuilt after a deletion hides it (the signed checkpoints still show it)."""
    connection.execute(text(REBUILD_HEADS))

"""Record snapshots: the state of every GMP-critical row, written into the audit trail by the
transaction that wrote the row, and verified against the row as it is now (AUD-7, ADR 0018).

Services do not have to put every field in their events: a session hook sees every tracked row
the ORM inserts, updates or deletes (`after_flush`), keeps its canonical state, and at commit the
chain append (`service._append_pending`) writes one `records.written` event per scope holding the
rows' states, covered by the chain hash like any other event. Verification rebuilds each row's
last recorded state from those events and compares it with the table.
"""

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from hashlib import sha256
from typing import Any

from sqlalchemy import Boolean, Connection, Date, DateTime, Float, Integer, Table, select, text
from sqlalchemy import event as sa_event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import UOWTransaction

from app.audit.chain import GLOBAL_SCOPE, canonical_json, timestamp
from app.db import UTCDateTime, metadata

# The identity-bearing and GMP-critical tables, in the order verification walks them. Every column
# but the primary key is recorded, so a column added later is covered without anyone listing it.
TRACKED = (
    "patient",
    "biopsy",
    "batch",
    "vessel",
    "qc_result",
    "custody_event",
    "infusion",
    "release_decision",
    "physician_acceptance",
    "label_print",
    # Change-controlled records (QC-3): the versions in force decide every batch's QC and label.
    "specification",
    "specification_test",
    "gmp_setting",
)
# How a row reaches its patient (foreign key column, parent table): its snapshot goes into that
# patient's chain, so patients' data never lands in the global trail that QA reads.
PARENTS = {
    "biopsy": ("patient_id", "patient"),
    "batch": ("biopsy_id", "biopsy"),
    "vessel": ("biopsy_id", "biopsy"),
    "qc_result": ("batch_id", "batch"),
    "custody_event": ("vessel_id", "vessel"),
    "infusion": ("patient_id", "patient"),
    "release_decision": ("batch_id", "batch"),
    "physician_acceptance": ("batch_id", "batch"),
    "label_print": ("vessel_id", "vessel"),
}
RECORD_ENTITY = "record"  # entity_type of snapshot events: never any entity's own timeline
_WRITTEN = "homeward_written_records"
# Per statement (a Connection's own options would stream its every later statement too).
_STREAM = {"stream_results": True, "yield_per": 2_000}
_TRACKED = frozenset(TRACKED)

Key = tuple[str, int]  # (table, id)
State = dict[str, Any]


def _converter(column_type: Any) -> Any:
    """The canonical (JSON) form of a column's values, identical for what the ORM wrote and what
    the database returns (an int written to a float column reads back as a float)."""
    if isinstance(column_type, Boolean):
        return bool
    if isinstance(column_type, (UTCDateTime, DateTime)):
        return timestamp
    if isinstance(column_type, Date):
        return date.isoformat
    if isinstance(column_type, Float):
        return float
    if isinstance(column_type, Integer):
        return int
    return str


_COLUMNS: dict[str, tuple[tuple[str, Any], ...]] = {}


def columns(table: str) -> tuple[tuple[str, Any], ...]:
    """(name, converter) of every recorded column of `table`."""
    found = _COLUMNS.get(table)
    if found is None:
        found = _COLUMNS[table] = tuple(
            (column.name, _converter(column.type))
            for column in metadata.tables[table].columns
            if not column.primary_key
        )
    return found


def canonical_state(table: str, values: Any) -> State:
    """The canonical state of one row from anything with its columns as attributes or keys."""
    get = values.get if isinstance(values, dict) else values.__getattribute__
    state = {}
    for name, convert in columns(table):
        value = get(name)
        state[name] = None if value is None else convert(value)
    return state


@sa_event.listens_for(OrmSession, "after_flush")
def _collect(session: OrmSession, _context: UOWTransaction) -> None:
    """Keep the state of every tracked row this flush wrote (the latest write of a row wins)."""
    written: dict[Key, tuple[State, bool]] | None = session.info.get(_WRITTEN)
    new, removed = session.new, session.deleted  # each property builds a new set: once
    for obj in (*new, *session.dirty, *removed):
        table = getattr(type(obj), "__tablename__", None)
        if table not in _TRACKED:
            continue
        deleted = obj in removed
        if not deleted and obj not in new and not session.is_modified(obj):
            continue
        if written is None:
            written = session.info.setdefault(_WRITTEN, {})
        written[(table, obj.id)] = (canonical_state(table, obj), deleted)


@sa_event.listens_for(OrmSession, "after_soft_rollback")
def _drop_written(session: OrmSession, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:
        session.info.pop(_WRITTEN, None)


def scopes_of(connection: Connection, rows: dict[Key, State]) -> dict[Key, str]:
    """The chain of each row: its patient's COI, found through its parents (one query per parent
    table), or the global chain for a row that reaches no patient."""
    wanted: dict[str, set[int]] = defaultdict(set)
    for (table, _), state in rows.items():
        if table in PARENTS:
            column, parent = PARENTS[table]
            if state.get(column) is not None:
                wanted[parent].add(state[column])
    found = {(parent, row_id): coi for parent, ids in wanted.items()
             for row_id, coi in _cois(connection, parent, ids)}  # fmt: skip
    scopes = {}
    for key, state in rows.items():
        table = key[0]
        if table == "patient":
            scopes[key] = state["coi"]
        elif table in PARENTS:
            column, parent = PARENTS[table]
            scopes[key] = found.get((parent, state.get(column)), GLOBAL_SCOPE)
        else:
            scopes[key] = GLOBAL_SCOPE
    return scopes


def _cois(connection: Connection, table: str, ids: set[int]) -> Iterable[tuple[int, str]]:
    """(id, patient COI) of rows of `table`, joined up its parents to the patient."""
    start = current = metadata.tables[table]
    query = select(start.c.id)
    while current.name != "patient":
        column, parent = PARENTS[current.name]
        parent_table = metadata.tables[parent]
        query = query.join_from(current, parent_table, current.c[column] == parent_table.c.id)
        current = parent_table
    query = query.add_columns(current.c.coi).where(start.c.id.in_(sorted(ids)))
    return [(row[0], row[1]) for row in connection.execute(query)]


def take_written(session: OrmSession) -> dict[str, list[dict[str, Any]]]:
    """The rows this transaction wrote, grouped by chain, for its `records.written` events
    (each row: table, id, state; a deleted row's state is null). Empties the collection."""
    written: dict[Key, tuple[State, bool]] | None = session.info.pop(_WRITTEN, None)
    if not written:
        return {}
    scopes = scopes_of(session.connection(), {key: state for key, (state, _) in written.items()})
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for key in sorted(written):
        state, deleted = written[key]
        grouped[scopes[key]].append(
            {"table": key[0], "id": key[1], "state": None if deleted else state}
        )
    return grouped


def existing_tables(connection: Connection) -> list[tuple[str, list[str]]]:
    """The tracked tables this database has, each with the recorded columns it has (a baseline
    written by an old migration must not name columns a later one adds)."""
    inspector = sa_inspect(connection)
    present = set(inspector.get_table_names())
    result = []
    for table in TRACKED:
        if table in present:
            names = {column["name"] for column in inspector.get_columns(table)}
            result.append((table, [name for name, _ in columns(table) if name in names]))
    return result


def current_rows(
    connection: Connection, table: str, names: list[str] | None = None
) -> Iterator[tuple[int, State]]:
    """Every row of `table` as (id, canonical state), in id order, streamed."""
    source: Table = metadata.tables[table]
    chosen = [name for name, _ in columns(table)] if names is None else names
    query = select(source.c.id, *(source.c[name] for name in chosen)).order_by(source.c.id)
    convert = dict(columns(table))
    result = connection.execute(query, execution_options=_STREAM)
    for row in result:
        values = row._mapping
        yield (
            row[0],
            {
                name: None if values[name] is None else convert[name](values[name])
                for name in chosen
            },
        )


# --- verification --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordProblem:
    table: str
    id: int
    field: str | None
    detail: str

    def public(self) -> dict[str, Any]:
        return {"table": self.table, "id": self.id, "field": self.field, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class RecordsCheck:
    ok: bool
    records_checked: int
    records_differing: int
    first_bad_record: RecordProblem | None


def _digest(state: State, keys: tuple[str, ...]) -> bytes:
    return sha256(canonical_json({key: state.get(key) for key in keys}).encode()).digest()


_RECORDED = text(
    "SELECT seq, new_values FROM audit_event WHERE entity_type = :kind ORDER BY seq"
).bindparams(kind=RECORD_ENTITY)
_EVENT_VALUES = text("SELECT new_values FROM audit_event WHERE seq = :seq")


def _recorded(connection: Connection) -> dict[Key, tuple[int, tuple[str, ...] | None, bytes]]:
    """Each row's last recorded state, as (seq, its field names, digest); None names: deleted."""
    interned: dict[tuple[str, ...], tuple[str, ...]] = {}
    recorded: dict[Key, tuple[int, tuple[str, ...] | None, bytes]] = {}
    result = connection.execute(_RECORDED, execution_options=_STREAM)
    for seq, new_values in result:
        for row in json.loads(new_values or "{}").get("rows", ()):
            state = row["state"]
            if state is None:
                recorded[(row["table"], row["id"])] = (seq, None, b"")
                continue
            keys = tuple(sorted(state))
            keys = interned.setdefault(keys, keys)
            recorded[(row["table"], row["id"])] = (seq, keys, _digest(state, keys))
    return recorded


def _differing_field(connection: Connection, seq: int, key: Key, current: State) -> str | None:
    """The first field (by name) in which `current` differs from the state recorded at `seq`."""
    values = connection.execute(_EVENT_VALUES, {"seq": seq}).scalar_one()
    for row in json.loads(values)["rows"]:
        if (row["table"], row["id"]) == key:
            state = row["state"]
            return next((name for name in sorted(state) if state[name] != current.get(name)), None)
    return None


_UNRECORDED = "{table} {id} has no recorded state in the audit trail: written outside Homeward."
_RESURRECTED = "{table} {id} exists, but its audit trail recorded its deletion (event seq {seq})."
_DIFFERS = "{table} {id}: {field} is not what its audit trail last recorded (event seq {seq})."
_VANISHED = "{table} {id} was recorded (event seq {seq}) but is no longer in the database."


def verify_records(connection: Connection) -> RecordsCheck:
    """Compare every tracked row with its last recorded state; name the first that differs, has
    no recorded state, or was recorded and has vanished. Tables in TRACKED order, rows by id.

    Reads the trail's snapshots once, then streams each table: no row is loaded twice.
    """
    recorded = _recorded(connection)
    checked = 0
    problems: list[RecordProblem] = []  # only the first is kept
    differing = 0

    def problem(template: str, table: str, row_id: int, seq: int = 0, field: str | None = None):
        nonlocal differing
        differing += 1
        if not problems:
            detail = template.format(table=table, id=row_id, seq=seq, field=field)
            problems.append(RecordProblem(table, row_id, field, detail))

    for table, names in existing_tables(connection):
        for row_id, state in current_rows(connection, table, names):
            checked += 1
            key = (table, row_id)
            entry = recorded.pop(key, None)
            if entry is None:
                problem(_UNRECORDED, table, row_id)
                continue
            seq, keys, digest = entry
            if keys is None:
                problem(_RESURRECTED, table, row_id, seq)
            elif _digest(state, keys) != digest:
                field = _differing_field(connection, seq, key, state)
                problem(_DIFFERS, table, row_id, seq, field)
        for key in sorted(k for k, v in recorded.items() if k[0] == table and v[1] is not None):
            problem(_VANISHED, table, key[1], recorded[key][0])
    return RecordsCheck(not differing, checked, differing, problems[0] if problems else None)

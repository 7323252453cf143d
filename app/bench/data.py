"""Data the bench measures against, generated fast and valid.

- An audit chain: events hashed in Python with `app.audit.chain`, over chains of their own (COIs
  of year 99, which no patient has), bulk-inserted with COPY; `verify_chain` must find it intact.
- Batches: the demo's patients that have a batch, cloned with everything that hangs off them
  (biopsy, batch, vessels, steps, QC results, deviations, release decisions, custody, plans...),
  so the clones have the demo's mix of batch states and doses. Which tables hang off a patient is
  read from the foreign keys; every key is remapped, and every identity is new and valid: a COI
  and a DIN from their counters with their check characters, vessel codes built on the new DIN,
  new batch and deviation numbers, an MRN of its own. Signatures and audit events are not cloned
  (they bind their records' content; the timed reads do not use them).
"""

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Any

import psycopg
from sqlalchemy import Engine, Table, UniqueConstraint, insert

import app.models  # noqa: F401  (every table's foreign keys known before they are read)
from app.audit.chain import GENESIS, canonical_json, event_hash
from app.audit.models import AuditEvent
from app.audit.service import rebuild_heads
from app.batches.states import BatchStatus
from app.db import metadata
from app.identity.codes import DIN, VesselCode, build_coi

# --- the audit chain ---------------------------------------------------------------------------

_CHAIN_FACILITY, _CHAIN_YEAR, _CHAIN_FIRST = "A9999", 99, 900_000
_INSERT_BATCH = 10_000


def chained_events(count: int, *, scopes: int = 500) -> Iterator[dict[str, Any]]:
    """`count` audit_event rows forming valid chains over `scopes` scopes no patient has."""
    names = [build_coi(_CHAIN_FACILITY, _CHAIN_YEAR, _CHAIN_FIRST + n) for n in range(scopes)]
    last: dict[str, str] = {}
    start = datetime(2026, 1, 1, tzinfo=UTC)
    new_values = canonical_json({"code": "A99992600000100010", "expected": {}})
    for index in range(count):
        scope = names[index % scopes]
        fields = {
            "scope": scope,
            "prev_hash": last.get(scope, GENESIS),
            "occurred_at": start + timedelta(milliseconds=index),
            "actor_id": None,
            "actor": "bench",
            "action": "scan.ok",
            "entity_type": "vessel",
            "entity_id": index,
            "old_values": None,
            "new_values": new_values,
            "reason": None,
        }
        last[scope] = fields["hash"] = event_hash(**fields)
        yield fields


def _copy(connection: psycopg.Connection, table: str, rows: Iterable[dict[str, Any]]) -> int:
    """COPY `rows` (dicts with the same keys) into `table`; how many were written."""
    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return 0
    columns = list(first)
    written = 0
    with connection.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in chain([first], rows):
            copy.write_row([row[c] for c in columns])
            written += 1
    return written


def fill_audit_chain(engine: Engine, count: int) -> None:
    """Append `count` chained events to the database's audit trail (COPY on PostgreSQL), then
    set the chains' heads, which the bulk load bypassed (AUD-7)."""
    _load_audit_chain(engine, chained_events(count))
    with engine.begin() as connection:
        rebuild_heads(connection)


def _load_audit_chain(engine: Engine, rows: Iterator[dict[str, Any]]) -> None:
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            _copy(raw.driver_connection, AuditEvent.__tablename__, rows)
            raw.commit()
        finally:
            raw.close()
        return
    batch: list[dict[str, Any]] = []
    with engine.begin() as connection:
        for row in rows:
            batch.append(row)
            if len(batch) == _INSERT_BATCH:
                connection.execute(insert(AuditEvent.__table__), batch)
                batch = []
        if batch:
            connection.execute(insert(AuditEvent.__table__), batch)


# --- batches -----------------------------------------------------------------------------------

# Columns holding JSON lists of ids of another table's rows: remapped like foreign keys.
_JSON_ID_LISTS = {
    ("release_decision", "result_ids"): "qc_result",
    ("release_decision", "deviation_ids"): "deviation",
}


def owned_tables() -> list[Table]:
    """`patient` and every table with a foreign key to one of them, in dependency order."""
    owned = {"patient"}
    grown = True
    while grown:
        grown = False
        for table in metadata.sorted_tables:
            if table.name not in owned and any(
                fk.column.table.name in owned for fk in table.foreign_keys
            ):
                owned.add(table.name)
                grown = True
    return [table for table in metadata.sorted_tables if table.name in owned]


def _own_key(table: Table) -> str | None:
    """The table's own integer id column, if its primary key is one that is no foreign key."""
    (*keys,) = table.primary_key.columns
    if len(keys) == 1 and not keys[0].foreign_keys:
        return keys[0].name
    return None


def _unique(table: Table, column: str) -> bool:
    """Whether `column` alone is unique in `table` (column flag, constraint or unique index)."""
    alone = [
        [c.name for c in both.columns]
        for both in (*table.constraints, *table.indexes)
        if isinstance(both, UniqueConstraint) or getattr(both, "unique", False) is True
    ]
    return bool(table.c[column].unique) or [column] in alone


# The state a history copy's batch ended in: the usual end of an autologous batch.
HISTORY_STATUS = BatchStatus.COMPLETED.value


def _renumbered(number: str, sequence: int) -> str:
    """`number` with its trailing sequence replaced, as wide (B26-00003 -> B26-00042)."""
    head, _, tail = number.rpartition("-")
    return f"{head}-{sequence:0{len(tail)}d}"


class Clones:
    """Copies of the demo's patients that have a batch, made until the database has N batches.

    Copy n of a row has id `id + n * stride` (stride: the largest id of its table when the
    templates were read), so the keys of every copy are distinct and can be computed, not looked
    up. Identities draw from the same counters (`sequence_counter`) as the services, named as the
    services name them, and the counters are left past every number used.
    """

    def __init__(self, connection: psycopg.Connection[dict[str, Any]]) -> None:
        self.connection = connection
        self.tables = owned_tables()
        names = {table.name for table in self.tables}
        # (column, table its values are ids of, or None to clear it in copies)
        self.keys: dict[str, list[tuple[str, str | None]]] = {}
        self.rows: dict[str, dict[int, list[dict[str, Any]]]] = {}
        self.stride: dict[str, int] = {}
        owner_of: dict[str, dict[Any, int]] = {}
        for table in self.tables:
            own = _own_key(table)
            links = [
                (fk.parent.name, fk.column.table.name)
                for fk in table.foreign_keys
                if fk.column.table.name in names
            ]
            # A unique key into a shared table (a storage position) cannot be copied: cleared.
            cleared = [
                (fk.parent.name, None)
                for fk in table.foreign_keys
                if fk.column.table.name not in names and _unique(table, fk.parent.name)
            ]
            self.keys[table.name] = ([(own, table.name)] if own else []) + links + cleared
            grouped: dict[int, list[dict[str, Any]]] = defaultdict(list)
            owners = owner_of[table.name] = {}
            for row in connection.execute(f"SELECT * FROM {table.name} ORDER BY 1"):
                owner = (
                    row[own]
                    if table.name == "patient"
                    else next(
                        owner_of[target][row[column]]
                        for column, target in links
                        if target != table.name and row[column] is not None
                    )
                )
                grouped[owner].append(row)
                if own:
                    owners[row[own]] = owner
            self.rows[table.name] = grouped
            self.stride[table.name] = max(owners, default=0)
        self.templates = [p for p in sorted(self.rows["patient"]) if self.rows["batch"].get(p)]
        if not self.templates:
            raise RuntimeError("no patient with a batch to clone: load the demo data first")
        self.counters: dict[str, int] = {
            row["name"]: row["value"]
            for row in connection.execute("SELECT name, value FROM sequence_counter")
        }
        self.copies = 0

    def _next(self, counter: str) -> int:
        self.counters[counter] = self.counters.get(counter, 0) + 1
        return self.counters[counter]

    def _new_identity(
        self, table: str, template: dict[str, Any], row: dict[str, Any], dins: dict[int, DIN]
    ) -> None:
        """Give the copy `row` of `template` identities of its own (`dins`: template biopsy id
        -> the copy's DIN, filled as biopsies are copied, read by their batch and vessels)."""
        if table == "patient":
            coi = template["coi"]
            facility, year = coi[2:7], coi[7:9]
            row["coi"] = build_coi(facility, int(year), self._next(f"coi:{facility}:{year}"))
            row["mrn"] = row["mrn_key"] = f"BENCH-{self.copies:07d}"
        elif table == "biopsy":
            din = template["din"]
            facility, year = din[:5], din[5:7]
            new = DIN.build(facility, int(year), self._next(f"din:{facility}:{year}"))
            dins[template["id"]] = new
            row["din"] = new.value
            self.counters[f"vessel:{new.value}"] = self.counters.get(f"vessel:{din}", 0)
        elif table == "batch":
            din, year = dins[template["biopsy_id"]], template["batch_number"][1:3]
            sequence = self._next(f"batch:{din.facility}:{year}")
            row["batch_number"] = _renumbered(template["batch_number"], sequence)
        elif table == "vessel":
            row["code"] = VesselCode(dins[template["biopsy_id"]], template["sequence"]).value
        elif table == "deviation":
            sequence = self._next(f"deviation:{template['number'][3:5]}")
            row["number"] = _renumbered(template["number"], sequence)

    def _clone(
        self,
        patient_id: int,
        produced: dict[str, list[dict[str, Any]]],
        ended_at: datetime | None,
    ) -> None:
        n = self.copies
        dins: dict[int, DIN] = {}
        for table in self.tables:
            keys = self.keys[table.name]
            lists = [(c, t) for (name, c), t in _JSON_ID_LISTS.items() if name == table.name]
            for template in self.rows[table.name].get(patient_id, ()):
                row = dict(template)
                for column, target in keys:
                    if row[column] is not None:
                        shift = None if target is None else n * self.stride[target]
                        row[column] = None if shift is None else row[column] + shift
                for column, target in lists:
                    ids = json.loads(row[column])
                    row[column] = json.dumps([i + n * self.stride[target] for i in ids])
                self._new_identity(table.name, template, row, dins)
                if ended_at is not None and table.name == "batch":
                    row["status"], row["status_changed_at"] = HISTORY_STATUS, ended_at
                produced[table.name].append(row)

    def grow_to(self, batches: int, *, ended_at: datetime | None = None) -> int:
        """Clone until the database holds at least `batches` batches; how many it holds.

        With `ended_at`, the new copies are the lab's history: their batches were completed then
        (the rest of each copy is left as the template had it; nothing the bench times reads
        it). Without it they have the demo's mix of states, so every copy is in treatment."""
        connection = self.connection
        have = connection.execute("SELECT count(*) AS n FROM batch").fetchone()["n"]
        produced: dict[str, list[dict[str, Any]]] = defaultdict(list)
        while have < batches:
            self.copies += 1
            template = self.templates[(self.copies - 1) % len(self.templates)]
            self._clone(template, produced, ended_at)
            have += len(self.rows["batch"][template])
        for table in self.tables:
            _copy(connection, table.name, produced[table.name])
            own = _own_key(table)
            if own and produced[table.name]:
                connection.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', '{own}'), "
                    f"(SELECT max({own}) FROM {table.name}))"
                )
        connection.cursor().executemany(
            "INSERT INTO sequence_counter (name, value) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            list(self.counters.items()),
        )
        connection.commit()
        # Fresh planner statistics, as autovacuum would have them on a database grown slowly.
        connection.execute(f"ANALYZE {', '.join(table.name for table in self.tables)}")
        connection.commit()
        return have

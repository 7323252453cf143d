"""The raw-driver ceiling: what PostgreSQL and psycopg alone do with the scan's work (no
SQLAlchemy, no HTTP). Two processes, each a loop of transactions: the scan's identity SELECT
(the very statement `identity_by_code` sends, captured) and one INSERT into a scratch table shaped
like audit_event, then commit."""

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psycopg
from sqlalchemy import event, text
from sqlmodel import Session

from app.audit.chain import GENESIS, canonical_json, event_hash
from app.bench.database import libpq
from app.db import OPERATOR_LIMITS, make_engine
from app.vessels.repository import identity_by_code

PROCESSES = 2
TABLE = "bench_ceiling_event"
CONNECT_TIMEOUT_S = 10
MAX_TRANSACTIONS = 10_000_000
RUN_MARGIN_S = 30.0

_COLUMNS = (
    "scope", "occurred_at", "actor_id", "actor", "action", "entity_type", "entity_id",
    "old_values", "new_values", "reason", "prev_hash", "hash",
)  # fmt: skip


@dataclass(frozen=True)
class Ceiling:
    transactions: int
    seconds: float

    @property
    def rps(self) -> float:
        return self.transactions / self.seconds if self.seconds else 0.0


@contextmanager
def _captured(session: Session) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    sent: list[tuple[str, dict[str, Any]]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many) -> None:
        sent.append((statement, dict(parameters)))

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", capture)


def scan_select(database_url: str, code: str) -> tuple[str, str]:
    """The SQL text `identity_by_code` sends for a scan, and the name of its code parameter.

    Also creates the scratch table the ceiling inserts into."""
    engine = make_engine(database_url, limits=OPERATOR_LIMITS)
    try:
        with Session(engine) as session, _captured(session) as sent:
            identity_by_code(session, code)
            session.execute(
                text(f"CREATE TABLE IF NOT EXISTS {TABLE} (LIKE audit_event INCLUDING ALL)")
            )
            session.commit()
    finally:
        engine.dispose()
    statement, parameters = sent[0]
    (name,) = (key for key, value in parameters.items() if value == code)
    return statement, name


def _pipe(stream: IO[str] | None) -> IO[str]:
    assert stream is not None  # every pipe of the workers is opened
    return stream


def measure(database_url: str, codes: list[str], seconds: float) -> Ceiling:
    """Transactions per second of PROCESSES raw-driver workers together, over `seconds`."""
    select, parameter = scan_select(database_url, codes[0])
    spec = {
        "conninfo": libpq(database_url),
        "select": select,
        "parameter": parameter,
        "codes": codes,
        "seconds": seconds,
    }
    with tempfile.TemporaryDirectory() as directory:
        paths = [Path(directory) / f"worker-{n}.json" for n in range(PROCESSES)]
        for number, path in enumerate(paths):
            path.write_text(json.dumps(spec | {"worker": number}))
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "app.bench.ceiling", str(path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for path in paths
        ]
        try:
            # Every worker connected (or failed) before any starts: they run side by side.
            if any(_pipe(worker.stdout).readline().strip() != "ready" for worker in workers):
                raise RuntimeError("a ceiling worker could not connect to the database")
            for worker in workers:
                _pipe(worker.stdin).write("go\n")
                _pipe(worker.stdin).close()
            for worker in workers:
                worker.wait(timeout=seconds + RUN_MARGIN_S)
            results = [json.loads(_pipe(worker.stdout).read()) for worker in workers]
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
    return Ceiling(
        transactions=sum(r["transactions"] for r in results),
        seconds=max(r["seconds"] for r in results),
    )


def _work(spec: dict[str, Any]) -> dict[str, Any]:
    codes, parameter, worker = spec["codes"], spec["parameter"], spec["worker"]
    insert = f"INSERT INTO {TABLE} ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * 12)})"
    with psycopg.connect(spec["conninfo"], connect_timeout=CONNECT_TIMEOUT_S) as connection:
        print("ready", flush=True)
        sys.stdin.readline()  # "go": every worker is connected
        began = time.perf_counter()
        deadline = began + spec["seconds"]
        done = 0
        for n in range(MAX_TRANSACTIONS):
            if time.perf_counter() >= deadline:
                break
            code = codes[(worker * 7919 + n) % len(codes)]
            with connection.cursor() as cursor:
                cursor.execute(spec["select"], {parameter: code})
                vessel_id, scope = _identity(cursor.fetchone(), cursor.description)
                fields = {
                    "scope": scope,
                    "prev_hash": GENESIS,
                    "occurred_at": datetime.now(UTC),
                    "actor_id": None,
                    "actor": "bench",
                    "action": "scan.ok",
                    "entity_type": "vessel",
                    "entity_id": vessel_id,
                    "old_values": None,
                    # The worker and count make every row's hash unique, as the chain's are.
                    "new_values": canonical_json({"code": code, "run": [worker, n]}),
                    "reason": None,
                }
                fields["hash"] = event_hash(**fields)
                cursor.execute(insert, [fields[c] for c in _COLUMNS])
            connection.commit()
            done += 1
        return {"transactions": done, "seconds": time.perf_counter() - began}


def _identity(row: tuple[Any, ...], description: Any) -> tuple[int, str]:
    """The vessel id (first column) and the patient's COI from the identity row."""
    names = [column.name for column in description]
    return row[0], row[names.index("coi")]


def main() -> None:
    """One ceiling worker: the JSON spec in the file named; says "ready" once connected, starts
    on a line of standard input, prints its count."""
    print(json.dumps(_work(json.loads(Path(sys.argv[1]).read_text()))))


if __name__ == "__main__":
    main()

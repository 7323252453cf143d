"""The raw-driver ceiling: what PostgreSQL and psycopg alone do with the scan's work (no
SQLAlchemy, no HTTP). Two processes, each a loop of transactions: the scan's identity SELECT (the
very statement `identity_values_by_code` sends, captured) and one INSERT into a scratch table
shaped like audit_event, then commit."""

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import event, text
from sqlmodel import Session

from app.bench.ceiling_worker import TABLE
from app.bench.database import libpq
from app.db import OPERATOR_LIMITS, make_engine
from app.vessels.repository import identity_values_by_code

PROCESSES = 2
RUN_MARGIN_S = 30.0


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
    """The SQL text `identity_values_by_code` sends for a scan, and the name of its code parameter.

    Also creates the scratch table the ceiling inserts into."""
    engine = make_engine(database_url, limits=OPERATOR_LIMITS)
    try:
        with Session(engine) as session, _captured(session) as sent:
            identity_values_by_code(session, code)
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
                [sys.executable, "-m", "app.bench.ceiling_worker", str(path)],
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

"""Benchmark: audit chain verification throughput (DESIGN §12: >= 100 000 events/s from the DB).

Fills a fresh database with N hash-chained events spread over many patient scopes, then times
(a) the baseline: reading the same columns with the raw driver, no hashing, and
(b) `verify_chain()`: reading through SQLAlchemy and re-hashing every event.
Prints events/s for both and their ratio. Usage:

    .venv/bin/python benchmarks/audit_verify.py [N] [POSTGRESQL_SERVER_URL]

With a PostgreSQL server URL, a scratch database is created on it and dropped afterwards;
without one, a scratch SQLite file is used.
"""

import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from app.audit.chain import GENESIS, ROW_COLUMNS, canonical_json, event_hash
from app.audit.models import AuditEvent
from app.audit.service import verify_chain
from app.db import make_engine, session_factory_for
from app.migrate import upgrade


def fill(engine, count: int, scopes: int = 500) -> None:
    last: dict[str, str] = {}
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for index in range(count):
        scope = f"CHA99992600{index % scopes:04d}X"
        fields = {
            "scope": scope,
            "prev_hash": last.get(scope, GENESIS),
            "occurred_at": start + timedelta(milliseconds=index),
            "actor_id": 3,
            "actor": "tech",
            "action": "scan.ok",
            "entity_type": "vessel",
            "entity_id": index,
            "old_values": None,
            "new_values": canonical_json({"code": "A99992600000100010", "expected": {}}),
            "reason": None,
        }
        digest = event_hash(**fields)
        last[scope] = digest
        rows.append(fields | {"hash": digest})
    with engine.begin() as connection:
        for offset in range(0, count, 10_000):
            connection.execute(insert(AuditEvent.__table__), rows[offset : offset + 10_000])


@contextmanager
def scratch_database(server_url: str | None) -> Iterator[str]:
    if server_url is None:
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{Path(directory) / 'bench.db'}"
        return
    server = make_url(server_url)
    name = f"homeward_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    with scratch_database(sys.argv[2] if len(sys.argv) > 2 else None) as url:
        upgrade(url)
        engine = make_engine(url)
        fill(engine, count)
        with engine.connect() as connection:
            began = time.perf_counter()
            raw = connection.exec_driver_sql(
                f"SELECT {', '.join(ROW_COLUMNS)} FROM audit_event ORDER BY seq"
            ).fetchall()
            baseline = time.perf_counter() - began
        with session_factory_for(engine)() as session:
            began = time.perf_counter()
            result = verify_chain(session)
            verifying = time.perf_counter() - began
        assert result.ok and result.events_checked == count == len(raw), result
        engine.dispose()
    print(f"database: {url.split(':')[0]}  events: {count}")
    print(f"baseline raw read      : {count / baseline:>12,.0f} events/s")
    print(f"verify_chain (read+hash): {count / verifying:>12,.0f} events/s")
    print(f"ratio verify/raw-read  : {baseline / verifying:.2f}")
    print(f"bar (>= 100,000 events/s): {'PASS' if count / verifying >= 100_000 else 'FAIL'}")


if __name__ == "__main__":
    main()

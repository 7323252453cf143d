"""Benchmark: audit chain verification throughput (DESIGN §12: >= 100 000 events/s from the DB).

Fills a fresh database with N hash-chained events spread over many scopes
(`app.bench.data.fill_audit_chain`, as `homeward bench` does), then times
(a) the baseline: reading the same columns with the raw driver, no hashing, and
(b) `verify_chain()`: reading through SQLAlchemy and re-hashing every event.
Prints events/s for both and their ratio. Usage:

    .venv/bin/python benchmarks/audit_verify.py [N] [POSTGRESQL_SERVER_URL]

With a PostgreSQL server URL, a scratch database is created on it and dropped afterwards;
without one, a scratch SQLite file is used.
"""

import sys
import time

from app.audit.chain import ROW_COLUMNS
from app.audit.service import verify_chain
from app.bench.data import fill_audit_chain
from app.bench.database import scratch_database
from app.bench.report import AUDIT_VERIFY_PER_S
from app.db import OPERATOR_LIMITS, make_engine, session_factory_for
from app.migrate import upgrade


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    with scratch_database(sys.argv[2] if len(sys.argv) > 2 else None) as url:
        upgrade(url)
        engine = make_engine(url, limits=OPERATOR_LIMITS)
        fill_audit_chain(engine, count)
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
    met = count / verifying >= AUDIT_VERIFY_PER_S
    print(f"bar (>= {AUDIT_VERIFY_PER_S:,.0f} events/s): {'PASS' if met else 'FAIL'}")


if __name__ == "__main__":
    main()

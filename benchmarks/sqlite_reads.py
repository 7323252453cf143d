"""Benchmark: SQLite reads while a writer is busy (ADR 0014: only writing transactions begin
IMMEDIATE).

One writer thread commits short transactions back to back, each holding the write lock for
about 2 ms (an INSERT plus work), as a burst of scans does. Meanwhile four reader threads run the
same read transaction (a SELECT), first begun IMMEDIATE as every transaction was before
(baseline), then begun deferred inside `reads_only()` as reads are now. Prints reads/s and the
p99 read latency of both, and their ratio. Usage:

    .venv/bin/python benchmarks/sqlite_reads.py [SECONDS]
"""

import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.db import busy_error, make_engine, reads_only
from app.migrate import upgrade

READERS = 4


def _measure(engine, seconds: float, *, deferred: bool) -> tuple[float, float, int]:
    """(reads/s, p99 ms, reads refused busy) with one writer busy meanwhile."""
    stop = threading.Event()
    latencies: list[float] = []
    refused = []
    lock = threading.Lock()

    def writer() -> None:
        while not stop.is_set():
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO bench_row (n) VALUES (1)"))
                time.sleep(0.002)  # the rest of a write transaction's work

    def reader() -> None:
        mine = []
        while not stop.is_set():
            started = time.perf_counter()
            try:
                with reads_only() if deferred else nullcontext(), engine.connect() as connection:
                    connection.execute(text("SELECT count(*) FROM bench_row")).scalar()
                    connection.commit()
            except OperationalError as exc:  # "database is locked": the busy timeout ran out
                if busy_error(exc) is None:
                    raise
                refused.append(1)
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader) for _ in range(READERS)
    ]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    latencies.sort()
    return len(latencies) / seconds, latencies[int(len(latencies) * 0.99)] * 1000, len(refused)


def main(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'reads.db'}"
        upgrade(url)
        engine = make_engine(url)
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE bench_row (n INTEGER)"))
        immediate = _measure(engine, seconds, deferred=False)
        deferred = _measure(engine, seconds, deferred=True)
        engine.dispose()
    for name, (rate, p99, busy) in (
        ("reads begun IMMEDIATE (baseline)", immediate),
        ("reads begun deferred (now)      ", deferred),
    ):
        print(f"{name}: {rate:8.0f} reads/s, p99 {p99:7.1f} ms, {busy} refused busy")
    print(f"ratio deferred / IMMEDIATE: {deferred[0] / immediate[0]:.1f}x reads/s")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0)

"""One raw-driver ceiling worker (`app.bench.ceiling` starts two): psycopg and the chain's
hash only, so a worker starts in a fraction of a second instead of importing the application."""

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from app.audit.chain import GENESIS, canonical_json, event_hash

TABLE = "bench_ceiling_event"
CONNECT_TIMEOUT_S = 10
MAX_TRANSACTIONS = 10_000_000

_COLUMNS = (
    "scope", "occurred_at", "actor_id", "actor", "action", "entity_type", "entity_id",
    "old_values", "new_values", "reason", "prev_hash", "hash",
)  # fmt: skip


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
    """The vessel id and the patient's COI from the identity row (its columns are labelled
    `entity__column`, app.vessels.repository)."""
    names = [column.name for column in description]
    return row[names.index("vessel__id")], row[names.index("patient__coi")]


def main() -> None:
    """One ceiling worker: the JSON spec in the file named; says "ready" once connected, starts
    on a line of standard input, prints its count."""
    print(json.dumps(_work(json.loads(Path(sys.argv[1]).read_text()))))


if __name__ == "__main__":
    main()

"""CPU time spent by the server and by the database per answered request, read from /proc.

Throughput and latency on a shared 2-core machine move with whatever else runs; the CPU a
request costs moves much less, so it is the figure to compare two versions by (A/B in one run).
Linux only: elsewhere the figures are None.
"""

import os
from collections.abc import Iterable
from pathlib import Path

import psycopg

from app.bench.database import libpq

_PROC = Path("/proc")
_TICK_S = 1 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.0


def _stat(pid: int) -> list[str] | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:  # gone, or no /proc
        return None
    # Fields after the command name, which may hold spaces: state is [0], session [3],
    # utime [11], stime [12] (proc(5), numbered from 3).
    return text.rsplit(")", 1)[1].split()


def _cpu_s(pids: Iterable[int]) -> float:
    total = 0
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])
    return total * _TICK_S


def session_pids(session_id: int) -> list[int]:
    """Every process of the session `session_id` (a server started in a session of its own:
    uvicorn's supervisor and its workers)."""
    pids = []
    for entry in _PROC.glob("[0-9]*"):
        fields = _stat(int(entry.name))
        if fields is not None and int(fields[3]) == session_id:
            pids.append(int(entry.name))
    return pids


def backend_pids(database_url: str) -> list[int]:
    """The PostgreSQL backends connected to the database of `database_url` (on this machine)."""
    with psycopg.connect(libpq(database_url), autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        ).fetchall()
    return [pid for (pid,) in rows]


class CpuMeter:
    """CPU seconds of the server's session and of the database's backends between `start()` and
    `stop()`; backends that connect in between count from zero."""

    def __init__(self, session_id: int, database_url: str) -> None:
        self._session_id = session_id
        self._database_url = database_url

    def start(self) -> None:
        self._server = session_pids(self._session_id)
        self._backends = backend_pids(self._database_url)
        self._began = (_cpu_s(self._server), _cpu_s(self._backends))

    def stop(self) -> tuple[float, float]:
        """(server CPU s, database CPU s) since `start()`."""
        server = set(self._server) | set(session_pids(self._session_id))
        backends = set(self._backends) | set(backend_pids(self._database_url))
        return _cpu_s(server) - self._began[0], _cpu_s(backends) - self._began[1]

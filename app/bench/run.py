"""One bench run: a scratch database with the demo data, the scan under load without and with its
audit record, the raw-driver ceiling, label rendering, audit verification, and the readiness board
and lineage at two database sizes. Returns the figures (`report` turns them into bars)."""

import json
import math
import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from app.audit.actions import AuditAction
from app.audit.models import AuditEvent
from app.audit.records import verify_records
from app.audit.service import verify_chain
from app.bench import ceiling, labels
from app.bench.cpu import CpuMeter
from app.bench.data import Clones, fill_audit_chain
from app.bench.database import libpq, load_demo, scratch_database
from app.bench.load import REQUEST_TIMEOUT_S, Load
from app.bench.load import run as run_load
from app.bench.server import get, get_json, running_server, scan_bodies, token, wait_answering
from app.clock import utcnow
from app.db import OPERATOR_LIMITS, make_engine, session_factory_for
from app.demo import DEMO_USERS

OVERLOAD_CLIENTS = 256
CLIENTS = (4, 32, OVERLOAD_CLIENTS)
# At 256 clients a 503 `busy` is an accepted answer (DESIGN §12: "every answer is 200 or 503").
OVERLOAD_ANSWERS = {OVERLOAD_CLIENTS: ("503",)}
# A server that does not answer /health this long after a load stopped is stuck (it hangs).
RECOVERY_TIMEOUT_S = 15.0
# Read by the scan service, which then skips the scan.ok record: the reference for the cost of
# auditing. Only the bench sets it (on a server of its own, over a scratch database).
SKIP_SCAN_AUDIT = {"HOMEWARD_SCAN_AUDIT": "0"}
HTTP_TIMEOUT_S = 120.0
# How long ago the large database's history batches ended: past any board window (at most
# 365 days, `board_ended_days`), so none of them keeps its patient on the board.
HISTORY_AGE = timedelta(days=400)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Sizes:
    load_seconds: int  # per load level
    warmup_seconds: int
    batches_small: int
    batches_large: int
    audit_events: int
    labels: int
    calls: int  # timed calls of each query, of which the median is reported


QUICK = Sizes(2, 1, 100, 1_000, 20_000, 50, 3)
FULL = Sizes(10, 2, 100, 10_000, 1_000_000, 300, 9)


def _password(username: str) -> str:
    return next(user.password for user in DEMO_USERS if user.username == username)


def _scan_records(engine: Engine) -> int:
    with Session(engine) as session:
        query = select(func.count()).where(AuditEvent.action == AuditAction.SCAN_OK.value)
        return session.execute(query).scalar_one()


def _median_ms(client: httpx.Client, path: str, bearer: str, calls: int) -> float:
    """The median time of `calls` GETs of `path`, after an untimed one."""
    get_json(client, path, bearer)
    times = []
    for _ in range(calls):
        began = time.perf_counter()
        get_json(client, path, bearer)
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def _board_total(client: httpx.Client, bearer: str) -> int:
    """How many patients the readiness board shows, over all its pages (`X-Total-Count`)."""
    return int(get(client, "/clinic/readiness", bearer).headers["X-Total-Count"])


def _machine(engine: Engine) -> dict[str, Any]:
    with engine.connect() as connection:
        version = connection.exec_driver_sql("SHOW server_version").scalar_one()
    return {"cpus": os.cpu_count() or 0, "postgresql": version}


class _Server:
    """A bench server over the scratch database with the technician logged in, replaced by a
    fresh one when a load leaves it stuck."""

    def __init__(
        self,
        url: str,
        workdir: Path,
        *,
        env: dict[str, str] | None = None,
        bodies: list[str] | None = None,
    ) -> None:
        self._start_args = (url, workdir)
        self._env = env
        self._stack = ExitStack()
        self.bodies: list[str] | None = bodies

    def __enter__(self) -> "_Server":
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        base_url, session_id = self._stack.enter_context(
            running_server(*self._start_args, env=self._env)
        )
        self.cpu = CpuMeter(session_id, self._start_args[0])
        self.client = self._stack.enter_context(
            httpx.Client(base_url=base_url, timeout=HTTP_TIMEOUT_S)
        )
        bearer = token(self.client, "tech", _password("tech"))
        if self.bodies is None:  # read once: the demo batches' vessels, before any clone
            self.bodies = [json.dumps(body) for body in scan_bodies(self.client, bearer)]
        self.load = Load(base_url, bearer, self.bodies)

    def restart(self) -> None:
        self._stack.close()
        self._stack = ExitStack()
        self._start()


def _queries(server: _Server, url: str, sizes: Sizes, progress: Progress) -> dict[str, Any]:
    """Readiness board (as the clinician) and lineage of the demo's biggest vessel tree, each
    at the small and at the large number of batches. The small database's batches have the
    demo's mix of states, so all its patients are in treatment; the large one adds the lab's
    history, batches completed long ago (ADR 0035), so the board's patients stay those of the
    small one, as in a lab that has made 10,000 batches over the years."""
    figures: dict[str, Any] = {}
    clinician = token(server.client, "clinician", _password("clinician"))
    vessels = Counter(json.loads(body)["expect"]["batch_id"] for body in server.load.bodies)
    (batch_id, _), *_ = vessels.most_common(1)
    with psycopg.connect(libpq(url), row_factory=dict_row) as connection:
        clones = Clones(connection)
        for key, size, ended_at in (
            ("100", sizes.batches_small, None),
            ("10000", sizes.batches_large, utcnow() - HISTORY_AGE),
        ):
            progress(f"readiness board and lineage at {size:,} batches")
            figures[f"batches_at_{key}"] = clones.grow_to(size, ended_at=ended_at)
            figures[f"readiness_ms_{key}"] = _median_ms(
                server.client, "/clinic/readiness", clinician, sizes.calls
            )
            figures[f"readiness_patients_{key}"] = _board_total(server.client, clinician)
            figures[f"lineage_ms_{key}"] = _median_ms(
                server.client, f"/batches/{batch_id}/lineage", server.load.bearer, sizes.calls
            )
    return figures


def _load_seconds(sizes: Sizes, clients: int) -> int:
    """How long a load level runs; under overload long enough that a wait past the bar ends in
    a timeout within the run."""
    if clients == OVERLOAD_CLIENTS:
        return max(sizes.load_seconds, math.ceil(REQUEST_TIMEOUT_S) + 1)
    return sizes.load_seconds


def _recovery_s(client: httpx.Client) -> float | None:
    """Seconds until the server answers again after a load; None if it does not (stuck)."""
    try:
        return wait_answering(client, RECOVERY_TIMEOUT_S)
    except RuntimeError:
        return None


def _scan_levels(
    server: _Server,
    levels: tuple[int, ...],
    generator: str,
    sizes: Sizes,
    progress: Progress,
    suffix: str = "",
) -> dict[str, Any]:
    """The scan at each number of clients; a server left stuck is replaced for the next level."""
    figures: dict[str, Any] = {}
    fresh = True  # a new server is warmed up before its first level
    for number, clients in enumerate(levels):
        progress(f"scan{suffix.replace('_', ' ')}, {clients} clients ({generator})")
        if fresh:  # a discarded warm-up, outside the CPU meter
            run_load(server.load, generator=generator, clients=clients,
                     seconds=sizes.warmup_seconds, warmup=0)  # fmt: skip
        server.cpu.start()
        result = run_load(
            server.load,
            generator=generator,
            clients=clients,
            seconds=_load_seconds(sizes, clients),
            warmup=0,
        )
        fresh = False
        server_cpu_s, database_cpu_s = server.cpu.stop()
        recovery = _recovery_s(server.client)
        n = f"c{clients}{suffix}"
        sent = max(result.answers, 1)
        figures |= {
            f"scan_{n}_server_cpu_ms": 1000 * server_cpu_s / sent,
            f"scan_{n}_database_cpu_ms": 1000 * database_cpu_s / sent,
            f"scan_{n}_answers": result.answers,
            f"scan_{n}_rps": result.rps,
            f"scan_{n}_p50_ms": result.p50_ms,
            f"scan_{n}_p99_ms": result.p99_ms,
            f"scan_{n}_max_ms": result.max_ms,
            f"scan_{n}_errors": sum(
                count
                for status, count in result.failures.items()
                if status not in OVERLOAD_ANSWERS.get(clients, ())
            ),
            f"scan_{n}_failures": result.failures,
            f"scan_{n}_unanswered_at_end": result.unanswered,
            f"scan_{n}_recovery_s": RECOVERY_TIMEOUT_S if recovery is None else recovery,
            f"scan_{n}_stuck": recovery is None,
        }
        if recovery is None and number + 1 < len(levels):
            progress(f"the server is stuck {RECOVERY_TIMEOUT_S:.0f} s after the load: a new one")
            server.restart()
            fresh = True
    return figures


def run(server_url: str, *, quick: bool, generator: str, progress: Progress) -> dict[str, Any]:
    """Every figure of the bench, measured on a scratch database on `server_url`."""
    sizes = QUICK if quick else FULL
    figures: dict[str, Any] = {"quick": quick, "load_generator": generator}
    with scratch_database(server_url) as url, tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        progress("scratch database: migrating, loading the demo data")
        load_demo(url)
        engine = make_engine(url, limits=OPERATOR_LIMITS)
        try:
            figures |= _machine(engine)
            with _Server(url, workdir) as server:
                counts = _queries(server, url, sizes, progress)
                figures |= _scan_levels(server, CLIENTS, generator, sizes, progress)
            bodies = server.bodies

            progress("raw-driver ceiling: psycopg, 2 processes")
            codes = [json.loads(body)["code"] for body in bodies or []]
            top = ceiling.measure(url, codes, sizes.load_seconds)

            before = _scan_records(engine)
            with _Server(url, workdir, env=SKIP_SCAN_AUDIT, bodies=bodies) as server:
                figures |= _scan_levels(server, (32,), generator, sizes, progress, "_noaudit")
            # Whether the servers read the switch: no scan record written by answered scans.
            answered = figures["scan_c32_noaudit_answers"]
            honoured = _scan_records(engine) == before if answered else None

            progress(f"labels: {sizes.labels} PNG, cached, a 200-label PDF")
            rendered = labels.measure(sizes.labels)

            progress(f"audit chain: {sizes.audit_events:,} events, then verify_chain")
            fill_audit_chain(engine, sizes.audit_events)
            with session_factory_for(engine)() as session:
                began = time.perf_counter()
                verified = verify_chain(session)
                verifying = time.perf_counter() - began
                # The records pass (AUD-7) on its own: the clones were bulk-copied without
                # snapshots, so it reports them unrecorded; what is timed is the walk.
                began = time.perf_counter()
                rows = verify_records(session.connection()).records_checked
                checking_records = time.perf_counter() - began
            if not verified.ok:
                raise RuntimeError(f"the generated audit chain does not verify: {verified}")
        finally:
            engine.dispose()

    unaudited = figures["scan_c32_noaudit_rps"]
    return figures | {
        "sizes": asdict(sizes) | {k: v for k, v in counts.items() if k.startswith("batches_at")},
        **{k: v for k, v in counts.items() if not k.startswith("batches_at")},
        "scan_audit_switch_honoured": honoured,
        "audit_cost_ratio": figures["scan_c32_rps"] / unaudited if unaudited else 0.0,
        "ceiling_rps": top.rps,
        "scan_ratio_to_ceiling": figures["scan_c32_rps"] / top.rps if top.rps else 0.0,
        "scan_c256_max_wait_ms": figures["scan_c256_max_ms"],
        "label_png_per_s": rendered.png_per_s,
        "label_png_cached_per_s": rendered.cached_per_s,
        "label_pdf_200_s": rendered.pdf_s,
        "audit_verify_events": verified.events_checked,
        "audit_verify_per_s": verified.events_checked / verifying,
        "audit_records_checked": rows,
        "audit_records_per_s": rows / checking_records if checking_records else 0.0,
    }

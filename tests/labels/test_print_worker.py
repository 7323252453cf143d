"""The printer worker (LBL-3, ADR 0012) on databases whose commits are real: the app's lifespan
runs it, a print job is sent after the request's commit with no lock held while the printer takes
its time, two workers never send one job twice, and the worker stops with the app."""

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text

from app.audit.service import verify_chain
from app.auth.permissions import Role
from app.config import Settings
from app.db import SessionFactory, session_factory_for
from app.labels import printing
from app.labels.models import PrintJob
from app.main import create_app
from tests.helpers import Api, ok, unique
from tests.labels.printers import FakeZebra, wait_until

WORKER = "homeward-printers"


def _printer(api: Api, zebra: FakeZebra) -> dict[str, Any]:
    body = {"name": unique("Zebra "), "host": "127.0.0.1", "port": zebra.port}
    return ok(api.post(Role.ADMIN, "/printers", body), 201)


def _print_batch(api: Api, batch_id: int, printer: dict[str, Any]) -> Any:
    body = {"printer_id": printer["id"]}
    return api.post(Role.TECHNICIAN, f"/batches/{batch_id}/labels/print", body)


def _status(api: Api, job_id: int) -> str:
    return ok(api.get(Role.TECHNICIAN, f"/print-jobs/{job_id}"))["status"]


def _payload(factory: SessionFactory, job_id: int) -> str:
    with factory() as session:
        return session.execute(select(PrintJob.payload).where(PrintJob.id == job_id)).scalar_one()


def _lock_batch_now(engine: Engine, batch_id: int) -> None:
    """Lock the batch row without waiting; raises if another transaction holds it (PostgreSQL) or
    holds the database's write lock (SQLite)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection, connection.begin():
            connection.execute(
                text("SELECT id FROM batch WHERE id = :id FOR UPDATE NOWAIT"), {"id": batch_id}
            ).one()
        return
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA busy_timeout = 0")
        try:
            cursor.execute("BEGIN IMMEDIATE")
            cursor.execute("UPDATE batch SET id = id WHERE id = ?", (batch_id,))
            cursor.execute("ROLLBACK")
        finally:
            cursor.execute("PRAGMA busy_timeout = 30000")
    finally:
        raw.close()


def test_lbl3_a_slow_printer_holds_no_lock_while_its_job_is_sent(
    settings: Settings, committed_engine: Engine
) -> None:
    """The printer lets no connection in until released. Meanwhile the request has answered and
    another transaction locks the batch row at once (FOR UPDATE NOWAIT on PostgreSQL, a write
    with no busy timeout on SQLite). When the send ran inside the request, this lock failed."""
    factory = session_factory_for(committed_engine)
    zebra = FakeZebra(busy=True)
    try:
        with TestClient(create_app(settings, factory)) as client, factory() as db:
            api = Api(client, db, settings)
            batch = api.batch()
            printer = _printer(api, zebra)
            db.commit()
            with ThreadPoolExecutor(1) as pool:
                answer = pool.submit(_print_batch, api, batch["id"], printer)
                wait_until(zebra.someone_is_connecting, "the worker connects to the printer")
                _lock_batch_now(committed_engine, batch["id"])
                job = ok(answer.result(timeout=10), 201)
            assert job["status"] == "queued" and zebra.received.empty()

            zebra.release()
            sent = zebra.job(timeout=20)
            wait_until(lambda: _status(api, job["id"]) == "sent", "the job is sent", timeout=20)
            assert sent == _payload(factory, job["id"])
            assert [label["vessel_code"] for label in job["labels"]] == [batch["tube_code"]]
            assert f"MA,{batch['tube_code']}" in sent
        assert zebra.received.empty()  # sent once
        with factory() as session:
            assert verify_chain(session).ok
    finally:
        zebra.close()
    assert WORKER not in {t.name for t in threading.enumerate()}


def test_lbl3_the_apps_worker_sends_in_the_background_and_stops_with_the_app(
    settings: Settings, committed_engine: Engine
) -> None:
    factory = session_factory_for(committed_engine)
    zebra = FakeZebra()
    try:
        with TestClient(create_app(settings, factory)) as client, factory() as db:
            assert WORKER in {t.name for t in threading.enumerate()}
            api = Api(client, db, settings)
            batch = api.batch()
            job = ok(_print_batch(api, batch["id"], _printer(api, zebra)), 201)
            sent = zebra.job()
            wait_until(lambda: _status(api, job["id"]) == "sent", "the job is sent")
            assert sent == _payload(factory, job["id"])
        assert WORKER not in {t.name for t in threading.enumerate()}
    finally:
        zebra.close()
    assert zebra.received.empty()


def test_lbl3_the_commit_that_queues_a_job_wakes_the_worker(
    settings: Settings, committed_engine: Engine
) -> None:
    """The worker polls only once an hour here: the job still goes out at once."""
    factory = session_factory_for(committed_engine)
    zebra = FakeZebra()
    idle = printing.worker(factory, poll_seconds=3600).start()
    try:
        with factory() as db:
            api = Api(TestClient(create_app(settings, factory)), db, settings)  # no lifespan
            batch = api.batch()
            job = ok(_print_batch(api, batch["id"], _printer(api, zebra)), 201)
            assert zebra.job() == _payload(factory, job["id"])
    finally:
        idle.close()
        zebra.close()
    assert not idle.thread.is_alive()


def test_rel_two_workers_at_once_send_a_job_exactly_once(
    settings: Settings, committed_engine: Engine
) -> None:
    factory = session_factory_for(committed_engine)
    zebra = FakeZebra()
    try:
        with factory() as db:
            api = Api(TestClient(create_app(settings, factory)), db, settings)  # no lifespan
            batch = api.batch()
            job = ok(_print_batch(api, batch["id"], _printer(api, zebra)), 201)
        start = threading.Barrier(2)

        def work() -> dict[str, int]:
            start.wait(timeout=10)
            return printing.send_due(factory)

        with ThreadPoolExecutor(2) as pool:
            outcomes = [f.result(timeout=30) for f in [pool.submit(work) for _ in range(2)]]
        assert sorted(o["sent"] for o in outcomes) == [0, 1]
        assert zebra.job() == _payload(factory, job["id"])
        assert printing.send_due(factory) == {"queued": 0, "sent": 0, "failed": 0}
    finally:
        zebra.close()
    assert zebra.received.empty()

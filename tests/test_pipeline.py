"""PERF / REL: bounded waits and graceful overload (DESIGN §12), through a real server.

Every wait of a request (a worker slot, a pool connection, a row or chain lock, SQLite's write
lock) is bounded by `busy_timeout_s`; past it the answer is 503 `busy` with Retry-After, in the
usual error shape, and nothing was changed. Reads never wait behind a writer on SQLite.
"""

import asyncio
import time

import httpx
import pytest
from sqlalchemy import text

from app.audit.chain import GLOBAL_SCOPE
from app.auth.permissions import Role
from app.auth.security import token_digest
from app.db import session_factory_for
from tests.helpers import Api, audit_events
from tests.server import running_server

BOUND_S = 1.0


def _hold_chain(holder, scope: str) -> None:
    """Hold a chain's lock as an appending transaction does: its head row (ADR 0018)."""
    holder.execute(
        text("SELECT count FROM audit_head WHERE scope = :scope FOR UPDATE"), {"scope": scope}
    ).one()


@pytest.fixture
def lab(committed_engine, settings):
    """A server on a committed database with short bounds, a batch and a technician's headers."""
    factory = session_factory_for(committed_engine)
    with (
        factory() as session,
        running_server(
            committed_engine, settings, busy_timeout_s=BOUND_S, threadpool_size=2
        ) as base_url,
        httpx.Client(base_url=base_url, timeout=30) as http,
    ):
        api = Api(http, session, settings)  # type: ignore[arg-type]  # same calls as TestClient
        batch, flasks = api.expanded_batch()
        yield api, base_url, batch, flasks


def _busy(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "busy"
    assert response.json()["detail"]
    assert response.headers["Retry-After"].isdigit()


@pytest.mark.postgres_only
def test_perf_rel_a_scan_waiting_past_the_bound_for_its_patients_chain_is_busy_and_changes_nothing(
    lab, committed_engine
):
    api, _, batch, flasks = lab
    scan = {"code": flasks[0], "expect": {"batch_id": batch["id"]}}
    before = len(audit_events(api.db, "scan.ok"))
    with committed_engine.connect() as holder:
        _hold_chain(holder, batch["coi"])
        started = time.perf_counter()
        response = api.post(Role.TECHNICIAN, "/scan", scan)
        waited = time.perf_counter() - started
        holder.rollback()
    _busy(response)
    assert waited < BOUND_S + 2
    api.db.expire_all()
    assert len(audit_events(api.db, "scan.ok")) == before
    assert api.post(Role.TECHNICIAN, "/scan", scan).status_code == 200


@pytest.mark.postgres_only
def test_perf_rel_when_every_slot_waits_a_new_request_is_busy_within_the_bound(
    lab, committed_engine
):
    """Two slots, both waiting on a lock: a third request is refused, not queued for ever."""
    api, base_url, batch, flasks = lab
    headers = api.as_role(Role.TECHNICIAN)
    scan = {"code": flasks[0], "expect": {"batch_id": batch["id"]}}

    async def burst() -> list[tuple[int, float]]:
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:

            async def one() -> tuple[int, float]:
                started = time.perf_counter()
                response = await client.post("/api/v1/scan", json=scan)
                return response.status_code, time.perf_counter() - started

            return await asyncio.gather(*(one() for _ in range(6)))

    with committed_engine.connect() as holder:
        _hold_chain(holder, batch["coi"])
        outcomes = asyncio.run(burst())
        holder.rollback()
    assert {status for status, _ in outcomes} == {503}
    assert max(seconds for _, seconds in outcomes) < 2 * BOUND_S + 2
    assert api.post(Role.TECHNICIAN, "/scan", scan).status_code == 200


def test_perf_reads_do_not_wait_behind_a_writer_and_writes_are_busy_past_the_bound(
    lab, committed_engine, dialect
):
    """SQLite: only transactions that write begin IMMEDIATE. PostgreSQL: a held lock on another
    chain (the global one) blocks neither readers nor a scan appending to its patient's chain."""
    api, _, batch, flasks = lab
    with committed_engine.connect() as holder:
        if dialect == "sqlite":
            # The engine begins every transaction outside reads_only() IMMEDIATE: this holds
            # SQLite's write lock, as another writer would.
            holder.execute(text("SELECT 1"))
        else:
            _hold_chain(holder, GLOBAL_SCOPE)
        started = time.perf_counter()
        read = api.get(Role.TECHNICIAN, f"/batches/{batch['id']}")
        read_s = time.perf_counter() - started
        write = api.post(Role.TECHNICIAN, "/scan", {"code": flasks[0]})
        holder.rollback()
    assert read.status_code == 200, read.text
    assert read_s < BOUND_S / 2, f"a read waited {read_s:.2f} s behind a writer"
    if dialect == "sqlite":
        _busy(write)
    else:
        assert write.status_code == 200, write.text


@pytest.mark.postgres_only
def test_perf_a_token_whose_touch_another_request_holds_is_not_waited_for(
    lab, committed_engine, settings
):
    """Authentication runs in the request's own transaction (ADR 0014), and may touch its token
    (move its idle expiry). A token row locked by another request's touch is skipped, never
    waited for: the request answers at once instead of waiting past the bound."""
    api, _, batch, flasks = lab
    headers = api.as_role(Role.TECHNICIAN)
    digest = token_digest(settings, headers["Authorization"].removeprefix("Bearer "))
    stale = text(
        "UPDATE auth_token SET last_used_at = now() - interval '5 minutes' WHERE digest = :d"
    )
    with committed_engine.begin() as setup:
        setup.execute(stale, {"d": digest})  # a touch is due on the next request
    with committed_engine.connect() as holder:
        holder.execute(
            text("SELECT digest FROM auth_token WHERE digest = :d FOR UPDATE"), {"d": digest}
        ).one()
        started = time.perf_counter()
        response = api.post(
            Role.TECHNICIAN, "/scan", {"code": flasks[0], "expect": {"batch_id": batch["id"]}}
        )
        waited = time.perf_counter() - started
        holder.rollback()
    assert response.status_code == 200, response.text
    assert waited < BOUND_S, f"the request waited {waited:.2f} s for the token row"

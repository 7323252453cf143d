"""PERF / REL: many scanners at once on one patient's vessels, through a real server.

A burst of scanners on one patient's batch serializes on that patient's audit chain. Every scan
must still complete within a bound (no request holds the chain lock while it waits for a thread),
and the chain must stay linear and intact.
"""

import asyncio
import time

import httpx

from app.audit.service import verify_chain
from app.auth.models import User
from app.auth.permissions import Role
from app.db import session_factory_for
from app.scan import service as scans
from tests.helpers import Api, audit_events, race
from tests.server import running_server

SCANNERS = 64
BOUND_S = 20.0


async def _scan_all(base_url: str, headers: dict[str, str], bodies: list[dict]) -> list:
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=len(bodies))
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits) as client:

        async def one(body: dict) -> tuple[int, float]:
            start = time.perf_counter()
            response = await client.post("/api/v1/scan", json=body, timeout=BOUND_S)
            return response.status_code, time.perf_counter() - start

        return await asyncio.gather(*(one(b) for b in bodies), return_exceptions=True)


def test_perf_rel_64_concurrent_scans_of_one_patients_vessels_all_complete_and_chain_holds(
    committed_engine, settings
):
    factory = session_factory_for(committed_engine)
    # The wait bound is raised so that a slow (shared, loaded) machine queues rather than sheds
    # load: this test is about never hanging; shedding load is tests/test_pipeline.py's.
    with (
        factory() as session,
        running_server(committed_engine, settings, busy_timeout_s=BOUND_S) as base_url,
    ):
        with httpx.Client(base_url=base_url, timeout=BOUND_S) as http:
            api = Api(http, session, settings)  # type: ignore[arg-type]  # same calls as TestClient
            batch, flasks = api.expanded_batch()
            codes = [batch["tube_code"], *flasks]
            headers = api.as_role(Role.TECHNICIAN)
        bodies = [
            {"code": codes[i % len(codes)], "expect": {"batch_id": batch["id"]}}
            for i in range(SCANNERS)
        ]
        started = time.perf_counter()
        outcomes = asyncio.run(_scan_all(base_url, headers, bodies))
        elapsed = time.perf_counter() - started
    failures = [o for o in outcomes if not isinstance(o, tuple) or o[0] != 200]
    assert not failures, f"{len(failures)} of {SCANNERS} scans failed: {failures[:3]}"
    assert elapsed < BOUND_S, f"64 scans took {elapsed:.1f} s"
    with factory() as session:
        assert len(audit_events(session, "scan.ok")) == SCANNERS
        assert verify_chain(session).ok


def test_coi5_two_acknowledgements_of_one_stop_at_once_both_commit_beside_the_mismatch(
    committed_engine, settings
):
    """Two tabs of one station acknowledging the same STOP at once (the cookie is each tab's
    copy): each acknowledgement is its own committed event naming the mismatch it answers, in
    the scanned vessel's patient's chain, and the chain still verifies."""
    factory = session_factory_for(committed_engine)
    with factory() as session, running_server(committed_engine, settings) as base_url:
        with httpx.Client(base_url=base_url, timeout=20) as http:
            api = Api(http, session, settings)  # type: ignore[arg-type]  # as TestClient
            mine, other = api.batch(), api.batch()
            body = {"code": other["tube_code"], "expect": {"batch_id": mine["id"]}}
            assert api.post(Role.TECHNICIAN, "/scan", body).status_code == 409
        (mismatch,) = audit_events(session, "scan.identity_mismatch")
        tech = session.get(User, mismatch.actor_id)
        assert tech is not None
        session.expunge(tech)

    def acknowledge(session) -> int:
        scans.acknowledge_stop(session, actor=tech, code=other["tube_code"], batch_id=mine["id"])
        return 1

    assert race(factory, acknowledge) == [1, 1]
    with factory() as session:
        events = audit_events(session, "scan.stop_acknowledged")
        assert [e.scope for e in events] == [other["coi"]] * 2
        assert all(f'"mismatch_seq":{mismatch.seq}' in (e.new_values or "") for e in events)
        assert verify_chain(session).ok

"""REL, CLN-3 under concurrency: a dispatch that waited for the batch re-reads it once it holds the
lock, so a QA hold committed in between is never undone. Real commits, PostgreSQL (SQLite
serializes writers, so the interleaving cannot happen there)."""

import pytest
from sqlalchemy import select

from app.audit.service import verify_chain
from app.auth.permissions import Role
from app.batches import service as batches
from app.batches.models import Batch
from app.db import unit_of_work
from app.storage.models import CustodyEvent
from app.vessels.models import Vessel
from tests.helpers import error, make_user
from tests.races import (
    Contender,
    batch_moves,
    committed_api,
    headers_of_new,
    wait_for_lock_waiters,
)

DISPATCH = {"event": "dispatched", "location": "Courier", "temperature_c": 4.5}


@pytest.mark.postgres_only
def test_rel_a_qa_hold_committed_during_a_dispatch_refuses_the_dispatch(committed_engine, settings):
    with committed_api(committed_engine, settings) as (api, factory):
        batch, codes = api.released(doses=2)
        qa = make_user(api.db, settings, roles=[Role.QA])
        technician = headers_of_new(api, Role.TECHNICIAN)
        with unit_of_work(factory) as hold:
            batches.hold(hold, actor=qa, batch_id=batch["id"], reason="QA: EM excursion")
            dispatch = Contender(
                lambda: api.client.post(
                    f"/api/v1/vessels/{codes[0]}/custody", headers=technician, json=DISPATCH
                )
            )
            wait_for_lock_waiters(committed_engine, 1)
        refused = dispatch.response()

    assert "on_hold" in error(refused, 409, "not_released")
    with factory() as session:
        assert session.get(Batch, batch["id"]).status == "on_hold"
        assert batch_moves(session, batch["id"])[-2:] == [
            ("quarantine", "released"),
            ("released", "on_hold"),
        ]
        dose = session.execute(select(Vessel).where(Vessel.code == codes[0])).scalar_one()
        assert dose.status == "active"
        assert session.execute(select(CustodyEvent.id)).first() is None
        assert verify_chain(session).ok

"""SEC-5 under concurrency (ADR 0011, 0024), on PostgreSQL with real commits: a step holds its
lots and its performer's qualification shared until commit and reads them afresh once held, so a
rejection or a revocation committed while the step waits is seen (the step is refused and writes
nothing), and a rejection waits for a step already using the lot."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from app.audit.service import verify_chain
from app.auth.permissions import Role
from app.db import unit_of_work
from app.materials import service as materials
from app.materials.models import MaterialLot
from app.materials.schemas import LotCreate, LotStatusSet, MaterialCreate
from app.materials.states import LotStatus
from app.qualifications import repository
from app.qualifications import service as qualifications
from app.qualifications.schemas import Duty
from app.steps.models import Step
from tests.helpers import Api, error, make_user, ok, unique
from tests.races import Contender, committed_api, wait_for_lock_waiters

pytestmark = pytest.mark.postgres_only


def _released_lot(api: Api) -> int:
    admin = make_user(api.db, api.settings, roles=[Role.ADMIN])
    qa = make_user(api.db, api.settings, roles=[Role.QA])
    material = materials.create_material(
        api.db,
        actor=admin,
        data=MaterialCreate(code=unique("MED-"), name="Medium", category="medium"),
    )
    lot, _ = materials.create_lot(
        api.db,
        actor=admin,
        data=LotCreate(
            material_id=material.id or 0,
            lot_number=unique("L"),
            supplier="Acme",
            expires_at=datetime(2199, 1, 1, tzinfo=UTC),
        ),
    )
    materials.set_lot_status(
        api.db,
        actor=qa,
        lot_id=lot.id or 0,
        data=LotStatusSet(status=LotStatus.RELEASED, reason="CoA checked"),
    )
    api.db.commit()
    return lot.id or 0


def _isolation(api: Api, batch: dict, headers: dict[str, str], lot_id: int):
    body = {
        "kind": "isolation",
        "inputs": [batch["tube_code"]],
        "outputs": [{"kind": "flask"}],
        "materials": [lot_id],
    }
    return lambda: api.client.post(
        f"/api/v1/batches/{batch['id']}/steps", json=body, headers=headers
    )


def _steps(factory) -> int:
    with factory() as session:
        return session.execute(select(func.count()).select_from(Step)).scalar_one()


def test_sec5_a_lot_rejected_while_a_step_waits_for_it_refuses_the_step(committed_engine, settings):
    with committed_api(committed_engine, settings) as (api, factory):
        lot_id = _released_lot(api)
        batch = api.batch()
        technician = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
        headers = api.headers_for(technician)
        qa = make_user(api.db, api.settings, roles=[Role.QA])
        with unit_of_work(factory) as holder:
            materials.set_lot_status(
                holder,
                actor=qa,
                lot_id=lot_id,
                data=LotStatusSet(status=LotStatus.REJECTED, reason="Supplier recall"),
            )
            step = Contender(_isolation(api, batch, headers, lot_id))
            wait_for_lock_waiters(committed_engine, 1)  # the step waits for the lot's row
        refused = step.response()

    assert "rejected" in error(refused, 409, "lot_not_released")
    assert _steps(factory) == 0
    with factory() as session:
        assert session.get(MaterialLot, lot_id).status == "rejected"
        assert verify_chain(session).ok


def test_sec5_a_rejection_waits_for_a_step_already_using_the_lot(committed_engine, settings):
    """The step read the lot released and holds it: the rejection is applied after it."""
    with committed_api(committed_engine, settings) as (api, factory):
        lot_id = _released_lot(api)
        qa = make_user(api.db, api.settings, roles=[Role.QA])
        qa_headers = api.headers_for(qa)
        body = {"status": "rejected", "reason": "Supplier recall"}
        with unit_of_work(factory) as holder:
            # What a step does with its lots, in the holder's transaction (ADR 0024).
            materials.usable_lots(holder, [lot_id], at=datetime.now(UTC))
            rejection = Contender(
                lambda: api.client.put(
                    f"/api/v1/lots/{lot_id}/status", json=body, headers=qa_headers
                )
            )
            wait_for_lock_waiters(committed_engine, 1)
            with factory() as reader:  # not yet applied while the step is in flight
                assert reader.get(MaterialLot, lot_id).status == "released"
        assert ok(rejection.response())["status"] == "rejected"


def test_sec5_a_qualification_revoked_while_a_step_waits_refuses_the_step(
    committed_engine, settings
):
    with committed_api(committed_engine, settings) as (api, factory):
        lot_id = _released_lot(api)
        batch = api.batch()
        technician = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
        headers = api.headers_for(technician)
        qa = make_user(api.db, api.settings, roles=[Role.QA])
        held = repository.in_force(
            api.db, technician.id or 0, Duty.ISOLATION.value, datetime.now(UTC)
        )
        assert held is not None
        api.db.commit()
        with unit_of_work(factory) as holder:
            qualifications.revoke(
                holder, actor=qa, qualification_id=held.id or 0, reason="Failed assessment"
            )
            step = Contender(_isolation(api, batch, headers, lot_id))
            wait_for_lock_waiters(committed_engine, 1)  # the step waits for the grant's row
        refused = step.response()

    assert "revoked" in error(refused, 403, "not_qualified")
    assert _steps(factory) == 0
    with factory() as session:
        assert verify_chain(session).ok

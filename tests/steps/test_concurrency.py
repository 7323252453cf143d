"""REL (issue 3): two simultaneous steps consuming the same vessel: exactly one 201-equivalent and
one clear 409, never a 500 or a half-written step. Real commits, both databases. A step and a
dispatch, or a step and an infusion, on one batch take their locks in the same order (batch, then
vessels), so they never deadlock: provoked on PostgreSQL, where the batch's row is held while
both queue for it, the step first."""

from collections.abc import Callable

import pytest
from httpx import Response
from sqlalchemy import func, select

from app.audit.service import verify_chain
from app.auth.permissions import Role
from app.batches import service as batches
from app.batches.models import Batch
from app.clinic.models import Infusion
from app.db import session_factory_for, unit_of_work
from app.steps import service as steps
from app.steps.models import Step
from app.steps.schemas import OutputSpec, StepCreate
from app.storage.models import CustodyEvent
from app.vessels.models import Vessel
from tests.clinic.test_bedside import check, clinician, infuse, patient, to_clinic
from tests.helpers import Api, committed_biopsy, error, ok, one_winner, race
from tests.races import (
    Contender,
    committed_api,
    headers_of_new,
    wait_for_lock_waiters,
)


def test_rel_two_simultaneous_steps_consuming_one_vessel_leave_one_step(committed_engine, settings):
    factory = session_factory_for(committed_engine)
    tech, biopsy_id, receipt = committed_biopsy(factory, settings, received=True)
    with unit_of_work(factory) as session:
        batch_id = batches.register(session, settings, actor=tech, biopsy_id=biopsy_id).batch.id
        isolation = StepCreate(
            kind="isolation", inputs=[receipt.scanned_code], outputs=[OutputSpec(kind="flask")]
        )
        flask = steps.record(session, settings, actor=tech, batch_id=batch_id, data=isolation)
        flask_code = flask.outputs[0].code

    passage = StepCreate(kind="passage", inputs=[flask_code], outputs=[OutputSpec(kind="flask")])
    outcomes = race(
        factory,
        lambda s: steps.record(s, settings, actor=tech, batch_id=batch_id, data=passage),
    )
    one_winner(outcomes, {"invalid_state"})
    with factory() as session:
        assert session.execute(select(func.count()).select_from(Step)).scalar_one() == 2
        flasks = session.execute(
            select(func.count()).select_from(Vessel).where(Vessel.kind == "flask")
        ).scalar_one()
        assert flasks == 2  # the isolation's flask and the one winning passage's output
        assert verify_chain(session).ok


def _step_then(
    api: Api, factory, engine, batch_id: int, discard: str, other: Callable[[], Response]
) -> tuple[Response, Response]:
    """While another writer holds the batch's row: a discard step of `discard` queues for it,
    then `other`; the holder ends and both run. Their responses: (step, other)."""
    technician = headers_of_new(api, Role.TECHNICIAN)
    body = {"kind": "discard", "inputs": [discard], "outputs": [], "reason": "bag damaged"}
    with unit_of_work(factory) as holder:
        batches.get(holder, batch_id, lock=True)
        step = Contender(
            lambda: api.client.post(
                f"/api/v1/batches/{batch_id}/steps", headers=technician, json=body
            )
        )
        wait_for_lock_waiters(engine, 1)
        second = Contender(other)
        wait_for_lock_waiters(engine, 2)
    return step.response(), second.response()


@pytest.mark.postgres_only
def test_rel_a_step_and_a_dispatch_of_one_dose_at_once_leave_one_winner_and_no_deadlock(
    committed_engine, settings
):
    """The discard got the batch first, so it wins; the dispatch then finds the dose discarded
    (409) and the batch stays released, not issued."""
    with committed_api(committed_engine, settings) as (api, factory):
        batch, codes = api.released(doses=2)
        courier = headers_of_new(api, Role.TECHNICIAN)
        dispatch = {"event": "dispatched", "location": "Courier", "temperature_c": 4.5}
        step, refused = _step_then(
            api,
            factory,
            committed_engine,
            batch["id"],
            codes[0],
            lambda: api.client.post(
                f"/api/v1/vessels/{codes[0]}/custody", headers=courier, json=dispatch
            ),
        )

    ok(step, 201)
    assert "discarded" in error(refused, 409, "invalid_state")
    with factory() as session:
        dose = session.execute(select(Vessel).where(Vessel.code == codes[0])).scalar_one()
        assert dose.status == "discarded"
        assert session.get(Batch, batch["id"]).status == "released"
        assert session.execute(select(CustodyEvent.id)).first() is None
        assert verify_chain(session).ok


@pytest.mark.postgres_only
def test_rel_a_step_and_an_infusion_of_one_dose_at_once_leave_one_winner_and_no_deadlock(
    committed_engine, settings
):
    """The discard got the batch first, so it wins; the infusion then finds the dose discarded,
    no longer at the clinic (409), and records nothing."""
    with committed_api(committed_engine, settings) as (api, factory):
        batch, codes = api.released(doses=2)
        to_clinic(api, codes[0])
        who = patient(api, batch)
        witness, _ = clinician(api)
        nurse = headers_of_new(api, Role.CLINICIAN)
        step, refused = _step_then(
            api,
            factory,
            committed_engine,
            batch["id"],
            codes[0],
            lambda: infuse(api, check(who, codes[0]), witness, headers=nurse),
        )

    ok(step, 201)
    error(refused, 409, "not_at_clinic")
    with factory() as session:
        dose = session.execute(select(Vessel).where(Vessel.code == codes[0])).scalar_one()
        assert dose.status == "discarded"
        assert session.get(Batch, batch["id"]).status == "issued"
        assert session.execute(select(Infusion.id)).first() is None
        assert verify_chain(session).ok

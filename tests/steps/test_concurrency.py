"""REL (issue 3): two simultaneous steps consuming the same vessel: exactly one 201-equivalent and
one clear 409, never a 500 or a half-written step. Real commits, both databases."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from app.audit.service import verify_chain
from app.auth.permissions import Role
from app.batches import service as batches
from app.biopsies import service as biopsies
from app.biopsies.schemas import BiopsyCreate, BiopsyReceipt
from app.db import session_factory_for, unit_of_work
from app.patients import service as patients
from app.patients.schemas import PatientCreate
from app.steps import service as steps
from app.steps.models import Step
from app.steps.schemas import OutputSpec, StepCreate
from app.vessels.models import Vessel
from tests.helpers import make_user, one_winner, race


def test_rel_two_simultaneous_steps_consuming_one_vessel_leave_one_step(committed_engine, settings):
    factory = session_factory_for(committed_engine)
    with unit_of_work(factory) as session:
        clinician = make_user(session, settings, roles=[Role.CLINICIAN])
        tech = make_user(session, settings, roles=[Role.TECHNICIAN])
        patient = patients.register(
            session,
            settings,
            actor=clinician,
            data=PatientCreate(
                mrn="RACE-2", family_name="R", given_name="S", birth_date="1975-02-02", sex="female"
            ),
        )
        now = datetime.now(UTC)
        biopsy, tube = biopsies.register(
            session,
            settings,
            actor=clinician,
            data=BiopsyCreate(
                patient_id=patient.id, collected_at=now - timedelta(hours=3), site="x", mass_mg=9
            ),
        )
        biopsies.receive(
            session,
            actor=tech,
            biopsy_id=biopsy.id,
            data=BiopsyReceipt(
                scanned_code=tube.code,
                received_at=now - timedelta(hours=1),
                temperature_c=4,
                accepted=True,
            ),
        )
        batch_id = batches.register(session, settings, actor=tech, biopsy_id=biopsy.id).batch.id
        isolation = StepCreate(
            kind="isolation", inputs=[tube.code], outputs=[OutputSpec(kind="flask")]
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

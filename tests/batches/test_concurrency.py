"""REL: concurrent conflicting actions leave exactly one winner and a clear 409 for the other,
never a 500 or a half-written change. Real commits on a database of their own (both backends)."""

from datetime import UTC, datetime, timedelta

from app.audit.service import verify_chain
from app.auth.permissions import Role
from app.batches import service as batches
from app.biopsies import service as biopsies
from app.biopsies.schemas import BiopsyCreate, BiopsyReceipt
from app.db import session_factory_for, unit_of_work
from app.patients import service as patients
from app.patients.schemas import PatientCreate
from tests.helpers import make_user, one_winner, race


def _setup(factory, settings, *, received: bool):
    with unit_of_work(factory) as session:
        clinician = make_user(session, settings, roles=[Role.CLINICIAN])
        tech = make_user(session, settings, roles=[Role.TECHNICIAN])
        patient = patients.register(
            session,
            settings,
            actor=clinician,
            data=PatientCreate(
                mrn="RACE-1", family_name="R", given_name="C", birth_date="1980-01-01", sex="male"
            ),
        )
        now = datetime.now(UTC)
        biopsy, tube = biopsies.register(
            session,
            settings,
            actor=clinician,
            data=BiopsyCreate(
                patient_id=patient.id, collected_at=now - timedelta(hours=2), site="x", mass_mg=5
            ),
        )
        receipt = BiopsyReceipt(
            scanned_code=tube.code,
            received_at=now - timedelta(hours=1),
            temperature_c=4,
            accepted=True,
        )
        if received:
            biopsies.receive(session, actor=tech, biopsy_id=biopsy.id, data=receipt)
        return tech, biopsy.id, receipt


def test_rel_two_simultaneous_batch_registrations_from_one_biopsy_leave_one_batch(
    committed_engine, settings
):
    factory = session_factory_for(committed_engine)
    tech, biopsy_id, _ = _setup(factory, settings, received=True)
    outcomes = race(
        factory, lambda s: batches.register(s, settings, actor=tech, biopsy_id=biopsy_id)
    )
    one_winner(outcomes, {"already_registered"})
    with factory() as session:
        assert len(batches.find(session)) == 1
        assert verify_chain(session).ok


def test_rel_two_simultaneous_receipts_of_one_biopsy_leave_one_receipt(committed_engine, settings):
    factory = session_factory_for(committed_engine)
    tech, biopsy_id, receipt = _setup(factory, settings, received=False)
    outcomes = race(
        factory, lambda s: biopsies.receive(s, actor=tech, biopsy_id=biopsy_id, data=receipt)
    )
    one_winner(outcomes, {"invalid_state"})
    with factory() as session:
        assert verify_chain(session).ok

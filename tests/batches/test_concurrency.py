"""REL: concurrent conflicting actions leave exactly one winner and a clear 409 for the other,
never a 500 or a half-written change. Real commits on a database of their own (both backends)."""

from app.audit.service import verify_chain
from app.batches import service as batches
from app.biopsies import service as biopsies
from app.db import session_factory_for
from tests.helpers import committed_biopsy, one_winner, race


def test_rel_two_simultaneous_batch_registrations_from_one_biopsy_leave_one_batch(
    committed_engine, settings
):
    factory = session_factory_for(committed_engine)
    tech, biopsy_id, _ = committed_biopsy(factory, settings, received=True)
    outcomes = race(
        factory, lambda s: batches.register(s, settings, actor=tech, biopsy_id=biopsy_id)
    )
    one_winner(outcomes, {"already_registered"})
    with factory() as session:
        assert len(batches.find(session)) == 1
        assert verify_chain(session).ok


def test_rel_two_simultaneous_receipts_of_one_biopsy_leave_one_receipt(committed_engine, settings):
    factory = session_factory_for(committed_engine)
    tech, biopsy_id, receipt = committed_biopsy(factory, settings, received=False)
    outcomes = race(
        factory,
        lambda s: biopsies.receive(s, settings, actor=tech, biopsy_id=biopsy_id, data=receipt),
    )
    one_winner(outcomes, {"invalid_state"})
    with factory() as session:
        assert verify_chain(session).ok

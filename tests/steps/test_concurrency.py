"""REL (issue 3): two simultaneous steps consuming the same vessel: exactly one 201-equivalent and
one clear 409, never a 500 or a half-written step. Real commits, both databases."""

from sqlalchemy import func, select

from app.audit.service import verify_chain
from app.batches import service as batches
from app.db import session_factory_for, unit_of_work
from app.steps import service as steps
from app.steps.models import Step
from app.steps.schemas import OutputSpec, StepCreate
from app.vessels.models import Vessel
from tests.helpers import committed_biopsy, one_winner, race


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

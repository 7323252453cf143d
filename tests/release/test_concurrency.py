"""REL (issue 4): two QA users deciding on one batch at the same moment leave exactly one
decision, one release signature and one clear 409 for the other, never a 500 or two decisions.
Real commits on a database of their own, through the HTTP API, on both backends."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.audit.service import verify_chain
from app.auth.permissions import Role
from app.batches import service as batches
from app.batches.models import Batch
from app.db import session_factory_for, unit_of_work
from app.main import create_app
from app.qc import service as qc
from app.qc.schemas import QcResultCreate
from app.release import service as release
from app.release.models import ReleaseDecision
from app.release.schemas import ReleaseCreate
from app.signatures.models import Signature
from app.steps import service as steps
from app.steps.schemas import OutputSpec, StepCreate
from tests.helpers import (
    PASSWORD,
    committed_biopsy,
    error,
    make_user,
    passing_value,
    prepare_release_in,
)
from tests.races import Contender, batch_moves, committed_api, wait_for_lock_waiters


def _tested_batch_in_quarantine(factory, settings) -> int:
    """A batch committed for real: formulated into two doses, every QC test passed."""
    tech, biopsy_id, receipt = committed_biopsy(factory, settings, received=True)
    with unit_of_work(factory) as session:
        batch_id = batches.register(session, settings, actor=tech, biopsy_id=biopsy_id).batch.id

        def step(kind: str, inputs: list[str], *outputs: OutputSpec) -> list[str]:
            data = StepCreate(kind=kind, inputs=inputs, outputs=list(outputs))
            done = steps.record(session, settings, actor=tech, batch_id=batch_id, data=data)
            return [output.code for output in done.outputs]

        (flask,) = step("isolation", [receipt.scanned_code], OutputSpec(kind="flask"))
        (flask,) = step("passage", [flask], OutputSpec(kind="flask"))
        (tube,) = step("harvest", [flask], OutputSpec(kind="tube"))
        dose = OutputSpec(
            kind="bag",
            cell_count=150_000_000,
            volume_ml=50,
            expires_at=datetime.now(UTC) + timedelta(days=3),
        )
        step("formulation", [tube], dose, dose)
        for row in qc.qc_public(session, settings, batch_id).tests:
            data = QcResultCreate(test=row.test, value=passing_value(row.model_dump()))
            qc.enter(session, settings, actor=tech, batch_id=batch_id, data=data)
        prepare_release_in(session, settings, batch_id)
    return batch_id


@pytest.mark.parametrize(
    ("first", "second"), [("release", "release"), ("release", "reject")], ids=["same", "opposite"]
)
def test_rel_two_simultaneous_decisions_on_one_batch_leave_one(
    committed_engine, settings, first, second
):
    factory = session_factory_for(committed_engine)
    batch_id = _tested_batch_in_quarantine(factory, settings)
    with unit_of_work(factory) as session:
        signers = [make_user(session, settings, roles=[Role.QA]) for _ in range(2)]

    with TestClient(create_app(settings, factory)) as client:
        headers = []
        for signer in signers:
            login = client.post(
                "/api/v1/auth/token", data={"username": signer.username, "password": PASSWORD}
            )
            assert login.status_code == 200, login.text
            headers.append({"Authorization": f"Bearer {login.json()['access_token']}"})

        responses: dict[str, object] = {}
        start = threading.Barrier(2)

        def decide(name: str, auth: dict[str, str], decision: str) -> None:
            start.wait()
            try:
                responses[name] = client.post(
                    f"/api/v1/batches/{batch_id}/release",
                    headers=auth,
                    json={"decision": decision, "password": PASSWORD},
                )
            except BaseException as exc:  # an unexpected error is a failure of the test
                responses[name] = exc

        threads = [
            threading.Thread(target=decide, args=(str(i), auth, decision))
            for i, (auth, decision) in enumerate(zip(headers, (first, second), strict=True))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

    outcomes = [responses[str(i)] for i in range(2)]
    codes = sorted(getattr(o, "status_code", o) for o in outcomes)
    assert codes == [200, 409], [getattr(o, "text", o) for o in outcomes]
    (winner,) = [o.json() for o in outcomes if o.status_code == 200]
    (loser,) = [o.json() for o in outcomes if o.status_code == 409]
    assert loser["error"] == "invalid_state", loser
    assert winner["status"] in loser["detail"]

    with factory() as session:
        status = session.execute(select(Batch.status).where(Batch.id == batch_id)).scalar_one()
        assert status == winner["status"]
        decided = session.execute(
            select(ReleaseDecision.id).where(ReleaseDecision.batch_id == batch_id)
        ).scalars()
        assert list(decided) == [winner["id"]]
        signed = session.execute(
            select(Signature.record_id).where(Signature.record_type == "release")
        ).scalars()
        assert list(signed) == [winner["id"]]
        audited = session.execute(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "release.decided")
        ).scalar_one()
        assert audited == 1
        assert verify_chain(session).ok


@pytest.mark.postgres_only
def test_rel_a_release_waiting_for_another_is_refused_once_that_one_commits(
    committed_engine, settings
):
    """The interleaving provoked: QA 1's release holds the batch, uncommitted; QA 2's release is
    seen waiting for it; QA 1 commits. QA 2 then reads the batch afresh: released, so 409."""
    with committed_api(committed_engine, settings) as (api, factory):
        batch_id = _tested_batch_in_quarantine(factory, settings)
        first = make_user(api.db, settings, roles=[Role.QA])
        second = api.headers_for(make_user(api.db, settings, roles=[Role.QA]))
        body = {"decision": "release", "password": PASSWORD}
        with unit_of_work(factory) as session:
            decided = release.decide(
                session, settings, actor=first, batch_id=batch_id, data=ReleaseCreate(**body)
            )
            late = Contender(
                lambda: api.client.post(
                    f"/api/v1/batches/{batch_id}/release", headers=second, json=body
                )
            )
            wait_for_lock_waiters(committed_engine, 1)
        refused = late.response()

    assert "released" in error(refused, 409, "invalid_state")
    with factory() as session:
        assert session.get(Batch, batch_id).status == "released"
        assert batch_moves(session, batch_id)[-1] == ("quarantine", "released")
        decisions = session.execute(select(ReleaseDecision.id)).scalars().all()
        assert decisions == [decided.id]
        assert verify_chain(session).ok

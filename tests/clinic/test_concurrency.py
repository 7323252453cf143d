"""COI-6 under concurrency (issue 6 §5): two clinicians recording the infusion of one dose at the
same moment leave exactly one infusion and one clear 409 `already_infused`, never a 500 or two
records; the last dose infused while the other is discarded still completes the batch; a QA hold
committed while the last infusion waits for the batch stops that infusion. Real commits on a
database of their own, through the HTTP API, on both backends (the provoked interleaving on
PostgreSQL only)."""

import threading
from collections.abc import Callable
from typing import Any

import pytest
from httpx import Response
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.audit.service import verify_chain
from app.auth.permissions import Role
from app.batches import service as batches
from app.batches.models import Batch
from app.clinic.models import Infusion
from app.db import unit_of_work
from app.vessels.models import Vessel
from tests.clinic.test_bedside import check, clinician, infuse, patient, to_clinic
from tests.helpers import error, make_user, ok
from tests.races import (
    Contender,
    batch_moves,
    committed_api,
    headers_of_new,
    wait_for_lock_waiters,
)
from tests.release.support import new_values


def together(*calls: Callable[[], Response]) -> list[Any]:
    """Run the calls in parallel threads, released at once: each response (or exception)."""
    outcomes: list[Any] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(index: int) -> None:
        start.wait()
        try:
            outcomes[index] = calls[index]()
        except BaseException as exc:  # an unexpected error is a failure of the test
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


def test_coi6_two_simultaneous_infusions_of_one_dose_leave_one(committed_engine, settings):
    with committed_api(committed_engine, settings) as (api, factory):
        batch, codes = api.released(doses=2)
        to_clinic(api, codes[0])
        who = patient(api, batch)
        (nurse, headers), (colleague, colleague_headers) = clinician(api), clinician(api)
        body = check(who, codes[0])
        outcomes = together(
            lambda: infuse(api, body, colleague, headers=headers),
            lambda: infuse(api, body, nurse, headers=colleague_headers),
        )

    codes_seen = sorted(getattr(o, "status_code", o) for o in outcomes)
    assert codes_seen == [201, 409], [getattr(o, "text", o) for o in outcomes]
    (winner,) = [o.json() for o in outcomes if o.status_code == 201]
    (loser,) = [o.json() for o in outcomes if o.status_code == 409]
    assert loser["error"] == "already_infused", loser
    assert winner["batch_status"] == "issued"

    with factory() as session:
        infusions = session.execute(select(Infusion)).scalars().all()
        assert [i.id for i in infusions] == [winner["id"]]
        status = session.execute(select(Vessel.status).where(Vessel.code == codes[0])).scalar_one()
        assert status == "infused"

        def actions(name: str) -> list[AuditEvent]:
            query = select(AuditEvent).where(AuditEvent.action == name)
            return list(session.execute(query).scalars())

        assert len(actions("infusion.recorded")) == 1
        # The loser waited for the dose and was refused by the bedside check, audited as such.
        (refusal,) = actions("infusion.refused")
        assert new_values(refusal)["refused"] == "already_infused"
        assert refusal.actor != winner["administered_by"]
        assert verify_chain(session).ok


def test_coi6_the_last_infusion_and_the_last_discard_at_once_complete_the_batch(
    committed_engine, settings
):
    with committed_api(committed_engine, settings) as (api, factory):
        batch, codes = api.released(doses=2)
        to_clinic(api, codes[0])
        who = patient(api, batch)
        witness, _ = clinician(api)
        api.as_role(Role.TECHNICIAN)
        outcomes = together(
            lambda: infuse(api, check(who, codes[0]), witness),
            lambda: api.step(batch["id"], "discard", [codes[1]], reason="not needed"),
        )
        texts = [getattr(o, "text", o) for o in outcomes]
        assert [getattr(o, "status_code", o) for o in outcomes] == [201, 201], texts
        assert ok(api.get(Role.QA, f"/batches/{batch['id']}"))["status"] == "completed"

    with factory() as session:
        status = session.execute(select(Batch.status).where(Batch.id == batch["id"])).scalar_one()
        assert status == "completed"
        completed = session.execute(
            select(func.count())
            .select_from(AuditEvent)
            .where(
                AuditEvent.action == "batch.status_changed",
                AuditEvent.new_values.contains('"completed"'),
            )
        ).scalar_one()
        assert completed == 1
        assert verify_chain(session).ok


@pytest.mark.postgres_only
def test_coi6_a_qa_hold_committed_during_the_last_infusion_refuses_the_infusion(
    committed_engine, settings
):
    """The hold commits first, so it wins: the infusion waiting for the batch then finds it on
    hold and is refused `not_released`; the batch is never `completed` over a hold."""
    with committed_api(committed_engine, settings) as (api, factory):
        batch, codes = api.released(doses=1)
        to_clinic(api, codes[0])
        who = patient(api, batch)
        witness, _ = clinician(api)
        qa = make_user(api.db, settings, roles=[Role.QA])
        nurse = headers_of_new(api, Role.CLINICIAN)
        with unit_of_work(factory) as hold:
            batches.hold(hold, actor=qa, batch_id=batch["id"], reason="QA: sterility alert")
            infusion = Contender(lambda: infuse(api, check(who, codes[0]), witness, headers=nurse))
            wait_for_lock_waiters(committed_engine, 1)
        refused = infusion.response()

    assert "on hold" in error(refused, 409, "not_released")
    with factory() as session:
        assert session.get(Batch, batch["id"]).status == "on_hold"
        assert batch_moves(session, batch["id"])[-1] == ("issued", "on_hold")
        dose = session.execute(select(Vessel).where(Vessel.code == codes[0])).scalar_one()
        assert dose.status == "received"
        assert session.execute(select(Infusion.id)).first() is None
        assert verify_chain(session).ok

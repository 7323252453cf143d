"""LBL-5, LBL-4 under concurrency: a print or a void that waited for the vessel's lock reads the
print log afresh once it holds it, so two technicians printing a new bag at once cannot both print
an "original", and two voids of one label cannot both be recorded. Real commits, PostgreSQL
(SQLite serializes writers, so the interleaving cannot happen there)."""

import pytest
from sqlalchemy import select

from app.audit.actions import AuditAction
from app.audit.service import verify_chain
from app.auth.permissions import Role
from app.db import unit_of_work
from app.labels import service as labels
from app.labels.models import LabelPrint, LabelVoid
from app.labels.schemas import PrintFormat, VesselPrintRequest
from tests.helpers import audit_events, error, make_user
from tests.races import Contender, committed_api, headers_of_new, wait_for_lock_waiters


@pytest.mark.postgres_only
def test_lbl5_two_first_prints_at_once_one_original_the_other_needs_a_reason(
    committed_engine, settings
):
    with committed_api(committed_engine, settings) as (api, factory):
        _, (dose, _) = api.formulated(doses=2)
        first = make_user(api.db, settings, roles=[Role.TECHNICIAN])
        second = headers_of_new(api, Role.TECHNICIAN)
        with unit_of_work(factory) as holder:
            request = VesselPrintRequest(format=PrintFormat.ZPL)
            labels.print_vessel(holder, settings, actor=first, code=dose, request=request)
            contender = Contender(
                lambda: api.client.post(
                    f"/api/v1/vessels/{dose}/print", headers=second, json={"format": "zpl"}
                )
            )
            wait_for_lock_waiters(committed_engine, 1)
        refused = contender.response()

    assert dose in error(refused, 422, "reprint_reason_required")
    with factory() as session:
        (printed,) = session.execute(select(LabelPrint)).scalars()
        assert (printed.copy_number, printed.printed_by) == (1, first.id)
        assert len(audit_events(session, AuditAction.LABEL_PRINTED)) == 1
        assert verify_chain(session).ok


@pytest.mark.postgres_only
def test_lbl4_two_voids_of_one_label_at_once_one_is_recorded(committed_engine, settings):
    with committed_api(committed_engine, settings) as (api, factory):
        created = api.batch()
        response = api.print_label(created["tube_code"])
        assert response.status_code == 200, response.text
        label_id = int(response.headers["X-Label-Ids"])
        qa = make_user(api.db, settings, roles=[Role.QA])
        technician = headers_of_new(api, Role.TECHNICIAN)
        with unit_of_work(factory) as holder:
            labels.void(holder, actor=qa, label_id=label_id, reason="torn")
            contender = Contender(
                lambda: api.client.post(
                    f"/api/v1/labels/{label_id}/void", headers=technician, json={"reason": "lost"}
                )
            )
            wait_for_lock_waiters(committed_engine, 1)
        refused = contender.response()

    error(refused, 409, "invalid_state")
    with factory() as session:
        (void,) = session.execute(select(LabelVoid)).scalars()
        assert (void.label_print_id, void.reason, void.voided_by) == (label_id, "torn", qa.id)
        assert len(audit_events(session, AuditAction.LABEL_VOIDED)) == 1
        assert verify_chain(session).ok

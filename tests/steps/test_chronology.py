"""AUD-6 for steps and the biopsy receipt (issue 11 finding 2): a step is never dated before its
batch's registration or the making of its inputs; a receipt never before the collection; past
the skew each needs a late-entry reason and is shown as late (JSON, batch record, page, audit)."""

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlmodel import col

from app.audit.actions import AuditAction
from app.audit.models import AuditEvent
from app.auth.permissions import Role
from app.batches.models import Batch
from app.steps.models import Step
from tests.helpers import Api, ago, audit_events, error, iso, ok
from tests.test_pages import _page_login

PAPER = "entered from the paper batch record"


def _counts(api: Api) -> tuple[int, int]:
    return tuple(
        api.db.execute(select(func.count()).select_from(model)).scalar_one()
        for model in (Step, AuditEvent)
    )


def _registered_days_ago(api: Api, batch: dict[str, Any], days: int) -> None:
    """The batch's registration (a server time) moved back, as for a batch registered then."""
    at = datetime.now(UTC) - timedelta(days=days)
    api.db.execute(update(Batch).where(col(Batch.id) == batch["id"]).values(created_at=at))
    api.db.commit()


def test_aud6_a_passage_800_days_before_its_batch_existed_is_refused(api):
    """Finding 2: a passage dated 800 days ago, long before the batch was registered, is 409
    out_of_order, with or without a late-entry reason; nothing is written. (It names the latest
    record it precedes: here the isolation that made its flask.)"""
    batch, flasks = api.expanded_batch()
    before = _counts(api)
    for extra in ({}, {"late_reason": PAPER}):
        passage = api.step(
            batch["id"], "passage", flasks[:1], ["flask"], performed_at=ago(days=800), **extra
        )
        assert "cannot precede" in error(passage, 409, "out_of_order")
    assert _counts(api) == before


def test_aud6_a_step_is_not_dated_before_its_batchs_registration(api):
    batch = api.batch()
    isolation = api.step(
        batch["id"],
        "isolation",
        [batch["tube_code"]],
        ["flask"],
        performed_at=ago(minutes=30),
        late_reason=PAPER,
    )
    assert f"batch {batch['batch_number']}'s registration" in error(isolation, 409, "out_of_order")


def test_aud6_a_step_is_not_dated_before_the_step_that_made_its_input(api):
    batch = api.batch()
    _registered_days_ago(api, batch, 1)
    isolation = ok(
        api.step(
            batch["id"],
            "isolation",
            [batch["tube_code"]],
            ["flask"],
            performed_at=ago(hours=2),
            late_reason=PAPER,
        ),
        201,
    )
    flask = isolation["outputs"][0]["code"]
    detail = error(
        api.step(
            batch["id"], "passage", [flask], ["flask"], performed_at=ago(hours=3), late_reason=PAPER
        ),
        409,
        "out_of_order",
    )
    assert f"the step that made {flask}" in detail
    # After its input, still in the past: a late entry, accepted with its reason.
    ok(
        api.step(
            batch["id"], "passage", [flask], ["flask"], performed_at=ago(hours=1), late_reason=PAPER
        ),
        201,
    )


def test_aud6_a_late_step_needs_a_reason_and_is_shown_as_late(api):
    batch = api.batch()
    _registered_days_ago(api, batch, 1)
    performed = datetime.now(UTC) - timedelta(hours=2)
    body = {"performed_at": iso(performed)}
    before = _counts(api)
    detail = error(
        api.step(batch["id"], "isolation", [batch["tube_code"]], ["flask"], **body),
        422,
        "late_entry_reason_required",
    )
    assert "late_reason" in detail
    assert _counts(api) == before

    step = ok(
        api.step(
            batch["id"], "isolation", [batch["tube_code"]], ["flask"], **body, late_reason=PAPER
        ),
        201,
    )
    assert step["late"] is True and step["late_reason"] == PAPER
    assert datetime.fromisoformat(step["performed_at"]) == performed
    assert datetime.fromisoformat(step["recorded_at"]) > performed + timedelta(hours=1)
    record = ok(api.get(Role.QA, f"/batches/{batch['id']}/record"))
    (shown,) = record["steps"]
    assert shown["late"] is True and shown["late_reason"] == PAPER
    audited = audit_events(api.db, AuditAction.STEP_RECORDED.value)[-1]
    assert json.loads(audited.new_values or "{}")["late_reason"] == PAPER
    _page_login(api, Role.QA)
    page = api.client.get(f"/batches/{batch['id']}")
    assert page.status_code == 200 and "late entry" in page.text and PAPER in page.text


def test_aud6_a_step_recorded_as_it_happens_is_not_late(api):
    batch, _ = api.expanded_batch()
    steps = ok(api.get(Role.QA, f"/batches/{batch['id']}/record"))["steps"]
    assert steps and all(s["late"] is False and s["late_reason"] is None for s in steps)


def test_aud6_a_late_biopsy_receipt_needs_a_reason_and_is_shown_as_late(api_with_skew):
    api = api_with_skew(1)
    biopsy = api.biopsy()
    arrived = datetime.now(UTC)
    time.sleep(1.5)
    error(api.receive(biopsy, received_at=iso(arrived)), 422, "late_entry_reason_required")
    reason = "scanned in after the courier's second drop"
    received = ok(api.receive(biopsy, received_at=iso(arrived), late_reason=reason))
    assert received["receipt_late"] is True and received["receipt_late_reason"] == reason
    assert datetime.fromisoformat(received["received_at"]) == arrived
    assert datetime.fromisoformat(received["receipt_recorded_at"]) > arrived
    batch = ok(api.post(Role.TECHNICIAN, "/batches", {"biopsy_id": biopsy["id"]}), 201)
    record = ok(api.get(Role.QA, f"/batches/{batch['id']}/record"))
    assert record["biopsy"]["receipt_late_reason"] == reason
    audited = audit_events(api.db, AuditAction.BIOPSY_RECEIVED.value)[-1]
    assert json.loads(audited.new_values or "{}")["late_reason"] == reason


def test_aud6_a_receipt_before_the_collection_is_out_of_order(api):
    biopsy = api.biopsy()
    detail = error(
        api.receive(biopsy, received_at=ago(hours=4), late_reason=PAPER), 409, "out_of_order"
    )
    assert "collection" in detail

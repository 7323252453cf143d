"""AUD-6 for infusions (issue 11 finding 2): an infusion is never dated before the dose's receipt
at the clinic or its batch's release; past the skew it needs a late-entry reason and is shown as
late (JSON and audit event)."""

import json
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from app.audit.actions import AuditAction
from app.audit.models import AuditEvent
from app.auth.permissions import Role
from app.clinic.models import Infusion
from tests.clinic.test_bedside import check, clinician, infuse, ready
from tests.helpers import Api, audit_events, error, iso, ok


def _counts(api: Api) -> tuple[int, int]:
    return tuple(
        api.db.execute(select(func.count()).select_from(model)).scalar_one()
        for model in (Infusion, AuditEvent)
    )


def _received_at(api: Api, code: str) -> datetime:
    history = ok(api.get(Role.CLINICIAN, f"/vessels/{code}/custody"))
    return datetime.fromisoformat(history[-1]["occurred_at"])


def test_aud6_an_infusion_dated_400_days_ago_before_the_biopsy_is_refused(api):
    """Finding 2: administered_at 400 days ago (before the biopsy, the release and the receipt)
    is 409 out_of_order even with a late-entry reason, and nothing is recorded."""
    batch, codes, who = ready(api)
    witness, _ = clinician(api)
    before = _counts(api)
    detail = error(
        infuse(
            api,
            check(who, codes[0]),
            witness,
            administered_at=iso(datetime.now(UTC) - timedelta(days=400)),
            late_reason="from the ward's paper chart",
        ),
        409,
        "out_of_order",
    )
    assert "receipt at the clinic" in detail
    assert _counts(api) == before
    shown = ok(api.get(Role.QA, f"/batches/{batch['id']}"))
    assert {v["status"] for v in shown["vessels"] if v["code"] == codes[0]} == {"received"}


def test_aud6_an_infusion_is_not_dated_before_the_doses_receipt(api):
    _, codes, who = ready(api)
    witness, _ = clinician(api)
    received = _received_at(api, codes[0])
    detail = error(
        infuse(
            api, check(who, codes[0]), witness, administered_at=iso(received - timedelta(seconds=1))
        ),
        409,
        "out_of_order",
    )
    assert codes[0] in detail and "receipt" in detail


def test_aud6_a_late_infusion_needs_a_reason_and_is_shown_as_late(api_with_skew):
    api = api_with_skew(1)
    _, codes, who = ready(api)
    witness, _ = clinician(api)
    received = _received_at(api, codes[0])
    time.sleep(1.5)
    given = iso(received + timedelta(milliseconds=100))
    before = _counts(api)
    error(
        infuse(api, check(who, codes[0]), witness, administered_at=given),
        422,
        "late_entry_reason_required",
    )
    assert _counts(api) == before
    reason = "recorded after the patient's reaction was managed"
    record = ok(
        infuse(api, check(who, codes[0]), witness, administered_at=given, late_reason=reason), 201
    )
    assert record["late"] is True and record["late_reason"] == reason
    assert datetime.fromisoformat(record["recorded_at"]) > datetime.fromisoformat(given)
    audited = audit_events(api.db, AuditAction.INFUSION_RECORDED.value)[-1]
    assert json.loads(audited.new_values or "{}")["late_reason"] == reason


def test_aud6_an_infusion_recorded_at_the_bedside_is_not_late(api):
    _, codes, who = ready(api)
    witness, _ = clinician(api)
    record = ok(infuse(api, check(who, codes[0]), witness), 201)
    assert record["late"] is False and record["late_reason"] is None

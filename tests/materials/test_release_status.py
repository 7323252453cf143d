"""SEC-5 (issue 14 item 6): material lots carry a QC release status that QA changes with a
reason, and only released lots can be used; equipment is refused when its calibration or
qualification is overdue or not on record. Refusals are 409s that change nothing."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.audit.actions import AuditAction
from app.audit.models import AuditEvent
from app.auth.permissions import Role
from app.steps.models import Step
from tests.helpers import Api, audit_events, error, iso, ok, unique
from tests.materials.test_api import _equipment, _lot


def _in(**delta: float) -> str:
    return iso(datetime.now(UTC) + timedelta(**delta))


def _status(api: Api, lot_id: int, status: str, role: Role = Role.QA, reason: str = "CoA"):
    body = {"status": status, "reason": reason}
    return api.call(role, "PUT", f"/lots/{lot_id}/status", json=body)


def _due(api: Api, equipment_id: int, role: Role = Role.QA, **body: Any):
    return api.call(
        role, "PUT", f"/equipment/{equipment_id}/due-dates", json={"reason": "cert 42"} | body
    )


def _isolation(api: Api, **used: Any):
    batch = api.batch()
    return api.step(batch["id"], "isolation", [batch["tube_code"]], ["flask"], **used)


def _counts(api: Api) -> tuple[int, int]:
    db = api.db
    return (
        db.execute(select(func.count()).select_from(Step)).scalar_one(),
        db.execute(select(func.count()).select_from(AuditEvent)).scalar_one(),
    )


def test_sec5_a_new_lot_is_quarantined_and_cannot_be_used_until_qa_releases_it(api):
    lot = _lot(api, released=False)
    assert lot["status"] == "quarantine"
    batch = api.batch()
    before = _counts(api)
    used = {"materials": [lot["id"]]}
    refused = api.step(batch["id"], "isolation", [batch["tube_code"]], ["flask"], **used)
    assert "quarantine" in error(refused, 409, "lot_not_released")
    assert _counts(api) == before
    released = ok(_status(api, lot["id"], "released", reason="Certificate of analysis checked"))
    assert released["status"] == "released"
    (event,) = audit_events(api.db, AuditAction.MATERIAL_LOT_STATUS_CHANGED.value)[-1:]
    assert event.entity_id == lot["id"] and event.reason == "Certificate of analysis checked"
    assert '"quarantine"' in (event.old_values or "") and '"released"' in (event.new_values or "")
    ok(api.step(batch["id"], "isolation", [batch["tube_code"]], ["flask"], **used), 201)


def test_sec5_a_rejected_lot_is_refused_and_stays_rejected(api):
    lot = _lot(api)
    ok(_status(api, lot["id"], "rejected", reason="Sterility failure at the supplier"))
    assert "rejected" in error(_isolation(api, materials=[lot["id"]]), 409, "lot_not_released")
    detail = error(_status(api, lot["id"], "released"), 409, "invalid_state")
    assert "final" in detail
    listed = next(x for x in ok(api.get(Role.TECHNICIAN, "/lots")) if x["id"] == lot["id"])
    assert listed["status"] == "rejected"


def test_sec5_a_released_lot_can_go_back_to_quarantine(api):
    lot = _lot(api)
    ok(_status(api, lot["id"], "quarantine", reason="Supplier recall notice under review"))
    error(_isolation(api, materials=[lot["id"]]), 409, "lot_not_released")


@pytest.mark.parametrize("role", [Role.TECHNICIAN, Role.ADMIN, Role.CLINICIAN])
def test_sec5_only_qa_changes_a_lot_status_or_equipment_due_dates(api, role):
    lot, equipment = _lot(api, released=False), _equipment(api, qualified=False)
    error(_status(api, lot["id"], "released", role=role), 403, "forbidden")
    error(_due(api, equipment["id"], role=role, calibration_due_at=_in(days=9)), 403, "forbidden")


def test_sec5_a_status_change_needs_a_reason_and_a_known_status(api):
    lot = _lot(api, released=False)
    assert _status(api, lot["id"], "released", reason="").status_code == 422
    assert _status(api, lot["id"], "approved").status_code == 422
    error(_status(api, 999_999, "released"), 404, "not_found")


def test_sec5_equipment_with_no_calibration_on_record_is_refused(api):
    equipment = _equipment(api, qualified=False)
    assert equipment["overdue"] is True and equipment["calibration_due_at"] is None
    before = _counts(api)
    detail = error(_isolation(api, equipment=[equipment["id"]]), 409, "equipment_overdue")
    assert "no calibration on record" in detail
    assert _counts(api)[0] == before[0]


def test_sec5_equipment_is_refused_once_calibration_or_qualification_is_overdue(api):
    equipment = _equipment(api, qualified=False)
    ok(_due(api, equipment["id"], calibration_due_at=_in(days=30)))
    detail = error(_isolation(api, equipment=[equipment["id"]]), 409, "equipment_overdue")
    assert "no qualification on record" in detail
    shown = ok(_due(api, equipment["id"], qualification_due_at=_in(days=-1)))
    assert shown["calibration_due_at"] and shown["overdue"] is True
    assert "due for qualification" in error(
        _isolation(api, equipment=[equipment["id"]]), 409, "equipment_overdue"
    )
    shown = ok(_due(api, equipment["id"], qualification_due_at=_in(days=365)))
    assert shown["overdue"] is False
    (event,) = audit_events(api.db, AuditAction.EQUIPMENT_DUE_DATES_SET.value)[-1:]
    assert event.entity_id == equipment["id"] and event.reason == "cert 42"
    assert "qualification_due_at" in (event.old_values or "")
    ok(_isolation(api, equipment=[equipment["id"]]), 201)


def test_sec5_a_due_date_change_names_at_least_one_date(api):
    equipment = _equipment(api, qualified=False)
    error(_due(api, equipment["id"]), 422, "invalid_request")
    error(_due(api, 999_999, calibration_due_at=_in(days=1)), 404, "not_found")


def test_sec5_equipment_registered_by_admin_is_not_usable_until_qa_records_it(api):
    body = {"code": unique("CC-"), "name": "Cell counter", "kind": "cell_counter"}
    created = ok(api.post(Role.ADMIN, "/equipment", body), 201)
    assert created["overdue"] is True and created["in_service"] is True

"""SEC-5 (issue 14 item 6): people act only within an unexpired qualification per step kind, for
the QC review and the bedside witness; QA grants and revokes with a reason, audited; a refusal is
403 `not_qualified`, audited, and changes nothing else."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlmodel import Session

from app.audit.actions import AuditAction
from app.auth.models import User
from app.auth.permissions import Role
from app.clinic.models import Infusion
from app.gmp_settings import service as gmp_settings
from app.gmp_settings.groups import DEFAULTS, Group
from app.qualifications.models import Qualification
from app.qualifications.schemas import Duty
from app.qualifications.service import ROLE_DUTIES
from app.signatures.models import Signature
from app.steps.models import Step
from app.steps.rules import StepKind
from app.vessels.models import Vessel
from tests.clinic.test_bedside import check, infuse, ready
from tests.helpers import Api, approve_gmp_settings, audit_events, error, iso, make_user, ok


def _in(**delta: float) -> str:
    return iso(datetime.now(UTC) + timedelta(**delta))


def _grant(api: Api, user: User, duties: list[str], role: Role = Role.QA, **extra: Any) -> Any:
    body = {"duties": duties, "expires_at": _in(days=365), "reason": "SOP-12 training"} | extra
    return api.post(role, f"/users/{user.id}/qualifications", body)


def _unqualified(api: Api, role: Role = Role.TECHNICIAN) -> tuple[User, dict[str, str]]:
    user = make_user(api.db, api.settings, roles=[role], qualified=False)
    return user, api.headers_for(user)


def _isolation(api: Api, batch: dict[str, Any], headers: dict[str, str]):
    body = {"kind": "isolation", "inputs": [batch["tube_code"]], "outputs": [{"kind": "flask"}]}
    return api.client.post(f"/api/v1/batches/{batch['id']}/steps", json=body, headers=headers)


def _count(api: Api, model: Any) -> int:
    return api.db.execute(select(func.count()).select_from(model)).scalar_one()


def _refusals(api: Api) -> list[Any]:
    return audit_events(api.db, AuditAction.QUALIFICATION_REFUSED.value)


def test_sec5_there_is_a_duty_for_every_step_kind_and_each_role_has_its_own():
    assert {kind.value for kind in StepKind} <= {duty.value for duty in Duty}
    assert Duty.of_step(StepKind.QC_SAMPLING) is Duty.QC_SAMPLING
    assert ROLE_DUTIES[Role.TECHNICIAN] >= {Duty.of_step(kind) for kind in StepKind}
    assert ROLE_DUTIES[Role.CLINICIAN] == {Duty.BEDSIDE_WITNESS}
    assert not ROLE_DUTIES[Role.ADMIN]


def test_sec5_an_unqualified_technician_is_refused_a_step_which_changes_nothing(api):
    batch = api.batch()
    user, headers = _unqualified(api)
    steps, vessels, refusals = _count(api, Step), _count(api, Vessel), len(_refusals(api))
    detail = error(_isolation(api, batch, headers), 403, "not_qualified")
    assert user.username in detail and "isolation" in detail and "no qualification" in detail
    assert (_count(api, Step), _count(api, Vessel)) == (steps, vessels)
    assert ok(api.get(Role.TECHNICIAN, f"/batches/{batch['id']}"))["status"] == "registered"
    (refusal,) = _refusals(api)[refusals:]  # ADR 0004: the refusal leaves its trace
    assert refusal.actor == user.username and refusal.entity_id == user.id
    assert '"isolation"' in (refusal.new_values or "")


def test_sec5_qc3_each_rule_is_enforced_only_while_the_approved_gating_settings_say_so(
    api, fresh_engine
):
    """SEC-5 / QC-3: the rules ship off (a new site records training, dates and lot status
    first); QA turns each on, or off again, through change control, and the code reads the
    approved version: an unqualified technician is refused while `people` is on, not after."""
    with Session(fresh_engine) as fresh:
        assert gmp_settings.qualification_gating(fresh) == DEFAULTS[Group.QUALIFICATION_GATING]
    assert DEFAULTS[Group.QUALIFICATION_GATING].people is False
    batch = api.batch()
    _, headers = _unqualified(api)
    error(_isolation(api, batch, headers), 403, "not_qualified")
    approve_gmp_settings(api.db, api.settings, Group.QUALIFICATION_GATING, people=False)
    ok(_isolation(api, batch, headers), 201)


def test_sec5_qa_qualifies_per_step_kind_with_a_reason_and_it_is_audited(api):
    batch = api.batch()
    user, headers = _unqualified(api)
    granted = ok(_grant(api, user, ["isolation"]), 201)
    assert [(g["duty"], g["current"], g["reason"]) for g in granted] == [
        ("isolation", True, "SOP-12 training")
    ]
    (event,) = [
        e
        for e in audit_events(api.db, AuditAction.QUALIFICATION_GRANTED.value)
        if e.entity_id == granted[0]["id"]
    ]
    assert event.reason == "SOP-12 training" and '"isolation"' in (event.new_values or "")
    flask = ok(_isolation(api, batch, headers), 201)["outputs"][0]["code"]
    passage = {"kind": "passage", "inputs": [flask], "outputs": [{"kind": "flask"}]}
    response = api.client.post(
        f"/api/v1/batches/{batch['id']}/steps", json=passage, headers=headers
    )
    assert "passage" in error(response, 403, "not_qualified")
    listed = ok(api.get(Role.TECHNICIAN, "/qualifications", params={"user_id": user.id}))
    assert [q["duty"] for q in listed] == ["isolation"]


def test_sec5_an_expired_qualification_is_refused_and_says_so(api):
    batch = api.batch()
    user, headers = _unqualified(api)
    (granted,) = ok(_grant(api, user, ["isolation"], valid_from=_in(days=-400)), 201)
    # A year passes: the qualification's expiry is behind us.
    api.db.execute(
        update(Qualification)
        .where(Qualification.id == granted["id"])
        .values(expires_at=datetime.now(UTC) - timedelta(days=1))
    )
    api.db.commit()
    assert "expired on" in error(_isolation(api, batch, headers), 403, "not_qualified")
    assert ok(api.get(Role.QA, "/qualifications", params={"user_id": user.id}))[0]["current"] is (
        False
    )


def test_sec5_a_revoked_qualification_is_refused_at_once(api):
    batch = api.batch()
    user, headers = _unqualified(api)
    (granted,) = ok(_grant(api, user, ["isolation"]), 201)
    revoke = {"reason": "Failed the aseptic technique assessment."}
    revoked = ok(api.post(Role.QA, f"/qualifications/{granted['id']}/revoke", revoke))
    assert revoked["revoked_at"] and revoked["current"] is False
    assert revoked["revoke_reason"] == revoke["reason"]
    (event,) = audit_events(api.db, AuditAction.QUALIFICATION_REVOKED.value)[-1:]
    assert event.entity_id == granted["id"] and event.reason == revoke["reason"]
    assert "revoked" in error(_isolation(api, batch, headers), 403, "not_qualified")
    again = api.post(Role.QA, f"/qualifications/{granted['id']}/revoke", revoke)
    error(again, 409, "conflict")


@pytest.mark.parametrize("role", [Role.TECHNICIAN, Role.CLINICIAN, Role.ADMIN])
def test_sec5_only_qa_grants_and_revokes(api, role):
    user, _ = _unqualified(api)
    error(_grant(api, user, ["isolation"], role=role), 403, "forbidden")
    error(api.post(role, "/qualifications/1/revoke", {"reason": "x"}), 403, "forbidden")
    assert not ok(api.get(Role.QA, "/qualifications", params={"user_id": user.id}))


def test_sec5_nobody_qualifies_themselves_nor_for_a_duty_their_roles_cannot_exercise(api):
    qa = make_user(api.db, api.settings, roles=[Role.QA], qualified=False)
    headers = api.headers_for(qa)
    body = {"duties": ["qc_review"], "expires_at": _in(days=30), "reason": "self"}
    own = api.client.post(f"/api/v1/users/{qa.id}/qualifications", json=body, headers=headers)
    error(own, 403, "forbidden")
    technician, _ = _unqualified(api)
    assert "bedside_witness" in error(
        _grant(api, technician, ["bedside_witness"]), 422, "invalid_request"
    )
    error(_grant(api, technician, ["isolation"], expires_at=_in(days=-1)), 422, "invalid_request")
    error(_grant(api, technician, ["surgery"]), 422, "invalid_request")
    error(api.post(Role.QA, "/users/999999/qualifications", body), 404, "not_found")
    assert not ok(api.get(Role.QA, "/qualifications", params={"user_id": technician.id}))


def test_sec5_an_unqualified_reviewer_cannot_review_a_qc_result(api):
    batch, _ = api.formulated()
    result = ok(api.result(batch["id"], "viability", 90.0), 201)
    _, headers = _unqualified(api, Role.QA)
    signatures = _count(api, Signature)
    detail = error(api.review(result["id"], headers=headers), 403, "not_qualified")
    assert "review QC results" in detail
    assert _count(api, Signature) == signatures
    ok(api.review(result["id"]))  # a qualified reviewer (the builder's) may


def test_sec5_an_unqualified_witness_cannot_witness_an_infusion(api):
    _, codes, who = ready(api)
    witness = make_user(api.db, api.settings, roles=[Role.CLINICIAN], qualified=False)
    infusions = _count(api, Infusion)
    detail = error(infuse(api, check(who, codes[0]), witness), 403, "not_qualified")
    assert "witness an infusion" in detail and witness.username in detail
    assert _count(api, Infusion) == infusions
    (refusal,) = _refusals(api)[-1:]
    assert refusal.actor == witness.username and codes[0] in (refusal.new_values or "")
    ok(_grant(api, witness, ["bedside_witness"]), 201)
    ok(infuse(api, check(who, codes[0]), witness), 201)

"""The physician's acceptance is an e-signature (SIG-6): by a clinician with their own password,
meaning `approved`, refused when there is nothing to accept, dated no earlier than what it covers,
and counted only when signed after the conditional release or failing result it covers and still
matching its record."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from app.audit.actions import AuditAction
from app.auth.permissions import Role
from app.release.models import PhysicianAcceptance
from tests.clinic.test_bedside import check, patient, to_clinic, verify
from tests.helpers import PASSWORD, audit_events, drop_append_only, error, make_user, ok
from tests.release.support import close_deviations, counts, lift_hold, new_values, status_of

PATH = "/batches/{}/physician-acceptance"


def body(**overrides) -> dict:
    return {
        "physician_name": "Dr Nobody",
        "accepted_at": datetime.now(UTC).isoformat(),
        "note": "Patient informed",
        "password": PASSWORD,
    } | overrides


def conditional(api) -> tuple[dict, list[str]]:
    """A batch conditionally released (sterility pending), its first dose at the clinic."""
    batch, codes = api.released("conditional_release", pending=("sterility",))
    to_clinic(api, codes[0])
    return batch, codes


def test_sig6_the_acceptance_is_signed_approved_by_the_authenticated_clinician(api):
    """Finding 6: "Dr Nobody" typed by any clinician was accepted. The name stays as recorded
    text; the signature names the clinician who re-entered their password."""
    batch, codes = conditional(api)
    who = patient(api, batch)
    error(verify(api, check(who, codes[0])), 409, "not_released")
    clinician = make_user(api.db, api.settings, roles=[Role.CLINICIAN])
    headers = api.headers_for(clinician)
    path = "/api/v1" + PATH.format(batch["id"])
    recorded = ok(api.client.post(path, json=body(), headers=headers), 201)
    assert recorded["physician_name"] == "Dr Nobody"
    signature = recorded["signature"]
    assert signature["meaning"] == "approved" and signature["matches"] is True
    assert signature["user_id"] == clinician.id and signature["signed_by"] == clinician.full_name
    assert signature["record_type"] == "physician_acceptance"
    ok(verify(api, check(who, codes[0])))


def test_sig6_a_wrong_password_records_no_acceptance_and_counts_as_a_failure(api):
    batch, _ = conditional(api)
    clinician = make_user(api.db, api.settings, roles=[Role.CLINICIAN])
    headers = api.headers_for(clinician)
    path = "/api/v1" + PATH.format(batch["id"])
    refused = api.client.post(path, json=body(password="not-my-password"), headers=headers)
    error(refused, 401, "invalid_credentials")
    assert ok(api.get(Role.QA, PATH.format(batch["id"]))) == []
    (failed,) = [
        e for e in audit_events(api.db, AuditAction.SIGNATURE_FAILED) if e.entity_id == clinician.id
    ]
    assert new_values(failed)["record_type"] == "physician_acceptance"


def test_sig6_nothing_to_accept_is_refused_in_any_state_before_a_decision_or_failure(api):
    """Finding 6: an acceptance recorded while the batch was still `registered` counted later."""
    registered = api.batch()
    formulated, _ = api.formulated()
    api.pass_qc(formulated["id"])
    for batch in (registered, formulated):
        before = counts(api, batch["id"])
        detail = error(
            api.post(Role.CLINICIAN, PATH.format(batch["id"]), body()), 409, "nothing_to_accept"
        )
        assert batch["batch_number"] in detail
        assert counts(api, batch["id"]) == before


def test_sig6_accepted_at_is_neither_in_the_future_nor_before_what_it_covers(api):
    batch, _ = conditional(api)
    path = PATH.format(batch["id"])
    for moment in (datetime.now(UTC) + timedelta(days=1), datetime.now(UTC) - timedelta(days=1)):
        detail = error(
            api.post(Role.CLINICIAN, path, body(accepted_at=moment.isoformat())),
            422,
            "invalid_request",
        )
        assert "future" in detail or "conditional release" in detail
    assert ok(api.get(Role.QA, path)) == []


def test_sig6_an_acceptance_covers_only_the_failure_it_was_signed_after(api):
    """Accepted for a failing endotoxin result, then endotoxin corrected and failing again: the
    new failing result was not seen, so the batch is not supplied until accepted again."""
    batch, codes = api.released()
    to_clinic(api, codes[0])
    who = patient(api, batch)
    for factor in (2, 3):  # a failing correction, accepted; then another, not accepted
        (row,) = [r for r in api.qc(batch["id"])["tests"] if r["test"] == "endotoxin"]
        failing = {"corrects": row["result_id"], "reason": "Retest", "value": row["max"] * factor}
        assert ok(api.result(batch["id"], "endotoxin", **failing), 201)["outcome"] == "fail"
        if factor == 2:
            ok(api.post(Role.CLINICIAN, PATH.format(batch["id"]), body()), 201)
        close_deviations(api, batch["id"])  # QA assessed the failure: the hold is lifted
        if status_of(api, batch["id"]) == "on_hold":
            lift_hold(api, batch["id"])
        response = verify(api, check(who, codes[0]))
        if factor == 2:
            ok(response)
        else:
            assert "acceptance of these results not recorded" in error(
                response, 409, "not_released"
            )


def test_sig6_an_acceptance_changed_after_signing_no_longer_counts(api, db):
    batch, codes = conditional(api)
    who = patient(api, batch)
    recorded = ok(api.post(Role.CLINICIAN, PATH.format(batch["id"]), body()), 201)
    ok(verify(api, check(who, codes[0])))
    drop_append_only(db, "physician_acceptance")
    db.execute(
        update(PhysicianAcceptance)
        .where(PhysicianAcceptance.id == recorded["id"])
        .values(physician_name="Dr Somebody Else")
    )
    db.commit()
    (shown,) = ok(api.get(Role.QA, PATH.format(batch["id"])))
    assert shown["signature"]["matches"] is False
    error(verify(api, check(who, codes[0])), 409, "not_released")

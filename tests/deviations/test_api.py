"""Deviations through the HTTP API (DESIGN §4 on_hold, §7 SIG-1..5, QC-2, AUD-1): opening holds the
batch, the investigation is audited, QA closes with an e-signature once investigation, root cause
and CAPA are recorded, and closing the batch's last unresolved deviation lifts its hold."""

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlmodel import Session, col

from app.audit.actions import AuditAction
from app.audit.models import AuditEvent
from app.auth import service as auth
from app.auth.models import User
from app.auth.permissions import Role
from app.batches.models import Batch
from app.deviations import service as deviations
from app.deviations.models import Deviation
from app.signatures.models import Signature
from app.signatures.service import record_hash
from tests.helpers import PASSWORD, Api, audit_events, failing_value, make_user
from tests.helpers import error as _error
from tests.helpers import ok as _ok

WRONG = "not-the-password-42"
INVESTIGATED = {
    "investigation": "Incubator 3 door found ajar for 40 minutes during the night shift.",
    "root_cause": "Door latch worn; alarm delay set too long.",
    "capa": "Latch replaced; door alarm delay reduced to 2 minutes; staff briefed.",
}

# -- helpers ---------------------------------------------------------------------------------------


def _open(api: Api, batch_id: int, role: Role = Role.TECHNICIAN, **body: Any) -> dict[str, Any]:
    body = {"kind": "temperature", "description": "Incubator 3 above 38.5 C overnight."} | body
    return _ok(api.post(role, f"/batches/{batch_id}/deviations", body), 201)


def _patch(api: Api, deviation_id: int, body: Any, role: Role = Role.TECHNICIAN):
    return api.call(role, "PATCH", f"/deviations/{deviation_id}", json=body)


def _close(api: Api, deviation_id: int, role: Role = Role.QA, **body: Any):
    return api.post(role, f"/deviations/{deviation_id}/close", {"password": PASSWORD} | body)


def _investigated(api: Api, batch_id: int) -> dict[str, Any]:
    """A deviation on the batch with its investigation, root cause and CAPA recorded."""
    deviation = _open(api, batch_id)
    return _ok(_patch(api, deviation["id"], INVESTIGATED))


def _listed(api: Api, batch_id: int) -> dict[int, dict[str, Any]]:
    return {d["id"]: d for d in _ok(api.get(Role.QA, f"/batches/{batch_id}/deviations"))}


def _batch(db: Session, batch_id: int) -> Batch:
    """The batch row as it is now (the API changed it in its own sessions)."""
    batch = db.get(Batch, batch_id, populate_existing=True)
    assert batch is not None
    return batch


def _status(api: Api, batch_id: int) -> str:
    return _ok(api.get(Role.TECHNICIAN, f"/batches/{batch_id}"))["status"]


def _signed_in(api: Api, *roles: Role) -> None:
    """Log the users of `roles` in now, so their own login events precede a count."""
    for role in roles:
        api.as_role(role)


def _counts(db: Session) -> dict[str, int]:
    """Rows a refused request must not add."""
    return {
        table.__name__: db.execute(select(func.count()).select_from(table)).scalar_one()
        for table in (Deviation, Signature, AuditEvent)
    }


def _new(event: AuditEvent) -> dict[str, Any]:
    return json.loads(event.new_values or "{}")


def _old(event: AuditEvent) -> dict[str, Any]:
    return json.loads(event.old_values or "{}")


def _events(db: Session, action: AuditAction, entity_id: int | None) -> list[AuditEvent]:
    return [e for e in audit_events(db, action) if e.entity_id == entity_id]


# -- opening ---------------------------------------------------------------------------------------


def test_opening_a_deviation_holds_the_batch_and_remembers_the_status_it_was_held_from(api, db):
    """DESIGN §4: an open deviation puts the batch on_hold (no step but discard); AUD-1."""
    batch, flasks = api.expanded_batch()
    deviation = _open(api, batch["id"], kind="equipment", description="Incubator alarm.")
    assert deviation["status"] == "open" and deviation["kind"] == "equipment"
    assert deviation["batch_id"] == batch["id"]
    assert deviation["batch_number"] == batch["batch_number"]
    assert re.fullmatch(r"DEV\d{2}-\d{5}", deviation["number"])
    assert deviation["description"] == "Incubator alarm."
    assert deviation["qc_result_id"] is None and deviation["signatures"] == []
    assert deviation["closed_by"] is None and deviation["closed_at"] is None

    assert _status(api, batch["id"]) == "on_hold"
    assert _batch(db, batch["id"]).held_from == "expansion"
    refused = api.step(batch["id"], "passage", [flasks[0]], ["flask"])
    assert refused.status_code == 409 and "on_hold" in refused.json()["detail"]

    (opened,) = _events(db, AuditAction.DEVIATION_OPENED, deviation["id"])
    assert _new(opened)["number"] == deviation["number"]
    assert _new(opened)["batch_id"] == batch["id"]
    held = _events(db, AuditAction.BATCH_STATUS_CHANGED, batch["id"])[-1]
    assert (_old(held)["status"], _new(held)["status"]) == ("expansion", "on_hold")
    assert deviation["number"] in (held.reason or "")


@pytest.mark.parametrize("role", [Role.TECHNICIAN, Role.QA, Role.CLINICIAN])
def test_every_role_on_the_batch_may_open_a_deviation(api, role):
    batch = api.batch()
    deviation = _open(api, batch["id"], role=role)
    opener = api.get(role, "/auth/me").json()["username"]
    assert deviation["opened_by"] == opener
    assert _status(api, batch["id"]) == "on_hold"


def test_admin_cannot_open_a_deviation_and_nothing_changes(api, db):
    """DESIGN §11: admin holds no batch permission."""
    batch = api.batch()
    _signed_in(api, Role.ADMIN)
    before = _counts(db)
    body = {"kind": "process", "description": "x"}
    _error(api.post(Role.ADMIN, f"/batches/{batch['id']}/deviations", body), 403, "forbidden")
    _error(api.get(Role.ADMIN, "/deviations"), 403, "forbidden")
    assert _counts(db) == before
    assert _status(api, batch["id"]) == "registered"


def test_a_second_deviation_on_a_held_batch_keeps_the_original_held_from(api, db):
    batch = api.batch()
    _open(api, batch["id"])
    _open(api, batch["id"], kind="material")
    assert _status(api, batch["id"]) == "on_hold"
    assert _batch(db, batch["id"]).held_from == "registered"
    holds = [
        e
        for e in _events(db, AuditAction.BATCH_STATUS_CHANGED, batch["id"])
        if _new(e)["status"] == "on_hold"
    ]
    assert len(holds) == 1


def test_a_deviation_on_a_destroyed_batch_is_recorded_but_does_not_revive_it(api):
    """DESIGN §4: final states are final; the deviation is still recorded."""
    batch = api.batch()
    _ok(api.post(Role.QA, f"/batches/{batch['id']}/destroy", {"reason": "consent withdrawn"}))
    deviation = _open(api, batch["id"])
    assert deviation["status"] == "open"
    assert _status(api, batch["id"]) == "destroyed"


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "process"},  # no description
        {"kind": "process", "description": ""},
        {"kind": "gossip", "description": "x"},
        {"kind": "process", "description": "x", "status": "closed"},  # unknown field
        {"kind": "process", "description": "x" * 4001},
        {"kind": "process", "description": "x" * 100_000},  # over the body limit
    ],
)
def test_rel_an_invalid_deviation_is_refused_and_nothing_changes(api, db, body):
    batch = api.batch()
    before = _counts(db)
    response = api.post(Role.TECHNICIAN, f"/batches/{batch['id']}/deviations", body)
    assert response.status_code in (413, 422), response.text
    assert set(response.json()) >= {"error", "detail"}
    assert _counts(db) == before
    assert _status(api, batch["id"]) == "registered"


def test_rel_a_deviation_on_an_unknown_batch_is_404_and_nothing_changes(api, db):
    _signed_in(api, Role.TECHNICIAN, Role.QA)
    before = _counts(db)
    body = {"kind": "process", "description": "x"}
    _error(api.post(Role.TECHNICIAN, "/batches/999999/deviations", body), 404, "not_found")
    _error(api.get(Role.QA, "/batches/999999/deviations"), 404, "not_found")
    _error(_patch(api, 999999, {"capa": "x"}), 404, "not_found")
    _error(_close(api, 999999, **INVESTIGATED), 404, "not_found")
    assert _counts(db) == before


# -- investigation ---------------------------------------------------------------------------------


def test_aud1_recording_the_investigation_is_audited_with_old_and_new_values(api, db):
    """AUD-1: every change keeps old and new values; an open deviation becomes investigating."""
    batch = api.batch()
    deviation = _open(api, batch["id"])
    first = _ok(_patch(api, deviation["id"], {"investigation": "Logger data pulled."}))
    assert first["status"] == "investigating"
    assert first["investigation"] == "Logger data pulled."
    assert first["root_cause"] is None and first["capa"] is None
    (updated,) = _events(db, AuditAction.DEVIATION_UPDATED, deviation["id"])
    assert _old(updated) == {"investigation": None}
    assert _new(updated) == {"investigation": "Logger data pulled."}
    (moved,) = _events(db, AuditAction.DEVIATION_STATUS_CHANGED, deviation["id"])
    assert (_old(moved), _new(moved)) == ({"status": "open"}, {"status": "investigating"})

    second = _ok(
        _patch(
            api,
            deviation["id"],
            {"investigation": "Logger data and door log pulled.", "root_cause": "Worn latch."},
            role=Role.QA,
        )
    )
    assert second["status"] == "investigating"
    assert second["root_cause"] == "Worn latch."
    later = _events(db, AuditAction.DEVIATION_UPDATED, deviation["id"])[-1]
    assert _old(later) == {"investigation": "Logger data pulled.", "root_cause": None}
    assert _new(later) == {
        "investigation": "Logger data and door log pulled.",
        "root_cause": "Worn latch.",
    }
    assert later.actor == api.get(Role.QA, "/auth/me").json()["username"]
    # Already investigating: no second status change.
    assert len(_events(db, AuditAction.DEVIATION_STATUS_CHANGED, deviation["id"])) == 1


@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.ADMIN])
def test_only_technicians_and_qa_record_the_investigation(api, db, role):
    batch = api.batch()
    deviation = _open(api, batch["id"])
    _signed_in(api, role)
    before = _counts(db)
    _error(_patch(api, deviation["id"], {"capa": "x"}, role=role), 403, "forbidden")
    assert _counts(db) == before
    assert _listed(api, batch["id"])[deviation["id"]]["capa"] is None


@pytest.mark.parametrize("body", [{}, {"capa": None}, {"status": "closed"}, {"capa": ""}])
def test_rel_an_empty_or_invalid_update_is_refused_and_nothing_changes(api, db, body):
    batch = api.batch()
    deviation = _open(api, batch["id"])
    before = _counts(db)
    _error(_patch(api, deviation["id"], body), 422, "invalid_request")
    assert _counts(db) == before
    assert _listed(api, batch["id"])[deviation["id"]]["status"] == "open"


# -- closing ---------------------------------------------------------------------------------------


def test_closing_needs_qa_and_a_technician_is_refused_without_change(api, db):
    """DESIGN §7: QA closes deviations."""
    batch = api.batch()
    deviation = _investigated(api, batch["id"])
    _signed_in(api, Role.CLINICIAN, Role.ADMIN)
    before = _counts(db)
    for role in (Role.TECHNICIAN, Role.CLINICIAN, Role.ADMIN):
        _error(_close(api, deviation["id"], role=role), 403, "forbidden")
    assert _counts(db) == before
    assert _listed(api, batch["id"])[deviation["id"]]["status"] == "investigating"
    assert _status(api, batch["id"]) == "on_hold"


def test_sig1_closing_needs_the_password_even_with_a_valid_session(api, db):
    """SIG-1: the bearer token is valid, yet a wrong password signs nothing; SIG-5: audited."""
    batch = api.batch()
    deviation = _investigated(api, batch["id"])
    qa = api.get(Role.QA, "/auth/me").json()
    before = _counts(db)
    detail = _error(_close(api, deviation["id"], password=WRONG), 401, "invalid_credentials")
    assert "nothing was signed" in detail
    # The session itself is still good: the refusal was the signature's, not the token's.
    assert _ok(api.get(Role.QA, "/auth/me"))["username"] == qa["username"]
    after = _counts(db)
    assert after["Deviation"] == before["Deviation"] and after["Signature"] == before["Signature"]
    assert after["AuditEvent"] == before["AuditEvent"] + 1  # only the failed attempt
    (failed,) = _events(db, AuditAction.SIGNATURE_FAILED, qa["id"])
    assert failed.actor == qa["username"]
    assert _new(failed) == {
        "failed_attempts": 1,
        "record_type": "deviation",
        "record_id": deviation["id"],
        "meaning": "approved",
    }
    shown = _listed(api, batch["id"])[deviation["id"]]
    assert shown["status"] == "investigating" and shown["signatures"] == []
    assert _status(api, batch["id"]) == "on_hold"

    # A missing password is not even a signing attempt.
    _error(api.post(Role.QA, f"/deviations/{deviation['id']}/close", {}), 422, "invalid_request")
    assert len(_events(db, AuditAction.SIGNATURE_FAILED, qa["id"])) == 1


def test_sig1_a_wrong_password_discards_investigation_fields_sent_with_it(api, db):
    """ADR 0004: the refused request changes nothing; only its failure is recorded."""
    batch = api.batch()
    deviation = _open(api, batch["id"])
    _error(_close(api, deviation["id"], password=WRONG, **INVESTIGATED), 401, "invalid_credentials")
    shown = _listed(api, batch["id"])[deviation["id"]]
    assert shown["status"] == "open"
    assert (shown["investigation"], shown["root_cause"], shown["capa"]) == (None, None, None)
    assert _events(db, AuditAction.DEVIATION_UPDATED, deviation["id"]) == []


@pytest.mark.parametrize("missing", ["investigation", "root_cause", "capa"])
def test_closing_is_refused_until_investigation_root_cause_and_capa_are_recorded(api, db, missing):
    batch = api.batch()
    deviation = _open(api, batch["id"])
    given = {field: text for field, text in INVESTIGATED.items() if field != missing}
    _ok(_patch(api, deviation["id"], given))
    _signed_in(api, Role.QA)
    before = _counts(db)
    detail = _error(_close(api, deviation["id"]), 422, "invalid_request")
    assert missing in detail
    assert _counts(db) == before  # no signature, no signature.failed, no status change
    shown = _listed(api, batch["id"])[deviation["id"]]
    assert shown["status"] == "investigating" and shown["signatures"] == []
    assert _status(api, batch["id"]) == "on_hold"


def test_a_refused_closure_does_not_keep_the_fields_it_completed(api, db):
    """Completing two of the three fields in a refused closure changes nothing."""
    batch = api.batch()
    deviation = _open(api, batch["id"])
    _signed_in(api, Role.QA)
    before = _counts(db)
    partial = {"investigation": INVESTIGATED["investigation"], "capa": INVESTIGATED["capa"]}
    assert "root_cause" in _error(_close(api, deviation["id"], **partial), 422, "invalid_request")
    assert _counts(db) == before
    shown = _listed(api, batch["id"])[deviation["id"]]
    assert shown["status"] == "open" and shown["investigation"] is None


def test_closing_may_complete_the_investigation_in_the_same_call(api, db):
    """QA records the three fields and signs at once; the closure is signed `approved`."""
    batch, _ = api.expanded_batch()
    deviation = _open(api, batch["id"])
    closed = _ok(_close(api, deviation["id"], **INVESTIGATED))
    qa = api.get(Role.QA, "/auth/me").json()
    assert closed["status"] == "closed"
    assert {field: closed[field] for field in INVESTIGATED} == INVESTIGATED
    assert closed["closed_by"] == qa["username"]
    assert closed["closed_at"] is not None
    (signature,) = closed["signatures"]
    assert signature["meaning"] == "approved" and signature["matches"] is True
    (updated,) = _events(db, AuditAction.DEVIATION_UPDATED, deviation["id"])
    assert _new(updated) == INVESTIGATED
    moves = _events(db, AuditAction.DEVIATION_STATUS_CHANGED, deviation["id"])
    assert [_new(e)["status"] for e in moves] == ["investigating", "closed"]


def test_closing_the_last_deviation_returns_the_batch_to_its_previous_status(api, db):
    """DESIGN §4: on_hold and back, to exactly where it was; the batch can go on."""
    batch, flasks = api.expanded_batch()
    deviation = _investigated(api, batch["id"])
    assert _status(api, batch["id"]) == "on_hold"
    _ok(_close(api, deviation["id"]))
    assert _status(api, batch["id"]) == "expansion"
    assert _batch(db, batch["id"]).held_from is None
    lifted = _events(db, AuditAction.BATCH_STATUS_CHANGED, batch["id"])[-1]
    assert (_old(lifted)["status"], _new(lifted)["status"]) == ("on_hold", "expansion")
    assert deviation["number"] in (lifted.reason or "")
    assert api.step(batch["id"], "passage", [flasks[0]], ["flask"]).status_code == 201


def test_a_quarantined_batch_returns_to_quarantine_when_its_deviation_closes(api, db):
    batch, _ = api.formulated(doses=1)
    deviation = _investigated(api, batch["id"])
    assert _batch(db, batch["id"]).held_from == "quarantine"
    _ok(_close(api, deviation["id"]))
    assert _status(api, batch["id"]) == "quarantine"


def test_closing_one_of_two_deviations_leaves_the_batch_on_hold(api):
    batch = api.batch()
    first = _investigated(api, batch["id"])
    second = _investigated(api, batch["id"])
    _ok(_close(api, first["id"]))
    assert _status(api, batch["id"]) == "on_hold"
    _ok(_close(api, second["id"]))
    assert _status(api, batch["id"]) == "registered"


def test_a_closed_deviation_cannot_be_updated_or_closed_again(api, db):
    batch = api.batch()
    deviation = _investigated(api, batch["id"])
    _ok(_close(api, deviation["id"]))
    before = _counts(db)
    _error(_patch(api, deviation["id"], {"capa": "rewritten later"}), 409, "invalid_state")
    _error(_patch(api, deviation["id"], {"capa": "rewritten"}, role=Role.QA), 409, "invalid_state")
    _error(_close(api, deviation["id"]), 409, "invalid_state")
    _error(_close(api, deviation["id"], capa="rewritten"), 409, "invalid_state")
    assert _counts(db) == before
    shown = _listed(api, batch["id"])[deviation["id"]]
    assert shown["capa"] == INVESTIGATED["capa"] and len(shown["signatures"]) == 1
    assert _status(api, batch["id"]) == "registered"


# -- out-of-specification results (QC-2) -----------------------------------------------------------


def test_qc2_an_out_of_specification_result_opens_an_oos_deviation_and_holds_the_batch(api, db):
    batch, _ = api.formulated()
    row = next(r for r in api.qc(batch["id"])["tests"] if r["min"] is not None)
    result = _ok(api.result(batch["id"], row["test"], failing_value(row)), 201)
    assert result["outcome"] == "fail"
    (deviation,) = _listed(api, batch["id"]).values()
    assert deviation["kind"] == "oos" and deviation["status"] == "open"
    assert deviation["qc_result_id"] == result["id"]
    assert deviation["description"].startswith("Out of specification")
    assert _status(api, batch["id"]) == "on_hold"
    assert _batch(db, batch["id"]).held_from == "quarantine"
    (opened,) = _events(db, AuditAction.DEVIATION_OPENED, deviation["id"])
    assert _new(opened)["qc_result_id"] == result["id"]
    # QA can no longer release it; closing the deviation brings it back to quarantine.
    assert api.decide(batch["id"]).status_code == 409
    _ok(_close(api, deviation["id"], **INVESTIGATED))
    assert _status(api, batch["id"]) == "quarantine"


def test_qc2_a_passing_result_opens_no_deviation(api):
    batch, _ = api.formulated(doses=1)
    api.pass_qc(batch["id"])
    assert _listed(api, batch["id"]) == {}
    assert _status(api, batch["id"]) == "quarantine"


# -- listing ---------------------------------------------------------------------------------------


def test_unresolved_lists_only_open_and_investigating_deviations(api):
    batch = api.batch()
    opened = _open(api, batch["id"])
    investigating = _investigated(api, batch["id"])
    closed = _investigated(api, batch["id"])
    _ok(_close(api, closed["id"]))
    unresolved = {d["id"]: d for d in _ok(api.get(Role.QA, "/deviations?unresolved=true"))}
    assert opened["id"] in unresolved and investigating["id"] in unresolved
    assert closed["id"] not in unresolved
    assert {d["status"] for d in unresolved.values()} <= {"open", "investigating"}
    everything = [d["id"] for d in _ok(api.get(Role.TECHNICIAN, "/deviations"))]
    assert {opened["id"], investigating["id"], closed["id"]} <= set(everything)
    assert everything == sorted(everything)  # oldest first
    assert list(_listed(api, batch["id"])) == [opened["id"], investigating["id"], closed["id"]]


# -- signatures (SIG-2, SIG-3, SIG-5) --------------------------------------------------------------


def test_sig2_the_closure_shows_the_signers_printed_name_id_time_and_meaning(api, db, settings):
    """SIG-2: printed name, username, user id, UTC time, meaning; shown with the record."""
    qa = auth.create_user(
        db,
        settings,
        actor="test",
        username="qa-quinn",
        full_name="Quinn O'Hara-Ndiaye",
        password=PASSWORD,
        roles=[Role.QA],
    )
    db.commit()
    headers = api.headers_for(qa)
    batch = api.batch()
    deviation = _investigated(api, batch["id"])
    before = datetime.now(UTC)
    response = api.client.post(
        f"/api/v1/deviations/{deviation['id']}/close",
        headers=headers,
        json={"password": PASSWORD, "meaning": "reviewed", "comment": "Reviewed with the PI."},
    )
    after = datetime.now(UTC)
    closed = _ok(response)
    (signature,) = closed["signatures"]
    assert signature["signed_by"] == "Quinn O'Hara-Ndiaye"
    assert signature["username"] == "qa-quinn" and signature["user_id"] == qa.id
    assert signature["meaning"] == "reviewed"
    assert signature["comment"] == "Reviewed with the PI."
    assert signature["record_type"] == "deviation"
    assert signature["record_id"] == deviation["id"]
    signed_at = datetime.fromisoformat(signature["signed_at"])
    assert signed_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= signed_at <= after + timedelta(seconds=1)
    assert re.fullmatch(r"[0-9a-f]{64}", signature["record_hash"])
    assert signature["matches"] is True
    # The hash is that of the deviation's canonical content as stored.
    stored = db.get(Deviation, deviation["id"], populate_existing=True)
    assert stored is not None
    assert signature["record_hash"] == record_hash(deviations.content(stored))
    # The same manifestation wherever the record is shown.
    assert _listed(api, batch["id"])[deviation["id"]]["signatures"] == [signature]
    everywhere = {d["id"]: d for d in _ok(api.get(Role.TECHNICIAN, "/deviations"))}
    assert everywhere[deviation["id"]]["signatures"] == [signature]
    # AUD-1: the signature is audited with its meaning and printed name.
    (applied,) = _events(db, AuditAction.SIGNATURE_APPLIED, signature["id"])
    assert applied.actor_id == qa.id
    assert _new(applied)["printed_name"] == "Quinn O'Hara-Ndiaye"
    assert _new(applied)["meaning"] == "reviewed"
    assert _new(applied)["record_hash"] == signature["record_hash"]


def test_rel_an_unknown_meaning_is_refused_and_nothing_is_signed(api, db):
    batch = api.batch()
    deviation = _investigated(api, batch["id"])
    _signed_in(api, Role.QA)
    before = _counts(db)
    _error(_close(api, deviation["id"], meaning="liked"), 422, "invalid_request")
    assert _counts(db) == before


def test_sig3_a_closed_deviation_changed_behind_the_apps_back_no_longer_matches(api, db):
    """SIG-3: the record shows whether it still hashes to what was signed."""
    batch = api.batch()
    deviation = _investigated(api, batch["id"])
    _ok(_close(api, deviation["id"]))
    assert _listed(api, batch["id"])[deviation["id"]]["signatures"][0]["matches"] is True

    db.execute(
        update(Deviation)
        .where(col(Deviation.id) == deviation["id"])
        .values(root_cause="Operator error (edited after signing).")
    )
    db.flush()
    (signature,) = _listed(api, batch["id"])[deviation["id"]]["signatures"]
    assert signature["matches"] is False
    unresolved_view = {d["id"]: d for d in _ok(api.get(Role.QA, "/deviations"))}
    assert unresolved_view[deviation["id"]]["signatures"][0]["matches"] is False

    # Put back exactly what was signed: it matches again (the hash is of the content).
    db.execute(
        update(Deviation)
        .where(col(Deviation.id) == deviation["id"])
        .values(root_cause=INVESTIGATED["root_cause"])
    )
    db.flush()
    assert _listed(api, batch["id"])[deviation["id"]]["signatures"][0]["matches"] is True


def test_sig5_repeated_wrong_signature_passwords_lock_the_account(api, db, settings):
    """SIG-5: each failure audited with its count; at the threshold the account locks, its
    session ends and it can neither log in nor sign."""
    threshold = settings.lockout_threshold
    qa = make_user(db, settings, roles=[Role.QA])
    headers = api.headers_for(qa)
    batch = api.batch()
    deviation = _investigated(api, batch["id"])
    path = f"/api/v1/deviations/{deviation['id']}/close"
    wrong = {"password": WRONG} | INVESTIGATED

    for attempt in range(1, threshold + 1):
        response = api.client.post(path, headers=headers, json=wrong)
        _error(response, 401, "invalid_credentials")
        failures = _events(db, AuditAction.SIGNATURE_FAILED, qa.id)
        assert [_new(e)["failed_attempts"] for e in failures] == list(range(1, attempt + 1))
        locked = db.get(User, qa.id, populate_existing=True)
        assert locked is not None and locked.locked == (attempt == threshold)

    (lock,) = _events(db, AuditAction.USER_LOCKED, qa.id)
    assert _new(lock)["failed_attempts"] == threshold
    # The session it signed with is over, and even the right password does not log in.
    _error(api.client.get("/api/v1/auth/me", headers=headers), 401, "not_authenticated")
    response = api.client.post(path, headers=headers, json={"password": PASSWORD})
    _error(response, 401, "not_authenticated")
    _error(api.login(qa.username), 401, "account_locked")
    shown = _listed(api, batch["id"])[deviation["id"]]
    assert shown["status"] == "investigating" and shown["signatures"] == []
    assert _status(api, batch["id"]) == "on_hold"


def test_sig5_failed_signatures_and_failed_logins_share_one_count(api, db, settings):
    """SIG-5: the threshold counts every wrong password, at login or at signing."""
    qa = make_user(db, settings, roles=[Role.QA])
    headers = api.headers_for(qa)
    batch = api.batch()
    deviation = _investigated(api, batch["id"])
    for _ in range(settings.lockout_threshold - 1):
        response = api.client.post(
            f"/api/v1/deviations/{deviation['id']}/close", headers=headers, json={"password": WRONG}
        )
        _error(response, 401, "invalid_credentials")
    _error(api.login(qa.username, WRONG), 401, "invalid_credentials")
    fresh = db.get(User, qa.id, populate_existing=True)
    assert fresh is not None and fresh.locked
    _error(api.login(qa.username), 401, "account_locked")

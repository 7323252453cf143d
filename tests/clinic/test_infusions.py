"""The two-person infusion record (COI-6, issue 6 §5): `POST /infusions` repeats every bedside
check, needs a second clinician who witnesses it with their own password, infuses the dose once
and completes the batch when nothing is left; dispatch and receipt of doses with their
temperature (CLN-3), the first dispatch issuing the batch."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.auth.models import User
from app.auth.permissions import Role
from app.clinic.models import Infusion
from app.gmp_settings import service as gmp_settings
from tests.clinic.test_bedside import (
    check,
    clinician,
    custody,
    dispatch,
    infuse,
    mangled,
    patient,
    ready,
    refused,
    snapshot,
    to_clinic,
    unknown_code,
    verify,
)
from tests.helpers import Api, ago, audit_events, error, iso, make_legacy_user, make_user, ok
from tests.release.support import accept, close_deviations, new_values, status_of


def statuses(api: Api, batch_id: int) -> dict[str, str]:
    shown = ok(api.get(Role.QA, f"/batches/{batch_id}"))
    return {v["code"]: v["status"] for v in shown["vessels"] if v["is_dose"]}


def user(api: Api, user_id: int) -> User:
    found = api.db.get(User, user_id, populate_existing=True)
    assert found is not None
    return found


def unchanged(api: Api, batch_id: int, before: dict[str, Any]) -> None:
    """Nothing of the batch, its doses or the infusions changed (the audit trail aside)."""
    after = snapshot(api, batch_id)
    assert after | {"audit": None} == before | {"audit": None}


# -- the record ----------------------------------------------------------------------------------


def test_coi6_an_infusion_is_recorded_by_two_clinicians(api):
    batch, codes, who = ready(api)
    nurse, headers = clinician(api)
    witness, _ = clinician(api)
    given = datetime.now(UTC)  # AUD-6: not before the dose's receipt, received just now
    body = check(who, codes[0]) | {
        "volume_ml": 48.5,
        "observations": "Infused over 30 min; vitals stable",
        "adverse_reactions": "Mild flushing, resolved",
    }
    record = ok(infuse(api, body, witness, headers=headers, administered_at=iso(given)), 201)
    assert record | {"id": 0, "recorded_at": None} == {
        "id": 0,
        "dose_code": codes[0],
        "batch_id": batch["id"],
        "patient_id": who["id"],
        "administered_at": record["administered_at"],
        "administered_by": nurse.username,
        "witness": witness.username,
        "volume_ml": 48.5,
        "observations": "Infused over 30 min; vitals stable",
        "adverse_reactions": "Mild flushing, resolved",
        "recorded_at": None,
        "batch_status": "issued",  # the second dose is left
        "late": False,
        "late_reason": None,
    }
    assert datetime.fromisoformat(record["administered_at"]) == given
    assert datetime.fromisoformat(record["recorded_at"]) > given
    assert statuses(api, batch["id"]) == {codes[0]: "infused", codes[1]: "active"}

    row = api.db.execute(select(Infusion).where(Infusion.id == record["id"])).scalar_one()
    assert (row.administered_by, row.witness_id) == (nurse.id, witness.id)
    assert row.dose_id == ok(api.post(Role.CLINICIAN, "/scan", {"code": codes[0]}))["vessel"]["id"]

    (recorded,) = audit_events(api.db, "infusion.recorded")
    assert recorded.scope == who["coi"] and recorded.actor == nurse.username
    assert recorded.entity_type == "infusion" and recorded.entity_id == record["id"]
    values = new_values(recorded)
    assert values["witness"] == witness.username and values["dose_code"] == codes[0]
    assert values["wristband_mrn"] == who["mrn"] and values["birth_date"] == who["birth_date"]
    assert values["volume_ml"] == 48.5 and values["adverse_reactions"] == "Mild flushing, resolved"
    (changed,) = [
        e
        for e in audit_events(api.db, "vessel.status_changed")
        if new_values(e).get("status") == "infused"
    ]
    assert changed.actor == nurse.username and changed.scope == who["coi"]
    # The record's own bedside check is not a separate verification event.
    assert audit_events(api.db, "infusion.verified") == []
    assert ok(api.get(Role.QA, "/audit/verify"))["ok"]


def test_coi6_a_dose_is_infused_only_once(api):
    batch, codes, who = ready(api)
    witness, _ = clinician(api)
    ok(infuse(api, check(who, codes[0]), witness), 201)
    _, headers = clinician(api)
    detail, _ = refused(
        api,
        lambda: infuse(api, check(who, codes[0]), witness, headers=headers),
        409,
        "already_infused",
        batch_id=batch["id"],
        scope=who["coi"],
        purpose="infusion",
    )
    assert codes[0] in detail
    assert len(api.db.execute(select(Infusion)).scalars().all()) == 1


def test_coi6_the_record_repeats_every_bedside_check(api):
    batch, codes = api.released(doses=3)
    to_clinic(api, codes[0])
    dispatch(api, codes[1])  # in transit
    who, stranger = patient(api, batch), api.patient()
    witness, _ = clinician(api)
    cases = [
        (check(who, mangled(codes[0])), 422, "invalid_code", "global"),
        (check(who, unknown_code(codes[0])), 404, "not_found", "global"),
        (check(stranger, codes[0]), 409, "identity_mismatch", who["coi"]),
        (check(who, codes[0], birth_date="1990-05-18"), 409, "identity_mismatch", who["coi"]),
        (check(who, codes[1]), 409, "not_at_clinic", who["coi"]),
        (check(who, codes[2]), 409, "not_at_clinic", who["coi"]),  # still in the lab
    ]
    for body, status, code, scope in cases:
        refused(
            api,
            lambda b=body: infuse(api, b, witness),
            status,
            code,
            batch_id=batch["id"],
            scope=scope,
            purpose="infusion",
            wristband_of=stranger["coi"] if body["wristband_mrn"] == stranger["mrn"] else None,
        )
    ok(infuse(api, check(who, codes[0]), witness), 201)


def test_coi6_the_bedside_check_comes_before_the_witness(api):
    """A wrong patient is refused as such, whatever the witness typed; the witness's password is
    then not tried, nor counted."""
    batch, codes, who = ready(api)
    witness, _ = clinician(api)
    stranger = api.patient()
    refused(
        api,
        lambda: infuse(api, check(stranger, codes[0]), witness, password="wrong-password-1"),
        409,
        "identity_mismatch",
        batch_id=batch["id"],
        scope=who["coi"],
        purpose="infusion",
        wristband_of=stranger["coi"],
    )
    assert user(api, witness.id).failed_logins == 0
    assert audit_events(api.db, "infusion.witness_failed") == []


def test_rel_a_conditionally_released_dose_is_infused_after_the_physicians_acceptance(api):
    batch, codes = api.released("conditional_release", pending=("sterility",), doses=1)
    to_clinic(api, codes[0])
    who = patient(api, batch)
    witness, _ = clinician(api)
    error(infuse(api, check(who, codes[0]), witness), 409, "not_released")
    accept(api, batch["id"])
    assert ok(infuse(api, check(who, codes[0]), witness), 201)["batch_status"] == "completed"


# -- the witness ---------------------------------------------------------------------------------


def test_coi6_the_witness_is_a_second_person(api):
    batch, codes, who = ready(api)
    nurse, headers = clinician(api)
    before = snapshot(api, batch["id"])
    for name in (nurse.username, f"  {nurse.username} "):
        response = infuse(api, check(who, codes[0]), nurse, headers=headers, witness_username=name)
        assert "second clinician" in error(response, 403, "forbidden")
    unchanged(api, batch["id"], before)
    assert user(api, nurse.id).failed_logins == 0


def test_coi6_a_wrong_witness_password_is_401_audited_and_counts_to_lockout(api, settings):
    batch, codes, who = ready(api)
    nurse, headers = clinician(api)
    witness, witness_headers = clinician(api)
    before = snapshot(api, batch["id"])
    for attempt in range(1, settings.lockout_threshold + 1):
        response = infuse(api, check(who, codes[0]), witness, headers=headers, password="nope-1")
        assert "witness" in error(response, 401, "invalid_credentials")
        assert user(api, witness.id).failed_logins == attempt
        failed = audit_events(api.db, "infusion.witness_failed")
        assert len(failed) == attempt
        last = failed[-1]
        assert last.scope == "global" and last.entity_type == "user"
        assert last.entity_id == witness.id and last.actor == witness.username
        values = new_values(last)
        assert values["failed_attempts"] == attempt
        assert values["administered_by"] == nurse.username and values["dose_code"] == codes[0]
    # Nothing recorded; the witness is now locked out, their sessions revoked.
    unchanged(api, batch["id"], before)
    assert user(api, witness.id).locked
    (locked,) = audit_events(api.db, "user.locked")
    assert locked.entity_id == witness.id
    error(api.client.get("/api/v1/auth/me", headers=witness_headers), 401, "not_authenticated")
    error(api.login(witness.username), 401, "account_locked")
    # Even the right password no longer witnesses.
    error(infuse(api, check(who, codes[0]), witness, headers=headers), 401, "invalid_credentials")
    unchanged(api, batch["id"], before)


def test_coi6_the_right_password_after_a_wrong_one_witnesses(api):
    _, codes, who = ready(api)
    witness, _ = clinician(api)
    error(infuse(api, check(who, codes[0]), witness, password="nope-1"), 401, "invalid_credentials")
    assert ok(infuse(api, check(who, codes[0]), witness), 201)["witness"] == witness.username


@pytest.mark.parametrize("roles", [[Role.TECHNICIAN], [Role.QA], [Role.ADMIN]])
def test_sec_the_witness_must_be_a_clinician(api, roles):
    batch, codes, who = ready(api)
    witness = make_user(api.db, api.settings, roles=roles)
    before = snapshot(api, batch["id"])
    detail = error(infuse(api, check(who, codes[0]), witness), 403, "forbidden")
    assert witness.username in detail and "clinician" in detail
    unchanged(api, batch["id"], before)
    if Role.ADMIN in roles:
        # SEC-2: an admin who is also a clinician (an account older than the rule) may not.
        both = make_legacy_user(api.db, api.settings, roles=[*roles, Role.CLINICIAN])
        detail = error(infuse(api, check(who, codes[0]), both), 403, "forbidden")
        assert "admin" in detail
        unchanged(api, batch["id"], before)
        return
    # A clinician who also holds another role may witness.
    both = make_user(api.db, api.settings, roles=[*roles, Role.CLINICIAN])
    ok(infuse(api, check(who, codes[0]), both), 201)


def test_sec_an_unknown_or_inactive_witness_is_401(api):
    batch, codes, who = ready(api)
    before = snapshot(api, batch["id"])
    ghost = User(username="nobody-here", full_name="Nobody", password_hash="x")
    detail = error(infuse(api, check(who, codes[0]), ghost), 401, "invalid_credentials")
    assert "nobody-here" not in detail  # no hint whether the account exists
    retired, _ = clinician(api)
    retired.active = False
    api.db.add(retired)
    api.db.commit()
    error(infuse(api, check(who, codes[0]), retired), 401, "invalid_credentials")
    unchanged(api, batch["id"], before)
    # Both refusals are audited (who tried, with which witness name), in the global chain.
    failed = audit_events(api.db, "infusion.witness_failed")
    assert [json.loads(e.new_values or "{}")["witness"] for e in failed] == [
        "nobody-here",
        retired.username,
    ]
    assert {e.scope for e in failed} == {"global"}
    assert user(api, retired.id).failed_logins == 0


@pytest.mark.parametrize("role", [Role.TECHNICIAN, Role.QA, Role.ADMIN])
def test_sec_only_a_clinician_records_an_infusion(api, role):
    batch, codes, who = ready(api)
    witness, _ = clinician(api)
    before = snapshot(api, batch["id"])
    response = infuse(api, check(who, codes[0]), witness, headers=api.as_role(role))
    error(response, 403, "forbidden")
    assert snapshot(api, batch["id"]) == before


# -- the request ---------------------------------------------------------------------------------


def test_coi6_an_infusion_given_in_the_future_is_refused(api):
    batch, codes, who = ready(api)
    witness, _ = clinician(api)
    before = snapshot(api, batch["id"])
    later = datetime.now(UTC) + timedelta(hours=1)
    detail = error(
        infuse(api, check(who, codes[0]), witness, administered_at=iso(later)),
        422,
        "invalid_request",
    )
    assert "future" in detail
    unchanged(api, batch["id"], before)
    # A few minutes of clock skew between the ward and the server are tolerated.
    soon = datetime.now(UTC) + timedelta(minutes=2)
    ok(infuse(api, check(who, codes[0]), witness, administered_at=iso(soon)), 201)


@pytest.mark.parametrize(
    "override",
    [
        {"volume_ml": 0},
        {"volume_ml": -5},
        {"volume_ml": 5001},
        {"administered_at": "2026-01-01T10:00:00"},  # no time zone
        {"administered_at": None},
        {"witness_username": ""},
        {"witness_password": None},
        {"dose": "extra field"},
    ],
    ids=lambda o: next(iter(o)) + "=" + repr(next(iter(o.values()))),
)
def test_coi6_an_invalid_infusion_request_is_422(api, override):
    batch, codes, who = ready(api)
    witness, _ = clinician(api)
    before = snapshot(api, batch["id"])
    error(infuse(api, check(who, codes[0]), witness, **override), 422, "invalid_request")
    assert snapshot(api, batch["id"]) == before


# -- the batch completes -------------------------------------------------------------------------


def test_coi6_the_batch_completes_when_its_last_dose_is_infused(api):
    batch, codes = api.released(doses=2)
    to_clinic(api, *codes)
    who = patient(api, batch)
    witness, _ = clinician(api)
    assert ok(infuse(api, check(who, codes[0]), witness), 201)["batch_status"] == "issued"
    assert status_of(api, batch["id"]) == "issued"
    assert ok(infuse(api, check(who, codes[1]), witness), 201)["batch_status"] == "completed"
    assert status_of(api, batch["id"]) == "completed"
    assert statuses(api, batch["id"]) == dict.fromkeys(codes, "infused")
    completed = [
        e
        for e in audit_events(api.db, "batch.status_changed")
        if e.entity_id == batch["id"] and new_values(e).get("status") == "completed"
    ]
    assert len(completed) == 1 and completed[0].scope == who["coi"]


def test_coi6_discarding_the_remaining_dose_completes_the_batch(api):
    batch, codes = api.released(doses=3)
    to_clinic(api, codes[0])
    who = patient(api, batch)
    witness, _ = clinician(api)
    ok(infuse(api, check(who, codes[0]), witness), 201)
    ok(api.step(batch["id"], "discard", [codes[1]], reason="bag leaking"), 201)
    assert status_of(api, batch["id"]) == "issued"  # one dose is left
    ok(api.step(batch["id"], "discard", [codes[2]], reason="patient withdrew"), 201)
    assert status_of(api, batch["id"]) == "completed"
    assert statuses(api, batch["id"]) == {
        codes[0]: "infused",
        codes[1]: "discarded",
        codes[2]: "discarded",
    }


def test_coi6_infusing_the_last_dose_after_a_discard_completes_the_batch(api):
    batch, codes = api.released(doses=2)
    to_clinic(api, codes[1])
    ok(api.step(batch["id"], "discard", [codes[0]], reason="failed visual inspection"), 201)
    assert status_of(api, batch["id"]) == "issued"
    who = patient(api, batch)
    witness, _ = clinician(api)
    assert ok(infuse(api, check(who, codes[1]), witness), 201)["batch_status"] == "completed"


def test_coi6_an_expired_dose_at_the_clinic_is_disposed_of_and_completes_the_batch(api):
    """A dose received at the clinic that will not be infused (expired, patient unwell) is
    discarded where it is; the batch completes when nothing is left."""
    batch, codes = api.released(doses=1)
    to_clinic(api, codes[0])
    ok(api.step(batch["id"], "discard", [codes[0]], reason="expired before the visit"), 201)
    assert statuses(api, batch["id"]) == {codes[0]: "discarded"}
    assert status_of(api, batch["id"]) == "completed"


def test_coi6_a_failure_after_the_physicians_acceptance_needs_a_new_acceptance(api):
    """EU GMP Part IV §11.5: the physician accepted a conditional release; sterility then
    fails. Once QA has closed the deviation the batch is issued again, but its doses reach the
    patient only after the physician accepts again, knowing the failure."""
    batch, codes = api.released("conditional_release", pending=("sterility",), doses=2)
    accept(api, batch["id"])
    to_clinic(api, codes[0])
    who = patient(api, batch)
    ok(verify(api, check(who, codes[0])))
    assert ok(api.result(batch["id"], "sterility", "growth"), 201)["outcome"] == "fail"
    error(verify(api, check(who, codes[0])), 409, "not_released")  # on hold
    close_deviations(api, batch["id"])
    assert status_of(api, batch["id"]) == "issued"
    detail = error(verify(api, check(who, codes[0])), 409, "not_released")
    assert "sterility" in detail and "acceptance of these results not recorded" in detail
    accept(api, batch["id"])
    assert "out of specification (sterility)" in ok(verify(api, check(who, codes[0])))["release"]


def test_coi6_a_batch_never_dispatched_is_not_completed_by_discards(api):
    batch, codes = api.released(doses=2)
    ok(api.step(batch["id"], "discard", codes, reason="patient withdrew"), 201)
    assert status_of(api, batch["id"]) == "released"


# -- dispatch and receipt ------------------------------------------------------------------------


def test_cln3_the_first_dispatch_issues_the_batch(api):
    batch, codes = api.released(doses=3)
    assert status_of(api, batch["id"]) == "released"
    dispatch(api, codes[0])
    assert status_of(api, batch["id"]) == "issued"
    dispatch(api, codes[1])
    assert status_of(api, batch["id"]) == "issued"
    changes = [
        new_values(e)["status"]
        for e in audit_events(api.db, "batch.status_changed")
        if e.entity_id == batch["id"]
    ]
    assert changes[-2:] == ["released", "issued"]
    assert statuses(api, batch["id"]) == {
        codes[0]: "dispatched",
        codes[1]: "dispatched",
        codes[2]: "active",
    }
    ok(custody(api, codes[0], "received"), 201)
    assert statuses(api, batch["id"])[codes[0]] == "received"
    history = ok(api.get(Role.CLINICIAN, f"/vessels/{codes[0]}/custody"))
    assert [(h["event"], h["temperature_c"]) for h in history] == [
        ("dispatched", 4.5),
        ("received", 4.5),
    ]


def test_cln3_a_conditionally_released_batch_is_issued_by_its_first_dispatch(api):
    batch, codes = api.released("conditional_release", pending=("sterility",))
    dispatch(api, codes[0])
    assert status_of(api, batch["id"]) == "issued"


def test_cln3_a_dose_of_an_unreleased_batch_is_not_dispatched(api):
    batch, codes = api.formulated()
    api.pass_qc(batch["id"])
    before = snapshot(api, batch["id"])
    detail = error(custody(api, codes[0], "dispatched"), 409, "not_released")
    assert "quarantine" in detail
    assert snapshot(api, batch["id"]) == before


@pytest.mark.parametrize("event", ["dispatched", "received"])
def test_cln3_a_doses_dispatch_and_receipt_record_its_temperature(api, event):
    batch, codes = api.released()
    if event == "received":
        dispatch(api, codes[0])
    before = snapshot(api, batch["id"])
    detail = error(custody(api, codes[0], event, temperature_c=None), 422, "invalid_request")
    assert "temperature" in detail
    assert snapshot(api, batch["id"]) == before


def test_sec_the_lab_dispatches_and_the_clinic_receives(api):
    batch, codes = api.released()
    before = snapshot(api, batch["id"])
    body = {"event": "dispatched", "location": "Courier", "temperature_c": 4.0}
    error(api.post(Role.CLINICIAN, f"/vessels/{codes[0]}/custody", body), 403, "forbidden")
    assert snapshot(api, batch["id"]) == before
    dispatch(api, codes[0])
    before = snapshot(api, batch["id"])
    body = {"event": "received", "location": "Ward 3", "temperature_c": 4.0}
    error(api.post(Role.TECHNICIAN, f"/vessels/{codes[0]}/custody", body), 403, "forbidden")
    assert snapshot(api, batch["id"]) == before


def test_cln3_a_dose_is_received_only_after_its_dispatch(api):
    batch, codes = api.released()
    before = snapshot(api, batch["id"])
    error(custody(api, codes[0], "received"), 409, "invalid_state")
    assert snapshot(api, batch["id"]) == before


def test_cln3_fresh_dose_temperatures_at_the_limits_are_accepted(api):
    batch, codes = api.released()
    limits = gmp_settings.transport_temperatures(api.db)
    ok(custody(api, codes[0], "dispatched", temperature_c=limits.fresh_min_c), 201)
    ok(custody(api, codes[0], "received", temperature_c=limits.fresh_max_c), 201)
    assert status_of(api, batch["id"]) == "issued"
    assert ok(api.get(Role.QA, f"/batches/{batch['id']}/deviations")) == []
    assert audit_events(api.db, "vessel.temperature_excursion") == []


@pytest.mark.parametrize(
    ("event", "delta"), [("dispatched", +0.5), ("received", -0.5)], ids=["warm", "cold"]
)
def test_cln3_a_fresh_dose_out_of_range_opens_a_deviation_and_holds_the_batch(api, event, delta):
    batch, codes = api.released()
    limits = gmp_settings.transport_temperatures(api.db)
    temperature = (limits.fresh_max_c if delta > 0 else limits.fresh_min_c) + delta
    if event == "dispatched":
        ok(custody(api, codes[0], "dispatched", temperature_c=temperature), 201)
        ok(custody(api, codes[0], "received"), 201)
    else:
        dispatch(api, codes[0])
        ok(custody(api, codes[0], "received", temperature_c=temperature), 201)
    assert status_of(api, batch["id"]) == "on_hold"
    (deviation,) = ok(api.get(Role.QA, f"/batches/{batch['id']}/deviations"))
    assert deviation["kind"] == "temperature" and deviation["status"] == "open"
    assert f"{temperature:g} °C" in deviation["description"]
    assert codes[0] in deviation["description"]
    (excursion,) = audit_events(api.db, "vessel.temperature_excursion")
    assert new_values(excursion)["temperature_c"] == temperature
    # The dose is at the clinic, but its batch is held: not to be infused.
    who = patient(api, batch)
    witness, _ = clinician(api)
    for purpose, call in (
        ("verify", lambda: verify(api, check(who, codes[0]))),
        ("infusion", lambda: infuse(api, check(who, codes[0]), witness)),
    ):
        detail, _ = refused(
            api,
            call,
            409,
            "not_released",
            batch_id=batch["id"],
            scope=who["coi"],
            purpose=purpose,
        )
        assert "on hold" in detail
    # Nor does another dose leave the lab.
    error(custody(api, codes[1], "dispatched"), 409, "not_released")


def test_cln3_an_infused_dose_moves_no_more(api):
    _, codes, who = ready(api)
    witness, _ = clinician(api)
    ok(infuse(api, check(who, codes[0]), witness, administered_at=ago(seconds=0)), 201)
    moved = {"event": "moved", "location": "Ward 3 bin"}
    error(api.post(Role.TECHNICIAN, f"/vessels/{codes[0]}/custody", moved), 409, "invalid_state")

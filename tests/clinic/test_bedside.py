"""The bedside check (COI-6, CLN-3, issue 6 §4): `POST /infusions/verify` answers only for the
right patient (wristband MRN and birth date), a released batch (or conditionally released with the
treating physician's acceptance), a dose not yet infused, received at the clinic and not expired,
in that order, each refusal with its own code; every attempt is audited (AUD-1) and a refusal
changes nothing but its own audit record."""

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import Response
from sqlalchemy import func, select, update

from app.audit.chain import GLOBAL_SCOPE
from app.audit.models import AuditEvent
from app.auth.models import User
from app.auth.permissions import Role
from app.clinic import bedside
from app.clinic.models import Infusion
from app.identity.mod37 import ALPHABET, check_character
from app.patients.models import Patient
from tests.helpers import PASSWORD, Api, ago, audit_events, error, iso, make_user, ok
from tests.release.support import accept, close_deviations, fail, new_values, open_deviation

CHECKS = ["code", "patient identity", "release", "not infused", "at clinic", "not expired"]

# -- builders shared by the clinic tests ---------------------------------------------------------


def formulate(
    api: Api, *expiries: datetime | None, patient_id: int | None = None
) -> tuple[dict[str, Any], list[str]]:
    """A batch formulated into one dose per `expiries` (None: three days): (batch, dose codes)."""
    batch, flasks = api.expanded_batch(patient_id)
    tube = ok(api.step(batch["id"], "harvest", flasks, ["tube"]), 201)["outputs"][0]["code"]
    doses = [api.dose(**({"expires_at": iso(e)} if e else {})) for e in expiries]
    formulation = ok(api.step(batch["id"], "formulation", [tube], doses), 201)
    return batch, [o["code"] for o in formulation["outputs"]]


def release(api: Api, batch_id: int) -> None:
    api.pass_qc(batch_id)
    assert ok(api.decide(batch_id))["status"] == "released"


def custody(api: Api, code: str, event: str, temperature_c: float | None = 4.5) -> Response:
    """Dispatch (by the lab) or receipt (by the clinic) of a dose."""
    role = Role.TECHNICIAN if event == "dispatched" else Role.CLINICIAN
    body = {"event": event, "location": "Courier" if event == "dispatched" else "Ward 3"}
    if temperature_c is not None:
        body["temperature_c"] = temperature_c
    return api.post(role, f"/vessels/{code}/custody", body)


def dispatch(api: Api, *codes: str) -> None:
    for code in codes:
        ok(custody(api, code, "dispatched"), 201)


def to_clinic(api: Api, *codes: str) -> None:
    """Dispatched by the lab, then received at the clinic."""
    for code in codes:
        dispatch(api, code)
        ok(custody(api, code, "received"), 201)


def patient(api: Api, batch: dict[str, Any]) -> dict[str, Any]:
    return ok(api.get(Role.CLINICIAN, f"/patients/{batch['patient_id']}"))


def check(who: dict[str, Any], code: str, **overrides: Any) -> dict[str, Any]:
    """The bedside check's body: the wristband of `who`, their birth date and the dose label."""
    return {"wristband_mrn": who["mrn"], "birth_date": who["birth_date"], "dose_code": code} | (
        overrides
    )


def verify(api: Api, body: dict[str, Any], role: Role = Role.CLINICIAN) -> Response:
    return api.post(role, "/infusions/verify", body)


def clinician(api: Api) -> tuple[User, dict[str, str]]:
    """A clinician of their own (to administer or witness): (user, headers)."""
    user = make_user(api.db, api.settings, roles=[Role.CLINICIAN])
    return user, api.headers_for(user)


def infuse(
    api: Api,
    body: dict[str, Any],
    witness: User,
    *,
    headers: dict[str, str] | None = None,
    password: str = PASSWORD,
    **extra: Any,
) -> Response:
    """POST /infusions with the bedside check `body`, witnessed by `witness`."""
    record = body | {
        "administered_at": ago(seconds=0),  # AUD-6: not before the receipt, just now
        "witness_username": witness.username,
        "witness_password": password,
    }
    return api.client.post(
        "/api/v1/infusions",
        headers=headers or api.as_role(Role.CLINICIAN),
        json=record | extra,
    )


def ready(api: Api, doses: int = 2) -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    """A released batch whose first dose is at the clinic: (batch, dose codes, patient)."""
    batch, codes = api.released(doses=doses)
    to_clinic(api, codes[0])
    return batch, codes, patient(api, batch)


def count(api: Api, model: Any) -> int:
    return api.db.execute(select(func.count()).select_from(model)).scalar_one()


def snapshot(api: Api, batch_id: int) -> dict[str, Any]:
    """What a refusal must leave as it was (every role logged in first, so that a first login
    is not counted as a change)."""
    for role in Role:
        api.as_role(role)
    shown = ok(api.get(Role.QA, f"/batches/{batch_id}"))
    return {
        "batch": shown["status"],
        "doses": {v["code"]: v["status"] for v in shown["vessels"] if v["is_dose"]},
        "infusions": count(api, Infusion),
        "audit": count(api, AuditEvent),
    }


def refused(
    api: Api,
    call: Callable[[], Response],
    status: int,
    code: str,
    *,
    batch_id: int,
    scope: str,
    purpose: str = "verify",
    wristband_of: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """Run `call`, a refused bedside check: its status and code, nothing changed but one
    `infusion.refused` event in `scope` naming the code: (detail, audited values). When the
    wristband is another patient's (COI `wristband_of`), that patient's trail gets one too."""
    before = snapshot(api, batch_id)
    detail = error(call(), status, code)
    written = 1 if wristband_of is None else 2
    assert snapshot(api, batch_id) == before | {"audit": before["audit"] + written}
    last = audit_events(api.db)[-written]
    assert last.action == "infusion.refused" and last.scope == scope, last
    values = new_values(last)
    assert values["refused"] == code and values["purpose"] == purpose, values
    return detail, values


def mangled(code: str) -> str:
    """`code` with a wrong check character."""
    return code[:-1] + next(c for c in ALPHABET if c != code[-1])


def unknown_code(code: str) -> str:
    """A well-formed code (right check character) of the same batch that no vessel has."""
    data = code[:13] + "9999"
    return data + check_character(data)


def both(api: Api, body: dict[str, Any], witness: User) -> list[Response]:
    """The same bedside check through verification and through the infusion record."""
    return [verify(api, body), infuse(api, body, witness)]


# -- passing -------------------------------------------------------------------------------------


def test_coi6_a_released_dose_received_at_the_clinic_passes_every_check(api):
    batch, codes, who = ready(api)
    before = snapshot(api, batch["id"])
    body = ok(verify(api, check(who, codes[0])))
    assert body == {
        "ok": True,
        "dose_code": codes[0],
        "patient_id": who["id"],
        "mrn": who["mrn"],
        "coi": who["coi"],
        "batch_id": batch["id"],
        "batch_number": batch["batch_number"],
        "expires_at": body["expires_at"],
        "release": "released",
        "checks": CHECKS,
    }
    assert datetime.fromisoformat(body["expires_at"]) > datetime.now(UTC) + timedelta(days=2)
    # Verifying infuses nothing: one audit event more, in the patient's own chain.
    assert snapshot(api, batch["id"]) == before | {"audit": before["audit"] + 1}
    (verified,) = audit_events(api.db, "infusion.verified")
    assert verified.scope == who["coi"] and verified.entity_type == "vessel"
    values = new_values(verified)
    assert values["dose_code"] == codes[0] and values["purpose"] == "verify"
    assert values["wristband_mrn"] == who["mrn"] and values["birth_date"] == who["birth_date"]
    assert values["checks"] == CHECKS


def test_coi6_the_dose_label_is_read_as_scanned(api):
    """Scanner noise around the dose code (case, white space, an AIM prefix) is forgiven."""
    _, codes, who = ready(api)
    for scanned in (codes[0].lower(), f"  {codes[0]}\r\n", f"]d2{codes[0]}"):
        assert ok(verify(api, check(who, scanned)))["dose_code"] == codes[0], scanned


def test_coi6_mrn_matching_tolerates_case_and_surrounding_spaces_but_not_another_mrn(api):
    mrn = f"ab-{time.monotonic_ns() % 10**9}"
    who = api.patient(mrn=mrn)
    batch, codes = formulate(api, None, patient_id=who["id"])
    release(api, batch["id"])
    to_clinic(api, codes[0])
    for wristband in (mrn, mrn.upper(), f"  {mrn}  ", f"\t{mrn.title()}\n"):
        assert ok(verify(api, check(who, codes[0], wristband_mrn=wristband)))["ok"], wristband
    other = api.patient(birth_date=who["birth_date"])
    for wristband in (f"{mrn}0", mrn[:-1], f"{mrn}.", mrn.replace("-", ""), other["mrn"]):
        detail, values = refused(
            api,
            lambda w=wristband: verify(api, check(who, codes[0], wristband_mrn=w)),
            409,
            "identity_mismatch",
            batch_id=batch["id"],
            scope=who["coi"],
            wristband_of=other["coi"] if wristband == other["mrn"] else None,
        )
        assert "Do not infuse" in detail and codes[0] in detail
        if wristband != other["mrn"]:
            assert values["wristband_mrn"] == wristband.strip()


def test_coi6_the_birth_date_must_match_exactly(api):
    batch, codes, who = ready(api)
    born = datetime.fromisoformat(who["birth_date"])
    for wrong in (born + timedelta(days=1), born - timedelta(days=1), born.replace(year=1991)):
        _, values = refused(
            api,
            lambda w=wrong: verify(api, check(who, codes[0], birth_date=w.date().isoformat())),
            409,
            "identity_mismatch",
            batch_id=batch["id"],
            scope=who["coi"],
        )
        assert values["birth_date"] == wrong.date().isoformat()
    # Not a date at all: the request is invalid, before any check.
    for garbage in ("17/05/1990", "yesterday", "", None):
        error(verify(api, check(who, codes[0], birth_date=garbage)), 422, "invalid_request")
    error(verify(api, check(who, codes[0], wristband_mrn="   ")), 422, "invalid_request")
    assert ok(verify(api, check(who, codes[0])))["ok"]


def test_coi6_another_patient_born_the_same_day_is_a_mismatch(api):
    batch, codes, who = ready(api)
    twin = api.patient(birth_date=who["birth_date"])
    assert twin["mrn"] != who["mrn"]
    refused(
        api,
        lambda: verify(api, check(twin, codes[0])),
        409,
        "identity_mismatch",
        batch_id=batch["id"],
        scope=who["coi"],
        wristband_of=twin["coi"],
    )


def test_coi6_a_refusal_is_in_each_patients_trail_with_only_their_own_identifiers(api):
    """Issue 11 item 9: patient B's wristband scanned with patient A's dose. A's trail says a
    wristband of another patient was scanned, without B's MRN or birth date; B's trail says a
    dose of another patient was presented, without A's dose code; one incident joins them."""
    _, codes, a = ready(api)
    b = api.patient(birth_date="1971-03-09")
    error(verify(api, check(b, codes[0])), 409, "identity_mismatch")
    in_a, in_b = (new_values(e) for e in audit_events(api.db)[-2:])
    (a_event,) = [e for e in audit_events(api.db, "infusion.refused") if e.scope == a["coi"]]
    (b_event,) = [e for e in audit_events(api.db, "infusion.refused") if e.scope == b["coi"]]
    assert (a_event.entity_type, b_event.entity_type) == ("vessel", "patient")
    assert b_event.entity_id == b["id"]
    assert in_a["wristband"] == "another patient's" and in_a["dose_code"] == codes[0]
    assert in_b["dose"] == "another patient's"
    assert (in_b["wristband_mrn"], in_b["birth_date"]) == (b["mrn"], "1971-03-09")
    assert in_a["incident"] == in_b["incident"]
    a_text, b_text = a_event.new_values or "", b_event.new_values or ""
    assert b["mrn"] not in a_text and "1971-03-09" not in a_text
    assert codes[0] not in b_text and a["mrn"] not in b_text and a["coi"] not in b_text


def test_coi6_a_case_twin_registered_before_mrns_ignored_case_makes_case_ambiguous(api):
    """MRNs are unique regardless of case now; twins (`ab12`, `AB12`) registered before are kept
    and marked by migration 0009 (`mrn_twin_of`). With a twin alive, the bedside forgives case
    only for the exact MRN of the dose's patient; once QA voids the wrong one, case is forgiven."""
    stem = f"mx{time.monotonic_ns() % 10**9}"
    lower = api.patient(mrn=stem)
    upper = api.patient(mrn=f"{stem}-later", birth_date=lower["birth_date"])
    # What migration 0009 leaves of a twin registered before the rule.
    api.db.execute(
        update(Patient)
        .where(Patient.id == upper["id"])
        .values(mrn=stem.upper(), mrn_key=stem.upper(), mrn_twin_of=lower["id"])
    )
    api.db.flush()
    assert ok(api.get(Role.CLINICIAN, f"/patients/{upper['id']}"))["mrn_twin_of"] == lower["id"]
    batch, codes = formulate(api, None, patient_id=lower["id"])
    release(api, batch["id"])
    to_clinic(api, codes[0])
    refused(
        api,
        lambda: verify(api, check(upper | {"mrn": stem.upper()}, codes[0])),
        409,
        "identity_mismatch",
        batch_id=batch["id"],
        scope=lower["coi"],
        wristband_of=upper["coi"],
    )
    # Exactly the dose's patient's MRN passes; a third spelling could be either patient's.
    assert ok(verify(api, check(lower, codes[0], wristband_mrn=f" {stem} ")))["ok"]
    error(verify(api, check(lower, codes[0], wristband_mrn=stem.title())), 409, "identity_mismatch")
    # A voided (mistaken) registration is nobody's wristband: case is forgiven again.
    ok(api.post(Role.QA, f"/patients/{upper['id']}/void", {"reason": "registered twice"}))
    assert ok(verify(api, check(lower, codes[0], wristband_mrn=stem.title())))["ok"]
    assert ok(verify(api, check(lower, codes[0], wristband_mrn=stem.upper())))["ok"]


# -- each refusal alone --------------------------------------------------------------------------


def test_coi6_an_invalid_code_is_refused_first_and_audited_without_patient_data(api):
    batch, codes, who = ready(api)
    wrong = mangled(codes[0])
    # A wrong check character wins over everything, even a stranger's wristband.
    stranger = {"mrn": "NOBODY-1", "birth_date": "1950-01-01"}
    for body in (check(who, wrong), check(stranger, wrong)):
        detail, values = refused(
            api,
            lambda b=body: verify(api, b),
            422,
            "invalid_code",
            batch_id=batch["id"],
            scope=GLOBAL_SCOPE,
        )
        assert "check character" in detail
        # Nobody's dose: what was scanned at the bedside stays out of the global chain.
        assert values == {"purpose": "verify", "dose_code": wrong, "refused": "invalid_code"}
        assert audit_events(api.db)[-1].entity_id is None
    # Not a vessel code at all.
    refused(
        api,
        lambda: verify(api, check(who, "hello")),
        422,
        "invalid_code",
        batch_id=batch["id"],
        scope=GLOBAL_SCOPE,
    )
    # An administrator reads the global chain, hence the refusals, but no patient's data.
    listed = ok(api.get(Role.ADMIN, "/audit", params={"limit": 10_000}))
    refusals = [e for e in listed if e["action"] == "infusion.refused"]
    assert len(refusals) == 3
    assert all(who["mrn"] not in str(e) and "1950-01-01" not in str(e) for e in refusals)


def test_coi6_an_unknown_code_is_404_and_audited_in_the_global_chain(api):
    batch, codes, who = ready(api)
    nobody = unknown_code(codes[0])
    detail, values = refused(
        api,
        lambda: verify(api, check(who, nobody)),
        404,
        "not_found",
        batch_id=batch["id"],
        scope=GLOBAL_SCOPE,
    )
    assert nobody in detail
    assert values == {"purpose": "verify", "dose_code": nobody, "refused": "not_found"}


def test_coi6_a_vessel_that_is_not_a_dose_is_refused(api):
    batch, flasks = api.expanded_batch()
    who = patient(api, batch)
    detail, values = refused(
        api,
        lambda: verify(api, check(who, flasks[0])),
        422,
        "invalid_request",
        batch_id=batch["id"],
        scope=who["coi"],
    )
    assert "not a dose" in detail
    assert values["dose_code"] == flasks[0]
    # Even for another patient's wristband: a flask is never infused.
    stranger = api.patient()
    refused(
        api,
        lambda: verify(api, check(stranger, flasks[1])),
        422,
        "invalid_request",
        batch_id=batch["id"],
        scope=who["coi"],
        wristband_of=stranger["coi"],
    )


def test_coi6_another_patients_dose_is_refused_identity_mismatch(api):
    batch, codes, who = ready(api)
    stranger = api.patient()
    detail, values = refused(
        api,
        lambda: verify(api, check(stranger, codes[0])),
        409,
        "identity_mismatch",
        batch_id=batch["id"],
        scope=who["coi"],
        wristband_of=stranger["coi"],
    )
    assert detail.startswith("STOP")
    # The stranger's identifiers go into the stranger's own trail, not the dose's patient's.
    assert "wristband_mrn" not in values and values["wristband"] == "another patient's"
    theirs = new_values(audit_events(api.db)[-1])
    assert (theirs["wristband_mrn"], theirs["birth_date"]) == (
        stranger["mrn"],
        stranger["birth_date"],
    )


@pytest.mark.parametrize("state", ["quarantine", "rejected", "conditional", "on_hold"])
def test_coi6_a_dose_of_a_batch_not_released_is_refused(api, state):
    if state == "quarantine":
        batch, codes = api.formulated()
        api.pass_qc(batch["id"])
    elif state == "rejected":
        batch, codes = api.formulated()
        assert ok(api.decide(batch["id"], "reject"))["status"] == "rejected"
    elif state == "conditional":  # no physician acceptance yet
        batch, codes = api.released("conditional_release", pending=("sterility",))
        to_clinic(api, codes[0])
    else:  # at the clinic, then a deviation holds the batch
        batch, codes = api.released()
        to_clinic(api, codes[0])
        open_deviation(api, batch["id"])
    who = patient(api, batch)
    detail, _ = refused(
        api,
        lambda: verify(api, check(who, codes[0])),
        409,
        "not_released",
        batch_id=batch["id"],
        scope=who["coi"],
    )
    assert batch["batch_number"] in detail
    shown = {"conditional": "acceptance not recorded", "on_hold": "on hold"}.get(state, state)
    assert shown in detail


def test_coi6_a_dose_already_infused_is_refused(api):
    batch, codes, who = ready(api)
    witness, _ = clinician(api)
    ok(infuse(api, check(who, codes[0]), witness), 201)
    assert snapshot(api, batch["id"])["batch"] == "issued"  # the second dose is left
    detail, _ = refused(
        api,
        lambda: verify(api, check(who, codes[0])),
        409,
        "already_infused",
        batch_id=batch["id"],
        scope=who["coi"],
    )
    assert codes[0] in detail


def test_coi6_the_last_dose_of_a_completed_batch_is_still_already_infused(api):
    """Once every dose is infused the batch is completed; scanning its dose again says why."""
    batch, codes, who = ready(api, doses=1)
    witness, _ = clinician(api)
    assert ok(infuse(api, check(who, codes[0]), witness), 201)["batch_status"] == "completed"
    refused(
        api,
        lambda: verify(api, check(who, codes[0])),
        409,
        "already_infused",
        batch_id=batch["id"],
        scope=who["coi"],
    )


@pytest.mark.parametrize("where", ["in the lab", "in transit"])
def test_cln3_a_dose_not_received_at_the_clinic_is_refused(api, where):
    batch, codes = api.released()
    if where == "in transit":
        dispatch(api, codes[0])
    who = patient(api, batch)
    detail, _ = refused(
        api,
        lambda: verify(api, check(who, codes[0])),
        409,
        "not_at_clinic",
        batch_id=batch["id"],
        scope=who["coi"],
    )
    assert "received" in detail


def test_cln3_a_dose_moved_after_its_receipt_is_no_longer_at_the_clinic(api):
    """At the clinic means: its latest custody event is `received`."""
    batch, codes, who = ready(api)
    assert ok(verify(api, check(who, codes[0])))["ok"]
    moved = {"event": "moved", "location": "Pharmacy fridge 2"}
    ok(api.post(Role.TECHNICIAN, f"/vessels/{codes[0]}/custody", moved), 201)
    refused(
        api,
        lambda: verify(api, check(who, codes[0])),
        409,
        "not_at_clinic",
        batch_id=batch["id"],
        scope=who["coi"],
    )


# -- the order of the checks, and expiry ---------------------------------------------------------

# Far longer than any set-up under any load: expiry is reached by moving the bedside's clock.
SHELF_LIFE = timedelta(hours=2)


def bedside_clock(monkeypatch: pytest.MonkeyPatch, moment: datetime) -> None:
    """The bedside check's clock (`app.clinic.bedside.utcnow`) stopped at `moment`, so expiry is
    decided at a chosen instant, never by how long the set-up happened to take."""
    monkeypatch.setattr(bedside, "utcnow", lambda: moment)


def test_coi6_the_checks_run_in_order_and_an_expired_dose_is_refused(api, monkeypatch):
    """Three doses of one expiry: one infused, one at the clinic, one in transit. Up to the last
    instant before the expiry the dose at the clinic passes; from the expiry on, each answers its
    first failing check, the same through verification and the infusion record; a hold on the
    batch then answers `not_released` for all, and another patient's wristband
    `identity_mismatch` before anything else."""
    expiry = (datetime.now(UTC) + SHELF_LIFE).replace(second=0, microsecond=0)
    batch, codes = formulate(api, expiry, expiry, expiry)
    infused, at_clinic, in_transit = codes
    release(api, batch["id"])
    to_clinic(api, infused, at_clinic)
    dispatch(api, in_transit)
    who, stranger = patient(api, batch), api.patient()
    witness, _ = clinician(api)
    ok(infuse(api, check(who, infused), witness), 201)
    bedside_clock(monkeypatch, expiry - timedelta(microseconds=1))
    assert ok(verify(api, check(who, at_clinic)))["ok"]
    bedside_clock(monkeypatch, expiry)  # expired at its expiry, not a moment later

    def answers(body: dict[str, Any], status: int, code: str) -> None:
        theirs = stranger["coi"] if body["wristband_mrn"] == stranger["mrn"] else None
        for purpose, call in (
            ("verify", lambda: verify(api, body)),
            ("infusion", lambda: infuse(api, body, witness)),
        ):
            refused(
                api,
                call,
                status,
                code,
                batch_id=batch["id"],
                scope=who["coi"],
                purpose=purpose,
                wristband_of=theirs,
            )

    answers(check(who, at_clinic), 409, "expired")
    answers(check(who, in_transit), 409, "not_at_clinic")  # and expired
    answers(check(who, infused), 409, "already_infused")  # expired, and no longer received
    for code in codes:
        answers(check(stranger, code), 409, "identity_mismatch")
    # The API's sentence names the instant in UTC (CONVENTIONS 11); the page's, in local time.
    told = error(verify(api, check(who, at_clinic)), 409, "expired")
    assert told == f"Dose {at_clinic} expired at {expiry:%Y-%m-%d %H:%M} UTC."

    open_deviation(api, batch["id"])  # the batch on hold: nothing of it is supplied
    for code in codes:
        answers(check(who, code), 409, "not_released")
        # Another patient, not released, infused or in transit or at the clinic, expired:
        answers(check(stranger, code), 409, "identity_mismatch")
    # A code with a wrong check character is refused before anything is looked up.
    refused(
        api,
        lambda: verify(api, check(stranger, mangled(infused))),
        422,
        "invalid_code",
        batch_id=batch["id"],
        scope=GLOBAL_SCOPE,
    )


def test_coi6_an_unreleased_dose_not_at_the_clinic_answers_not_released(api):
    batch, codes = api.formulated()
    who = patient(api, batch)
    refused(
        api,
        lambda: verify(api, check(who, codes[0])),
        409,
        "not_released",
        batch_id=batch["id"],
        scope=who["coi"],
    )
    # Another patient's wristband on the same dose: the identity check comes first.
    stranger = api.patient()
    refused(
        api,
        lambda: verify(api, check(stranger, codes[0])),
        409,
        "identity_mismatch",
        batch_id=batch["id"],
        scope=who["coi"],
        wristband_of=stranger["coi"],
    )


# -- conditional release, holds ------------------------------------------------------------------


def test_rel_a_conditionally_released_dose_needs_the_physicians_acceptance(api):
    batch, codes = api.released("conditional_release", pending=("sterility",))
    to_clinic(api, codes[0])
    assert snapshot(api, batch["id"])["batch"] == "issued"
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
        assert "sterility pending" in detail and "acceptance not recorded" in detail
    accept(api, batch["id"])
    body = ok(verify(api, check(who, codes[0])))
    assert body["release"] == (
        "conditionally released (sterility pending); treating physician accepted"
    )


def test_rel_a_late_failing_result_after_dispatch_stops_the_bedside(api):
    batch, codes = api.released("conditional_release", pending=("sterility",))
    accept(api, batch["id"])
    to_clinic(api, codes[0])
    who = patient(api, batch)
    assert ok(verify(api, check(who, codes[0])))["ok"]
    fail(api, batch["id"], "sterility")
    assert snapshot(api, batch["id"])["batch"] == "on_hold"
    detail, _ = refused(
        api,
        lambda: verify(api, check(who, codes[0])),
        409,
        "not_released",
        batch_id=batch["id"],
        scope=who["coi"],
    )
    assert "on hold" in detail


def test_rel_a_closed_deviation_lifts_the_hold_at_the_bedside_too(api):
    batch, codes, who = ready(api)
    open_deviation(api, batch["id"])
    error(verify(api, check(who, codes[0])), 409, "not_released")
    close_deviations(api, batch["id"])
    assert snapshot(api, batch["id"])["batch"] == "issued"
    assert ok(verify(api, check(who, codes[0])))["release"] == "released"


# -- who may check; every attempt audited --------------------------------------------------------


@pytest.mark.parametrize("role", [Role.TECHNICIAN, Role.QA, Role.ADMIN])
def test_sec_only_a_clinician_verifies_at_the_bedside(api, role):
    _, codes, who = ready(api)
    error(verify(api, check(who, codes[0]), role), 403, "forbidden")
    error(api.post(None, "/infusions/verify", check(who, codes[0])), 401, "not_authenticated")
    assert audit_events(api.db, "infusion.verified") == []
    assert audit_events(api.db, "infusion.refused") == []


def test_aud1_every_bedside_attempt_is_audited_in_order(api):
    _, codes, who = ready(api)
    stranger = api.patient()
    attempts = [
        (check(stranger, codes[0]), "identity_mismatch"),
        (check(who, codes[1]), "not_at_clinic"),
        (check(who, codes[0]), None),
        (check(who, codes[0]), None),
        (check(who, mangled(codes[0])), "invalid_code"),
    ]
    first = count(api, AuditEvent)
    for body, code in attempts:
        response = verify(api, body)
        assert (response.status_code == 200) == (code is None), response.text
    events = audit_events(api.db)[first:]
    # The stranger's wristband on the dose: a refusal in each of the two patients' trails.
    assert [
        new_values(e)["refused"] if e.action == "infusion.refused" else e.action for e in events
    ] == ["identity_mismatch"] + [code or "infusion.verified" for _, code in attempts]
    actor = events[0].actor
    assert all(e.actor == actor and e.actor.startswith("clinician-") for e in events)
    assert [e.scope for e in events] == [who["coi"], stranger["coi"]] + [who["coi"]] * 3 + [
        GLOBAL_SCOPE
    ]
    # QA (who reads patients' trails) sees them; an administrator only the global one.
    seen = {e["seq"] for e in ok(api.get(Role.QA, "/audit", params={"limit": 10_000}))}
    assert {e.seq for e in events} <= seen
    seen = {e["seq"] for e in ok(api.get(Role.ADMIN, "/audit", params={"limit": 10_000}))}
    assert {e.seq for e in events} & seen == {events[-1].seq}
    assert ok(api.get(Role.QA, "/audit/verify"))["ok"]

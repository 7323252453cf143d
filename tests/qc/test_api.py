"""QC results through the HTTP API (QC-2): evaluation on entry against the batch's specification,
units and answers, corrections that never overwrite, out-of-specification deviations and late
failures (REL-2), sample identity (COI-3), and the second person's e-signed review (SIG-1..5)."""

import json
from typing import Any

import pytest
from sqlalchemy import func, select, update

from app.audit.models import AuditEvent
from app.auth import service as auth
from app.auth.models import User
from app.auth.permissions import Role
from app.batches.models import Batch
from app.deviations.models import Deviation
from app.gmp_settings import service as gmp_settings
from app.qc.models import QcResult
from app.signatures.models import Signature
from tests.helpers import (
    PASSWORD,
    Api,
    audit_events,
    drop_append_only,
    failing_value,
    ok,
    qualify,
    unique,
)
from tests.helpers import error as _error

# -- helpers ---------------------------------------------------------------------------------------


def _ok(response, status: int = 201) -> dict[str, Any]:
    return ok(response, status)


def _rows(api: Api, batch_id: int) -> dict[str, dict[str, Any]]:
    return {row["test"]: row for row in api.qc(batch_id)["tests"]}


def _batch(api: Api, batch_id: int) -> dict[str, Any]:
    return _ok(api.get(Role.TECHNICIAN, f"/batches/{batch_id}"), 200)


def _deviations(api: Api, batch_id: int) -> list[dict[str, Any]]:
    return _ok(api.get(Role.QA, f"/batches/{batch_id}/deviations"), 200)


def _counts(api: Api) -> dict[str, int]:
    """Rows a refused request must not add."""
    db = api.db
    return {
        table.__name__: db.execute(select(func.count()).select_from(table)).scalar_one()
        for table in (QcResult, Deviation, Signature, AuditEvent)
    }


def _values(event: AuditEvent) -> tuple[dict[str, Any], dict[str, Any]]:
    return json.loads(event.old_values or "{}"), json.loads(event.new_values or "{}")


def _reviewer(api: Api, role: Role = Role.TECHNICIAN) -> tuple[User, dict[str, str]]:
    """A second person (not the technician who enters results), and their headers."""
    user = auth.create_user(
        api.db,
        api.settings,
        actor="test",
        username=unique("reviewer-"),
        full_name="Rita Reviewer",
        password=PASSWORD,
        roles=[role],
    )
    qualify(api.db, user)  # SEC-5: the builder qualifies as make_user does
    api.db.commit()
    return user, api.headers_for(user)


def _review(api: Api, result_id: int, headers: dict[str, str], password: str = PASSWORD, **extra):
    body = {"password": password} | extra
    return api.client.post(f"/api/v1/qc-results/{result_id}/review", headers=headers, json=body)


# -- the batch's QC --------------------------------------------------------------------------------


def test_qc2_a_new_batch_has_every_test_of_its_specification_pending(api):
    """QC-2: GET /batches/{id}/qc lists every test of the pinned version, none yet passed."""
    batch = api.batch()
    qc = api.qc(batch["id"])
    assert qc["specification_version"] == 1 and qc["specification_id"] == batch["specification_id"]
    assert len(qc["tests"]) == 8
    assert {row["outcome"] for row in qc["tests"]} == {"pending"}
    assert all(row["value"] is None and row["result_id"] is None for row in qc["tests"])
    assert (qc["passed"], qc["failed"], qc["pending"], qc["complete"]) == (0, 0, 8, False)
    assert qc["history"] == []


def test_qc2_every_test_takes_its_result_and_all_passing_completes_the_batch_qc(api):
    """QC-2: every test, counts included, is entered through POST /qc-results; the batch's QC is
    complete when every test has passed."""
    batch = api.batch()
    api.pass_qc(batch["id"], skip=("karyotype",))
    qc = api.qc(batch["id"])
    assert (qc["passed"], qc["pending"], qc["complete"]) == (7, 1, False)
    result = _ok(api.result(batch["id"], "karyotype", "normal"))
    assert result["test"] == "karyotype" and result["value"] == "normal"
    assert result["outcome"] == "pass" and result["batch_id"] == batch["id"]
    qc = api.qc(batch["id"])
    assert (qc["passed"], qc["failed"], qc["pending"], qc["complete"]) == (8, 0, 0, True)
    assert len(qc["history"]) == 8
    assert _batch(api, batch["id"])["status"] == "registered"  # passing results hold nothing


BOUNDARIES: dict[str, list[tuple[Any, str]]] = {
    "viability": [(70, "pass"), (69.99, "fail")],
    "viable_cells_per_dose": [("min", "pass"), ("below_min", "fail"), ("max", "pass"),
                              ("above_max", "fail")],
    "sterility": [("no growth", "pass"), ("growth", "fail")],
    "mycoplasma": [("not detected", "pass"), ("detected", "fail")],
    "endotoxin": [(0.5, "pass"), (0.51, "fail")],
    "identity": [(80, "pass"), (79.9, "fail")],
    "mtdna_heteroplasmy": [(9.99, "pass"), (10, "fail")],  # exclusive: < 10 %
    "karyotype": [("normal", "pass"), ("abnormal", "fail")],
}  # fmt: skip


@pytest.mark.parametrize("test", list(BOUNDARIES))
def test_qc2_each_default_test_is_evaluated_at_its_boundary(api, test):
    """QC-1 / QC-2: every shipped limit, on both sides of its boundary, evaluated on entry (each
    value after the first entered as a correction of the one before)."""
    dose = gmp_settings.dose_range(api.db)
    cells = {
        "min": dose.cells_min,
        "below_min": dose.cells_min - 1,
        "max": dose.cells_max,
        "above_max": dose.cells_max + 1,
    }
    batch = api.batch()
    previous = None
    for value, outcome in BOUNDARIES[test]:
        value = cells.get(value, value) if test == "viable_cells_per_dose" else value
        extra = {} if previous is None else {"corrects": previous, "reason": "next boundary"}
        result = _ok(api.result(batch["id"], test, value, **extra))
        assert (result["value"], result["outcome"]) == (value, outcome)
        assert (result["deviation_id"] is not None) is (outcome == "fail")
        row = _rows(api, batch["id"])[test]
        assert (row["value"], row["outcome"], row["result_id"]) == (value, outcome, result["id"])
        previous = result["id"]


# -- units -----------------------------------------------------------------------------------------


def test_qc2_a_fraction_is_converted_to_percent_and_what_was_typed_is_kept(api):
    """QC-2: an exactly convertible unit is accepted; the result is stored in the specification's
    unit and records what was entered."""
    batch = api.batch()
    result = _ok(api.result(batch["id"], "viability", 0.85, unit="fraction"))
    assert result["value"] == 85 and result["unit"] == "%" and result["outcome"] == "pass"
    assert result["entered_as"] == {"value": 0.85, "unit": "fraction"}
    (shown,) = api.qc(batch["id"])["history"]
    assert shown["entered_as"] == {"value": 0.85, "unit": "fraction"}
    (entered,) = audit_events(api.db, "qc_result.entered")
    assert _values(entered)[1]["value"] == "85 %"


def test_qc2_conversions_are_exact_at_the_limit(api):
    """QC-2: conversions are decimal, so a value on the limit stays on the limit (0.57 x 100 is not
    56.99999999999999, 500 EU/L is exactly 0.5 EU/mL)."""
    batch = api.batch()
    identity = _ok(api.result(batch["id"], "identity", 0.57, unit="fraction"))
    assert identity["value"] == 57  # exactly, not approximately
    endotoxin = _ok(api.result(batch["id"], "endotoxin", 500, unit="EU/L"))
    assert (endotoxin["value"], endotoxin["unit"], endotoxin["outcome"]) == (0.5, "EU/mL", "pass")
    cells = _ok(api.result(batch["id"], "viable_cells_per_dose", 150, unit="x10^6 cells"))
    assert cells["value"] == 150_000_000 and cells["unit"] == "cells"
    assert cells["entered_as"] == {"value": 150, "unit": "x10^6 cells"}


def test_qc2_the_specifications_own_unit_or_a_synonym_is_not_a_conversion(api):
    batch = api.batch()
    result = _ok(api.result(batch["id"], "viability", 88, unit=" percent "))
    assert (result["value"], result["unit"], result["entered_as"]) == (88, "%", None)
    numeric_text = _ok(api.result(batch["id"], "identity", "91,5", unit="%"))
    assert numeric_text["value"] == 91.5 and numeric_text["outcome"] == "pass"


def test_rel_a_result_in_a_unit_that_is_not_the_specifications_is_refused(api):
    """QC-2 / REL: a unit that does not match and has no exact conversion is a 422 and nothing is
    written."""
    batch = api.batch()
    api.qc(batch["id"])
    before = _counts(api)
    for test, value, unit in [
        ("viability", 85, "cells"),
        ("endotoxin", 0.1, "EU/kg"),
        ("viable_cells_per_dose", 150, "thousand cells"),
        ("sterility", "no growth", "%"),  # a qualitative result has no unit
    ]:
        detail = _error(api.result(batch["id"], test, value, unit=unit), 422, "invalid_request")
        assert test in detail
    assert _counts(api) == before
    assert api.qc(batch["id"])["pending"] == 8


# -- answers and refused values --------------------------------------------------------------------


def test_qc2_qualitative_answers_take_their_listed_synonyms(api):
    """QC-2: "negative" is a passing sterility answer, "positive" a failing mycoplasma answer;
    case and spacing do not matter; the answer is stored as the listed one."""
    batch = api.batch()
    sterility = _ok(api.result(batch["id"], "sterility", "  Negative "))
    assert (sterility["value"], sterility["outcome"]) == ("negative", "pass")
    mycoplasma = _ok(api.result(batch["id"], "mycoplasma", "NOT   detected"))
    assert (mycoplasma["value"], mycoplasma["outcome"]) == ("not detected", "pass")
    other = api.batch()
    positive = _ok(api.result(other["id"], "mycoplasma", "Positive"))
    assert positive["outcome"] == "fail" and positive["deviation_id"] is not None


def test_rel_a_value_of_the_wrong_kind_is_refused_and_changes_nothing(api):
    """QC-2 / REL: a value that cannot be evaluated is a 422, nothing written, nothing held."""
    batch = api.batch()
    api.qc(batch["id"])
    before = _counts(api)
    for test, value in [
        ("sterility", "cloudy"),  # not one of the answers the test takes
        ("sterility", 0),  # a number for a qualitative test
        ("karyotype", True),
        ("viability", True),  # a JSON boolean is not 1 %
        ("viability", False),
        ("viability", "high"),  # not a number for a numeric test
        ("viability", "NaN"),
        ("viability", ""),
        ("viability", None),
        ("viability", 1e16),  # beyond any plausible measurement
        ("viable_cells_per_dose", "150,000"),  # 150 or 150 000? never guessed
        ("viable_cells_per_dose", "1 000 000"),
    ]:
        _error(api.result(batch["id"], test, value), 422, "invalid_request")
    assert _counts(api) == before
    assert api.qc(batch["id"])["pending"] == 8
    assert _batch(api, batch["id"])["status"] == "registered"


def test_qc2_a_number_sent_as_text_is_read_as_the_number_it_plainly_is(api):
    """Instruments often send numbers as text: "92.5" and "1.5e8" are read; see above for the
    ambiguous forms that are refused."""
    batch = api.batch()
    assert _ok(api.result(batch["id"], "viability", "92.5"))["value"] == 92.5
    cells = _ok(api.result(batch["id"], "viable_cells_per_dose", " 1.5e8 "))
    assert cells["value"] == 150_000_000 and cells["outcome"] == "pass"


def test_rel_an_unknown_test_is_refused_and_changes_nothing(api):
    """QC-2 / REL: only tests of the batch's specification version take results."""
    batch = api.batch()
    api.qc(batch["id"])
    before = _counts(api)
    detail = _error(api.result(batch["id"], "hemoglobin", 12), 422, "unknown_test")
    assert "viability" in detail  # the refusal names the tests that exist
    assert _counts(api) == before


def test_qc2_the_test_name_is_matched_regardless_of_case(api):
    batch = api.batch()
    assert _ok(api.result(batch["id"], " Viability ", 90))["test"] == "viability"


def test_rel_a_result_on_an_unknown_batch_is_404(api):
    api.qc(api.batch()["id"])
    before = _counts(api)
    _error(api.result(999_999, "viability", 90), 404, "not_found")
    _error(api.get(Role.TECHNICIAN, "/batches/999999/qc"), 404, "not_found")
    assert _counts(api) == before


@pytest.mark.parametrize("role", [Role.QA, Role.CLINICIAN, Role.ADMIN])
def test_qc2_only_a_technician_enters_results(api, role):
    """QC-2: results are entered by the lab (technician); other roles are refused and nothing is
    written."""
    batch = api.batch()
    api.qc(batch["id"])
    api.as_role(role)  # logged in before counting
    before = _counts(api)
    body = {"test": "viability", "value": 90}
    _error(api.post(role, f"/batches/{batch['id']}/qc-results", body), 403, "forbidden")
    assert _counts(api) == before


def test_qc2_a_batch_in_a_final_state_takes_no_result(api):
    """DESIGN §4 / REL: a destroyed batch is closed; a result on it is 409, nothing written."""
    batch = api.batch()
    destroyed = api.post(Role.QA, f"/batches/{batch['id']}/destroy", {"reason": "Dropped flask"})
    assert _ok(destroyed, 200)["status"] == "destroyed"
    before = _counts(api)
    _error(api.result(batch["id"], "viability", 90), 409, "invalid_state")
    assert _counts(api) == before


# -- corrections -----------------------------------------------------------------------------------


def test_qc2_a_second_result_without_a_correction_is_refused(api):
    """QC-2 / AUD-1: a result is never overwritten; a second one for the same test is 409."""
    batch = api.batch()
    first = _ok(api.result(batch["id"], "viability", 85))
    before = _counts(api)
    detail = _error(api.result(batch["id"], "viability", 95), 409, "result_exists")
    assert str(first["id"]) in detail
    assert _counts(api) == before
    assert _rows(api, batch["id"])["viability"]["value"] == 85


def test_qc2_a_correction_needs_a_reason_and_must_name_the_current_result(api):
    batch = api.batch()
    first = _ok(api.result(batch["id"], "viability", 85))
    other = _ok(api.result(batch["id"], "identity", 90))
    before = _counts(api)
    no_reason = api.result(batch["id"], "viability", 95, corrects=first["id"])
    _error(no_reason, 422, "invalid_request")
    wrong = api.result(batch["id"], "viability", 95, corrects=other["id"], reason="typo")
    _error(wrong, 409, "conflict")
    unknown = api.result(batch["id"], "karyotype", "normal", corrects=first["id"], reason="x")
    _error(unknown, 409, "conflict")  # karyotype has no result to correct
    assert _counts(api) == before


def test_qc2_a_correction_keeps_the_old_value_in_the_history_and_is_audited(api):
    """QC-2 / AUD-1: the correction replaces the value in force; the old one stays visible, linked
    to its replacement, and the audit trail records old, new and the reason."""
    batch = api.batch()
    first = _ok(api.result(batch["id"], "viability", 58))  # a typo for 85: fails, holds
    corrected = _ok(
        api.result(batch["id"], "viability", 85, corrects=first["id"], reason="Transcription typo")
    )
    assert corrected["supersedes_id"] == first["id"] and corrected["outcome"] == "pass"
    assert corrected["reason"] == "Transcription typo"

    qc = api.qc(batch["id"])
    row = next(r for r in qc["tests"] if r["test"] == "viability")
    assert (row["value"], row["outcome"], row["result_id"]) == (85, "pass", corrected["id"])
    assert row["corrections"] == 1
    old, new = qc["history"]
    assert (old["id"], old["value"], old["outcome"]) == (first["id"], 58, "fail")
    assert old["superseded_by_id"] == corrected["id"]
    assert (new["id"], new["superseded_by_id"]) == (corrected["id"], None)

    (event,) = audit_events(api.db, "qc_result.corrected")
    assert event.entity_id == corrected["id"] and event.reason == "Transcription typo"
    before, after = _values(event)
    assert before == {"result_id": first["id"], "value": "58 %", "outcome": "fail"}
    assert after["value"] == "85 %" and after["outcome"] == "pass"

    # The replaced result cannot be corrected again: only the one in force can.
    again = api.result(batch["id"], "viability", 86, corrects=first["id"], reason="again")
    _error(again, 409, "conflict")
    second = api.result(batch["id"], "viability", 86, corrects=corrected["id"], reason="Recount")
    assert _ok(second)["supersedes_id"] == corrected["id"]
    assert _rows(api, batch["id"])["viability"]["corrections"] == 2


# -- out of specification --------------------------------------------------------------------------


def test_qc2_a_failing_result_opens_a_deviation_and_holds_the_batch(api):
    """QC-2: an out-of-specification result opens a deviation (kind oos) by itself and puts the
    batch on hold; the deviation names the result; all of it audited."""
    batch, _ = api.formulated()
    assert _batch(api, batch["id"])["status"] == "quarantine"
    result = _ok(api.result(batch["id"], "endotoxin", 0.8))
    assert result["outcome"] == "fail"

    (deviation,) = _deviations(api, batch["id"])
    assert deviation["kind"] == "oos" and deviation["status"] == "open"
    assert deviation["qc_result_id"] == result["id"]
    assert result["deviation_id"] == deviation["id"]
    assert "Endotoxin" in deviation["description"] and "0.5 EU/mL" in deviation["description"]
    after = _batch(api, batch["id"])
    assert after["status"] == "on_hold"
    assert after["alerts"] == []  # not released: no late-failure alert

    (opened,) = audit_events(api.db, "deviation.opened")
    assert opened.entity_id == deviation["id"]
    assert _values(opened)[1]["qc_result_id"] == result["id"]
    moved = [_values(e)[1] for e in audit_events(api.db, "batch.status_changed")]
    assert moved[-1]["status"] == "on_hold"
    (shown,) = api.qc(batch["id"])["history"]
    assert shown["deviation_id"] == deviation["id"]


def test_qc2_a_passing_result_opens_no_deviation(api):
    batch, _ = api.formulated()
    _ok(api.result(batch["id"], "endotoxin", 0.2))
    assert _deviations(api, batch["id"]) == []
    assert _batch(api, batch["id"])["status"] == "quarantine"


def test_rel2_a_late_failure_on_a_conditionally_released_batch_raises_an_alert_and_holds_it(api):
    """REL-2 / DESIGN §4: a pending test that fails after conditional release raises an alert on
    the batch (audited), opens a deviation, and puts the batch on hold."""
    batch, _ = api.released("conditional_release", doses=1, pending=("sterility",))
    assert _batch(api, batch["id"])["status"] == "conditionally_released"
    row = _rows(api, batch["id"])["sterility"]
    result = _ok(api.result(batch["id"], "sterility", failing_value(row)))
    assert result["outcome"] == "fail"

    after = _batch(api, batch["id"])
    assert after["status"] == "on_hold"
    (alert,) = after["alerts"]
    assert alert["kind"] == "late_failure" and alert["qc_result_id"] == result["id"]
    assert "Sterility" in alert["message"]
    (raised,) = audit_events(api.db, "batch.alert_raised")
    assert raised.entity_id == batch["id"]
    assert _values(raised)[1]["qc_result_id"] == result["id"]
    (deviation,) = _deviations(api, batch["id"])
    assert deviation["kind"] == "oos" and deviation["qc_result_id"] == result["id"]


# -- sample identity -------------------------------------------------------------------------------


def test_coi3_a_sample_of_another_batch_is_refused_and_audited(api):
    """COI-3: a result is recorded only against a sample of its own batch; a sample of another
    batch is 409 identity_mismatch, nothing is written, and the attempt is audited."""
    batch, other = api.batch(), api.batch()
    api.qc(batch["id"])
    before = _counts(api)
    response = api.result(batch["id"], "viability", 90, sample_code=other["tube_code"])
    detail = _error(response, 409, "identity_mismatch")
    assert other["tube_code"] in detail
    assert (
        api.db.execute(select(func.count()).select_from(QcResult)).scalar_one()
        == (before["QcResult"])
    )
    (event,) = audit_events(api.db, "qc_result.identity_mismatch")
    assert event.entity_type == "batch" and event.entity_id == batch["id"]
    assert _values(event)[1] == {"sample_code": other["tube_code"]}
    assert _counts(api) == before | {"AuditEvent": before["AuditEvent"] + 1}
    assert _rows(api, batch["id"])["viability"]["outcome"] == "pending"


def test_coi3_a_sample_of_the_batch_itself_is_recorded_with_the_result(api):
    batch = api.batch()
    result = _ok(api.result(batch["id"], "viability", 90, sample_code=batch["tube_code"].lower()))
    assert result["sample_code"] == batch["tube_code"]
    (shown,) = api.qc(batch["id"])["history"]
    assert shown["sample_code"] == batch["tube_code"]


def test_rel_a_sample_code_that_is_malformed_or_unknown_is_refused(api):
    batch = api.batch()
    api.qc(batch["id"])
    before = _counts(api)
    tube = batch["tube_code"]
    corrupt = tube[:-1] + ("0" if tube[-1] != "0" else "1")
    _error(api.result(batch["id"], "viability", 90, sample_code=corrupt), 422, "invalid_code")
    _error(api.result(batch["id"], "viability", 90, sample_code="hello"), 422, "invalid_code")
    assert _counts(api) == before


# -- review by a second person ---------------------------------------------------------------------


def test_sig2_a_second_person_reviews_a_result_with_an_e_signature(api):
    """SIG-2 / Annex 11 §6: another technician's review is a signature with printed name, meaning
    `reviewed` and the record's hash, shown with the result and matching it."""
    batch = api.batch()
    result = _ok(api.result(batch["id"], "viability", 90))
    assert result["reviews"] == [] and result["critical"] is True
    reviewer, headers = _reviewer(api)
    reviewed = _ok(_review(api, result["id"], headers, comment="Checked raw data"), 200)
    (signature,) = reviewed["reviews"]
    assert signature["signed_by"] == "Rita Reviewer"
    assert signature["username"] == reviewer.username and signature["user_id"] == reviewer.id
    assert signature["meaning"] == "reviewed" and signature["comment"] == "Checked raw data"
    assert signature["record_type"] == "qc_result" and signature["record_id"] == result["id"]
    assert len(signature["record_hash"]) == 64 and signature["matches"] is True

    qc = api.qc(batch["id"])
    assert next(r for r in qc["tests"] if r["test"] == "viability")["reviewed"] is True
    assert qc["history"][0]["reviews"] == [signature]
    (applied,) = [  # the installation's approvals (QC-3) sign other records
        e
        for e in audit_events(api.db, "signature.applied")
        if _values(e)[1]["record_type"] == "qc_result"
    ]
    assert applied.actor_id == reviewer.id
    assert _values(applied)[1]["record_id"] == result["id"]


def test_sig2_qa_may_review_a_result(api):
    batch = api.batch()
    result = _ok(api.result(batch["id"], "sterility", "no growth"))
    reviewed = _ok(_review(api, result["id"], api.as_role(Role.QA)), 200)
    assert reviewed["reviews"][0]["meaning"] == "reviewed"


def test_sig4_the_author_of_a_result_cannot_review_it(api):
    """SIG-4: the technician who entered a result is refused as its reviewer, even with the right
    password; nothing is signed."""
    batch = api.batch()
    result = _ok(api.result(batch["id"], "viability", 90))
    before = _counts(api)
    _error(_review(api, result["id"], api.as_role(Role.TECHNICIAN)), 403, "forbidden")
    assert _counts(api) == before
    assert _rows(api, batch["id"])["viability"]["reviewed"] is False


def test_sig4_a_clinician_cannot_review_a_result(api):
    batch = api.batch()
    result = _ok(api.result(batch["id"], "viability", 90))
    before = _counts(api)
    _error(_review(api, result["id"], api.as_role(Role.CLINICIAN)), 403, "forbidden")
    assert _counts(api) == before


def test_sig1_review_needs_the_password_again(api):
    """SIG-1 / SIG-5: a review with a wrong password signs nothing, is 401, and the failed
    attempt is audited and counted against the reviewer's account."""
    batch = api.batch()
    result = _ok(api.result(batch["id"], "viability", 90))
    reviewer, headers = _reviewer(api)
    signatures = api.db.execute(select(func.count()).select_from(Signature)).scalar_one()
    response = _review(api, result["id"], headers, password="wrong-password")
    _error(response, 401, "invalid_credentials")
    assert api.db.execute(select(func.count()).select_from(Signature)).scalar_one() == signatures
    (failed,) = audit_events(api.db, "signature.failed")
    assert failed.actor_id == reviewer.id
    assert _values(failed)[1] == {
        "failed_attempts": 1,
        "record_type": "qc_result",
        "record_id": result["id"],
        "meaning": "reviewed",
    }
    user = api.db.get(User, reviewer.id, populate_existing=True)
    assert user is not None and user.failed_logins == 1 and not user.locked
    assert _rows(api, batch["id"])["viability"]["reviewed"] is False


def test_sig5_repeated_failed_reviews_lock_the_account(api, settings):
    """SIG-5: after the lockout threshold of wrong signing passwords the account is locked (and
    audited); even the right password then signs nothing."""
    batch = api.batch()
    result = _ok(api.result(batch["id"], "viability", 90))
    reviewer, headers = _reviewer(api)
    for _ in range(settings.lockout_threshold):
        response = _review(api, result["id"], headers, password="wrong-password")
        assert response.status_code == 401, response.text
    user = api.db.get(User, reviewer.id, populate_existing=True)
    assert user is not None and user.locked
    assert len(audit_events(api.db, "signature.failed")) == settings.lockout_threshold
    (locked,) = audit_events(api.db, "user.locked")
    assert locked.entity_id == reviewer.id
    assert _review(api, result["id"], headers).status_code == 401
    assert api.login(reviewer.username).status_code == 401
    assert _rows(api, batch["id"])["viability"]["reviewed"] is False


def test_sig2_a_result_is_reviewed_once(api):
    batch = api.batch()
    result = _ok(api.result(batch["id"], "viability", 90))
    _, headers = _reviewer(api)
    _ok(_review(api, result["id"], headers), 200)
    qa = api.as_role(Role.QA)
    before = _counts(api)
    _error(_review(api, result["id"], qa), 409, "conflict")
    assert _counts(api) == before


def test_sig2_a_superseded_result_cannot_be_reviewed(api):
    """A corrected (superseded) value is history; the review belongs to the value in force."""
    batch = api.batch()
    first = _ok(api.result(batch["id"], "viability", 90))
    _ok(api.result(batch["id"], "viability", 91, corrects=first["id"], reason="Recount"))
    _, headers = _reviewer(api)
    before = _counts(api)
    _error(_review(api, first["id"], headers), 409, "invalid_state")
    assert _counts(api) == before


def test_rel_a_review_of_an_unknown_result_is_404(api):
    _, headers = _reviewer(api)
    before = _counts(api)
    _error(_review(api, 999_999, headers), 404, "not_found")
    no_password = api.client.post("/api/v1/qc-results/1/review", headers=headers, json={})
    _error(no_password, 422, "invalid_request")
    assert _counts(api) == before


def test_sig3_a_reviewed_result_changed_behind_the_application_no_longer_matches(api):
    """SIG-3: the review signature covers the result's content; a value changed directly in the
    database shows the signature broken."""
    batch = api.batch()
    result = _ok(api.result(batch["id"], "viability", 90))
    _, headers = _reviewer(api)
    _ok(_review(api, result["id"], headers), 200)
    assert api.qc(batch["id"])["history"][0]["reviews"][0]["matches"] is True

    drop_append_only(api.db, "qc_result")
    api.db.execute(update(QcResult).where(QcResult.id == result["id"]).values(value_number=95.0))
    api.db.flush()
    (shown,) = api.qc(batch["id"])["history"]
    assert shown["value"] == 95
    assert shown["reviews"][0]["matches"] is False


def test_qc2_a_batch_registered_without_a_version_is_pinned_by_its_first_result(api, db):
    """QC-1: a batch that predates specifications is pinned (audited) to the version in force when
    its first result is entered, and keeps it. AUD-3: the pinning is in the patient's own chain,
    where the patient's trail sees it, not in the global one."""
    batch = api.batch()
    db.execute(update(Batch).where(Batch.id == batch["id"]).values(specification_id=None))
    db.flush()
    _ok(api.result(batch["id"], "viability", 90))
    assert _batch(api, batch["id"])["specification_id"] == batch["specification_id"]
    (pinned,) = audit_events(db, "batch.specification_pinned")
    assert pinned.entity_id == batch["id"]
    assert pinned.scope == batch["coi"]
    assert _values(pinned) == (
        {"specification_id": None},
        {"specification_id": batch["specification_id"], "version": 1},
    )

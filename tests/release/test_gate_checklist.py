"""The release gate beyond REL-1 (REL-6): every critical result reviewed by a second person and
every dose labelled; and `GET /batches/{id}/release-gate`, the checklist computed by the code the
release itself runs, so the list and the refusal can never disagree."""

from sqlalchemy import update

from app.auth.permissions import Role
from app.qc.models import QcResult
from app.release.gate import Check
from tests.helpers import drop_append_only, error, ok
from tests.release.support import counts, decide_as, gate_problems, qa_user

ALL_CHECKS = [check.value for check in Check]


def gate(api, batch_id: int, role: Role = Role.QA, **params) -> dict:
    return ok(api.get(role, f"/batches/{batch_id}/release-gate", params=params))


def unmet(checklist: dict) -> dict[str, str]:
    return {c["check"]: c["detail"] for c in checklist["checks"] if not c["met"]}


def _critical_ids(api, batch_id: int) -> dict[str, int]:
    return {
        row["test"]: row["result_id"]
        for row in api.qc(batch_id)["tests"]
        if row["critical"] and row["result_id"] is not None
    }


def test_rel6_a_batch_with_critical_results_not_reviewed_is_not_released(api):
    """Finding 7: a batch was released with 7 of its 8 critical results not reviewed."""
    batch, _ = api.formulated()
    api.pass_qc(batch["id"], prepare=False)
    api.label_doses(batch["id"])
    critical = _critical_ids(api, batch["id"])
    assert len(critical) >= 2
    first, *rest = sorted(critical)
    ok(api.review(critical[first]))
    before = counts(api, batch["id"])
    detail = error(api.decide(batch["id"]), 409, "gate_not_met")
    assert gate_problems(detail) == {"unreviewed"}
    names = {row["test"]: row["name"] for row in api.qc(batch["id"])["tests"]}  # as QA reads
    unreviewed = detail.split("reviewed")[-1]
    assert all(names[test] in unreviewed for test in rest) and names[first] not in unreviewed
    assert counts(api, batch["id"]) == before
    assert set(unmet(gate(api, batch["id"]))) == {"critical_results_reviewed"}
    api.review_critical(batch["id"])
    assert gate(api, batch["id"])["ready"] is True
    assert ok(api.decide(batch["id"]))["status"] == "released"


def test_rel6_a_review_that_no_longer_matches_its_result_does_not_count(api, db):
    """A critical result changed under its review (SIG-3) is not reviewed any more."""
    batch, _ = api.formulated()
    api.pass_qc(batch["id"])
    assert gate(api, batch["id"])["ready"] is True
    result_id = _critical_ids(api, batch["id"])["viability"]
    drop_append_only(db, "qc_result")  # as someone with rights on the database would
    db.execute(update(QcResult).where(QcResult.id == result_id).values(value_number=99.0))
    db.commit()
    detail = unmet(gate(api, batch["id"]))["critical_results_reviewed"]
    assert "Viability" in detail  # the specification's name of the test
    assert gate_problems(error(api.decide(batch["id"]), 409, "gate_not_met")) == {"unreviewed"}


def test_rel6_a_batch_whose_doses_are_not_all_labelled_is_not_released(api):
    """Finding 7: a batch was released with none of its 3 dose labels printed. A voided label
    is no label."""
    batch, codes = api.formulated(doses=3)
    api.pass_qc(batch["id"], prepare=False)
    api.review_critical(batch["id"])
    detail = error(api.decide(batch["id"]), 409, "gate_not_met")
    assert gate_problems(detail) == {"unlabelled"} and all(code in detail for code in codes)
    api.label_doses(batch["id"])
    assert gate(api, batch["id"])["ready"] is True
    (printed,) = ok(api.get(Role.TECHNICIAN, f"/vessels/{codes[1]}/labels"))
    ok(api.post(Role.TECHNICIAN, f"/labels/{printed['id']}/void", {"reason": "Smudged"}))
    detail = unmet(gate(api, batch["id"]))["doses_labelled"]
    assert codes[1] in detail and codes[0] not in detail and codes[2] not in detail
    error(api.decide(batch["id"]), 409, "gate_not_met")
    api.label_doses(batch["id"])
    assert ok(api.decide(batch["id"]))["status"] == "released"


def test_rel6_the_checklist_names_each_condition_and_agrees_with_the_refusal(api):
    batch, _ = api.formulated()
    api.pass_qc(batch["id"], skip=("karyotype",), prepare=False)
    before = counts(api, batch["id"])
    checklist = gate(api, batch["id"])
    assert checklist["ready"] is False and checklist["decision"] == "release"
    assert [c["check"] for c in checklist["checks"]] == ALL_CHECKS
    assert all(isinstance(c["detail"], str) and c["detail"] for c in checklist["checks"])
    missing = unmet(checklist)
    assert set(missing) == {"results_complete", "critical_results_reviewed", "doses_labelled"}
    assert counts(api, batch["id"]) == before  # reading the gate changes nothing
    refusal = error(api.decide(batch["id"]), 409, "gate_not_met")
    for sentence in missing.values():
        assert sentence in refusal
    # A conditional release naming karyotype pending: that condition is met.
    conditional = gate(api, batch["id"], decision="conditional_release", pending_tests="karyotype")
    assert "results_complete" not in unmet(conditional)
    api.pass_qc(batch["id"])
    assert gate(api, batch["id"]) | {"checks": []} == checklist | {"ready": True, "checks": []}
    assert ok(api.decide(batch["id"]))["status"] == "released"
    done = unmet(gate(api, batch["id"]))
    assert set(done) == {"status"} and "released" in done["status"]


def test_rel6_the_checklist_shows_four_eyes_for_the_reader_and_only_qa_reads_it(api):
    batch, _ = api.formulated()
    api.pass_qc(batch["id"])
    for role in (Role.TECHNICIAN, Role.CLINICIAN, Role.ADMIN):
        error(api.get(role, f"/batches/{batch['id']}/release-gate"), 403, "forbidden")
    error(api.get(Role.QA, "/batches/987654/release-gate"), 404, "not_found")
    error(
        api.get(Role.QA, f"/batches/{batch['id']}/release-gate", params={"decision": "bless"}),
        422,
        "invalid_request",
    )
    # A QA person who also entered a result sees the four-eyes condition unmet, and is refused.
    _, headers = qa_user(api, roles=(Role.QA, Role.TECHNICIAN))
    row = next(r for r in api.qc(batch["id"])["tests"] if r["test"] == "karyotype")
    correction = {"test": "karyotype", "value": "normal", "corrects": row["result_id"]}
    correction |= {"reason": "Re-read"}
    ok(
        api.client.post(
            f"/api/v1/batches/{batch['id']}/qc-results", json=correction, headers=headers
        ),
        201,
    )
    mine = api.client.get(f"/api/v1/batches/{batch['id']}/release-gate", headers=headers)
    assert set(unmet(ok(mine))) >= {"four_eyes"}
    assert "entered 1 QC result" in unmet(ok(mine))["four_eyes"]
    error(decide_as(api, headers, batch["id"]), 403, "forbidden")

"""QA's release decision through the API (DESIGN §7-8: REL-1..4, SIG-1..4, EU GMP Part IV
§11.5): the gate, conditional release, who may decide, four-eyes, the e-signature and what it
covers. Every refusal leaves the batch, the decisions, the signatures and the audit trail as they
were (but for the refusal's own audit record)."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from app.auth.permissions import Role
from app.deviations.models import Deviation
from app.qc.models import QcResult
from app.vessels.models import Vessel
from tests.helpers import (
    PASSWORD,
    audit_events,
    drop_append_only,
    error,
    make_user,
    ok,
    passing_value,
    unique,
)
from tests.release.support import (
    GATE_PROBLEMS,
    PHYSICIAN,
    accept,
    close_deviations,
    counts,
    decide_as,
    fail,
    gate_problems,
    new_values,
    oos_ready,
    open_deviation,
    qa_user,
    row,
    status_of,
)


@pytest.fixture
def tested(api):
    """A formulated batch in quarantine with every test passed: (batch, dose codes)."""
    batch, codes = api.formulated()
    api.pass_qc(batch["id"])
    return batch, codes


# -- REL-1: the gate -------------------------------------------------------------------------


def test_rel1_a_tested_reconciled_batch_is_released_signed_and_audited(api, tested):
    batch, codes = tested
    before = counts(api, batch["id"])
    body = ok(api.decide(batch["id"]))
    assert body["decision"] == "release" and body["status"] == "released"
    assert body["batch_id"] == batch["id"] and body["batch_number"] == batch["batch_number"]
    assert body["pending_tests"] == [] and body["out_of_specification"] is False
    assert body["physician_acceptance_id"] is None and body["comment"] == "QA decision"
    assert body["signature"]["record_type"] == "release"
    assert body["signature"]["record_id"] == body["id"]
    assert body["signature"]["matches"] is True
    assert status_of(api, batch["id"]) == "released"

    after = counts(api, batch["id"])
    assert after["status"] == "released"
    assert after["decisions"] == before["decisions"] + 1
    assert after["signatures"] == before["signatures"] + 1
    (decided,) = [e for e in audit_events(api.db, "release.decided") if e.entity_id == body["id"]]
    assert new_values(decided)["decision"] == "release"
    assert new_values(decided)["batch_id"] == batch["id"]
    assert new_values(decided)["status"] == "released"
    moves = [
        new_values(e)["status"]
        for e in audit_events(api.db, "batch.status_changed")
        if e.entity_type == "batch" and e.entity_id == batch["id"]
    ]
    assert moves[-1] == "released"
    (signed,) = [
        e
        for e in audit_events(api.db, "signature.applied")
        if new_values(e).get("record_type") == "release"
        and new_values(e).get("record_id") == body["id"]
    ]
    assert new_values(signed)["record_hash"] == body["signature"]["record_hash"]
    # The doses of a released batch can be dispatched (CLN-3).
    dispatch = {"event": "dispatched", "location": "Courier", "temperature_c": 4.0}
    ok(api.post(Role.TECHNICIAN, f"/vessels/{codes[0]}/custody", dispatch), 201)


def test_rel1_a_single_pending_test_blocks_release(api):
    batch, _ = api.formulated()
    api.pass_qc(batch["id"], skip=("karyotype",))
    before = counts(api, batch["id"])
    detail = error(api.decide(batch["id"]), 409, "gate_not_met")
    assert gate_problems(detail) == {"pending"}
    assert "karyotype" in detail and batch["batch_number"] in detail
    assert counts(api, batch["id"]) == before
    # Its result entered, nothing else stands in the way.
    api.pass_qc(batch["id"])
    assert ok(api.decide(batch["id"]))["status"] == "released"


def test_rel1_a_single_failing_test_blocks_release_even_with_its_deviation_closed(api):
    batch, _ = api.formulated()
    api.pass_qc(batch["id"], skip=("endotoxin",))
    fail(api, batch["id"], "endotoxin")
    assert status_of(api, batch["id"]) == "on_hold"
    (closed,) = close_deviations(api, batch["id"])
    assert closed["kind"] == "oos" and status_of(api, batch["id"]) == "quarantine"
    before = counts(api, batch["id"])
    detail = error(api.decide(batch["id"]), 409, "gate_not_met")
    assert gate_problems(detail) == {"failed"}
    assert "endotoxin" in detail
    assert counts(api, batch["id"]) == before


def test_rel1_a_deviation_opened_by_hand_holds_the_batch_so_it_is_not_released(api, tested):
    batch, _ = tested
    deviation = open_deviation(api, batch["id"])
    before = counts(api, batch["id"])
    detail = error(api.decide(batch["id"]), 409, "invalid_state")
    assert "on_hold" in detail
    # The hold stays while the deviation is open.
    error(
        api.post(Role.QA, f"/batches/{batch['id']}/lift-hold", {"reason": "x"}),
        409,
        "invalid_state",
    )
    assert counts(api, batch["id"]) == before
    (closed,) = close_deviations(api, batch["id"])
    assert closed["number"] == deviation["number"]
    assert status_of(api, batch["id"]) == "quarantine"
    assert ok(api.decide(batch["id"]))["status"] == "released"


def _unheld_open_deviation(api, batch_id) -> str:
    """An open deviation on a batch that is not on hold: no API path leaves one (opening a
    deviation holds the batch, the hold lifts only when it closes), so it is written directly, to
    show that the gate checks deviations itself. Returns its number."""
    opener = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    number = unique("DEVX-")
    api.db.add(
        Deviation(
            number=number,
            batch_id=batch_id,
            kind="process",
            status="investigating",
            description="Recorded without holding the batch",
            opened_by=opener.id,
        )
    )
    api.db.flush()
    return number


def test_rel1_an_unresolved_deviation_alone_blocks_release(api, tested):
    batch, _ = tested
    number = _unheld_open_deviation(api, batch["id"])
    assert status_of(api, batch["id"]) == "quarantine"
    before = counts(api, batch["id"])
    detail = error(api.decide(batch["id"]), 409, "gate_not_met")
    assert gate_problems(detail) == {"deviation"}
    assert number in detail
    assert counts(api, batch["id"]) == before
    # A rejection is not gated.
    assert ok(api.decide(batch["id"], "reject"))["status"] == "rejected"


def _with_a_frozen_vial(api) -> tuple[dict, list[str], str]:
    """A batch harvested, cryopreserved into two vials, one thawed and formulated into doses,
    the other left frozen: (batch, dose codes, frozen vial code)."""
    batch, flasks = api.expanded_batch()
    harvest = ok(api.step(batch["id"], "harvest", flasks, ["tube"]), 201)
    tube = harvest["outputs"][0]["code"]
    frozen = ok(api.step(batch["id"], "cryopreservation", [tube], ["cryovial", "cryovial"]), 201)
    used, kept = (o["code"] for o in frozen["outputs"])
    ok(api.step(batch["id"], "thaw", [used]), 201)
    formulation = ok(
        api.step(batch["id"], "formulation", [used], [api.dose(), api.dose()]),
        201,
    )
    return batch, [o["code"] for o in formulation["outputs"]], kept


def test_rel1_a_cryopreserved_vial_left_frozen_blocks_release(api):
    batch, _, kept = _with_a_frozen_vial(api)
    api.pass_qc(batch["id"])
    before = counts(api, batch["id"])
    detail = error(api.decide(batch["id"]), 409, "gate_not_met")
    assert gate_problems(detail) == {"vessels"}
    assert kept in detail and "frozen" in detail
    assert counts(api, batch["id"]) == before
    # Once the vial is discarded, with a reason, every vessel is accounted for.
    ok(api.step(batch["id"], "discard", [kept], reason="Surplus vial"), 201)
    assert ok(api.decide(batch["id"]))["status"] == "released"


def test_rel1_qc_samples_and_the_sampled_dose_left_active_do_not_block_release(api):
    batch, codes = api.formulated()
    sampling = ok(api.step(batch["id"], "qc_sampling", [codes[0]], ["tube", "cryovial"]), 201)
    samples = [o["code"] for o in sampling["outputs"]]
    api.pass_qc(batch["id"])
    assert ok(api.decide(batch["id"]))["status"] == "released"
    vessels = {v["code"]: v for v in ok(api.get(Role.QA, f"/batches/{batch['id']}"))["vessels"]}
    assert {vessels[code]["kind"] for code in samples} == {"qc_sample"}
    assert {vessels[code]["status"] for code in [*samples, codes[0]]} == {"active"}


def test_rel1_a_batch_whose_doses_were_all_discarded_cannot_be_released(api, tested):
    batch, codes = tested
    ok(api.step(batch["id"], "discard", codes[:1], reason="Bag leaked"), 201)
    ok(api.step(batch["id"], "discard", codes[1:], reason="Bag leaked"), 201)
    before = counts(api, batch["id"])
    detail = error(api.decide(batch["id"]), 409, "gate_not_met")
    assert gate_problems(detail) == {"no_dose"}
    assert counts(api, batch["id"]) == before


def test_rel1_a_batch_whose_doses_were_all_consumed_cannot_be_released(api, tested):
    """Dose bags cryopreserved (consumed) and the vial discarded: every vessel is accounted
    for, but there is nothing left to supply."""
    batch, codes = tested
    vial = ok(api.step(batch["id"], "cryopreservation", codes, ["cryovial"]), 201)["outputs"][0]
    ok(api.step(batch["id"], "discard", [vial["code"]], reason="Freezer failure"), 201)
    before = counts(api, batch["id"])
    detail = error(api.decide(batch["id"]), 409, "gate_not_met")
    assert gate_problems(detail) == {"no_dose"}
    assert counts(api, batch["id"]) == before


def test_rel1_one_dose_discarded_and_one_live_is_releasable(api, tested):
    batch, codes = tested
    ok(api.step(batch["id"], "discard", codes[:1], reason="Bag leaked"), 201)
    assert ok(api.decide(batch["id"]))["status"] == "released"


def test_rel1_the_gate_names_every_problem_at_once(api):
    batch, codes = _with_a_frozen_vial(api)[:2]
    api.pass_qc(batch["id"], skip=("sterility", "endotoxin"), prepare=False)
    fail(api, batch["id"], "endotoxin")
    close_deviations(api, batch["id"])
    ok(api.step(batch["id"], "discard", codes, reason="Bags leaked"), 201)
    number = _unheld_open_deviation(api, batch["id"])
    detail = error(api.decide(batch["id"]), 409, "gate_not_met")
    # Every dose discarded: none is left unlabelled (REL-6 labels the doses in use).
    assert gate_problems(detail) == set(GATE_PROBLEMS) - {"unlabelled"}
    # Unreviewed results are named as the specification names them ("Viability").
    for named in ("endotoxin", "sterility", number, "frozen", "Viability"):
        assert named in detail


def test_rel1_a_batch_not_in_quarantine_is_refused_naming_its_state(api):
    batch, _ = api.expanded_batch()
    before = counts(api, batch["id"])
    detail = error(api.decide(batch["id"]), 409, "invalid_state")
    assert "expansion" in detail and "quarantine" in detail
    assert counts(api, batch["id"]) == before
    detail = error(api.decide(batch["id"], "reject"), 409, "invalid_state")
    assert "expansion" in detail
    assert counts(api, batch["id"]) == before


def test_rel1_a_released_batch_is_not_released_twice(api, tested):
    batch, _ = tested
    ok(api.decide(batch["id"]))
    before = counts(api, batch["id"])
    detail = error(api.decide(batch["id"]), 409, "invalid_state")
    assert "released" in detail
    error(
        api.decide(batch["id"], "conditional_release", pending_tests=["karyotype"]),
        409,
        "invalid_state",
    )
    assert counts(api, batch["id"]) == before


def test_rel_an_unknown_batch_is_404_and_bad_bodies_are_422(api, tested):
    batch, _ = tested
    error(api.decide(987654), 404, "not_found")
    before = counts(api, batch["id"])
    path = f"/batches/{batch['id']}/release"
    for body in (
        {"decision": "approve", "password": PASSWORD},
        {"decision": "release"},
        {"decision": "release", "password": ""},
        {"decision": "release", "password": PASSWORD, "status": "released"},
        {"decision": "release", "password": PASSWORD, "meaning": "liked"},
        {"decision": "release", "password": PASSWORD, "pending_tests": "sterility"},
    ):
        response = api.post(Role.QA, path, body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"] == "invalid_request"
    assert counts(api, batch["id"]) == before


# -- REL-2: conditional release ---------------------------------------------------------------


def test_rel2_conditional_release_names_the_pending_tests_then_a_full_release_follows(api):
    batch, codes = api.formulated()
    api.pass_qc(batch["id"], skip=("sterility", "mycoplasma"))
    body = ok(
        api.decide(batch["id"], "conditional_release", pending_tests=["Mycoplasma", "sterility"])
    )
    assert body["decision"] == "conditional_release"
    assert body["status"] == "conditionally_released"
    assert body["pending_tests"] == ["mycoplasma", "sterility"]
    assert body["signature"]["meaning"] == "released"
    assert status_of(api, batch["id"]) == "conditionally_released"
    # Its doses may travel while the tests run (short shelf life): the first dispatch issues it.
    dispatch = {"event": "dispatched", "location": "Courier", "temperature_c": 4.0}
    ok(api.post(Role.TECHNICIAN, f"/vessels/{codes[0]}/custody", dispatch), 201)
    assert status_of(api, batch["id"]) == "issued"
    # A full release needs the pending results; the issued batch stays issued.
    detail = error(api.decide(batch["id"]), 409, "gate_not_met")
    assert gate_problems(detail) == {"pending"} and "sterility" in detail
    api.pass_qc(batch["id"])
    full = ok(api.decide(batch["id"]))
    assert full["status"] == "issued" and full["pending_tests"] == []
    assert full["decision"] == "release" and status_of(api, batch["id"]) == "issued"
    # Fully released once: a second release is refused.
    error(api.decide(batch["id"]), 409, "invalid_state")
    decisions = ok(api.get(Role.QA, f"/batches/{batch['id']}/releases"))
    assert [d["decision"] for d in decisions] == ["conditional_release", "release"]
    assert all(d["signature"]["matches"] for d in decisions)
    assert audit_events(api.db, "batch.alert_raised") == []


def test_rel2_pending_tests_are_named_only_by_a_conditional_release_and_must_be_pending(api):
    batch, _ = api.formulated()
    api.pass_qc(batch["id"], skip=("sterility", "mycoplasma"))
    before = counts(api, batch["id"])
    cases = [
        ("conditional_release", [], "names the tests"),
        ("conditional_release", ["sterility", "tarot_reading"], "tarot_reading"),
        ("conditional_release", ["sterility", "viability"], "viability"),  # has a result
        ("release", ["sterility"], "no pending"),
        ("reject", ["sterility"], "no pending"),
    ]
    for decision, pending, named in cases:
        detail = error(
            api.decide(batch["id"], decision, pending_tests=pending), 422, "invalid_request"
        )
        assert named in detail, (decision, pending, detail)
    # A test neither passed nor named pending still blocks a conditional release.
    detail = error(
        api.decide(batch["id"], "conditional_release", pending_tests=["sterility"]),
        409,
        "gate_not_met",
    )
    assert gate_problems(detail) == {"pending"} and "mycoplasma" in detail
    assert "sterility" not in detail
    assert counts(api, batch["id"]) == before


def test_rel2_conditional_release_only_from_quarantine(api):
    batch, _ = api.released("conditional_release", pending=("sterility", "mycoplasma"))
    before = counts(api, batch["id"])
    detail = error(
        api.decide(batch["id"], "conditional_release", pending_tests=["sterility"]),
        409,
        "invalid_state",
    )
    assert "conditionally_released" in detail
    assert counts(api, batch["id"]) == before


def test_rel2_a_late_failing_result_alerts_holds_opens_a_deviation_and_stops_dispatch(api):
    batch, codes = api.released("conditional_release", pending=("sterility",))
    dispatch = {"event": "dispatched", "location": "Courier", "temperature_c": 4.0}
    ok(api.post(Role.TECHNICIAN, f"/vessels/{codes[0]}/custody", dispatch), 201)
    result = fail(api, batch["id"], "sterility")

    shown = ok(api.get(Role.CLINICIAN, f"/batches/{batch['id']}"))
    assert shown["status"] == "on_hold"
    (alert,) = shown["alerts"]
    assert alert["kind"] == "late_failure" and alert["qc_result_id"] == result["id"]
    assert "Sterility" in alert["message"]
    (deviation,) = ok(api.get(Role.QA, f"/batches/{batch['id']}/deviations"))
    assert deviation["kind"] == "oos" and deviation["status"] == "open"
    assert deviation["qc_result_id"] == result["id"]
    (raised,) = [
        e for e in audit_events(api.db, "batch.alert_raised") if e.entity_id == batch["id"]
    ]
    assert new_values(raised)["qc_result_id"] == result["id"]

    # No more doses leave; nor can QA release it now.
    detail = error(
        api.post(Role.TECHNICIAN, f"/vessels/{codes[1]}/custody", dispatch), 409, "not_released"
    )
    assert "on_hold" in detail
    error(api.decide(batch["id"]), 409, "invalid_state")
    # Closing the deviation lifts the hold (back to issued: a dose left), but the failure still
    # blocks a release.
    close_deviations(api, batch["id"])
    assert status_of(api, batch["id"]) == "issued"
    detail = error(api.decide(batch["id"]), 409, "gate_not_met")
    assert gate_problems(detail) == {"failed"} and "sterility" in detail


def test_rel2_a_late_passing_result_raises_no_alert(api):
    batch, _ = api.released("conditional_release", pending=("sterility",))
    api.pass_qc(batch["id"])
    shown = ok(api.get(Role.QA, f"/batches/{batch['id']}"))
    assert shown["status"] == "conditionally_released" and shown["alerts"] == []


# -- REL-3: who decides, e-signed; rejection -----------------------------------------------------


@pytest.mark.parametrize("role", [Role.TECHNICIAN, Role.CLINICIAN, Role.ADMIN])
def test_rel3_only_qa_takes_a_decision(api, tested, role):
    batch, _ = tested
    before = counts(api, batch["id"])
    for decision in ("release", "reject"):
        body = {"decision": decision, "password": PASSWORD}
        error(api.post(role, f"/batches/{batch['id']}/release", body), 403, "forbidden")
    assert counts(api, batch["id"]) == before


def test_rel3_a_wrong_password_signs_nothing_and_is_audited(api, tested):
    batch, _ = tested
    signer, headers = qa_user(api)
    before = counts(api, batch["id"])
    failed_before = len(audit_events(api.db, "signature.failed"))
    error(
        decide_as(api, headers, batch["id"], password="not-my-password"), 401, "invalid_credentials"
    )
    after = counts(api, batch["id"])
    assert after["status"] == "quarantine"
    assert after["decisions"] == before["decisions"]
    assert after["signatures"] == before["signatures"]
    assert after["audit"] == before["audit"] + 1  # the failed signature, nothing else
    failures = audit_events(api.db, "signature.failed")
    assert len(failures) == failed_before + 1
    assert failures[-1].actor_id == signer.id
    assert new_values(failures[-1])["record_type"] == "release"
    assert new_values(failures[-1])["failed_attempts"] == 1
    # The right password signs.
    assert ok(decide_as(api, headers, batch["id"]))["status"] == "released"


def test_rel3_repeated_wrong_passwords_lock_the_signer(api, tested):
    batch, _ = tested
    _, headers = qa_user(api)
    for _ in range(api.settings.lockout_threshold):
        error(decide_as(api, headers, batch["id"], password="wrong"), 401, "invalid_credentials")
    response = decide_as(api, headers, batch["id"])
    assert response.status_code == 401, response.text
    assert status_of(api, batch["id"]) == "quarantine"


def test_rel3_a_rejection_from_quarantine_is_final(api):
    batch, codes = api.formulated()  # untested: a rejection is not gated
    before = counts(api, batch["id"])
    body = ok(api.decide(batch["id"], "reject", comment="Growth stalled"))
    assert body["decision"] == "reject" and body["status"] == "rejected"
    assert body["signature"]["meaning"] == "rejected"  # SIG-6: the meaning of the act
    assert status_of(api, batch["id"]) == "rejected"
    after = counts(api, batch["id"])
    assert after["decisions"] == before["decisions"] + 1
    assert after["signatures"] == before["signatures"] + 1
    for decision, extra in (
        ("release", {}),
        ("conditional_release", {"pending_tests": ["sterility"]}),
        ("reject", {}),
    ):
        detail = error(api.decide(batch["id"], decision, **extra), 409, "invalid_state")
        assert "rejected" in detail
    assert counts(api, batch["id"]) == after
    dispatch = {"event": "dispatched", "location": "Courier", "temperature_c": 4.0}
    error(api.post(Role.TECHNICIAN, f"/vessels/{codes[0]}/custody", dispatch), 409, "not_released")


def test_rel3_a_batch_on_hold_is_rejected_but_not_released(api, tested):
    batch, _ = tested
    open_deviation(api, batch["id"])
    before = counts(api, batch["id"])
    error(api.decide(batch["id"]), 409, "invalid_state")
    error(
        api.decide(batch["id"], "conditional_release", pending_tests=["sterility"]),
        409,
        "invalid_state",
    )
    assert counts(api, batch["id"]) == before
    assert ok(api.decide(batch["id"], "reject"))["status"] == "rejected"


def test_rel3_a_late_failure_ends_in_rejection_from_on_hold(api):
    batch, _ = api.released("conditional_release", pending=("mycoplasma",))
    fail(api, batch["id"], "mycoplasma")
    assert status_of(api, batch["id"]) == "on_hold"
    body = ok(api.decide(batch["id"], "reject", comment="Mycoplasma detected after release"))
    assert body["status"] == "rejected"
    decisions = ok(api.get(Role.QA, f"/batches/{batch['id']}/releases"))
    assert [d["decision"] for d in decisions] == ["conditional_release", "reject"]


def test_rel3_a_conditionally_released_batch_may_be_rejected(api):
    batch, _ = api.released("conditional_release", pending=("karyotype",))
    assert ok(api.decide(batch["id"], "reject"))["status"] == "rejected"


# -- REL-4 / SIG-4: four-eyes --------------------------------------------------------------------


def _refused_then_another_qa_releases(api, batch_id, headers, did: str) -> None:
    before = counts(api, batch_id)
    for decision in ("release", "reject"):
        detail = error(decide_as(api, headers, batch_id, decision), 403, "forbidden")
        assert did in detail and "four-eyes" in detail
    assert counts(api, batch_id) == before
    assert ok(api.decide(batch_id))["status"] == "released"


def test_rel4_sig4_a_qa_technician_who_entered_a_result_cannot_release(api):
    batch, _ = api.formulated()
    _, headers = qa_user(api, roles=(Role.QA, Role.TECHNICIAN))
    karyotype = row(api, batch["id"], "karyotype")
    body = {"test": "karyotype", "value": passing_value(karyotype)}
    ok(
        api.client.post(f"/api/v1/batches/{batch['id']}/qc-results", headers=headers, json=body),
        201,
    )
    api.pass_qc(batch["id"])
    _refused_then_another_qa_releases(api, batch["id"], headers, "entered 1 QC result")


def test_rel4_sig4_a_qa_technician_who_performed_a_step_cannot_release(api):
    batch, codes = api.formulated()
    _, headers = qa_user(api, roles=(Role.QA, Role.TECHNICIAN))
    body = {"kind": "qc_sampling", "inputs": [codes[0]], "outputs": [{"kind": "tube"}]}
    ok(api.client.post(f"/api/v1/batches/{batch['id']}/steps", headers=headers, json=body), 201)
    api.pass_qc(batch["id"])
    _refused_then_another_qa_releases(api, batch["id"], headers, "performed 1 step")


def test_rel4_sig4_a_qa_technician_who_registered_the_batch_cannot_release(api):
    _, headers = qa_user(api, roles=(Role.QA, Role.TECHNICIAN))
    biopsy = api.received_biopsy()
    batch = ok(
        api.client.post("/api/v1/batches", headers=headers, json={"biopsy_id": biopsy["id"]}),
        201,
    )
    flask = ok(api.step(batch["id"], "isolation", [biopsy["tube_code"]], ["flask"]), 201)
    flasks = ok(api.step(batch["id"], "passage", [flask["outputs"][0]["code"]], ["flask"]), 201)
    tube = ok(api.step(batch["id"], "harvest", [flasks["outputs"][0]["code"]], ["tube"]), 201)
    ok(api.step(batch["id"], "formulation", [tube["outputs"][0]["code"]], [api.dose()]), 201)
    api.pass_qc(batch["id"])
    _refused_then_another_qa_releases(api, batch["id"], headers, "registered the batch")


def test_rel4_the_password_is_checked_before_four_eyes(api, tested):
    """A refused signer learns nothing about the batch before re-authenticating (SIG-1)."""
    batch, codes = tested
    _, headers = qa_user(api, roles=(Role.QA, Role.TECHNICIAN))
    body = {"kind": "qc_sampling", "inputs": [codes[0]], "outputs": [{"kind": "tube"}]}
    ok(api.client.post(f"/api/v1/batches/{batch['id']}/steps", headers=headers, json=body), 201)
    error(decide_as(api, headers, batch["id"], password="wrong"), 401, "invalid_credentials")
    error(decide_as(api, headers, batch["id"]), 403, "forbidden")


def test_rel4_a_qa_user_who_only_reviewed_or_closed_deviations_may_release(api):
    """Reviewing results and closing deviations is QA's work, not the batch's manufacture."""
    batch, _ = api.formulated()
    api.pass_qc(batch["id"], prepare=False)
    signer, headers = qa_user(api)
    viability = row(api, batch["id"], "viability")
    review = {"password": PASSWORD, "comment": "checked"}
    ok(
        api.client.post(
            f"/api/v1/qc-results/{viability['result_id']}/review", headers=headers, json=review
        )
    )
    api.prepare_release(batch["id"])
    assert ok(decide_as(api, headers, batch["id"]))["signature"]["user_id"] == signer.id


# -- SIG-2 / SIG-3: the manifestation and what it covers -------------------------------------------


def test_sig2_the_release_signature_shows_printed_name_user_time_and_meaning(api, tested):
    batch, _ = tested
    signer, headers = qa_user(api, full_name="Quirina Assunta Vega")
    started = datetime.now(UTC)
    body = ok(decide_as(api, headers, batch["id"], comment="All results reviewed"))
    signature = body["signature"]
    assert signature["signed_by"] == "Quirina Assunta Vega"
    assert signature["username"] == signer.username and signature["user_id"] == signer.id
    assert signature["meaning"] == "released"
    assert signature["comment"] == "All results reviewed"
    signed_at = datetime.fromisoformat(signature["signed_at"].replace("Z", "+00:00"))
    assert signed_at.utcoffset() == timedelta(0)
    assert started - timedelta(seconds=5) <= signed_at <= datetime.now(UTC) + timedelta(seconds=5)
    assert len(signature["record_hash"]) == 64
    int(signature["record_hash"], 16)
    assert body["decided_by"] == signer.username
    (listed,) = ok(api.get(Role.CLINICIAN, f"/batches/{batch['id']}/releases"))
    assert listed["signature"] == signature


def test_sig6_a_decision_is_signed_only_with_the_meaning_of_its_act(api, tested):
    """Finding 6: a release signed `reviewed` was accepted. A release is `released`, a
    rejection `rejected`; another meaning is refused, naming the right one, and signs nothing."""
    batch, _ = tested
    before = counts(api, batch["id"])
    for decision, meaning, right in (
        ("release", "reviewed", "released"),
        ("release", "approved", "released"),
        ("release", "rejected", "released"),
        ("reject", "released", "rejected"),
        ("reject", "approved", "rejected"),
    ):
        detail = error(api.decide(batch["id"], decision, meaning=meaning), 422, "invalid_request")
        assert repr(right) in detail and repr(meaning) in detail
    assert counts(api, batch["id"]) == before
    body = ok(api.decide(batch["id"], meaning="released"))
    assert body["signature"]["meaning"] == "released" and body["status"] == "released"


def test_sig6_an_omitted_meaning_is_the_acts_own(api):
    batch, _ = api.formulated()
    body = ok(api.decide(batch["id"], "reject"))
    assert body["signature"]["meaning"] == "rejected"
    released, _ = api.formulated()
    api.pass_qc(released["id"])
    assert ok(api.decide(released["id"]))["signature"]["meaning"] == "released"


def _releases(api, batch_id) -> list[dict]:
    return ok(api.get(Role.QA, f"/batches/{batch_id}/releases"))


def test_sig3_a_result_changed_under_a_release_shows_the_record_changed(api, tested):
    batch, _ = tested
    ok(api.decide(batch["id"]))
    (decision,) = _releases(api, batch["id"])
    assert decision["signature"]["matches"] is True
    html = api.get(Role.QA, f"/batches/{batch['id']}/certificate").text
    assert "record unchanged since signing" in html and "RECORD CHANGED" not in html

    drop_append_only(api.db, "qc_result")
    api.db.execute(
        update(QcResult)
        .where(QcResult.batch_id == batch["id"], QcResult.test == "viability")
        .values(value_number=99.0)
    )
    api.db.flush()
    (changed,) = _releases(api, batch["id"])
    assert changed["signature"]["matches"] is False
    assert changed["signature"]["record_hash"] == decision["signature"]["record_hash"]
    html = api.get(Role.QA, f"/batches/{batch['id']}/certificate").text
    assert "RECORD CHANGED SINCE SIGNING" in html
    assert "record unchanged since signing" not in html


def test_sig3_a_dose_changed_under_a_release_shows_the_record_changed(api, tested):
    batch, codes = tested
    ok(api.decide(batch["id"]))
    api.db.execute(update(Vessel).where(Vessel.code == codes[1]).values(volume_ml=75.0))
    api.db.flush()
    (changed,) = _releases(api, batch["id"])
    assert changed["signature"]["matches"] is False


def test_sig3_a_dose_moved_or_dispatched_after_release_keeps_the_signature(api, tested):
    """Custody is not what QA signed: moving and dispatching doses leave the record matching."""
    batch, codes = tested
    ok(api.decide(batch["id"]))
    dispatch = {"event": "dispatched", "location": "Courier", "temperature_c": 4.0}
    ok(api.post(Role.TECHNICIAN, f"/vessels/{codes[0]}/custody", dispatch), 201)
    (decision,) = _releases(api, batch["id"])
    assert decision["signature"]["matches"] is True


def test_sig3_a_deviation_changed_under_a_release_shows_the_record_changed(api, tested):
    batch, _ = tested
    deviation = open_deviation(api, batch["id"])
    close_deviations(api, batch["id"])
    ok(api.decide(batch["id"]))
    api.db.execute(
        update(Deviation).where(Deviation.id == deviation["id"]).values(capa="Nothing to do")
    )
    api.db.flush()
    (changed,) = _releases(api, batch["id"])
    assert changed["signature"]["matches"] is False


# -- EU GMP Part IV §11.5: supplying an out-of-specification batch ---------------------------------


def test_rel_oos_a_failing_result_blocks_release_without_the_physicians_acceptance(api):
    batch, _ = api.formulated()
    api.pass_qc(batch["id"], skip=("identity",))
    fail(api, batch["id"], "identity")
    close_deviations(api, batch["id"])
    detail = error(api.decide(batch["id"]), 409, "gate_not_met")
    assert gate_problems(detail) == {"failed"} and "identity" in detail


def test_sig6_an_acceptance_with_nothing_to_accept_is_refused_so_none_counts_later(api):
    """Finding 6: an acceptance recorded before there was anything to accept counted later.
    It is now refused (409, nothing written), and the failure later needs its own."""
    batch, _ = api.formulated()
    api.pass_qc(batch["id"], skip=("endotoxin",))
    before = counts(api, batch["id"])
    body = {
        "physician_name": PHYSICIAN,
        "accepted_at": datetime.now(UTC).isoformat(),
        "note": "Early",
        "password": PASSWORD,
    }
    path = f"/batches/{batch['id']}/physician-acceptance"
    detail = error(api.post(Role.CLINICIAN, path, body), 409, "nothing_to_accept")
    assert "nothing" in detail
    assert counts(api, batch["id"]) == before and ok(api.get(Role.QA, path)) == []
    fail(api, batch["id"], "endotoxin")
    close_deviations(api, batch["id"])
    api.prepare_release(batch["id"])
    detail = error(api.decide(batch["id"]), 409, "gate_not_met")
    assert gate_problems(detail) == {"failed"} and "endotoxin" in detail


def test_rel_oos_an_acceptance_covers_only_the_failures_it_was_recorded_after(api):
    batch, _ = oos_ready(api, "endotoxin")  # accepted: endotoxin
    # A correction that fails a second test after the acceptance.
    identity = row(api, batch["id"], "identity")
    bad = {"corrects": identity["result_id"], "reason": "Recount", "value": identity["min"] / 2}
    ok(api.result(batch["id"], "identity", **bad), 201)
    close_deviations(api, batch["id"])
    api.prepare_release(batch["id"])
    detail = error(api.decide(batch["id"]), 409, "gate_not_met")
    assert gate_problems(detail) == {"failed"} and "identity" in detail
    accept(api, batch["id"])  # now accepting both
    assert ok(api.decide(batch["id"]))["out_of_specification"] is True


def test_rel_oos_release_after_the_physicians_acceptance_is_flagged(api):
    batch, _ = oos_ready(api)
    (acceptance,) = ok(api.get(Role.QA, f"/batches/{batch['id']}/physician-acceptance"))
    assert acceptance["physician_name"] == PHYSICIAN
    assert acceptance["out_of_specification_tests"] == ["endotoxin"]
    body = ok(api.decide(batch["id"]))
    assert body["status"] == "released" and body["out_of_specification"] is True
    assert body["physician_acceptance_id"] == acceptance["id"]
    assert body["signature"]["matches"] is True
    (decided,) = [e for e in audit_events(api.db, "release.decided") if e.entity_id == body["id"]]
    assert new_values(decided)["out_of_specification"] is True


def test_rel_oos_a_conditional_release_of_an_oos_batch_stays_refused(api):
    batch, _ = api.formulated()
    api.pass_qc(batch["id"], skip=("endotoxin", "sterility"))
    fail(api, batch["id"], "endotoxin")
    close_deviations(api, batch["id"])
    accept(api, batch["id"])
    before = counts(api, batch["id"])
    detail = error(
        api.decide(batch["id"], "conditional_release", pending_tests=["sterility"]),
        409,
        "gate_not_met",
    )
    assert gate_problems(detail) == {"failed"} and "endotoxin" in detail
    assert counts(api, batch["id"]) == before
    api.pass_qc(batch["id"])
    assert ok(api.decide(batch["id"]))["out_of_specification"] is True


def test_rel_oos_physician_acceptance_is_a_clinicians_record(api):
    batch, _ = api.formulated()
    api.pass_qc(batch["id"], skip=("endotoxin",))
    fail(api, batch["id"], "endotoxin")
    body = {
        "physician_name": PHYSICIAN,
        "accepted_at": datetime.now(UTC).isoformat(),
        "password": PASSWORD,
    }
    path = f"/batches/{batch['id']}/physician-acceptance"
    for role in (Role.TECHNICIAN, Role.QA, Role.ADMIN):
        error(api.post(role, path, body), 403, "forbidden")
    future = body | {"accepted_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()}
    error(api.post(Role.CLINICIAN, path, future), 422, "invalid_request")
    error(api.post(Role.CLINICIAN, path, body | {"physician_name": ""}), 422, "invalid_request")
    error(api.post(Role.CLINICIAN, "/batches/987654/physician-acceptance", body), 404, "not_found")
    assert ok(api.get(Role.QA, path)) == []
    recorded = ok(api.post(Role.CLINICIAN, path, body), 201)
    assert recorded["out_of_specification_tests"] == ["endotoxin"]
    (event,) = [
        e for e in audit_events(api.db, "batch.physician_acceptance") if e.entity_id == batch["id"]
    ]
    assert new_values(event)["physician_name"] == PHYSICIAN

"""QC result entry on a batch's page (issue 12 item 1): the specification's tests with limits
and the outcome in words, results entered and corrected through the API's own service, refusals
shown on the page with nothing changed, roles and CSRF."""

import re

from app.audit.actions import AuditAction
from app.auth.permissions import Role
from tests.helpers import audit_events, error, failing_value
from tests.test_pages import _page_login, submit


def _results(api, batch_id: int) -> list[dict]:
    return api.qc(batch_id)["history"]


def _page(api, batch_id: int, query: str = ""):
    page = api.client.get(f"/batches/{batch_id}/qc{query}")
    assert page.status_code == 200, page.text
    return page


def test_qc2_the_page_lists_the_tests_with_limits_and_enters_a_result_as_the_api(api, db):
    batch, _ = api.formulated(doses=1)
    _page_login(api, Role.TECHNICIAN)
    record = api.client.get(f"/batches/{batch['id']}")
    assert f'href="/batches/{batch["id"]}/qc"' in record.text
    page = _page(api, batch["id"])
    assert "Viability" in page.text and "≥ 70 %" in page.text and "Trypan blue" in page.text
    assert "PENDING</strong> — no result yet" in page.text
    assert 'id="test"' in page.text and 'id="value"' in page.text and "Enter result" in page.text
    assert batch["coi"] in page.text and batch["batch_number"] in page.text
    assert "no-store" in page.headers["cache-control"]
    assert "<script>" not in page.text and " style=" not in page.text

    entered = submit(api, f"/batches/{batch['id']}/qc", data={"test": "viability", "value": "91,5"})
    assert entered.status_code == 200, entered.text
    assert "RESULT ENTERED — PASS: within the limit" in entered.text
    assert "Second-person review needed" in entered.text  # viability is critical
    (result,) = _results(api, batch["id"])
    assert result["test"] == "viability" and result["value"] == 91.5
    assert result["outcome"] == "pass"
    assert len(audit_events(db, AuditAction.QC_RESULT_ENTERED)) == 1


def test_qc2_an_out_of_specification_result_says_so_in_words_and_asks_for_qa(api):
    batch, _ = api.formulated(doses=1)
    row = next(t for t in api.qc(batch["id"])["tests"] if t["test"] == "endotoxin")
    _page_login(api, Role.TECHNICIAN)
    failed = submit(
        api,
        f"/batches/{batch['id']}/qc",
        data={"test": "endotoxin", "value": str(failing_value(row)), "unit": "EU/mL"},
    )
    assert failed.status_code == 200
    assert "FAIL: out of specification (OOS)" in failed.text
    assert "A deviation was opened" in failed.text and 'href="/qa"' in failed.text
    assert "FAIL</strong> — out of specification (OOS)" in failed.text
    assert api.get(Role.QA, f"/batches/{batch['id']}").json()["status"] == "on_hold"


def test_qc2_a_second_result_is_refused_on_the_page_like_the_api_and_changes_nothing(api, db):
    batch, _ = api.formulated(doses=1)
    assert api.result(batch["id"], "viability", 90).status_code == 201
    _page_login(api, Role.TECHNICIAN)
    refused = submit(
        api, f"/batches/{batch['id']}/qc", data={"test": "viability", "value": "75", "note": "x"}
    )
    assert refused.status_code == 409
    api_refused = api.result(batch["id"], "viability", 75)
    assert api_refused.status_code == 409
    assert api_refused.json()["error"] == "result_exists"
    assert "already has a result" in refused.text and 'role="alert"' in refused.text
    # Still the page: its table, the form with what was typed, the value box focused.
    assert "Trypan blue" in refused.text
    assert re.search(
        r'id="value" name="value" required autocomplete="off" value="75" autofocus', refused.text
    )
    assert "Log out" in refused.text
    assert len(_results(api, batch["id"])) == 1
    assert len(audit_events(db, AuditAction.QC_RESULT_ENTERED)) == 1


def test_aud9_a_result_is_corrected_on_the_page_with_its_reason_and_the_old_value_kept(api, db):
    batch, _ = api.formulated(doses=1)
    first = api.result(batch["id"], "viability", 65).json()
    _page_login(api, Role.TECHNICIAN)
    page = _page(api, batch["id"])
    link = f"/batches/{batch['id']}/qc?test=viability&amp;correct={first['id']}"
    assert link in page.text
    form = _page(api, batch["id"], f"?test=viability&correct={first['id']}")
    assert f"Correct result #{first['id']}" in form.text and 'id="reason"' in form.text
    assert "Enter correction" in form.text
    body = {"test": "viability", "value": "85", "corrects": str(first["id"])}
    no_reason = submit(api, f"/batches/{batch['id']}/qc", data=body)
    assert no_reason.status_code == 422 and "needs a reason" in no_reason.text
    assert 'id="reason"' in no_reason.text  # the correction form again
    corrected = submit(
        api, f"/batches/{batch['id']}/qc", data=body | {"reason": "Counting chamber misread"}
    )
    assert corrected.status_code == 200, corrected.text
    assert f"corrects result #{first['id']} (Counting chamber misread)" in corrected.text
    history = _results(api, batch["id"])
    assert [r["value"] for r in history] == [65, 85]
    assert history[1]["supersedes_id"] == first["id"]
    assert len(audit_events(db, AuditAction.QC_RESULT_CORRECTED)) == 1


def test_coi3_a_sample_of_another_batch_is_stopped_on_the_page_and_audited(api, db):
    batch, _ = api.formulated(doses=1)
    _other, other_flasks = api.expanded_batch()
    _page_login(api, Role.TECHNICIAN)
    stop = submit(
        api,
        f"/batches/{batch['id']}/qc",
        data={"test": "viability", "value": "90", "sample_code": other_flasks[0]},
    )
    assert stop.status_code == 409 and 'class="stop"' in stop.text
    assert f'value="{other_flasks[0]}"' in stop.text  # what was scanned stays to be seen
    assert _results(api, batch["id"]) == []
    assert len(audit_events(db, AuditAction.QC_SAMPLE_MISMATCH)) == 1
    unknown = submit(api, f"/batches/{batch['id']}/qc", data={"test": "potency", "value": "1"})
    assert unknown.status_code == 422 and "is not a test of specification" in unknown.text
    blank = submit(api, f"/batches/{batch['id']}/qc", data={"test": "viability", "value": ""})
    assert blank.status_code == 422 and "Type the result" in blank.text
    assert "Trypan blue" in blank.text


def test_sec_qc_entry_needs_its_permission_and_the_csrf_token(api, db):
    batch, _ = api.formulated(doses=1)
    _page_login(api, Role.ADMIN)
    assert api.client.get(f"/batches/{batch['id']}/qc").status_code == 403
    _page_login(api, Role.CLINICIAN)  # reads QC, enters none
    page = _page(api, batch["id"])
    assert "Viability" in page.text and 'action="/batches/' not in page.text
    refused = submit(api, f"/batches/{batch['id']}/qc", data={"test": "viability", "value": "90"})
    assert refused.status_code == 403
    as_api = {"test": "viability", "value": 90}
    error(api.post(Role.CLINICIAN, f"/batches/{batch['id']}/qc-results", as_api), 403, "forbidden")
    _page_login(api, Role.TECHNICIAN)
    forged = api.client.post(
        f"/batches/{batch['id']}/qc", data={"test": "viability", "value": "90"}
    )
    assert forged.status_code == 403 and "csrf" in forged.text.lower()
    assert _results(api, batch["id"]) == []
    assert api.client.get("/batches/987654/qc").status_code == 404

"""The batch record page (issue 12 item 4): the badge and next actions in words, the lineage
tree, formatted numbers, labels printed, reprinted and voided through the page, and the audit
trail as a readable table."""

import re

from sqlalchemy import literal, update

from app.audit.actions import AuditAction
from app.auth.models import User
from app.auth.permissions import Role
from tests.helpers import audit_events
from tests.test_pages import _page_login, submit


def test_aud5_the_record_shows_a_status_badge_next_actions_and_a_readable_trail(api):
    """Status as a badge with words, next steps as things people do (not state names), and
    the trail as who/when/what/from → to — no raw JSON (AUD-5)."""
    batch, flasks = api.expanded_batch()
    _page_login(api, Role.QA)
    page = api.client.get(f"/batches/{batch['id']}")
    assert page.status_code == 200
    assert 'class="badge progress"' in page.text and "In expansion" in page.text
    assert "Technician: record the harvest." in page.text
    assert "Allowed next" not in page.text
    trail = page.text.split("<h2>Audit trail", 1)[1]
    assert "Batch status changed" in trail and "batch.status_changed" in trail
    assert re.search(r'class="from">isolation</span> → <span class="to">expansion', trail)
    assert '{"' not in trail and "{&#39;" not in trail  # no dict or JSON dumped
    # The tree nests the passage's flasks under the isolation flask under the biopsy tube.
    tree = page.text.split('<div class="tree">', 1)[1].split("</div>", 1)[0]
    assert tree.index(batch["tube_code"]) < tree.index(flasks[0]) and tree.count("<ul>") >= 3


def test_rel6_dose_figures_are_formatted_and_the_gate_is_shown_before_any_dialog(api):
    """'150000000.0 cells' reads '150,000,000 cells'; QA sees the gate NOT MET and no release
    dialog while results are missing (REL-6); the rejection stays available."""
    batch, _ = api.formulated(doses=1)
    _page_login(api, Role.QA)
    page = api.client.get(f"/batches/{batch['id']}")
    assert "150,000,000</span> cells" in page.text and "150000000" not in page.text
    assert "NOT MET" in page.text and "Results complete" in page.text
    assert 'value="release"' not in page.text
    assert "cannot be signed until every condition above is met" in page.text
    assert 'value="reject"' in page.text and "meaning <span" in page.text


def test_lbl5_labels_are_printed_reprinted_with_a_reason_and_voided_from_the_record(api, db):
    """LBL-4/5 on the page: a print returns the document and is logged; a reprint without a
    reason is refused on a page saying so; a void needs a reason and shows as VOIDED."""
    batch, flasks = api.expanded_batch()
    _page_login(api, Role.TECHNICIAN)
    url = f"/batches/{batch['id']}/vessels/{flasks[0]}/print"
    printed = submit(api, url, data={"format": "pdf"})
    assert printed.status_code == 200 and printed.headers["content-type"] == "application/pdf"
    refused = submit(api, url, data={"format": "pdf"})
    assert refused.status_code == 422 and "A reprint needs a reason" in refused.text
    assert f'href="/batches/{batch["id"]}"' in refused.text
    reprint = submit(api, url, data={"format": "png", "reason": "smudged"})
    assert reprint.status_code == 200 and reprint.headers["content-type"] == "image/png"
    assert len(audit_events(db, AuditAction.LABEL_PRINTED)) == 2
    page = api.client.get(f"/batches/{batch['id']}")
    label_id = re.findall(r'/labels/(\d+)/void"', page.text)[0]
    void = f"/batches/{batch['id']}/labels/{label_id}/void"
    assert submit(api, void, data={"reason": ""}).status_code == 422
    voided = submit(api, void, data={"reason": "torn"}, follow_redirects=False)
    assert voided.status_code == 303
    assert "VOIDED" in api.client.get(f"/batches/{batch['id']}").text
    assert len(audit_events(db, AuditAction.LABEL_VOIDED)) == 1


def test_sec_label_forms_are_refused_without_the_csrf_token(api, db):
    batch, flasks = api.expanded_batch()
    _page_login(api, Role.TECHNICIAN)
    forged = api.client.post(f"/batches/{batch['id']}/vessels/{flasks[0]}/print", data={})
    assert forged.status_code == 403
    assert audit_events(db, AuditAction.LABEL_PRINTED) == []


# QA's dispositions on the record (issue 12 item 1): hold, lift the hold, destroy.


def _status(api, batch_id: int) -> str:
    return api.get(Role.QA, f"/batches/{batch_id}").json()["status"]


def _moves(db) -> int:
    return len(audit_events(db, AuditAction.BATCH_STATUS_CHANGED))


def _forms(page) -> set[str]:
    """The disposition forms the record offers, by their address."""
    return set(re.findall(r'action="/batches/\d+/(hold|lift-hold|destroy)"', page.text))


def test_aud1_qa_holds_then_lifts_the_hold_from_the_record_with_a_reason(api, db):
    """The form is the API's (reason required), the move is audited with its reason, and the
    record says ON HOLD / HOLD LIFTED with who and when; each form only where the lifecycle
    allows its move."""
    batch, _ = api.expanded_batch()
    qa = _page_login(api, Role.QA)
    url = f"/batches/{batch['id']}"
    assert _forms(api.client.get(url)) == {"hold", "destroy"}
    held = submit(api, f"{url}/hold", data={"reason": "incubator alarm"}, follow_redirects=False)
    assert held.status_code == 303 and held.headers["location"] == f"{url}#disposition"
    assert _status(api, batch["id"]) == "on_hold"
    page = api.client.get(url)
    assert f"ON HOLD — by {qa.username} at" in page.text and "Reason: incubator alarm" in page.text
    assert _forms(page) == {"lift-hold", "destroy"}
    event = audit_events(db, AuditAction.BATCH_STATUS_CHANGED)[-1]
    assert event.reason == "incubator alarm" and event.actor == qa.username
    lifted = submit(api, f"{url}/lift-hold", data={"reason": "alarm was a sensor fault"})
    assert lifted.status_code == 200 and _status(api, batch["id"]) == "expansion"
    assert f"HOLD LIFTED — by {qa.username} at" in lifted.text
    assert "The batch is back in expansion." in lifted.text
    assert _forms(lifted) == {"hold", "destroy"}


def test_a_disposition_without_a_reason_is_refused_on_the_record_and_changes_nothing(api, db):
    batch, _ = api.expanded_batch()
    _page_login(api, Role.QA)
    before = _moves(db)
    refused = submit(api, f"/batches/{batch['id']}/hold", data={"reason": "  "})
    assert refused.status_code == 422
    assert f"Batch record {batch['batch_number']}" in refused.text  # still the record
    assert "Please check what you typed" in refused.text and "Nothing was changed." in refused.text
    assert f'action="/batches/{batch["id"]}/hold"' in refused.text  # the form again
    assert _status(api, batch["id"]) == "expansion" and _moves(db) == before


def test_lifting_is_refused_on_the_record_while_a_deviation_is_open(api, db):
    """A technician opens a deviation from the record (the batch goes on hold); QA's lift is
    refused with the service's sentence, on the record, the batch still held."""
    batch, _ = api.expanded_batch()
    _page_login(api, Role.TECHNICIAN)
    page = api.client.get(f"/batches/{batch['id']}")
    assert 'id="description"' in page.text and _forms(page) == set()
    opened = submit(
        api,
        f"/batches/{batch['id']}/deviations",
        data={"kind": "equipment", "description": "CO2 at 3 % for 2 h"},
        follow_redirects=False,
    )
    assert opened.status_code == 303
    assert _status(api, batch["id"]) == "on_hold"
    (deviation,) = api.get(Role.QA, f"/batches/{batch['id']}/deviations").json()
    assert deviation["kind"] == "equipment" and deviation["status"] == "open"
    _page_login(api, Role.QA)
    page = api.client.get(f"/batches/{batch['id']}")
    assert "ON HOLD — by" in page.text and f"Deviation {deviation['number']} opened" in page.text
    assert 'href="/qa#deviations"' in page.text
    before = _moves(db)
    refused = submit(api, f"/batches/{batch['id']}/lift-hold", data={"reason": "fixed"})
    assert refused.status_code == 409
    assert "Not possible in the record&#39;s present state" in refused.text
    assert f"stays on hold while deviation(s) {deviation['number']} are open" in refused.text
    assert _status(api, batch["id"]) == "on_hold" and _moves(db) == before


def test_a_deviation_form_is_refused_like_the_api(api, db):
    batch, _ = api.expanded_batch()
    _page_login(api, Role.TECHNICIAN)
    url = f"/batches/{batch['id']}/deviations"
    for data in ({"description": ""}, {"kind": "weather", "description": "rain"}):
        refused = submit(api, url, data=data)
        assert refused.status_code == 422 and "Batch record" in refused.text
    assert _status(api, batch["id"]) == "expansion"
    assert audit_events(db, AuditAction.DEVIATION_OPENED) == []


def test_qa_destroys_a_batch_and_the_record_says_so(api):
    batch, _ = api.expanded_batch()
    qa = _page_login(api, Role.QA)
    done = submit(api, f"/batches/{batch['id']}/destroy", data={"reason": "contaminated"})
    assert done.status_code == 200 and _status(api, batch["id"]) == "destroyed"
    assert f"DESTROYED — by {qa.username} at" in done.text
    assert _forms(done) == set()  # nothing leaves destroyed
    again = submit(api, f"/batches/{batch['id']}/hold", data={"reason": "x"})
    assert again.status_code == 409 and "Allowed next: none (final state)" in again.text


def test_only_qa_may_take_dispositions_and_others_change_nothing(api, db):
    batch, _ = api.expanded_batch()
    before = _moves(db)
    for role in (Role.TECHNICIAN, Role.CLINICIAN):
        _page_login(api, role)
        assert _forms(api.client.get(f"/batches/{batch['id']}")) == set()
        for act in ("hold", "lift-hold", "destroy"):
            refused = submit(api, f"/batches/{batch['id']}/{act}", data={"reason": "x"})
            assert refused.status_code == 403 and "You may not do this" in refused.text
    assert _status(api, batch["id"]) == "expansion" and _moves(db) == before


def test_sec_disposition_and_deviation_forms_are_refused_without_the_csrf_token(api, db):
    batch, _ = api.expanded_batch()
    _page_login(api, Role.QA)
    before = _moves(db)
    for act in ("hold", "destroy", "deviations"):
        forged = api.client.post(f"/batches/{batch['id']}/{act}", data={"reason": "x"})
        assert forged.status_code == 403
    assert _status(api, batch["id"]) == "expansion" and _moves(db) == before


def test_coi7_the_record_links_the_patients_trace_report_and_the_batch_trail_csv(api):
    batch, _ = api.expanded_batch()
    _page_login(api, Role.QA)
    page = api.client.get(f"/batches/{batch['id']}")
    patient_id = batch["patient_id"]
    assert f'href="/api/v1/patients/{patient_id}/trace-report?format=pdf"' in page.text
    assert f'href="/api/v1/batches/{batch["id"]}/audit.csv"' in page.text
    report = api.client.get(f"/api/v1/patients/{patient_id}/trace-report?format=pdf")
    assert report.status_code == 200 and report.headers["content-type"] == "application/pdf"
    _page_login(api, Role.TECHNICIAN)
    assert "trace-report" not in api.client.get(f"/batches/{batch['id']}").text


def _named_people(db) -> None:
    """Every account gets a full name unlike its username, so a page showing one is told apart."""
    db.execute(update(User).values(full_name=literal("Full name of ") + User.username))
    db.commit()


def _timeline(page) -> list[list[str]]:
    table = page.text.split("<h2>Timeline</h2>", 1)[1].split("</table>", 1)[0]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in table.split("<tr>")[1:]]


def test_aud5_the_record_names_people_by_full_name_and_fills_biopsy_and_registration_rows(api, db):
    """Issue 12 (lab day): the timeline and the steps name who did something by full name,
    username in smaller text; the biopsy's and the registration's rows say who when known; the
    trail keeps usernames as recorded."""
    batch, _ = api.expanded_batch()
    _named_people(db)
    steps = api.get(Role.QA, f"/batches/{batch['id']}/record").json()["steps"]
    technician = steps[0]["performed_by"]
    _page_login(api, Role.QA)
    page = api.client.get(f"/batches/{batch['id']}")
    assert page.status_code == 200
    named = f'<span class="person">Full name of {technician}</span>'
    rows = {what: who for _when, what, who in _timeline(page)}
    assert named in rows["Isolation step"] and technician in rows["Isolation step"]
    for what in ("Biopsy collected", "Biopsy received in the lab"):
        assert '<span class="person">Full name of ' in rows[what], what
    assert '<span class="person">Full name of ' in rows[f"Batch {batch['batch_number']} registered"]
    step_table = page.text.split("<h2>Steps</h2>", 1)[1].split("</table>", 1)[0]
    assert step_table.count(named) == len(steps)
    trail = page.text.split("<h2>Audit trail", 1)[1]
    assert technician in trail


def test_aud5_unknown_population_doublings_never_read_as_zero_and_times_stay_on_one_line(api):
    """Issue 12 (lab day): a passage without cells seeded has no population-doubling figure:
    the record says 'not known', not '0.0'; times in the timeline and steps never wrap."""
    batch, _ = api.expanded_batch()
    _page_login(api, Role.QA)
    page = api.client.get(f"/batches/{batch['id']}")
    culture = page.text.split("<dt>Culture</dt>", 1)[1].split("</dd>", 1)[0]
    assert "population doublings not known" in culture and "0.0" not in culture
    assert '<link rel="stylesheet" href="/static/css/record.css">' in page.text
    for heading in ("<h2>Timeline</h2>", "<h2>Steps</h2>"):
        table = page.text.split(heading, 1)[1].split("</table>", 1)[0]
        assert re.search(r'<td data-label="When"><span class="when">\d{4}-\d\d-\d\d ', table)
    assert ".when { white-space: nowrap; }" in api.client.get("/static/css/record.css").text

"""The batch record page (issue 12 item 4): the badge and next actions in words, the lineage
tree, formatted numbers, labels printed, reprinted and voided through the page, and the audit
trail as a readable table."""

import re

from app.audit.actions import AuditAction
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

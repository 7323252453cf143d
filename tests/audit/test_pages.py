"""QA's audit page (issue 12 item 4): the verification in words (AUD-3, AUD-7) and the trail's
exports as downloads, with the API's own filters and scope (AUD-5)."""

import re

from sqlalchemy import text

from app.audit.actions import EntityType
from app.auth.permissions import Role
from tests.helpers import audit_events, drop_append_only
from tests.test_pages import _page_login, submit


def test_aud3_the_audit_page_verifies_the_trail_and_says_it_is_intact(api):
    api.expanded_batch()
    for role in (Role.QA, Role.ADMIN):
        user = _page_login(api, role)
        expected = api.get(role, "/audit/verify").json()  # its user's creation comes first
        page = api.client.get("/qa/audit")
        assert page.status_code == 200 and "Verify audit trail" in page.text
        assert 'href="/qa/audit"' in page.text  # in the header of who may read the trail
        checked = submit(api, "/qa/audit/verify")
        assert checked.status_code == 200
        assert "INTACT — every event, chain and tracked record holds" in checked.text
        assert "The audit trail and every tracked record are intact." in checked.text
        assert f"Verified by {user.username} at" in checked.text
        assert expected["ok"] is True
        shown = re.search(r"Events checked</dt><dd class=\"num\">([\d,]+)<", checked.text)
        assert shown and int(shown.group(1).replace(",", "")) == expected["events_checked"]


def test_aud3_a_tampered_event_is_named_on_the_page(api, db):
    """After someone with database rights rewrites an event, the page says BROKEN at that
    event, as the API's verification does."""
    api.expanded_batch()
    _page_login(api, Role.QA)
    victim = audit_events(db)[-3]
    drop_append_only(db, "audit_event")
    db.execute(
        text("UPDATE audit_event SET reason = 'rewritten' WHERE seq = :seq"), {"seq": victim.seq}
    )
    checked = submit(api, "/qa/audit/verify")
    assert checked.status_code == 200
    assert f"BROKEN at event {victim.seq}" in checked.text and 'role="alert"' in checked.text
    assert f"Event seq {victim.seq} is not what was recorded." in checked.text
    assert api.get(Role.QA, "/audit/verify").json()["first_bad_seq"] == victim.seq


def test_aud5_the_export_form_downloads_what_the_api_exports(api):
    """Same filters, same rows, same scope as GET /audit/export.csv; blank boxes take all."""
    batch, _ = api.expanded_batch()
    for role in (Role.QA, Role.ADMIN):
        _page_login(api, role)
        api.as_role(role)  # the API's user exists before either export is read
        for query in (
            {"entity_type": "", "entity_id": ""},
            {"entity_type": "batch", "entity_id": ""},
            {"entity_type": "batch", "entity_id": str(batch["id"])},
        ):
            page = api.client.get("/qa/audit/export.csv", params=query)
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/csv")
            assert "attachment" in page.headers["content-disposition"]
            given = {k: v for k, v in query.items() if v}
            assert page.text == api.get(role, "/audit/export.csv", params=given).text
    _page_login(api, Role.QA)
    rows = api.client.get("/qa/audit/export.csv", params={"entity_type": "batch"}).text
    assert f",{EntityType.BATCH.value},{batch['id']}," in rows and ",vessel," not in rows


def test_aud5_a_bad_export_filter_is_refused_in_words_not_a_500(api):
    _page_login(api, Role.QA)
    for query, words in (
        ({"entity_id": "twelve"}, "Check the entity id"),
        ({"entity_type": "spaceship"}, "Check the entity type"),
        ({"entity_id": "0"}, "Check the entity id"),
    ):
        refused = api.client.get("/qa/audit/export.csv", params=query)
        assert refused.status_code == 422 and words in refused.text
        assert "Please check what you typed" in refused.text
        assert 'href="/qa/audit"' in refused.text


def test_aud5_readers_of_patients_trails_get_each_batchs_and_patients_csv(api):
    batch, _ = api.expanded_batch()
    _page_login(api, Role.QA)
    page = api.client.get("/qa/audit")
    assert f'href="/api/v1/batches/{batch["id"]}/audit.csv"' in page.text
    assert f'href="/api/v1/patients/{batch["patient_id"]}/audit.csv"' in page.text
    _page_login(api, Role.ADMIN)  # sees no patient data by role alone
    page = api.client.get("/qa/audit")
    assert "audit.csv" not in page.text and batch["batch_number"] not in page.text


def test_the_audit_page_is_refused_to_those_who_may_not_read_the_trail(api):
    for role in (Role.TECHNICIAN, Role.CLINICIAN):
        _page_login(api, role)
        assert api.client.get("/qa/audit").status_code == 403
        assert submit(api, "/qa/audit/verify").status_code == 403
        refused = api.client.get("/qa/audit/export.csv")
        assert refused.status_code == 403 and "You may not do this" in refused.text
        assert 'href="/qa/audit"' not in api.client.get("/").text


def test_sec_the_verification_form_is_refused_without_the_csrf_token(api):
    _page_login(api, Role.QA)
    forged = api.client.post("/qa/audit/verify", data={})
    assert forged.status_code == 403 and "INTACT" not in forged.text

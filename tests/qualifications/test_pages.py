"""SEC-5 on the pages: QA grants and revokes qualifications, releases lots and records equipment
due dates through forms (the same services as the API); others only read."""

from datetime import datetime

from app.audit.actions import AuditAction
from app.auth.permissions import Role
from app.qualifications.pages import end_of_day
from tests.helpers import Api, audit_events, make_user, ok
from tests.materials.test_api import _equipment, _lot
from tests.test_pages import _page_login, submit


def _qualifications(api: Api, user_id: int) -> list[dict]:
    return ok(api.get(Role.QA, "/qualifications", params={"user_id": user_id}))


def test_sec5_qa_grants_and_revokes_a_qualification_on_the_page(api):
    person = make_user(api.db, api.settings, roles=[Role.TECHNICIAN], qualified=False)
    _page_login(api, Role.QA)
    page = api.client.get("/qualifications")
    assert page.status_code == 200 and "Grant a qualification" in page.text
    assert person.username in page.text
    form = {
        "user_id": str(person.id),
        "duties": ["passage", "harvest"],
        "expires_on": "2099-12-31",
        "reason": "SOP-7 passage and harvest, assessed",
    }
    granted = submit(api, "/qualifications/grant", data=form, follow_redirects=False)
    assert granted.status_code == 303
    rows = _qualifications(api, person.id)
    assert sorted(q["duty"] for q in rows) == ["harvest", "passage"]
    through = end_of_day(api.settings, "2099-12-31")  # valid through that day, local time
    assert all(q["current"] and datetime.fromisoformat(q["expires_at"]) == through for q in rows)
    revoked = submit(
        api,
        f"/qualifications/{rows[0]['id']}/revoke",
        data={"reason": "Assessment repeated: failed"},
        follow_redirects=False,
    )
    assert revoked.status_code == 303
    assert not _qualifications(api, person.id)[0]["current"]
    assert "Assessment repeated: failed" in api.client.get("/qualifications").text
    assert len(audit_events(api.db, AuditAction.QUALIFICATION_REVOKED)) == 1
    bad = submit(api, "/qualifications/grant", data=form | {"expires_on": "soon"})
    assert bad.status_code == 422


def test_sec5_a_technician_reads_the_qualifications_page_but_cannot_grant(api):
    person = make_user(api.db, api.settings, roles=[Role.TECHNICIAN], qualified=False)
    _page_login(api, Role.TECHNICIAN)
    page = api.client.get("/qualifications")
    assert page.status_code == 200 and "Grant a qualification" not in page.text
    form = {"user_id": str(person.id), "duties": ["passage"], "expires_on": "2099-12-31"}
    refused = submit(api, "/qualifications/grant", data=form | {"reason": "self-service"})
    assert refused.status_code == 403
    assert not _qualifications(api, person.id)


def test_sec5_qa_releases_a_lot_and_records_equipment_due_dates_on_the_page(api):
    lot, equipment = _lot(api, released=False), _equipment(api, qualified=False)
    _page_login(api, Role.QA)
    page = api.client.get("/materials")
    assert page.status_code == 200 and lot["lot_number"] in page.text
    assert "not on record" in page.text
    released = submit(
        api,
        f"/materials/lots/{lot['id']}/status",
        data={"status": "released", "reason": "CoA checked"},
        follow_redirects=False,
    )
    assert released.status_code == 303
    listed = ok(api.get(Role.TECHNICIAN, "/lots"))
    assert next(x for x in listed if x["id"] == lot["id"])["status"] == "released"
    recorded = submit(
        api,
        f"/materials/equipment/{equipment['id']}/due-dates",
        data={
            "calibration_due_on": "2099-06-30",
            "qualification_due_on": "2099-12-31",
            "reason": "Calibration certificate C-881",
        },
        follow_redirects=False,
    )
    assert recorded.status_code == 303
    shown = next(e for e in ok(api.get(Role.QA, "/equipment")) if e["id"] == equipment["id"])
    assert shown["overdue"] is False


def test_sec5_the_catalogue_page_offers_no_forms_to_a_technician(api):
    lot = _lot(api, released=False)
    _page_login(api, Role.TECHNICIAN)
    page = api.client.get("/materials")
    assert page.status_code == 200 and lot["lot_number"] in page.text
    assert "/status" not in page.text and "/due-dates" not in page.text
    refused = submit(
        api, f"/materials/lots/{lot['id']}/status", data={"status": "released", "reason": "x"}
    )
    assert refused.status_code == 403

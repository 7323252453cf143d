"""The catalogue page's administration forms (issue 12 item 7): whoever manages the catalogue
creates materials, lots and equipment and puts equipment in or out of service, with the API's
own schemas and services; a refusal stays on the page and changes nothing; others get no form
and are refused; every form needs its CSRF token."""

from datetime import datetime

from sqlalchemy import func, select

from app.audit.actions import AuditAction
from app.audit.models import AuditEvent
from app.auth.permissions import Role
from app.qualifications.pages import end_of_day
from tests.helpers import Api, audit_events, ok, unique
from tests.materials.test_api import _equipment, _material
from tests.test_pages import _page_login, submit


def _trail(api: Api) -> int:
    return api.db.execute(select(func.count()).select_from(AuditEvent)).scalar_one()


def _listed(api: Api, path: str, **match: object) -> list[dict]:
    rows = ok(api.get(Role.TECHNICIAN, path))
    return [row for row in rows if all(row[k] == v for k, v in match.items())]


def test_sec5_an_administrator_creates_a_material_a_lot_and_equipment_on_the_page(api):
    _page_login(api, Role.ADMIN)
    page = api.client.get("/materials")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert "Create material" in page.text and "Register equipment" in page.text
    code = unique("MED-")
    form = {"code": code, "name": "Alpha-MEM", "category": "medium"}
    created = submit(api, "/materials/new", data=form, follow_redirects=False)
    assert created.status_code == 303
    assert "Material created" in api.client.get(created.headers["location"]).text
    (material,) = _listed(api, "/materials", code=code)
    assert material["category"] == "medium"

    lot_number = unique("L")
    lot_form = {
        "material_id": str(material["id"]),
        "lot_number": lot_number,
        "supplier": "Acme Bio",
        "expires_at": "2099-12-31",
    }
    received = submit(api, "/materials/lots", data=lot_form, follow_redirects=False)
    assert received.status_code == 303
    (lot,) = _listed(api, "/lots", lot_number=lot_number)
    assert lot["status"] == "quarantine"  # usable only once QA releases it (SEC-5)
    assert datetime.fromisoformat(lot["expires_at"]) == end_of_day(api.settings, "2099-12-31")

    equipment_code = unique("INC-")
    kit = {"code": equipment_code, "name": "CO2 incubator 4", "kind": "incubator"}
    registered = submit(
        api, "/materials/equipment", data=kit | {"in_service": "true"}, follow_redirects=False
    )
    assert registered.status_code == 303
    (equipment,) = _listed(api, "/equipment", code=equipment_code)
    assert equipment["in_service"] is True and equipment["overdue"] is True
    shown = api.client.get("/materials").text
    assert code in shown and lot_number in shown and equipment_code in shown
    actions = {e.action for e in audit_events(api.db)}
    assert {
        AuditAction.MATERIAL_CREATED,
        AuditAction.MATERIAL_LOT_CREATED,
        AuditAction.EQUIPMENT_CREATED,
    } <= actions


def test_sec5_equipment_is_taken_out_of_and_put_back_in_service_on_the_page(api):
    equipment = _equipment(api)
    _page_login(api, Role.ADMIN)
    assert "Take out of service" in api.client.get("/materials").text
    path = f"/materials/equipment/{equipment['id']}/service"
    out = submit(api, path, data={"in_service": "false"}, follow_redirects=False)
    assert out.status_code == 303
    (shown,) = _listed(api, "/equipment", id=equipment["id"])
    assert shown["in_service"] is False
    page = api.client.get(out.headers["location"]).text
    assert "no: out of service" in page and "Put in service" in page
    back = submit(api, path, data={"in_service": "true"}, follow_redirects=False)
    assert back.status_code == 303
    assert _listed(api, "/equipment", id=equipment["id"])[0]["in_service"] is True
    changes = audit_events(api.db, AuditAction.EQUIPMENT_SERVICE_CHANGED)
    assert len(changes) == 2


def test_sec5_catalogue_refusals_stay_on_the_page_and_change_nothing(api):
    material = _material(api)
    _page_login(api, Role.ADMIN)
    before = _trail(api)
    taken = submit(
        api,
        "/materials/new",
        data={"code": material["code"], "name": "Second of that code", "category": "serum"},
    )
    assert taken.status_code == 409
    assert "already exists" in taken.text or "taken" in taken.text
    assert 'value="Second of that code"' in taken.text  # what was typed is kept
    assert "Materials, lots and equipment" in taken.text  # the page, read afresh
    lot = {"material_id": str(material["id"]), "lot_number": "L-1", "supplier": "Acme"}
    soon = submit(api, "/materials/lots", data=lot | {"expires_at": "soon"})
    assert soon.status_code == 422 and "is not a date" in soon.text
    unknown = submit(
        api, "/materials/lots", data=lot | {"material_id": "999999", "expires_at": "2099-01-01"}
    )
    assert unknown.status_code == 404 and "No material has id 999999" in unknown.text
    bad_kind = submit(
        api, "/materials/equipment", data={"code": "X-1", "name": "Thing", "kind": "toaster"}
    )
    assert bad_kind.status_code == 422 and "Please check what you typed" in bad_kind.text
    missing = submit(api, "/materials/equipment/999999/service", data={"in_service": "false"})
    assert missing.status_code == 404 and "No equipment has id 999999" in missing.text
    assert _trail(api) == before


def test_sec5_qa_due_dates_without_a_date_are_refused_on_the_page(api):
    equipment = _equipment(api, qualified=False)
    _page_login(api, Role.QA)
    refused = submit(
        api, f"/materials/equipment/{equipment['id']}/due-dates", data={"reason": "C-1"}
    )
    assert refused.status_code == 422
    assert "Give a calibration or a qualification due date" in refused.text
    assert equipment["code"] in refused.text  # the page, not a bare error page
    assert not audit_events(api.db, AuditAction.EQUIPMENT_DUE_DATES_SET)


def test_sec5_only_catalogue_managers_get_and_may_send_the_catalogue_forms(api):
    equipment = _equipment(api)
    for role in (Role.TECHNICIAN, Role.QA):
        api.client.cookies.clear()
        _page_login(api, role)
        page = api.client.get("/materials")
        assert page.status_code == 200
        assert "Create material" not in page.text and "/service" not in page.text
        form = {"code": unique("M-"), "name": "Rogue", "category": "other"}
        refused = submit(api, "/materials/new", data=form)
        assert refused.status_code == 403 and "<header>" in refused.text
        off = submit(api, f"/materials/equipment/{equipment['id']}/service", data={})
        assert off.status_code == 403
    assert _listed(api, "/equipment", id=equipment["id"])[0]["in_service"] is True
    assert not audit_events(api.db, AuditAction.MATERIAL_CREATED)


def test_sec5_catalogue_forms_need_their_csrf_token(api):
    _page_login(api, Role.ADMIN)
    code = unique("M-")
    refused = api.client.post(
        "/materials/new", data={"code": code, "name": "No token", "category": "other"}
    )
    assert refused.status_code == 403
    assert not _listed(api, "/materials", code=code)

"""The label printers page (issue 12 item 7): an administrator registers a Zebra printer with the
API's own schema and service; a refusal stays on the page and registers nothing; only
`catalogue.manage` opens it; the form needs its CSRF token."""

import json

from app.audit.actions import AuditAction
from app.auth.permissions import Role
from tests.helpers import Api, audit_events, ok, unique
from tests.test_pages import _page_login, submit


def _printers(api: Api) -> list[dict]:
    return ok(api.get(Role.TECHNICIAN, "/printers"))


def test_lbl5_an_administrator_registers_a_printer_on_the_page(api):
    _page_login(api, Role.ADMIN)
    page = api.client.get("/admin/printers")
    assert page.status_code == 200 and "Register printer" in page.text
    assert page.headers["cache-control"] == "no-store"
    name = unique("Cleanroom B ")
    form = {"name": name, "host": "zebra-b.lab.local", "port": "9101", "dpi": "300"}
    registered = submit(api, "/admin/printers", data=form, follow_redirects=False)
    assert registered.status_code == 303
    shown = api.client.get(registered.headers["location"])
    assert "Registered" in shown.text and name in shown.text and "zebra-b.lab.local" in shown.text
    (printer,) = [p for p in _printers(api) if p["name"] == name]
    assert (printer["host"], printer["port"], printer["dpi"]) == ("zebra-b.lab.local", 9101, 300)
    (event,) = audit_events(api.db, AuditAction.PRINTER_CREATED)
    assert json.loads(event.new_values or "{}")["host"] == "zebra-b.lab.local"


def test_lbl5_a_bad_or_taken_printer_is_refused_on_the_page_and_nothing_is_registered(api):
    _page_login(api, Role.ADMIN)
    name = unique("Bench ")
    form = {"name": name, "host": "10.0.0.7", "port": "9100", "dpi": "203"}
    assert submit(api, "/admin/printers", data=form, follow_redirects=False).status_code == 303
    count = len(_printers(api))
    for bad in (
        {"port": "70000"},
        {"port": "nine"},
        {"host": "zebra b; rm"},
        {"dpi": "150"},
        {"name": ""},
    ):
        refused = submit(api, "/admin/printers", data=form | {"name": unique("P")} | bad)
        assert refused.status_code == 422, bad
        assert "Please check what you typed" in refused.text and "Register printer" in refused.text
    taken = submit(api, "/admin/printers", data=form)
    assert taken.status_code == 409 and "exists" in taken.text
    assert name in taken.text  # the list, read afresh, beside the refusal
    assert len(_printers(api)) == count
    assert len(audit_events(api.db, AuditAction.PRINTER_CREATED)) == 1


def test_lbl5_only_catalogue_managers_open_the_printers_page(api):
    for role in (Role.TECHNICIAN, Role.QA, Role.CLINICIAN):
        api.client.cookies.clear()
        _page_login(api, role)
        page = api.client.get("/admin/printers")
        assert page.status_code == 403 and "<header>" in page.text
        form = {"name": unique("Rogue "), "host": "10.0.0.9"}
        assert submit(api, "/admin/printers", data=form).status_code == 403
    assert not audit_events(api.db, AuditAction.PRINTER_CREATED)


def test_lbl5_the_printer_form_needs_its_csrf_token(api):
    _page_login(api, Role.ADMIN)
    refused = api.client.post("/admin/printers", data={"name": "No token", "host": "10.0.0.8"})
    assert refused.status_code == 403
    assert not audit_events(api.db, AuditAction.PRINTER_CREATED)

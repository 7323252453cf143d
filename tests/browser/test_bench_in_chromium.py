"""The bench pages in Debian's Chromium, by keyboard alone (issue 12 items 1 and 7): QC results
entered and a second result refused with the value box focused again; a dose dispatched by
scanning its label, its patient, COI and batch shown, and an unreleased dose refused on the
same page; the storage locations as an admin sees them. Screenshots in
test-artifacts/screenshots/."""

from app.auth.permissions import Role
from tests.browser.conftest import DESKTOP, screenshot
from tests.browser.test_pages_in_chromium import _sign_in_by_keyboard
from tests.browser.test_record_qa_clinic import _every_input_labelled, _width
from tests.browser.test_scan_station import _focused, _scan, _script_problems
from tests.helpers import make_user, unique


def _value(page, element_id: str) -> str:
    return page.evaluate("id => document.getElementById(id).value", element_id)


def test_qc2_results_are_entered_by_keyboard_and_a_second_one_is_refused_in_place(live, page):
    base_url, api = live
    batch, _ = api.formulated(api.patient(family_name="Verdi", given_name="Paola")["id"], doses=1)
    tech = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    _sign_in_by_keyboard(page, base_url, tech.username)
    page.goto(f"{base_url}/batches/{batch['id']}/qc")
    _focused(page, "test")
    assert _value(page, "test") == "viability"  # the first test without a result
    page.keyboard.press("Tab")
    _focused(page, "value")
    _scan(page, "91,5")  # a decimal comma, as typed; Enter sends the form
    status = page.get_by_role("status").inner_text()
    assert "RESULT ENTERED — PASS" in status and "Second-person review" in status
    row = page.locator("#test-viability").inner_text()
    assert "PASS" in row and "91.5" in row and "Second-person review needed" in row
    assert "VERDI, Paola" in page.locator("section.context").inner_text()
    _focused(page, "test")
    assert _value(page, "test") == "viable_cells_per_dose"  # the next one waiting
    for _ in range(3):  # down to endotoxin, keyboard only
        page.keyboard.press("ArrowDown")
    assert _value(page, "test") == "endotoxin"
    page.keyboard.press("Tab")
    _scan(page, "0.2")
    assert "PASS" in page.locator("#test-endotoxin").inner_text()
    assert _width(page) <= DESKTOP["width"]
    _every_input_labelled(page)
    screenshot(page, "qc-entry-desktop")

    _focused(page, "test")  # a second viability result is refused
    page.keyboard.press("Home")
    assert _value(page, "test") == "viability"
    page.keyboard.press("Tab")
    _scan(page, "75")
    alert = page.get_by_role("alert").inner_text()
    assert "already has a result" in alert
    _focused(page, "value")
    assert _value(page, "value") == "75"
    assert "91.5" in page.locator("#test-viability").inner_text()  # nothing changed
    screenshot(page, "qc-entry-refused-desktop")
    assert api.qc(batch["id"])["passed"] == 2
    assert _script_problems(page) == [], page.problems


def test_cln3_a_dose_is_dispatched_by_scanning_and_an_unreleased_one_refused(live, page):
    base_url, api = live
    patient = api.patient(family_name="Neri", given_name="Marta")
    batch, doses = api.formulated(patient["id"], doses=1)
    api.pass_qc(batch["id"])
    assert api.decide(batch["id"]).status_code == 200
    _held, unreleased = api.formulated(doses=1)
    tech = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    _sign_in_by_keyboard(page, base_url, tech.username)
    page.goto(f"{base_url}/custody")
    _focused(page, "code")
    _scan(page, doses[0])
    vessel = page.locator("section.context").inner_text()
    assert "NERI, Marta" in vessel and batch["coi"] in vessel and batch["batch_number"] in vessel
    _focused(page, "location")
    page.keyboard.type("Courier")
    page.keyboard.press("Tab")
    _focused(page, "temperature_c")
    _scan(page, "4")  # Enter: for a dose the first button, Dispatch
    assert "DISPATCHED" in page.get_by_role("status").inner_text()
    assert "Courier" in page.locator("table").inner_text()
    _focused(page, "code")  # ready for the next vessel
    assert _width(page) <= DESKTOP["width"]
    _every_input_labelled(page)
    screenshot(page, "custody-dispatched-desktop")
    assert api.get(Role.QA, f"/batches/{batch['id']}").json()["status"] == "issued"

    _scan(page, unreleased[0])
    _focused(page, "location")
    page.keyboard.type("Courier")
    page.keyboard.press("Tab")
    _scan(page, "4")
    assert "not released" in page.get_by_role("alert").inner_text()
    _focused(page, "location")
    assert _value(page, "location") == "Courier"
    screenshot(page, "custody-refused-desktop")
    history = api.get(Role.TECHNICIAN, f"/vessels/{unreleased[0]}/custody").json()
    assert history == []
    assert _script_problems(page) == [], page.problems


def test_an_admin_adds_a_storage_location_by_keyboard(live, page):
    base_url, api = live
    admin = make_user(api.db, api.settings, roles=[Role.ADMIN])
    _sign_in_by_keyboard(page, base_url, admin.username)
    page.goto(f"{base_url}/locations")
    _focused(page, "code")
    code = unique("FRZ-")
    page.keyboard.type(code)
    page.keyboard.press("Tab")
    page.keyboard.type("Freezer minus 150")
    page.keyboard.press("Tab")
    _focused(page, "kind")
    page.keyboard.type("fr")  # typeahead in the list: freezer
    assert _value(page, "kind") == "freezer"
    page.keyboard.press("Tab")
    _focused(page, "parent_id")  # left at "a top-level location"
    page.keyboard.press("Tab")
    with page.expect_navigation():
        page.keyboard.press("Enter")  # on "Add location"
    assert "LOCATION ADDED" in page.get_by_role("status").inner_text()
    assert code in page.locator("table").inner_text()
    _every_input_labelled(page)
    screenshot(page, "storage-locations-desktop")
    assert _script_problems(page) == [], page.problems

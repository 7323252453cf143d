"""The batch record, QA's queue and release dialog, the clinic board and the bedside in Debian's
Chromium (issue 12 items 4-6 and 9): pages fit their screens (1280 px desktop, 390 px phone,
no horizontal overflow), the release is signed in its dialog and says RELEASED, the bedside is
done by keyboard alone with a witness. Screenshots go to test-artifacts/screenshots/."""

from datetime import date

from app.auth.permissions import Role
from tests.browser.conftest import DESKTOP, PHONE, screenshot, watched_page
from tests.browser.test_pages_in_chromium import _sign_in_by_keyboard
from tests.helpers import PASSWORD, make_user

FOCUSED = "id => document.activeElement && document.activeElement.id === id"


UNLABELLED = """[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter(e => !e.labels || e.labels.length === 0).map(e => e.name || e.id)"""


def _width(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def _every_input_labelled(page) -> None:
    assert page.evaluate(UNLABELLED) == [], f"inputs without a label on {page.url}"


def _phone(browser):
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    return context, watched_page(context)


def _at_clinic(api, *, birth_date: str):
    """A released batch of a new patient whose one dose is dispatched and received."""
    patient = api.patient(birth_date=birth_date, family_name="Bianchi", given_name="Lucia")
    batch, doses = api.formulated(patient["id"], doses=1)
    api.pass_qc(batch["id"])
    assert api.decide(batch["id"]).status_code == 200
    for event, role, where in (
        ("dispatched", Role.TECHNICIAN, "Courier"),
        ("received", Role.CLINICIAN, "Ward 4"),
    ):
        body = {"event": event, "location": where, "temperature_c": 5.0}
        assert api.post(role, f"/vessels/{doses[0]}/custody", body).status_code == 201
    return patient, batch, doses[0]


def test_rel3_qa_reads_the_record_and_queue_and_signs_the_release_in_its_dialog(live, page):
    """The record fits 1280 px with its audit table; the queue shows the gate before the
    dialog; the password is typed in the dialog and the result reads RELEASED — signed by."""
    base_url, api = live
    batch, _ = api.formulated(doses=2)
    api.pass_qc(batch["id"])
    waiting, _ = api.formulated(doses=1)
    qa = make_user(api.db, api.settings, roles=[Role.QA])
    _sign_in_by_keyboard(page, base_url, qa.username)

    page.goto(f"{base_url}/qa")
    section = page.locator(f"#batch-{waiting['id']}")
    assert "Release gate not met" in section.inner_text()
    assert "NOT MET" in section.inner_text()
    assert _width(page) <= DESKTOP["width"]
    _every_input_labelled(page)
    screenshot(page, "qa-queue-desktop")

    page.goto(f"{base_url}/batches/{batch['id']}")
    assert _width(page) <= DESKTOP["width"], "the batch record is wider than the screen"
    assert page.locator("table.audit").count() == 1
    assert "150,000,000" in page.inner_text("main")
    _every_input_labelled(page)
    screenshot(page, "batch-record-before-release-desktop")

    dialog = page.locator("form.dialog", has=page.locator('input[value="release"]'))
    assert "released" in dialog.locator(".meaning").inner_text()
    dialog.locator('input[type="password"]').focus()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base_url}/batches/{batch['id']}#decision")
    outcome = page.locator("#decision").inner_text()
    assert f"RELEASED — signed by {qa.full_name} at " in outcome
    assert _width(page) <= DESKTOP["width"]
    screenshot(page, "batch-record-released-desktop")
    assert page.problems == [], page.problems


def test_cln1_the_board_fits_a_phone_and_a_desktop(live, browser, page):
    base_url, api = live
    _at_clinic(api, birth_date="1979-03-14")
    api.formulated(doses=1)
    clinician = make_user(api.db, api.settings, roles=[Role.CLINICIAN])
    _sign_in_by_keyboard(page, base_url, clinician.username)
    page.goto(f"{base_url}/clinic")
    assert _width(page) <= DESKTOP["width"]
    screenshot(page, "clinic-board-desktop")

    context, phone = _phone(browser)
    try:
        _sign_in_by_keyboard(phone, base_url, clinician.username)
        phone.goto(f"{base_url}/clinic")
        assert "READY" in phone.inner_text("main")
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        screenshot(phone, "clinic-board-phone-390")
        phone.goto(f"{base_url}/clinic/receive")
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        screenshot(phone, "clinic-receive-phone")
        _every_input_labelled(phone)
        assert phone.problems == [], phone.problems
    finally:
        context.close()


def test_coi6_the_bedside_by_keyboard_alone_on_a_phone_with_a_witness(live, browser):
    """Scan the wristband (Enter), type the birth date as the patient says it (14/03/1979,
    Enter), scan the dose (Enter): the patient's name and birth date are shown to compare; the
    witness types their name and password (Enter) and the infusion is recorded. A dose of
    another patient is a STOP panel with the wristband box focused again."""
    base_url, api = live
    patient, batch, dose = _at_clinic(api, birth_date="1979-03-14")
    _, _, other_dose = _at_clinic(api, birth_date="1985-11-02")
    nurse = make_user(api.db, api.settings, roles=[Role.CLINICIAN])
    witness = make_user(api.db, api.settings, roles=[Role.CLINICIAN])
    context, page = _phone(browser)
    try:
        _sign_in_by_keyboard(page, base_url, nurse.username)

        def scan_and_type(mrn: str, born: str, code: str) -> None:
            page.goto(f"{base_url}/bedside")
            page.wait_for_function(FOCUSED, arg="wristband_mrn")
            page.keyboard.type(mrn)
            page.keyboard.press("Enter")  # the form is not complete: the next box takes focus
            page.wait_for_function(FOCUSED, arg="birth_date")
            page.keyboard.type(born)
            page.keyboard.press("Enter")
            page.wait_for_function(FOCUSED, arg="dose_code")
            page.keyboard.type(code)
            with page.expect_navigation():
                page.keyboard.press("Enter")

        scan_and_type(patient["mrn"], "14/03/1979", other_dose)
        stop = page.locator(".stop")
        assert stop.is_visible() and "STOP" in stop.inner_text()
        assert stop.bounding_box()["width"] >= PHONE["width"] - 40  # full width
        page.wait_for_function(FOCUSED, arg="wristband_mrn")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        screenshot(page, "bedside-stop-phone")

        scan_and_type(patient["mrn"], "14/03/1979", dose)
        compare = page.locator("dl.compare").inner_text()
        assert "BIANCHI, Lucia" in compare
        assert date(1979, 3, 14).strftime("%d %B %Y") in compare
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        screenshot(page, "bedside-confirmed-phone")
        _every_input_labelled(page)
        page.wait_for_function(FOCUSED, arg="witness_username")
        page.keyboard.type(witness.username)
        page.keyboard.press("Tab")
        page.keyboard.type(PASSWORD)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        recorded = page.get_by_role("status").inner_text()
        assert "INFUSION RECORDED" in recorded and "BIANCHI" in recorded
        screenshot(page, "bedside-recorded-phone")

        page.goto(f"{base_url}/clinic/patients/{patient['id']}")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        screenshot(page, "clinic-patient-phone")
        _every_input_labelled(page)
        # The STOP page's own 409 is the one console line; no CSP violation, no script error.
        refusal = "Failed to load resource: the server responded with a status of 409 (Conflict)"
        assert [p for p in page.problems if p != refusal] == [], page.problems
    finally:
        context.close()
    assert api.get(Role.QA, f"/batches/{batch['id']}").json()["status"] == "completed"

"""Registration and biopsy receipt in Debian's Chromium (issue 12 item 1), by keyboard alone: a
clinician registers a patient and a biopsy, a technician receives it by scanning its tube (a
wrong code first: refused, the scan box focused again) and registers the batch. The pages fit a
390 px phone; screenshots go to test-artifacts/screenshots/."""

import re

from app.auth.permissions import Role
from tests.browser.conftest import DESKTOP, PHONE, screenshot
from tests.browser.test_pages_in_chromium import FOCUSED, _sign_in_by_keyboard
from tests.helpers import make_user, unique

UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter(e => !e.labels || e.labels.length === 0).map(e => e.name || e.id)"""


def _width(page) -> int:
    return page.evaluate("() => document.documentElement.scrollWidth")


def _fits(page, width: int) -> None:
    assert _width(page) <= width, f"{page.url} is wider than {width} px"
    assert page.evaluate(UNLABELLED) == [], f"inputs without a label on {page.url}"


def _typed_into(page, field: str, text: str) -> None:
    page.wait_for_function(FOCUSED, arg=field)
    page.keyboard.type(text)


def test_coi1_coi4_register_patient_and_biopsy_receive_by_scanning_and_register_the_batch(
    live, browser
):
    base_url, api = live
    clinician = make_user(api.db, api.settings, roles=[Role.CLINICIAN])
    tech = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    mrn = unique("KB")

    desk = browser.new_context(viewport=DESKTOP)
    page = desk.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    _sign_in_by_keyboard(page, base_url, clinician.username)
    page.goto(f"{base_url}/patients/new")
    _fits(page, DESKTOP["width"])
    for field, text in (
        ("mrn", mrn),
        ("family_name", "Galli"),
        ("given_name", "Marta"),
        ("birth_date", "14/03/1979"),
    ):
        _typed_into(page, field, text)
        page.keyboard.press("Tab")
    page.wait_for_function(FOCUSED, arg="sex")
    page.keyboard.press("f")  # a closed select takes the first option starting with the key
    assert page.input_value("#sex") == "female"
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # "Register patient"
    page.wait_for_url(re.compile(r".*/patients/\d+$"))
    registered = page.locator("#registration").inner_text()
    assert "REGISTERED — COI" in registered and mrn in registered
    assert "GALLI, Marta" in page.inner_text("main") and "14/03/1979" in page.inner_text("main")
    patient_url = page.url
    screenshot(page, "intake-patient-registered-desktop")

    _typed_into(page, "site", "vastus lateralis")  # the biopsy form waits, its time now
    page.keyboard.press("Tab")
    page.keyboard.type("150,5")
    page.keyboard.press("Enter")  # "Register biopsy"
    page.wait_for_url(re.compile(r".*/biopsies/\d+$"))
    biopsy_id = int(page.url.rsplit("/", 1)[1])
    biopsy = api.get(Role.CLINICIAN, f"/biopsies/{biopsy_id}").json()
    status = page.locator("#biopsy-status").inner_text()
    assert "REGISTERED — tube" in status and biopsy["tube_code"] in status
    assert page.get_by_role("button", name="Print tube label").count() == 1
    _fits(page, DESKTOP["width"])
    screenshot(page, "intake-biopsy-registered-desktop")
    assert problems == [], problems
    desk.close()

    bench = browser.new_context(viewport=DESKTOP)
    page = bench.new_page()
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    _sign_in_by_keyboard(page, base_url, tech.username)
    page.goto(f"{base_url}/biopsies/receive")
    _typed_into(page, "scanned_code", "NOT-A-CODE")  # a misread first
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    assert "scan it again" in page.get_by_role("alert").inner_text()
    assert len(problems) == 1 and "422" in problems[0], problems  # the refusal's status, only
    problems.clear()
    _typed_into(page, "scanned_code", biopsy["tube_code"])  # focused again, and empty
    page.keyboard.press("Enter")
    page.wait_for_function(FOCUSED, arg="temperature_c")
    checked = page.locator("#checked").inner_text()
    assert "GALLI, Marta" in checked and biopsy["tube_code"] in checked
    _fits(page, DESKTOP["width"])
    screenshot(page, "intake-receipt-scanned-desktop")
    page.keyboard.type("4,5")
    page.keyboard.press("Enter")  # "Receive biopsy"
    page.wait_for_url(f"{base_url}/biopsies/{biopsy_id}")
    assert "RECEIVED — tube" in page.locator("#biopsy-status").inner_text()
    page.wait_for_function(FOCUSED, arg="register_batch")
    page.keyboard.press("Enter")  # "Register batch"
    page.wait_for_url(re.compile(r".*/batches/\d+$"))
    assert biopsy["din"] in page.inner_text("main")
    screenshot(page, "intake-batch-registered-desktop")
    assert problems == [], problems
    bench.close()

    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = phone.new_page()
    _sign_in_by_keyboard(page, base_url, tech.username)
    second = api.biopsy(int(patient_url.rsplit("/", 1)[1]))
    for name, path in (
        ("patient", patient_url.removeprefix(base_url)),
        ("biopsy", f"/biopsies/{biopsy_id}"),
        ("receipt", f"/biopsies/receive?scanned_code={second['tube_code']}"),
        ("patients", f"/patients?q={mrn}"),
    ):
        page.goto(base_url + path)
        _fits(page, PHONE["width"])
        screenshot(page, f"intake-{name}-phone")
    phone.close()

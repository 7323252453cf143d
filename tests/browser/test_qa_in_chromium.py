"""QA's dispositions, audit page and specification draft in Debian's Chromium (issue 12 items 1
and 4): hold and lift by keyboard alone on the batch record, the audit verification said in
words, each page within 1280 px with every box labelled. Screenshots go to
test-artifacts/screenshots/."""

from app.auth.permissions import Role
from tests.browser.conftest import DESKTOP, PHONE, screenshot
from tests.browser.test_pages_in_chromium import _sign_in_by_keyboard
from tests.browser.test_record_qa_clinic import _every_input_labelled, _phone, _width
from tests.helpers import make_user

# The focused element's id, or a button's text (what a keyboard user is on).
ACTIVE = """() => { const e = document.activeElement;
    return e ? (e.id || e.textContent.trim()) : ''; }"""


def _tab_to(page, target: str, limit: int = 200) -> None:
    """Tab (as a keyboard user does) until the element with id, or the button with text,
    `target` has the focus."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(ACTIVE) == target:
            return
    raise AssertionError(f"{target!r} is not reachable with Tab on {page.url}")


def _send_by_keyboard(page, box: str, text: str, button: str) -> None:
    """Tab to `box`, type, Tab to the form's button, Enter."""
    _tab_to(page, box)
    page.keyboard.type(text)
    page.keyboard.press("Tab")
    assert page.evaluate(ACTIVE) == button
    with page.expect_navigation():
        page.keyboard.press("Enter")


def test_aud1_qa_holds_and_lifts_a_hold_on_the_record_by_keyboard_alone(live, page, browser):
    base_url, api = live
    batch, _ = api.expanded_batch()
    qa = make_user(api.db, api.settings, roles=[Role.QA])
    _sign_in_by_keyboard(page, base_url, qa.username)
    page.goto(f"{base_url}/batches/{batch['id']}")
    _every_input_labelled(page)
    assert page.locator("#lift-hold-reason").count() == 0

    _send_by_keyboard(page, "hold-reason", "incubator alarm at 02:10", "Hold batch")
    assert page.url.endswith(f"/batches/{batch['id']}#disposition")
    banner = page.locator("#disposition .outcome").inner_text()
    assert f"ON HOLD — by {qa.username} at" in banner and "incubator alarm at 02:10" in banner
    assert "On hold" in page.locator(".badge").inner_text()
    assert page.locator("#hold-reason").count() == 0
    assert _width(page) <= DESKTOP["width"]
    screenshot(page, "batch-record-on-hold-desktop")

    _send_by_keyboard(page, "lift-hold-reason", "sensor fault, culture fine", "Lift hold")
    banner = page.locator("#disposition .outcome").inner_text()
    assert f"HOLD LIFTED — by {qa.username} at" in banner and "back in expansion" in banner
    assert api.get(Role.QA, f"/batches/{batch['id']}").json()["status"] == "expansion"
    screenshot(page, "batch-record-hold-lifted-desktop")
    assert page.problems == []

    context, phone = _phone(browser)
    try:
        _sign_in_by_keyboard(phone, base_url, qa.username)
        phone.goto(f"{base_url}/batches/{batch['id']}")
        assert _width(phone) <= PHONE["width"], "the record's dispositions overflow a phone"
        screenshot(phone, "batch-record-dispositions-phone")
    finally:
        context.close()


def test_aud3_the_audit_page_verifies_the_trail_by_keyboard_and_says_intact(live, page):
    base_url, api = live
    api.expanded_batch()
    qa = make_user(api.db, api.settings, roles=[Role.QA])
    _sign_in_by_keyboard(page, base_url, qa.username)
    page.goto(f"{base_url}/qa/audit")
    _every_input_labelled(page)
    _tab_to(page, "Verify audit trail")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    outcome = page.locator("#verification-outcome").inner_text()
    assert "INTACT" in outcome and f"Verified by {qa.username}" in outcome
    assert _width(page) <= DESKTOP["width"]
    screenshot(page, "qa-audit-verified-desktop")
    with page.expect_download() as download:
        page.locator("#entity_type").select_option("batch")
        page.get_by_role("button", name="Download CSV").click()
    assert download.value.suggested_filename == "audit.csv"
    assert page.problems == []


def test_qc1_the_specification_draft_page_fits_and_labels_every_box(live, page):
    base_url, api = live
    qa = make_user(api.db, api.settings, roles=[Role.QA])
    _sign_in_by_keyboard(page, base_url, qa.username)
    page.goto(f"{base_url}/qa/specifications/new")
    assert page.locator("#tests-0-test").input_value() != ""
    _every_input_labelled(page)
    assert _width(page) <= DESKTOP["width"]
    screenshot(page, "qa-specification-draft-desktop")
    assert page.problems == []

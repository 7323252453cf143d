"""Pages in a real browser (Debian's Chromium via Playwright): sign-in and the scan station by
keyboard alone, the CSP holding with no console error, Back after logout, the board at phone
size (issue 12 items 8 and 9; the whole day follows as the pages land)."""

from app.auth.permissions import Role
from tests.browser.conftest import PHONE, screenshot
from tests.helpers import PASSWORD, make_user

# A function with an argument, never a string expression (which Playwright evals: CSP refuses).
FOCUSED = "id => document.activeElement && document.activeElement.id === id"


def _sign_in_by_keyboard(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/login")
    # The username box takes the focus by itself: type, Tab to the password, Enter sends it.
    page.wait_for_function(FOCUSED, arg="username")
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base_url}/")


def test_sec_a_technician_signs_in_and_scans_by_keyboard_alone(live, page):
    """COI-5 at the bench: the scanner types the code and presses Enter into the focused box."""
    base_url, api = live
    batch = api.batch()
    tech = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    _sign_in_by_keyboard(page, base_url, tech.username)
    assert tech.full_name in page.inner_text("header")
    page.goto(f"{base_url}/scan")
    page.wait_for_function(FOCUSED, arg="code")
    page.keyboard.type(batch["tube_code"])
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    status = page.get_by_role("status").inner_text()
    assert batch["tube_code"] in status and batch["coi"] in status
    screenshot(page, "scan-station-desktop")
    assert page.problems == [], page.problems  # no CSP violation, no script error


def test_sec_back_after_logout_shows_no_patient_data(live, page):
    """Cache-Control: no-store: Back after logout asks the server again, which sends the
    browser to the login form instead of showing the batch from the cache."""
    base_url, api = live
    batch = api.batch()
    qa = make_user(api.db, api.settings, roles=[Role.QA])
    _sign_in_by_keyboard(page, base_url, qa.username)
    page.goto(f"{base_url}/batches/{batch['id']}")
    assert batch["coi"] in page.content()
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{base_url}/login")
    page.go_back()
    page.wait_for_load_state()
    assert page.url == f"{base_url}/login"
    assert batch["coi"] not in page.content()


def test_cln1_the_clinic_board_at_phone_size(live, browser):
    base_url, api = live
    batch, _ = api.released()
    clinician = make_user(api.db, api.settings, roles=[Role.CLINICIAN])
    context = browser.new_context(viewport=PHONE, is_mobile=True)
    page = context.new_page()
    try:
        _sign_in_by_keyboard(page, base_url, clinician.username)
        page.goto(f"{base_url}/clinic")
        assert batch["batch_number"] in page.content()
        screenshot(page, "clinic-board-phone")
    finally:
        context.close()


def test_sec_a_foreign_site_cannot_post_a_page_form(live, browser):
    """A page of another origin submitting to Homeward's login form is refused (Origin)."""
    base_url, api = live
    tech = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(f"{base_url}/login")  # the browser has Homeward's CSRF cookie now
        page.set_content(
            f'<form method="post" action="{base_url}/login">'
            f'<input name="username" value="{tech.username}">'
            f'<input name="password" value="{PASSWORD}">'
            '<input name="csrf_token" value="guessed-guessed-guessed-guessed-00">'
            '<button id="go">go</button></form>'
        )
        with page.expect_navigation():
            page.click("#go")
        assert "CSRF FAILED" in page.content()
    finally:
        context.close()

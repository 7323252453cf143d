"""The administration pages in Debian's Chromium (issue 12 item 7): an administrator creates a
user, unlocks a locked account and resets a password by keyboard alone; every input has a
label; the pages fit 1280 px and a 390 px phone; no CSP violation or script error. Screenshots
go to test-artifacts/screenshots/."""

from app.auth.permissions import Role
from tests.browser.conftest import PHONE, screenshot
from tests.browser.test_pages_in_chromium import _sign_in_by_keyboard
from tests.browser.test_record_qa_clinic import _every_input_labelled, _phone, _width
from tests.helpers import make_user, unique

IS_FOCUSED = "element => element === document.activeElement"
TEMPORARY = "violet-harbour-compass"


def _tab_to(page, target, limit: int = 80) -> None:
    """Tab (and only Tab) until `target` (an element id or a locator) has the focus: it is
    reachable by keyboard in the page's order."""
    locator = page.locator(f"#{target}") if isinstance(target, str) else target
    for _ in range(limit):
        if locator.evaluate(IS_FOCUSED):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{target} was not reached with Tab on {page.url}")


def _press(page, key: str) -> None:
    with page.expect_navigation():
        page.keyboard.press(key)


def test_sec3_an_administrator_creates_a_user_by_keyboard_alone(live, page):
    base_url, api = live
    admin = make_user(api.db, api.settings, roles=[Role.ADMIN])
    _sign_in_by_keyboard(page, base_url, admin.username)
    _tab_to(page, page.get_by_role("link", name="Administration", exact=True))
    _press(page, "Enter")
    assert page.url == f"{base_url}/admin/users"
    _every_input_labelled(page)
    username = unique("keyboard.tech")
    _tab_to(page, "username")
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type("Keyboard Technician")
    _tab_to(page, "role-technician")
    page.keyboard.press("Space")
    _tab_to(page, "password")
    page.keyboard.type(TEMPORARY)
    screenshot(page, "admin-users-create-desktop")
    _press(page, "Enter")
    status = page.get_by_role("status").inner_text()
    assert "Account created" in status
    facts = page.locator("dl.facts").inner_text()
    assert "Keyboard Technician" in facts and "technician" in facts
    assert "Must choose a new password at next sign-in" in facts
    assert _width(page) <= 1280
    screenshot(page, "admin-user-created-desktop")
    assert api.login(username, TEMPORARY).json()["credential_change_required"] is True
    assert page.problems == [], page.problems


def test_sec4_an_administrator_unlocks_and_resets_by_keyboard_alone(live, page, browser):
    base_url, api = live
    admin = make_user(api.db, api.settings, roles=[Role.ADMIN])
    person = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    for _ in range(api.settings.lockout_threshold):  # locked for lockout_minutes (SEC-4)
        assert api.login(person.username, "not-the-password").status_code == 401
    _sign_in_by_keyboard(page, base_url, admin.username)
    page.goto(f"{base_url}/admin/users")
    row = page.locator(f"tr:has-text('{person.username}')").inner_text()
    assert "Locked until" in row
    screenshot(page, "admin-users-desktop")
    _tab_to(page, page.get_by_role("link", name=person.username, exact=True))
    _press(page, "Enter")
    _every_input_labelled(page)
    _tab_to(page, page.get_by_role("button", name="Unlock"))
    _press(page, "Enter")
    assert "Account unlocked" in page.get_by_role("status").inner_text()
    assert "Locked" not in page.locator("dl.facts").inner_text()

    _tab_to(page, "new_password")
    page.keyboard.type(TEMPORARY)
    page.keyboard.press("Tab")
    page.keyboard.type("Forgot it; identity checked at the desk")
    _press(page, "Enter")
    assert "Temporary password set" in page.get_by_role("status").inner_text()
    assert _width(page) <= 1280
    screenshot(page, "admin-user-reset-desktop")
    assert api.login(person.username, TEMPORARY).json()["credential_change_required"] is True

    # The administrator's own account: the service refuses, the refusal stays on the page.
    page.goto(f"{base_url}/admin/users/{admin.id}")
    _tab_to(page, page.get_by_role("button", name="Deactivate"))
    _press(page, "Enter")
    alert = page.get_by_role("alert").inner_text()
    assert "You cannot deactivate your own account" in alert
    screenshot(page, "admin-own-account-refused-desktop")
    refusal = "Failed to load resource: the server responded with a status of 409 (Conflict)"
    assert [p for p in page.problems if p != refusal] == [], page.problems

    context, phone = _phone(browser)
    try:
        _sign_in_by_keyboard(phone, base_url, admin.username)
        for path, name in (
            ("/admin/users", "admin-users-phone"),
            (f"/admin/users/{person.id}", "admin-user-phone"),
            ("/admin/printers", "admin-printers-phone"),
        ):
            phone.goto(f"{base_url}{path}")
            assert _width(phone) <= PHONE["width"], path
            screenshot(phone, name)
        assert phone.problems == [], phone.problems
    finally:
        context.close()


def test_lbl5_an_administrator_registers_a_printer_by_keyboard_alone(live, page):
    base_url, api = live
    admin = make_user(api.db, api.settings, roles=[Role.ADMIN])
    _sign_in_by_keyboard(page, base_url, admin.username)
    page.goto(f"{base_url}/admin/printers")
    _every_input_labelled(page)
    name = unique("Keyboard bench ")
    _tab_to(page, "name")
    page.keyboard.type(name)
    page.keyboard.press("Tab")
    page.keyboard.type("10.1.2.3")
    _press(page, "Enter")
    assert "Registered" in page.get_by_role("status").inner_text()
    assert name in page.locator("table.printers").inner_text()
    screenshot(page, "admin-printers-desktop")
    page.goto(f"{base_url}/materials")
    _every_input_labelled(page)
    assert _width(page) <= 1280
    screenshot(page, "catalogue-admin-desktop")
    assert page.problems == [], page.problems

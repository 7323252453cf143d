"""The scan station and step entry in Debian's Chromium, by keyboard alone (issue 12 items 2, 3
and 9; ADR 0026): a working context set by typing the batch number, scans checked against it,
another patient's vessel stopped on screen until acknowledged, a step recorded by scanning its
input, and the output's label printed on request. Screenshots in test-artifacts/screenshots/."""

from app.auth.permissions import Role
from tests.browser.conftest import screenshot
from tests.browser.test_pages_in_chromium import _sign_in_by_keyboard
from tests.helpers import make_user


def _script_problems(page) -> list[str]:
    """CSP violations and script errors; a refusal's page keeps its 4xx status on purpose (the
    station answers a STOP with 409), which Chromium logs as a failed resource."""
    return [p for p in page.problems if "the server responded with a status of 4" not in p]


def _focused(page, element_id: str) -> None:
    # A function with an argument, not a string expression: polling a string makes Playwright
    # eval it in the page, which the page's CSP (no 'unsafe-eval') refuses.
    page.wait_for_function(
        "id => document.activeElement && document.activeElement.id === id", arg=element_id
    )


def _tab_to(page, text: str, *, element_id: str | None = None, limit: int = 40) -> None:
    """Tab forward until the focused element's text starts with `text` (or it has the id)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "[document.activeElement.id, (document.activeElement.innerText || '').trim()]"
        )
        if focused[0] == element_id if element_id else focused[1].startswith(text):
            return
    raise AssertionError(f"no focusable element reads {text or element_id!r}")


def _scan(page, code: str) -> None:
    page.keyboard.type(code)
    with page.expect_navigation():
        page.keyboard.press("Enter")


def test_coi5_a_wrong_patients_vessel_is_stopped_at_the_station_by_keyboard_alone(live, page):
    base_url, api = live
    mine = api.batch(api.patient(family_name="Rossi", given_name="Anna")["id"])
    stranger = api.patient(family_name="Bianchi", given_name="Carla")
    other = api.batch(stranger["id"])
    tech = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    _sign_in_by_keyboard(page, base_url, tech.username)
    page.goto(f"{base_url}/scan")
    _focused(page, "code")
    # Back from the code box to the working-context box, type the batch number, Enter.
    for _ in range(3):
        page.keyboard.press("Shift+Tab")
    _focused(page, "context")
    _scan(page, mine["batch_number"])
    _focused(page, "code")
    context = page.locator("section.context").inner_text()
    assert "ROSSI, Anna" in context and mine["coi"] in context
    assert mine["batch_number"] in context
    _scan(page, mine["tube_code"])
    assert "MATCHES THE WORKING CONTEXT" in page.get_by_role("status").inner_text()
    screenshot(page, "scan-station-context-desktop")

    _scan(page, other["tube_code"])
    stop = page.get_by_role("alert")
    text = stop.inner_text()
    assert "STOP" in text and "BIANCHI, Carla" in text and other["coi"] in text
    assert "ROSSI, Anna" in text and mine["coi"] in text
    _focused(page, "stop")
    screenshot(page, "scan-station-stop-desktop")
    # A scanner's next code and Enter land on the panel and do nothing.
    page.keyboard.type(mine["tube_code"])
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    assert page.get_by_role("alert").is_visible()
    page.keyboard.press("Tab")
    _focused(page, "acknowledge")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    _focused(page, "code")
    assert "ROSSI, Anna" in page.locator("section.context").inner_text()
    assert page.get_by_role("alert").count() == 0
    recent = page.locator("section.recent").inner_text()
    assert "acknowledged, set aside" in recent
    screenshot(page, "scan-station-after-stop-desktop")
    assert _script_problems(page) == [], page.problems


def test_coi3_a_step_recorded_by_scanning_and_its_label_printed_by_keyboard(live, page):
    base_url, api = live
    batch = api.batch()
    tech = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    _sign_in_by_keyboard(page, base_url, tech.username)
    page.goto(f"{base_url}/scan")
    _focused(page, "code")
    for _ in range(3):
        page.keyboard.press("Shift+Tab")
    _scan(page, batch["batch_number"])
    _focused(page, "code")
    _tab_to(page, "Record a step on")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    _tab_to(page, "Isolation")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    _focused(page, "scan")
    _scan(page, batch["tube_code"])
    _focused(page, "scan")
    assert batch["tube_code"] in page.locator("ul.step-inputs").inner_text()
    _tab_to(page, "", element_id="m_viable_cells")  # the viable cells counted
    page.keyboard.type("2 500 000")
    screenshot(page, "step-entry-desktop")
    _tab_to(page, "Record isolation")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "STEP RECORDED" in page.get_by_role("status").first.inner_text()
    screenshot(page, "step-recorded-desktop")
    _tab_to(page, "Print label of")
    with page.expect_download() as download:
        page.keyboard.press("Enter")
    assert download.value.suggested_filename.endswith(".pdf")
    (flask,) = [s for s in api.get(Role.TECHNICIAN, f"/batches/{batch['id']}").json()["vessels"]
               if s["kind"] == "flask"]  # fmt: skip
    labels = api.get(Role.TECHNICIAN, f"/vessels/{flask['code']}/labels").json()
    assert len(labels) == 1 and not labels[0]["reprint"]
    assert _script_problems(page) == [], page.problems

"""A whole lab day in Debian's Chromium against one live server (issue 12 item 9): each person
signs in through the login page; a patient and a biopsy are registered, the biopsy received by
scanning and its batch registered; the technician sets the working context at the scan station
and records every step by scanning, by keyboard alone; a wrong patient's vessel scanned in that
context is stopped on screen and its acknowledgement audited; QC results are entered and a
second person reviews them in QA's queue; QA signs the release in the batch record's dialog; the
dose is dispatched, received at the clinic by scanning, checked at the bedside by keyboard alone
on a phone with a witness, and the infusion recorded.

One test, in the day's order, each step a named helper sharing the `Day`; every act of the day
is done on its page, and what the server recorded is read back through the JSON API.
Screenshots of each main page go to test-artifacts/screenshots/lab-day-*.png (desktop;
390 px phone for the clinic board, the receipt and the bedside)."""

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from app.audit.actions import AuditAction
from app.auth.models import User
from app.auth.permissions import Role
from app.clock import local, utcnow
from tests.browser.conftest import DESKTOP, PHONE, screenshot, watched_page
from tests.browser.test_pages_in_chromium import _sign_in_by_keyboard
from tests.browser.test_record_qa_clinic import _width
from tests.browser.test_scan_station import _focused, _scan, _script_problems, _tab_to
from tests.helpers import PASSWORD, Api, audit_events, make_user, passing_value

BIRTH_DATE = date(1979, 3, 14)
DOSE_CELLS = 150_000_000
# Refusals keep their 4xx status on purpose (the station's STOP is a 409): Chromium logs the
# failed resource, which is neither a CSP violation nor a script error (`_script_problems`).


@dataclass
class Day:
    """What the day's steps share: the people, the browser pages they are signed in on, and
    the records as the API returned them."""

    api: Api
    base_url: str
    engine: Engine
    browser: Any
    contexts: ExitStack
    people: dict[str, User] = field(default_factory=dict)
    pages: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    patient: dict[str, Any] = field(default_factory=dict)
    biopsy: dict[str, Any] = field(default_factory=dict)
    batch: dict[str, Any] = field(default_factory=dict)
    stranger_batch: dict[str, Any] = field(default_factory=dict)
    dose: str = ""

    def call(self, who: str, method: str, path: str, body: Any = None) -> Any:
        """The JSON API as `who` (the same person signed in on a page), answered 2xx."""
        if who not in self.headers:
            self.headers[who] = self.api.headers_for(self.people[who])
        response = self.api.client.request(
            method, f"/api/v1{path}", json=body, headers=self.headers[who]
        )
        assert response.status_code < 300, response.text
        return response.json()

    def events(self, action: AuditAction) -> list:
        with Session(self.engine) as session:
            return audit_events(session, action)


@pytest.fixture
def day(browser, live) -> Iterator[Day]:
    base_url, api = live
    with ExitStack() as contexts:
        yield Day(api, base_url, api.db.get_bind(), browser, contexts)  # type: ignore[arg-type]


def _open_page(day: Day, who: str, *, phone: bool = False):
    """A browser of `who`'s own (no shared cookies, `watched_page`), a desktop or a 390 px
    phone, signed in through the login page by keyboard."""
    options = {"viewport": PHONE, "is_mobile": True, "has_touch": True} if phone else {}
    context = day.browser.new_context(**({"viewport": DESKTOP} | options))
    day.contexts.callback(context.close)
    context.set_default_timeout(10_000)  # a step that hangs fails in seconds, not minutes
    page = watched_page(context)
    _sign_in_by_keyboard(page, day.base_url, day.people[who].username)
    assert day.people[who].full_name in page.inner_text("header")
    day.pages[who] = page
    return page


# -- registration, receipt, QC entry and dispatch -------------------------------------------------


def _register_patient_by_keyboard(day: Day) -> None:
    """The clinician registers the patient, the birth date typed as a nurse would."""
    page = day.pages["clinician"]
    page.goto(f"{day.base_url}/patients/new")
    _focused(page, "mrn")
    for text in ("MRN-DAY-0001", "Bianchi", "Lucia", BIRTH_DATE.strftime("%d/%m/%Y")):
        page.keyboard.type(text)  # the module's database is its own: the MRN is free
        page.keyboard.press("Tab")
    _focused(page, "sex")
    page.keyboard.press("f")  # a closed select takes the first option starting with the key
    page.keyboard.press("Tab")
    with page.expect_navigation():
        page.keyboard.press("Enter")  # "Register patient"
    assert "REGISTERED — COI" in page.locator("#registration").inner_text()
    screenshot(page, "lab-day-00a-patient-registered-desktop")
    (day.patient,) = day.call("clinician", "GET", "/patients?mrn=MRN-DAY-0001")
    assert day.patient["birth_date"] == BIRTH_DATE.isoformat()


def _register_biopsy_by_keyboard(day: Day) -> None:
    """From the patient's page: the site and mass typed, collected now (the box's default)."""
    page = day.pages["clinician"]
    _focused(page, "site")
    page.keyboard.type("vastus lateralis")
    page.keyboard.press("Tab")
    page.keyboard.type("152")
    with page.expect_navigation():
        page.keyboard.press("Enter")  # "Register biopsy"
    biopsy_id = int(page.url.rsplit("/", 1)[1])
    day.biopsy = day.call("clinician", "GET", f"/biopsies/{biopsy_id}")
    assert day.biopsy["tube_code"] in page.locator("#biopsy-status").inner_text()
    screenshot(page, "lab-day-00b-biopsy-registered-desktop")


def _receive_biopsy_and_register_its_batch_by_scanning(day: Day) -> None:
    """The technician scans the tube at receipt, types the temperature, Enter receives it;
    the biopsy's page then offers "Register batch" with the focus on it."""
    page = day.pages["technician"]
    page.goto(f"{day.base_url}/biopsies/receive")
    _focused(page, "scanned_code")
    _scan(page, day.biopsy["tube_code"])
    _focused(page, "temperature_c")
    assert "BIANCHI, Lucia" in page.locator("#checked").inner_text()
    screenshot(page, "lab-day-00c-biopsy-receipt-desktop")
    _scan(page, "4.5")  # Enter: "Receive biopsy"
    assert "RECEIVED — tube" in page.locator("#biopsy-status").inner_text()
    _focused(page, "register_batch")
    with page.expect_navigation():
        page.keyboard.press("Enter")  # "Register batch"
    batch_id = int(page.url.rsplit("/", 1)[1])
    day.batch = day.call("technician", "GET", f"/batches/{batch_id}")
    assert day.batch["patient_id"] == day.patient["id"]


def _enter_qc_results_by_keyboard(day: Day) -> None:
    """Each test in turn: the page selects the next one waiting, Tab, the value, Enter."""
    page = day.pages["technician"]
    page.goto(f"{day.base_url}/batches/{day.batch['id']}/qc")
    qc = day.call("technician", "GET", f"/batches/{day.batch['id']}/qc")
    # What the bench measured: the dose's own count, and the viability typed at formulation.
    measured = {"viable_cells_per_dose": DOSE_CELLS, "viability": 92}
    values = {row["test"]: measured.get(row["test"], passing_value(row)) for row in qc["tests"]}
    for _ in range(len(values)):
        _focused(page, "test")
        test = page.evaluate("id => document.getElementById(id).value", "test")
        page.keyboard.press("Tab")
        _focused(page, "value")
        _scan(page, str(values.pop(test)))
        assert "RESULT ENTERED — PASS" in page.get_by_role("status").inner_text()
    assert values == {}
    screenshot(page, "lab-day-04b-qc-entered-desktop")
    qc = day.call("technician", "GET", f"/batches/{day.batch['id']}/qc")
    assert {row["outcome"] for row in qc["tests"]} == {"pass"}


def _dispatch_by_scanning(day: Day) -> None:
    """The dose scanned at the custody page; the destination and temperature typed; Enter
    dispatches (for a dose the first button)."""
    page = day.pages["technician"]
    page.goto(f"{day.base_url}/custody")
    _focused(page, "code")
    _scan(page, day.dose)
    _focused(page, "location")
    page.keyboard.type("Courier")
    page.keyboard.press("Tab")
    _focused(page, "temperature_c")
    _scan(page, "5")
    assert "DISPATCHED" in page.get_by_role("status").inner_text()
    screenshot(page, "lab-day-08b-dispatched-desktop")


# -- the steps through pages ----------------------------------------------------------------------


def _set_working_context_by_keyboard(day: Day) -> None:
    """At the station: back from the code box to the working-context box, type the batch
    number, Enter; the context names the patient, COI and batch above the code box."""
    page = day.pages["technician"]
    page.goto(f"{day.base_url}/scan")
    _focused(page, "code")
    for _ in range(3):
        page.keyboard.press("Shift+Tab")
    _focused(page, "context")
    _scan(page, day.batch["batch_number"])
    _focused(page, "code")
    context = page.locator("section.context").inner_text()
    assert "BIANCHI, Lucia" in context and day.patient["coi"] in context
    assert day.batch["batch_number"] in context
    _scan(page, day.biopsy["tube_code"])
    assert "MATCHES THE WORKING CONTEXT" in page.get_by_role("status").inner_text()
    screenshot(page, "lab-day-01-scan-station-context-desktop")


def _stop_a_wrong_patients_vessel(day: Day) -> None:
    """Another patient's tube scanned in the working context: a STOP naming both identities,
    which a scanner's next code cannot pass; Tab, Enter acknowledges it, and that is audited."""
    page = day.pages["technician"]
    other = day.stranger_batch
    _scan(page, other["tube_code"])
    text = page.get_by_role("alert").inner_text()
    assert "STOP" in text and "ROSSI, Marco" in text and other["coi"] in text
    assert "BIANCHI, Lucia" in text and day.patient["coi"] in text
    _focused(page, "stop")
    screenshot(page, "lab-day-02-scan-station-stop-desktop")
    page.keyboard.type(day.biopsy["tube_code"])
    page.keyboard.press("Enter")
    page.wait_for_timeout(200)
    assert page.get_by_role("alert").is_visible()
    page.keyboard.press("Tab")
    _focused(page, "acknowledge")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    _focused(page, "code")
    assert page.get_by_role("alert").count() == 0
    assert "acknowledged, set aside" in page.locator("section.recent").inner_text()
    (mismatch,) = day.events(AuditAction.SCAN_IDENTITY_MISMATCH)
    (acknowledged,) = day.events(AuditAction.SCAN_STOP_ACKNOWLEDGED)
    assert acknowledged.actor == day.people["technician"].username
    assert acknowledged.scope == other["coi"] == mismatch.scope
    assert json.loads(acknowledged.new_values or "{}")["mismatch_seq"] == mismatch.seq


def _type_into(page, element_id: str, text: str | datetime) -> None:
    """Tab to the box and type `text`; a date and time box gets `text`'s date, Tab, then its
    time, as this Chromium lays the box out (month, day, year; hour, minute, AM/PM): what the
    box then holds is checked, so another layout fails here, by name."""
    _tab_to(page, "", element_id=element_id)
    if not isinstance(text, datetime):
        page.keyboard.type(text)
        return
    page.keyboard.type(text.strftime("%m%d%Y"))
    page.keyboard.press("Tab")
    page.keyboard.type(text.strftime("%I%M") + ("A" if text.hour < 12 else "P"))
    held = page.evaluate("id => document.getElementById(id).value", element_id)
    assert held == text.strftime("%Y-%m-%dT%H:%M"), f"the {element_id} box holds {held!r}"


def _record_step_by_scanning(
    day: Day, kind: str, inputs: list[str], fields: dict[str, Any], *, outputs: int = 1
) -> list[str]:
    """Step entry by keyboard: from the station, Tab to "Record a step", choose the kind, scan
    each input (Enter adds it), add output rows, type the fields, Tab to "Record" and Enter.
    The codes of the outputs, as the recorded step's page lists them."""
    page = day.pages["technician"]
    page.goto(f"{day.base_url}/scan")
    _focused(page, "code")
    _tab_to(page, "Record a step on")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    _tab_to(page, kind.capitalize())
    with page.expect_navigation():
        page.keyboard.press("Enter")
    for code in inputs:
        _focused(page, "scan")
        _scan(page, code)
        assert f"{code} added to the inputs" in page.get_by_role("status").last.inner_text()
    for _ in range(outputs - 1):
        _tab_to(page, "Add an output")
        with page.expect_navigation():
            page.keyboard.press("Enter")
    for element_id, text in fields.items():
        _type_into(page, element_id, text)
    screenshot(page, f"lab-day-03-step-{kind}-desktop")
    _tab_to(page, f"Record {kind}")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "STEP RECORDED" in page.get_by_role("status").first.inner_text(), page.inner_text("main")
    return page.locator("button", has_text="Print label of").evaluate_all(
        "bs => bs.map(b => b.innerText.replace('Print label of', '').trim())"
    )


def _record_the_days_steps(day: Day) -> None:
    """Isolation, a passage into two flasks, harvest and formulation into one dose, each by
    scanning its inputs; the dose's label printed from the recorded step (a PDF download)."""
    (flask,) = _record_step_by_scanning(
        day, "isolation", [day.biopsy["tube_code"]], {"m_viable_cells": "2 500 000"}
    )
    flasks = _record_step_by_scanning(
        day, "passage", [flask], {"m_viable_cells": "9 000 000", "m_viability_pct": "94"},
        outputs=2,
    )  # fmt: skip
    assert len(flasks) == 2
    (tube,) = _record_step_by_scanning(day, "harvest", flasks, {"m_viability_pct": "93"})
    zone = day.api.settings.display_timezone
    expires = local(utcnow() + timedelta(days=3), zone).replace(second=0, microsecond=0)
    (dose,) = _record_step_by_scanning(
        day,
        "formulation",
        [tube],
        {
            "out_cells_0": "150 000 000",
            "out_volume_0": "50",
            "out_expires_0": expires,
            "m_viability_pct": "92",
        },
    )
    day.dose = dose
    page = day.pages["technician"]
    assert "150,000,000 cells · 50 mL" in page.inner_text("main")
    screenshot(page, "lab-day-04-formulation-recorded-desktop")
    _tab_to(page, f"Print label of {dose}")
    with page.expect_download() as download:
        page.keyboard.press("Enter")
    assert download.value.suggested_filename.endswith(".pdf")
    recorded = day.call("technician", "GET", f"/batches/{day.batch['id']}")
    (bag,) = [v for v in recorded["vessels"] if v["is_dose"]]
    assert bag["code"] == dose and bag["cell_count"] == DOSE_CELLS
    typed = datetime.fromisoformat(bag["expires_at"])
    # The expiry typed in local time (to the minute) is the instant recorded.
    assert typed == expires


def _review_critical_results_in_the_qa_queue(day: Day) -> None:
    """QA's second person signs each critical result as reviewed from the queue: the password
    typed in the row's form, Enter; the queue then says every critical result is reviewed."""
    page = _open_page(day, "reviewer")
    page.goto(f"{day.base_url}/qa")
    section = page.locator(f"#batch-{day.batch['id']}")
    assert "Release gate not met" in section.inner_text()
    screenshot(page, "lab-day-05-qa-queue-before-review-desktop")
    reviewed = 0
    while (forms := page.locator("#reviews ~ table form")).count():
        forms.first.locator('input[type="password"]').focus()
        page.keyboard.type(PASSWORD)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        reviewed += 1
        assert reviewed < 20, "the review forms do not go away"
    assert reviewed >= 1
    assert "Every critical result is reviewed." in page.inner_text("main")
    assert "Release gate met" in page.locator(f"#batch-{day.batch['id']}").inner_text()
    assert _width(page) <= DESKTOP["width"]
    screenshot(page, "lab-day-06-qa-queue-reviewed-desktop")
    qc = day.call("reviewer", "GET", f"/batches/{day.batch['id']}/qc")
    assert all(row["reviewed"] for row in qc["tests"] if row["critical"]), qc


def _release_with_a_signature(day: Day) -> None:
    page = _open_page(day, "releaser")
    page.goto(f"{day.base_url}/batches/{day.batch['id']}")
    assert "150,000,000" in page.inner_text("main")
    assert _width(page) <= DESKTOP["width"]
    screenshot(page, "lab-day-07-batch-record-before-release-desktop")
    dialog = page.locator("form.dialog", has=page.locator('input[value="release"]'))
    dialog.locator('input[type="password"]').focus()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{day.base_url}/batches/{day.batch['id']}#decision")
    outcome = page.locator("#decision").inner_text()
    assert f"RELEASED — signed by {day.people['releaser'].full_name} at " in outcome
    screenshot(page, "lab-day-08-batch-record-released-desktop")
    assert day.call("releaser", "GET", f"/batches/{day.batch['id']}")["status"] == "released"


def _receive_at_the_clinic_by_scanning(day: Day) -> None:
    """On the ward's phone: the board shows the batch; the dose label is scanned into the
    receipt (Enter moves on), the place and temperature typed; RECEIVED names the patient."""
    page = _open_page(day, "clinician", phone=True)
    page.goto(f"{day.base_url}/clinic")
    assert day.batch["batch_number"] in page.inner_text("main")
    assert _width(page) <= PHONE["width"]
    screenshot(page, "lab-day-09-clinic-board-phone")
    page.goto(f"{day.base_url}/clinic/receive")
    _focused(page, "dose_code")
    page.keyboard.type(day.dose)
    page.keyboard.press("Tab")
    page.keyboard.press("Control+a")
    page.keyboard.type("Ward 4")
    page.keyboard.press("Tab")
    page.keyboard.type("5,5")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    received = page.get_by_role("status").inner_text()
    assert "RECEIVED" in received and "BIANCHI, Lucia" in received and "5.5 °C" in received
    assert _width(page) <= PHONE["width"]
    screenshot(page, "lab-day-10-clinic-receipt-phone")
    custody = day.call("clinician", "GET", f"/vessels/{day.dose}/custody")
    assert custody[-1]["event"] == "received" and custody[-1]["to_location"] == "Ward 4"


def _bedside_with_a_witness_by_keyboard(day: Day) -> None:
    """Wristband (Enter), birth date as the patient says it (Enter), dose label (Enter): the
    patient's name and birth date shown to compare; the witness types their name, Tab, their
    password, Enter: INFUSION RECORDED."""
    page = day.pages["clinician"]
    page.goto(f"{day.base_url}/bedside")
    _focused(page, "wristband_mrn")
    page.keyboard.type(day.patient["mrn"])
    page.keyboard.press("Enter")
    _focused(page, "birth_date")
    page.keyboard.type(BIRTH_DATE.strftime("%d/%m/%Y"))
    page.keyboard.press("Enter")
    _focused(page, "dose_code")
    page.keyboard.type(day.dose)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "IDENTITY CONFIRMED" in page.get_by_role("status").inner_text()
    compare = page.locator("dl.compare").inner_text()
    assert "BIANCHI, Lucia" in compare and BIRTH_DATE.strftime("%d %B %Y") in compare
    assert _width(page) <= PHONE["width"]
    screenshot(page, "lab-day-11-bedside-confirmed-phone")
    _focused(page, "witness_username")
    page.keyboard.type(day.people["witness"].username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    recorded = page.get_by_role("status").inner_text()
    assert "INFUSION RECORDED" in recorded and "BIANCHI, Lucia" in recorded
    assert f"witnessed by {day.people['witness'].full_name}" in recorded
    screenshot(page, "lab-day-12-bedside-recorded-phone")
    page.goto(f"{day.base_url}/clinic/patients/{day.patient['id']}")
    assert _width(page) <= PHONE["width"]
    screenshot(page, "lab-day-13-clinic-patient-phone")


def _the_server_recorded_the_day(day: Day) -> None:
    batch = day.call("releaser", "GET", f"/batches/{day.batch['id']}")
    assert batch["status"] == "completed"  # its one dose infused
    (bag,) = [v for v in batch["vessels"] if v["is_dose"]]
    assert bag["status"] == "infused"
    (infused,) = day.events(AuditAction.INFUSION_RECORDED)
    assert infused.actor == day.people["clinician"].username
    assert infused.scope == day.patient["coi"]
    for who, page in day.pages.items():
        assert _script_problems(page) == [], (who, page.problems)


@pytest.mark.long
def test_coi5_coi6_rel3_a_whole_lab_day_in_chromium(day: Day) -> None:
    api = day.api
    roles = {
        "clinician": Role.CLINICIAN,
        "witness": Role.CLINICIAN,
        "technician": Role.TECHNICIAN,
        "reviewer": Role.QA,
        "releaser": Role.QA,
    }
    for who, role in roles.items():
        day.people[who] = make_user(
            api.db, api.settings, roles=[role], username=f"day-{who}", full_name=f"Day {who}"
        )
    # Another patient's batch in the lab the same day: its tube is the one scanned by mistake.
    day.stranger_batch = api.batch(api.patient(family_name="Rossi", given_name="Marco")["id"])

    _open_page(day, "clinician")
    _register_patient_by_keyboard(day)
    _register_biopsy_by_keyboard(day)
    _open_page(day, "technician")
    _receive_biopsy_and_register_its_batch_by_scanning(day)
    _set_working_context_by_keyboard(day)
    _stop_a_wrong_patients_vessel(day)
    _record_the_days_steps(day)
    _enter_qc_results_by_keyboard(day)
    _review_critical_results_in_the_qa_queue(day)
    _release_with_a_signature(day)
    _dispatch_by_scanning(day)
    _receive_at_the_clinic_by_scanning(day)
    _bedside_with_a_witness_by_keyboard(day)
    _the_server_recorded_the_day(day)

"""The trace report of a patient (COI-7, 21 CFR 1271.290; issue 6 §6): from each biopsy (DIN with
its check character) through every step to every dose, its custody and its infusion, with QA's
decisions — as HTML and as PDF, and nothing of any other patient."""

import re
from datetime import UTC, datetime
from typing import Any

import pypdfium2 as pdfium
import pytest

from app.auth.permissions import Role
from tests.helpers import PASSWORD, Api, error, iso, make_user, ok

STEP_KINDS = ("isolation", "passage", "harvest", "formulation")


def _released(api: Api, patient_id: int, doses: int = 2) -> tuple[dict[str, Any], list[str]]:
    batch, codes = api.formulated(patient_id, doses=doses)
    api.pass_qc(batch["id"])
    ok(api.decide(batch["id"]))
    return batch, codes


def _custody(api: Api, code: str, event: str, temperature: float) -> dict[str, Any]:
    role = Role.TECHNICIAN if event == "dispatched" else Role.CLINICIAN
    place = "Courier box 7" if event == "dispatched" else "Ward 3 fridge"
    body = {"event": event, "location": place, "temperature_c": temperature}
    return ok(api.post(role, f"/vessels/{code}/custody", body), 201)


def _infuse(api: Api, patient: dict[str, Any], code: str) -> dict[str, Any]:
    witness = make_user(api.db, api.settings, roles=[Role.CLINICIAN])
    body = {
        "wristband_mrn": patient["mrn"],
        "birth_date": patient["birth_date"],
        "dose_code": code,
        "administered_at": iso(datetime.now(UTC)),
        "witness_username": witness.username,
        "witness_password": PASSWORD,
    }
    return ok(api.post(Role.CLINICIAN, "/infusions", body), 201)


def _report(api: Api, patient_id: int, fmt: str = "html", role: Role = Role.CLINICIAN):
    return api.get(role, f"/patients/{patient_id}/trace-report", params={"format": fmt})


def _pdf_text(content: bytes) -> str:
    pdf = pdfium.PdfDocument(content)
    try:
        return "".join(page.get_textpage().get_text_range() for page in pdf)
    finally:
        pdf.close()


def _squash(text: str) -> str:
    """Without whitespace: a PDF table wraps a cell wherever its column ends."""
    return re.sub(r"\s+", "", text)


def _traced(api: Api) -> dict[str, Any]:
    """A patient whose first dose was dispatched, received and infused, the second only
    dispatched; and another patient with a released batch whose dose was dispatched."""
    patient = api.patient(family_name="Vermeulen", given_name="Johanna", birth_date="1971-02-03")
    batch, (infused, dispatched) = _released(api, patient["id"])
    sent = _custody(api, infused, "dispatched", 4.5)
    got = _custody(api, infused, "received", 6.0)
    infusion = _infuse(api, patient, infused)
    _custody(api, dispatched, "dispatched", 3.5)

    other = api.patient(family_name="Okafor", given_name="Chidi", birth_date="1985-11-30")
    other_batch, other_codes = _released(api, other["id"])
    _custody(api, other_codes[0], "dispatched", 5.0)
    return {
        "patient": patient,
        "batch": batch,
        "doses": (infused, dispatched),
        "technician": sent["recorded_by"],
        "clinician": got["recorded_by"],
        "infusion": infusion,
        "other": other,
        "other_batch": other_batch,
        "other_codes": other_codes,
    }


def _must_show(traced: dict[str, Any]) -> list[str]:
    patient, batch, infusion = traced["patient"], traced["batch"], traced["infusion"]
    return [
        "Vermeulen, Johanna",
        "1971-02-03",
        patient["mrn"],
        patient["coi"],
        f"{batch['din']}\u00a0{batch['din_check']}",  # one unbreakable word (AUD-9)
        batch["batch_number"],
        *STEP_KINDS,
        *traced["doses"],
        f"dispatched to Courier box 7 at 4.5 °C by {traced['technician']}",
        f"received to Ward 3 fridge at 6 °C by {traced['clinician']}",
        f"dispatched to Courier box 7 at 3.5 °C by {traced['technician']}",
        f"by {infusion['administered_by']}, witnessed by {infusion['witness']}",
        f"{batch['batch_number']}: release by ",
    ]


def _must_not_show(traced: dict[str, Any]) -> list[str]:
    other, other_batch = traced["other"], traced["other_batch"]
    return [
        "Okafor",
        "Chidi",
        "1985-11-30",
        other["mrn"],
        other["coi"],
        other_batch["din"],
        other_batch["batch_number"],
        *traced["other_codes"],
    ]


# -- content ---------------------------------------------------------------------------------------


def test_coi7_the_html_report_traces_the_patient_to_every_dose_custody_and_infusion(api):
    traced = _traced(api)
    response = _report(api, traced["patient"]["id"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for text in _must_show(traced):
        assert text in page, text
    for text in _must_not_show(traced):
        assert text not in page, text
    # The infusion sits in the row of the infused dose, not of the other one.
    infused, dispatched = traced["doses"]
    doses = page[page.index("Doses, custody and infusions") :]
    row_of = {code: doses[doses.index(code) :].split("</tr>")[0] for code in (infused, dispatched)}
    assert "witnessed by" in row_of[infused] and "witnessed by" not in row_of[dispatched]
    assert "received to Ward 3 fridge" not in row_of[dispatched]
    assert "infused" in row_of[infused]


def test_coi7_the_pdf_report_carries_the_same_trace(api):
    traced = _traced(api)
    response = _report(api, traced["patient"]["id"], "pdf", role=Role.QA)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    text = _squash(_pdf_text(response.content))
    for expected in _must_show(traced):
        assert _squash(expected) in text, expected
    for unexpected in _must_not_show(traced):
        assert _squash(unexpected) not in text, unexpected


def test_coi7_a_patient_before_any_processing_has_a_report_of_their_biopsy_alone(api):
    patient = api.patient(family_name="Nakamura", given_name="Emi")
    biopsy = api.biopsy(patient["id"])
    page = ok_text(_report(api, patient["id"]))
    assert patient["coi"] in page and biopsy["din"] in page
    assert "No steps." in page and "No doses." in page
    text = _squash(_pdf_text(_report(api, patient["id"], "pdf").content))
    assert _squash(patient["coi"]) in text and "None." in text


def ok_text(response) -> str:
    assert response.status_code == 200, response.text
    return response.text


# -- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.TECHNICIAN, Role.ADMIN])
def test_sec_technicians_and_admins_may_not_read_trace_reports(api, role):
    patient = api.patient()
    for fmt in ("html", "pdf"):
        error(_report(api, patient["id"], fmt, role=role), 403, "forbidden")


def test_coi7_the_report_of_an_unknown_patient_is_not_found(api):
    error(_report(api, 987654), 404, "not_found")
    error(_report(api, 987654, "pdf"), 404, "not_found")


def test_coi7_the_report_comes_as_html_or_pdf_only(api):
    patient = api.patient()
    error(_report(api, patient["id"], "xml"), 422, "invalid_request")
    assert ok_text(api.get(Role.CLINICIAN, f"/patients/{patient['id']}/trace-report"))

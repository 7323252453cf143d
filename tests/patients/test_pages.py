"""Patient pages (issue 12 item 1): a clinician registers a patient on a page (birth dates as
nurses type them) and lands on the patient's page with the COI; anyone who reads patients finds
them by MRN or name; QA voids a wrong registration. The pages call the API's services and are
refused alike; a refusal stays on the page, in words, and changes nothing."""

import pytest
from sqlmodel import select

from app.audit.actions import AuditAction
from app.auth.permissions import Role
from app.patients.models import Patient
from tests.helpers import audit_events, unique
from tests.test_pages import _page_login, submit


def _form(**overrides: str) -> dict[str, str]:
    return {
        "mrn": unique("PG"),
        "family_name": "Bianchi",
        "given_name": "Lucia",
        "birth_date": "14/03/1979",
        "sex": "female",
    } | overrides


def _patients(db, mrn: str) -> list[Patient]:
    return list(db.exec(select(Patient).where(Patient.mrn == mrn)))


def test_coi1_a_clinician_registers_a_patient_and_sees_the_coi(api, db):
    _page_login(api, Role.CLINICIAN)
    form = api.client.get("/patients/new")
    assert form.status_code == 200
    for field in ("mrn", "family_name", "given_name", "birth_date", "sex"):
        assert f'<label for="{field}"' in form.text and f'id="{field}"' in form.text
    assert 'name="csrf_token"' in form.text and "Register patient" in form.text
    data = _form()
    done = submit(api, "/patients", data=data, follow_redirects=False)
    assert done.status_code == 303
    (patient,) = _patients(db, data["mrn"])
    assert done.headers["location"] == f"/patients/{patient.id}"
    assert patient.birth_date.isoformat() == "1979-03-14"  # typed day first
    page = api.client.get(done.headers["location"])
    assert page.status_code == 200
    assert f'REGISTERED — COI <span class="code">{patient.coi}</span>' in page.text
    assert "BIANCHI, Lucia" in page.text and "14/03/1979" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert len(audit_events(db, AuditAction.PATIENT_REGISTERED)) == 1


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"birth_date": "14/03/79"}, "four digits"),
        ({"birth_date": "31/02/1979"}, "not a real date"),
        ({"mrn": "bad mrn!"}, "Check the mrn"),
        ({"family_name": ""}, "Check the family name"),
        ({"sex": ""}, "Check the sex"),
    ],
)
def test_coi1_bad_input_stays_on_the_form_with_the_sentence_and_registers_nothing(
    api, db, change, words
):
    _page_login(api, Role.CLINICIAN)
    data = _form(**change)
    refused = submit(api, "/patients", data=data)
    assert refused.status_code == 422, refused.text
    assert words in refused.text and 'id="mrn"' in refused.text
    assert "Please check what you typed" in refused.text
    assert "Nothing was registered" in refused.text
    assert f'value="{data["given_name"]}"' in refused.text  # what was typed is kept
    assert _patients(db, data["mrn"]) == []
    assert audit_events(db, AuditAction.PATIENT_REGISTERED) == []


def test_coi1_an_mrn_registered_in_another_case_is_refused_on_the_page_as_by_the_api(api, db):
    existing = api.patient()
    _page_login(api, Role.CLINICIAN)
    refused = submit(api, "/patients", data=_form(mrn=existing["mrn"].lower()))
    assert refused.status_code == 409
    assert "already registered" in refused.text and 'id="mrn"' in refused.text
    assert len(_patients(db, existing["mrn"].lower())) == 0


def test_sec_registering_needs_the_csrf_field_and_the_permission(api, db):
    _page_login(api, Role.TECHNICIAN)
    assert api.client.get("/patients/new").status_code == 403
    data = _form()
    assert submit(api, "/patients", data=data).status_code == 403
    _page_login(api, Role.CLINICIAN)
    forged = api.client.post("/patients", data=data)  # no CSRF field
    assert forged.status_code == 403 and "csrf" in forged.text.lower()
    assert _patients(db, data["mrn"]) == []


def test_patients_are_found_by_mrn_or_name_by_the_lab_and_not_by_admin(api):
    mine = api.patient(family_name="Zanetti", given_name="Carla")
    other = api.patient(family_name="Rossi")
    _page_login(api, Role.TECHNICIAN)
    everyone = api.client.get("/patients")
    assert everyone.status_code == 200 and 'id="q"' in everyone.text
    assert "Register a patient" not in everyone.text  # not the technician's task
    by_name = api.client.get("/patients", params={"q": "zanet"})
    assert "ZANETTI, Carla" in by_name.text and other["coi"] not in by_name.text
    by_mrn = api.client.get("/patients", params={"q": mine["mrn"].lower()})
    assert mine["coi"] in by_mrn.text and other["coi"] not in by_mrn.text
    nobody = api.client.get("/patients", params={"q": "%"})
    assert nobody.status_code == 200 and mine["coi"] not in nobody.text
    _page_login(api, Role.ADMIN)
    assert api.client.get("/patients").status_code == 403
    assert api.client.get(f"/patients/{mine['id']}").status_code == 403


def test_coi1_void_is_offered_to_qa_only_needs_its_reason_and_is_audited(api, db):
    patient = api.patient()
    _page_login(api, Role.CLINICIAN)
    page = api.client.get(f"/patients/{patient['id']}")
    assert "Void registration" not in page.text and "Register biopsy" in page.text
    assert submit(api, f"/patients/{patient['id']}/void", data={"reason": "x"}).status_code == 403
    _page_login(api, Role.QA)
    page = api.client.get(f"/patients/{patient['id']}")
    assert "Void registration" in page.text and "Register biopsy" not in page.text
    no_reason = submit(api, f"/patients/{patient['id']}/void", data={"reason": "  "})
    assert no_reason.status_code == 422 and "Check the reason" in no_reason.text
    assert "REGISTERED — COI" in no_reason.text  # the patient's page, read afresh
    voided = submit(api, f"/patients/{patient['id']}/void", data={"reason": "Wrong MRN typed"})
    assert voided.status_code == 200 and "VOIDED — COI" in voided.text
    assert "Wrong MRN typed" in voided.text and "Void registration" not in voided.text
    assert len(audit_events(db, AuditAction.PATIENT_VOIDED)) == 1


def test_coi1_a_patient_with_a_live_biopsy_is_not_voided_and_the_page_says_why(api, db):
    biopsy = api.biopsy()
    _page_login(api, Role.QA)
    refused = submit(
        api, f"/patients/{biopsy['patient_id']}/void", data={"reason": "Wrong patient"}
    )
    assert refused.status_code == 409
    assert f"still has biopsy {biopsy['din']}" in refused.text
    assert "Not possible in the record" in refused.text and "REGISTERED — COI" in refused.text
    assert audit_events(db, AuditAction.PATIENT_VOIDED) == []


@pytest.mark.parametrize(
    ("role", "shown", "hidden"),
    [
        (Role.CLINICIAN, ['href="/patients"', 'href="/patients/new"'], ['"/biopsies/receive"']),
        (Role.TECHNICIAN, ['href="/patients"', 'href="/biopsies/receive"'], ['"/patients/new"']),
        (Role.ADMIN, [], ['"/patients"', '"/patients/new"', '"/biopsies/receive"']),
    ],
)
def test_sec_home_and_header_offer_the_intake_pages_by_role(api, role, shown, hidden):
    _page_login(api, role)
    home = api.client.get("/")
    assert home.status_code == 200
    for link in shown:
        assert link in home.text, (role, link)
    for link in hidden:
        assert link not in home.text, (role, link)

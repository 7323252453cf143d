"""Patients: registration with a COI assigned once (COI-1), duplicate MRN, voiding by QA."""

import pytest
from sqlalchemy import create_engine, select, text

from app.audit.actions import AuditAction
from app.auth.models import User
from app.auth.permissions import Role
from app.db import unit_of_work
from app.identity.codes import parse_coi
from app.migrate import upgrade
from app.patients import service as patients
from app.patients.models import Patient
from app.patients.schemas import PatientCreate
from tests.helpers import audit_events, make_user, unique
from tests.races import Contender, committed_api, headers_of_new, wait_for_lock_waiters


def test_coi1_registration_assigns_a_valid_unique_coi(api):
    first, second = api.patient(), api.patient()
    assert parse_coi(first["coi"]) == first["coi"]
    assert first["coi"] != second["coi"]
    assert first["coi"].startswith("CH" + api.settings.facility_id)


def test_coi1_contract_fields_are_returned(api):
    body = {
        "mrn": "MRN-77",
        "family_name": "Verdi",
        "given_name": "Giuseppe",
        "birth_date": "1950-10-10",
        "sex": "male",
    }
    response = api.post(Role.CLINICIAN, "/patients", body)
    assert response.status_code == 201
    data = response.json()
    assert {key: data[key] for key in body} == body
    assert isinstance(data["id"], int) and data["coi"]


def test_coi1_duplicate_mrn_is_409_and_changes_nothing(api, db):
    patient = api.patient()
    events_before = len(audit_events(db))
    response = api.post(
        Role.CLINICIAN,
        "/patients",
        {
            "mrn": patient["mrn"],
            "family_name": "X",
            "given_name": "Y",
            "birth_date": "2000-01-01",
            "sex": "other",
        },
    )
    assert response.status_code == 409
    assert response.json()["error"] == "duplicate_mrn"
    assert len(audit_events(db)) == events_before


def test_coi1_coi_and_mrn_cannot_be_edited_through_the_api(api):
    patient = api.patient()
    for method in ("PUT", "PATCH"):
        response = api.call(Role.CLINICIAN, method, f"/patients/{patient['id']}", json={"mrn": "X"})
        assert response.status_code == 405
    body = {
        "mrn": "MRN-CLIENT-COI",
        "family_name": "A",
        "given_name": "B",
        "birth_date": "1999-09-09",
        "sex": "female",
        "coi": "CHA999926999999Z",
    }
    assert api.post(Role.CLINICIAN, "/patients", body).status_code == 422


def test_coi1_a_wrong_registration_is_voided_by_qa_with_reason_and_redone(api, db):
    patient = api.patient()
    assert (
        api.post(Role.CLINICIAN, f"/patients/{patient['id']}/void", {"reason": "x"}).status_code
        == 403
    )
    assert api.post(Role.QA, f"/patients/{patient['id']}/void", {}).status_code == 422
    voided = api.post(Role.QA, f"/patients/{patient['id']}/void", {"reason": "wrong birth date"})
    assert voided.status_code == 200 and voided.json()["voided"] is True
    (event,) = audit_events(db, AuditAction.PATIENT_VOIDED)
    assert event.reason == "wrong birth date" and event.scope == patient["coi"]
    redone = api.patient(mrn=patient["mrn"], birth_date="1990-05-18")
    assert redone["coi"] != patient["coi"]
    again = api.post(Role.QA, f"/patients/{patient['id']}/void", {"reason": "again"})
    assert again.status_code == 409 and again.json()["error"] == "invalid_state"


def test_coi1_a_patient_with_a_live_biopsy_cannot_be_voided(api):
    biopsy = api.biopsy()
    response = api.post(Role.QA, f"/patients/{biopsy['patient_id']}/void", {"reason": "typo"})
    assert response.status_code == 409
    assert biopsy["din"] in response.json()["detail"]


def test_aud1_registration_is_audited_in_the_patients_chain(api, db):
    patient = api.patient()
    (event,) = [
        e for e in audit_events(db, AuditAction.PATIENT_REGISTERED) if e.scope == patient["coi"]
    ]
    assert event.entity_type == "patient" and event.entity_id == patient["id"]
    assert patient["mrn"] in (event.new_values or "")


def test_patient_lookup_by_id_and_mrn(api):
    patient = api.patient()
    assert api.get(Role.TECHNICIAN, f"/patients/{patient['id']}").json()["coi"] == patient["coi"]
    found = api.get(Role.QA, "/patients", params={"mrn": patient["mrn"]}).json()
    assert [p["id"] for p in found] == [patient["id"]]
    assert api.get(Role.QA, "/patients/999999").status_code == 404


def test_coi1_mrns_that_differ_only_in_case_are_one_patient(api, db):
    """Issue 11 item 9: `ab-12` and `AB-12` were two patients. Now the second is a duplicate
    (and changes nothing), lookup finds the patient in any case, and a voided registration
    frees the MRN in every case."""
    stem = f"cs-{unique('x').lower()}"
    first = api.patient(mrn=stem)
    events_before = len(audit_events(db))
    for variant in (stem.upper(), stem.title(), f" {stem.upper()} "):
        response = api.post(
            Role.CLINICIAN,
            "/patients",
            {
                "mrn": variant,
                "family_name": "X",
                "given_name": "Y",
                "birth_date": "2000-01-01",
                "sex": "other",
            },
        )
        assert response.status_code == 409, variant
        body = response.json()
        assert body["error"] == "duplicate_mrn" and stem in body["detail"]
    assert len(audit_events(db)) == events_before
    found = api.get(Role.QA, "/patients", params={"mrn": stem.upper()}).json()
    assert [p["id"] for p in found] == [first["id"]]
    api.post(Role.QA, f"/patients/{first['id']}/void", {"reason": "registered in error"})
    redone = api.patient(mrn=stem.upper())
    assert redone["mrn"] == stem.upper() and redone["mrn_twin_of"] is None


def test_coi1_migration_marks_case_twins_registered_before_and_merges_nothing(tmp_path):
    """Migration 0009: live patients whose MRNs differ only in case keep their MRNs and COIs
    (COI-1: never edited); the earliest keeps the key, later ones are marked as its twins."""
    url = f"sqlite:///{tmp_path / 'twins.db'}"
    upgrade(url, "0007")
    engine = create_engine(url)
    now = "2026-01-01 00:00:00.000000"
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO app_user (id, username, full_name, password_hash, active, locked, "
                "failed_logins, created_at) VALUES (1, 'u', 'U', 'x', 1, 0, 0, :now)"
            ),
            {"now": now},
        )
        for pid, mrn, voided in [
            (1, "ab12", None),
            (2, "AB12", None),
            (3, "Ab12", now),
            (4, "aB12", None),
            (5, "zz9", None),
        ]:
            connection.execute(
                text(
                    "INSERT INTO patient (id, mrn, family_name, given_name, birth_date, sex, coi, "
                    "created_at, created_by, voided_at) VALUES (:id, :mrn, 'F', 'G', "
                    "'1990-01-01', 'female', :coi, :now, 1, :voided)"
                ),
                {"id": pid, "mrn": mrn, "coi": f"COI{pid}", "now": now, "voided": voided},
            )
    upgrade(url)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT id, mrn, mrn_key, mrn_twin_of, coi FROM patient ORDER BY id")
        ).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [
        (1, "ab12", "AB12", None, "COI1"),
        (2, "AB12", "AB12", 1, "COI2"),
        (3, "Ab12", "AB12", None, "COI3"),
        (4, "aB12", "AB12", 1, "COI4"),
        (5, "zz9", "ZZ9", None, "COI5"),
    ]


@pytest.mark.postgres_only
def test_coi1_two_registrations_of_one_mrn_in_two_cases_at_once_leave_one_patient(
    committed_engine, settings
):
    """The case-insensitive check reads before it inserts, so two clinicians registering `cx-1`
    and `CX-1` at the same moment both pass it; the unique index on the MRN key holds the second
    insert until the first commits, then refuses it: one patient, and a 409, never two."""
    stem = f"cx-{unique('r').lower()}"
    with committed_api(committed_engine, settings) as (api, factory):
        headers = headers_of_new(api, Role.CLINICIAN)
        clinician = make_user(api.db, settings, roles=[Role.CLINICIAN])
        with unit_of_work(factory) as session:
            actor = session.get(User, clinician.id)
            assert actor is not None
            patients.register(session, settings, actor=actor, data=_create(stem))
            late = Contender(
                lambda: api.client.post(
                    "/api/v1/patients",
                    json=_create(stem.upper()).model_dump(mode="json"),
                    headers=headers,
                )
            )
            wait_for_lock_waiters(committed_engine, 1)
        response = late.response()
        assert response.status_code == 409 and response.json()["error"] == "duplicate_mrn"
        with factory() as session:
            keys = session.execute(select(Patient.mrn).where(Patient.mrn_key == stem.upper()))
            assert list(keys.scalars()) == [stem]


def _create(mrn: str) -> PatientCreate:
    return PatientCreate(
        mrn=mrn, family_name="Bianchi", given_name="Lia", birth_date="1985-04-04", sex="female"
    )

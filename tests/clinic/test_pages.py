"""The clinic's pages (issue 12 item 6): the bedside reads birth dates as typed, shows the
patient's name and birth date to compare, stops a wrong patient on a full-width panel and keeps
the form; doses received by scanning; the patient page plans and reschedules infusions."""

import re
from datetime import UTC, datetime, timedelta

from app.audit.actions import AuditAction
from app.auth.permissions import Role
from tests.clinic.test_bedside import (
    bedside_clock,
    check,
    clinician,
    formulate,
    infuse,
    patient,
    ready,
    release,
    to_clinic,
)
from tests.helpers import PASSWORD, audit_events, error, make_user
from tests.release.test_pages import _sign_in
from tests.test_pages import _page_login, submit


def _dispatched(api):
    batch, doses = api.released(doses=1)
    move = {"event": "dispatched", "location": "Courier", "temperature_c": 5.0}
    assert api.post(Role.TECHNICIAN, f"/vessels/{doses[0]}/custody", move).status_code == 201
    patient = api.get(Role.CLINICIAN, f"/patients/{batch['patient_id']}").json()
    return batch, doses[0], patient


def test_cln3_a_dose_is_received_at_the_clinic_by_scanning_its_label(api, db):
    _batch, dose, patient = _dispatched(api)
    _page_login(api, Role.CLINICIAN)
    form = api.client.get("/clinic/receive")
    assert form.status_code == 200 and 'id="dose_code"' in form.text and "autofocus" in form.text
    received = submit(
        api,
        "/clinic/receive",
        data={"dose_code": dose, "location": "Ward 4", "temperature_c": "6,5"},
    )
    assert received.status_code == 200 and "RECEIVED" in received.text
    assert patient["family_name"].upper() in received.text and "6.5 °C" in received.text
    again = submit(
        api, "/clinic/receive", data={"dose_code": dose, "location": "Ward 4", "temperature_c": "6"}
    )
    assert again.status_code == 409 and 'id="dose_code"' in again.text


def test_coi6_the_bedside_reads_14_03_1979_and_shows_name_and_birth_date_to_compare(api, db):
    """COI-6 by keyboard: wristband, birth date typed day-first, dose; the confirmation names
    the patient and their birth date; the witness signs and the infusion is recorded."""
    batch, dose = api.formulated(doses=1)
    patient_id = batch["patient_id"]
    api.pass_qc(batch["id"])
    assert api.decide(batch["id"]).status_code == 200
    for event, role, where in (
        ("dispatched", Role.TECHNICIAN, "Courier"),
        ("received", Role.CLINICIAN, "Ward 4"),
    ):
        body = {"event": event, "location": where, "temperature_c": 5.0}
        assert api.post(role, f"/vessels/{dose[0]}/custody", body).status_code == 201
    patient = api.get(Role.CLINICIAN, f"/patients/{patient_id}").json()
    year, month, day = patient["birth_date"].split("-")
    witness = make_user(db, api.settings, roles=[Role.CLINICIAN])
    _page_login(api, Role.CLINICIAN)
    form = {"wristband_mrn": patient["mrn"], "birth_date": f"{day}/{month}/{year}"}
    checked = submit(api, "/bedside/verify", data=form | {"dose_code": dose[0]})
    assert checked.status_code == 200 and "IDENTITY CONFIRMED" in checked.text
    compare = checked.text.split('<dl class="compare">', 1)[1].split("</dl>", 1)[0]
    assert patient["family_name"].upper() in compare and patient["given_name"] in compare
    assert f"{day}/{month}/{year}" in compare and patient["mrn"] in compare
    hidden = dict(re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', checked.text))
    assert hidden["birth_date"] == patient["birth_date"]
    recorded = submit(
        api,
        "/bedside/infuse",
        data={k: v for k, v in hidden.items() if k != "csrf_token"}
        | {"witness_username": witness.username, "witness_password": PASSWORD, "volume_ml": "50"},
    )
    assert recorded.status_code == 200 and "INFUSION RECORDED" in recorded.text
    assert patient["family_name"].upper() in recorded.text
    assert len(audit_events(db, AuditAction.INFUSION_RECORDED)) == 1


def test_coi6_a_wrong_patient_is_a_stop_panel_and_the_bedside_form_stays(api, db):
    """The mismatch is a full-width STOP panel on the bedside page (not a bare error page),
    audited, with the wristband box focused for the next attempt; a date that cannot be read
    is refused in words before any check."""
    _batch, dose = api.formulated(doses=1)
    _page_login(api, Role.CLINICIAN)
    other = api.patient(birth_date="1979-03-14")
    stop = submit(
        api,
        "/bedside/verify",
        data={"wristband_mrn": other["mrn"], "birth_date": "14.03.1979", "dose_code": dose[0]},
    )
    assert stop.status_code == 409
    assert '<div class="stop" role="alert">' in stop.text and "STOP" in stop.text
    assert 'id="wristband_mrn"' in stop.text and "autofocus" in stop.text
    assert "Log out" in stop.text
    assert len(audit_events(db, AuditAction.BEDSIDE_REFUSED)) >= 1
    unreadable = submit(
        api,
        "/bedside/verify",
        data={"wristband_mrn": other["mrn"], "birth_date": "14/03/79", "dose_code": dose[0]},
    )
    assert unreadable.status_code == 422 and "four digits" in unreadable.text
    assert 'class="stop"' not in unreadable.text


def test_coi6_an_expired_dose_is_refused_at_the_bedside_with_its_expiry_in_local_time(
    api, monkeypatch
):
    """The bedside page shows the refusal's expiry as every page shows a time, local with its
    zone named (CONVENTIONS 11), where the API's sentence names it in UTC: one instant, read
    unambiguously both ways. Expiry is reached by moving the bedside's clock, not by waiting."""
    expiry = datetime(2030, 7, 1, 20, 45, tzinfo=UTC)  # 22:45 in Rome, summer time (CEST)
    batch, (dose,) = formulate(api, expiry)
    release(api, batch["id"])
    to_clinic(api, dose)
    who = patient(api, batch)
    bedside_clock(monkeypatch, expiry + timedelta(minutes=5))
    _page_login(api, Role.CLINICIAN)
    year, month, day = who["birth_date"].split("-")
    form = {"wristband_mrn": who["mrn"], "birth_date": f"{day}/{month}/{year}", "dose_code": dose}
    page = submit(api, "/bedside/verify", data=form)
    assert page.status_code == 409 and "Do not use: this dose has expired" in page.text
    assert api.settings.display_timezone == "Europe/Rome"
    assert f"Dose {dose} expired at 2030-07-01 22:45 CEST." in page.text
    assert "UTC" not in page.text.split('role="alert"', 1)[1].split("</div>", 1)[0]
    assert 'id="wristband_mrn"' in page.text  # the form again, for the next attempt
    told = error(api.post(Role.CLINICIAN, "/infusions/verify", check(who, dose)), 409, "expired")
    assert told == f"Dose {dose} expired at 2030-07-01 20:45 UTC."


def test_cln2_the_patient_page_plans_and_reschedules_infusions_in_local_time(api, db):
    batch, _dose, patient = _dispatched(api)
    _page_login(api, Role.CLINICIAN)
    page = api.client.get(f"/clinic/patients/{patient['id']}")
    assert page.status_code == 200 and patient["coi"] in page.text
    assert f"/api/v1/patients/{patient['id']}/trace-report?format=pdf" in page.text
    planned = submit(
        api, f"/clinic/batches/{batch['id']}/plan", data={"first_infusion_at": "2030-01-10T09:30"}
    )
    assert planned.status_code == 200 and "2030-01-10 09:30 CET" in planned.text
    planned_id = re.findall(r"/clinic/planned/(\d+)/reschedule", planned.text)[0]
    url = f"/clinic/planned/{planned_id}/reschedule"
    no_reason = submit(api, url, data={"planned_at": "2030-01-12T10:00", "reason": ""})
    assert no_reason.status_code == 422
    moved = submit(api, url, data={"planned_at": "2030-01-12T10:00", "reason": "Patient asked"})
    assert moved.status_code == 200 and "2030-01-12 10:00 CET" in moved.text
    assert len(audit_events(db, AuditAction.INFUSION_RESCHEDULED)) == 1
    board = api.client.get("/clinic")
    assert f'href="/clinic/patients/{patient["id"]}"' in board.text


def test_sig6_the_physician_acceptance_is_signed_approved_on_the_patient_page(api, db):
    """A conditionally released batch: the clinician signs the treating physician's
    acceptance with their password (meaning approved); with nothing to accept it is refused."""
    batch, _ = api.released("conditional_release", doses=1, pending=("sterility",))
    nothing, _ = api.formulated(doses=1)
    _page_login(api, Role.CLINICIAN)
    page = api.client.get(f"/clinic/patients/{batch['patient_id']}")
    assert f"/clinic/batches/{batch['id']}/physician-acceptance" in page.text
    form = {"physician_name": "Dr. Ada Okonkwo", "password": PASSWORD}
    refused = submit(api, f"/clinic/batches/{nothing['id']}/physician-acceptance", data=form)
    assert refused.status_code == 409 and "Back to the clinic board" in refused.text
    signed = submit(api, f"/clinic/batches/{batch['id']}/physician-acceptance", data=form)
    assert signed.status_code == 200 and "Dr. Ada Okonkwo</strong> accepted" in signed.text
    assert "(approved)" in signed.text
    accepted = api.get(Role.QA, f"/batches/{batch['id']}/physician-acceptance").json()
    assert accepted[0]["signature"]["meaning"] == "approved"


def test_cln2_the_plan_warning_names_the_dose_expiry_in_local_time_on_the_page(api):
    """Issue 12 (lab day): 'planned after the dose expires' names the expiry as every page
    names a time — local, zone named — while the API's sentence keeps UTC."""
    expiry = datetime(2030, 7, 1, 20, 45, tzinfo=UTC)  # 22:45 in Rome (CEST)
    batch, _ = formulate(api, expiry)
    _page_login(api, Role.CLINICIAN)
    planned = submit(
        api, f"/clinic/batches/{batch['id']}/plan", data={"first_infusion_at": "2030-07-05T09:30"}
    )
    assert planned.status_code == 200
    assert "planned after the dose expires (2030-07-01 22:45 CEST)" in planned.text
    assert "UTC" not in planned.text.split("<h2>Infusion plan</h2>", 1)[1]
    (row,) = api.get(Role.CLINICIAN, f"/batches/{batch['id']}/infusion-plan").json()
    assert row["warnings"] == ["planned after the dose expires (2030-07-01 20:45 UTC)"]


def test_cln2_a_completed_batch_whose_dose_is_infused_is_offered_no_plan_and_no_acceptance(api, db):
    """Issue 12 (lab day): the patient page offers planning and the physician's acceptance
    only where the services would take them: not for a completed batch (its only dose
    infused), yes for a conditionally released one with a dose to plan."""
    done, (dose,), who = ready(api, doses=1)
    witness, _ = clinician(api)
    infused = infuse(api, check(who, dose), witness)
    assert infused.status_code == 201 and infused.json()["batch_status"] == "completed"
    open_one, _ = api.formulated(patient_id=done["patient_id"], doses=1)
    api.pass_qc(open_one["id"], skip=("sterility",))
    conditional = api.decide(open_one["id"], "conditional_release", pending_tests=["sterility"])
    assert conditional.status_code == 200, conditional.text
    _page_login(api, Role.CLINICIAN)
    page = api.client.get(f"/clinic/patients/{done['patient_id']}")
    assert page.status_code == 200
    assert f"/clinic/batches/{done['id']}/plan" not in page.text
    assert f"/clinic/batches/{done['id']}/physician-acceptance" not in page.text
    assert f"/clinic/batches/{open_one['id']}/plan" in page.text
    assert f"/clinic/batches/{open_one['id']}/physician-acceptance" in page.text


def test_coi6_the_bedside_confirmation_names_who_gave_and_who_witnessed_by_full_name(api, db):
    """Issue 12 (lab day): 'by …, witnessed by …' reads the full names (usernames smaller),
    as the release does; the infusion record keeps usernames."""
    _batch, (dose,), who = ready(api, doses=1)
    witness = make_user(db, api.settings, roles=[Role.CLINICIAN], full_name="Wanda Witness")
    nurse = make_user(db, api.settings, roles=[Role.CLINICIAN], full_name="Nora Nurse")
    _sign_in(api, nurse)
    hidden = {"wristband_mrn": who["mrn"], "birth_date": who["birth_date"], "dose_code": dose}
    recorded = submit(
        api,
        "/bedside/infuse",
        data=hidden | {"witness_username": witness.username, "witness_password": PASSWORD},
    )
    assert recorded.status_code == 200 and "INFUSION RECORDED" in recorded.text
    assert '<span class="person">Nora Nurse</span>' in recorded.text
    witnessed = 'witnessed by <span class="person">Wanda Witness</span> <small class="muted'
    assert f'{witnessed} username">{witness.username}</small>' in recorded.text

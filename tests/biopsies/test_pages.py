"""Biopsy pages (issue 12 item 1): a clinician registers a biopsy from the patient's page and is
offered its tube label; a technician receives it by scanning the tube (a wrong or unknown code
is refused on the receipt page, the scan box focused again) and registers the batch; QA voids a
wrong registration. Each page calls the API's service and is refused alike."""

import re

from sqlmodel import select

from app.audit.actions import AuditAction
from app.auth.permissions import Role
from app.batches.models import Batch
from app.biopsies.models import Biopsy
from app.labels.models import LabelPrint
from tests.helpers import audit_events
from tests.test_pages import _page_login, submit


def _biopsy_form(**overrides: str) -> dict[str, str]:
    return {"collected_at": "", "site": "vastus lateralis", "mass_mg": "150,5"} | overrides


def _biopsies_of(db, patient_id: int) -> list[Biopsy]:
    return list(db.exec(select(Biopsy).where(Biopsy.patient_id == patient_id)))


def _receipt(biopsy: dict, **overrides: str) -> dict[str, str]:
    return {
        "scanned_code": biopsy["tube_code"],
        "temperature_c": "4,5",
        "accepted": "accept",
        "note": "",
        "received_at": "",
        "late_reason": "",
    } | overrides


def test_coi1_a_clinician_registers_a_biopsy_from_the_patient_page_and_is_offered_its_label(
    api, db
):
    patient = api.patient()
    _page_login(api, Role.CLINICIAN)
    page = api.client.get(f"/patients/{patient['id']}")
    for field in ("collected_at", "site", "mass_mg"):
        assert f'<label for="{field}"' in page.text and f'id="{field}"' in page.text
    now = re.search(r'id="collected_at" name="collected_at" required value="([^"]+)"', page.text)
    assert now, "the collection time starts at now, in local time"
    done = submit(
        api,
        f"/patients/{patient['id']}/biopsies",
        data=_biopsy_form(collected_at=now.group(1)),
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    (biopsy,) = _biopsies_of(db, patient["id"])
    assert done.headers["location"] == f"/biopsies/{biopsy.id}" and biopsy.mass_mg == 150.5
    shown = api.client.get(done.headers["location"])
    tube = api.get(Role.CLINICIAN, f"/biopsies/{biopsy.id}").json()["tube_code"]
    assert shown.status_code == 200 and "REGISTERED — tube" in shown.text and tube in shown.text
    assert "Print tube label" in shown.text and "Register batch" not in shown.text
    assert "Void registration" not in shown.text
    label = submit(api, f"/biopsies/{biopsy.id}/print", data={"printer_id": "", "reason": ""})
    assert label.status_code == 200 and label.headers["content-type"] == "application/pdf"
    assert len(list(db.exec(select(LabelPrint)))) == 1
    again = submit(api, f"/biopsies/{biopsy.id}/print", data={"printer_id": "", "reason": ""})
    assert again.status_code == 422 and "reprint" in again.text.lower()
    assert 'id="print_reason"' in again.text and len(list(db.exec(select(LabelPrint)))) == 1


def test_coi1_a_bad_biopsy_form_stays_on_the_patient_page_and_registers_nothing(api, db):
    patient = api.patient()
    _page_login(api, Role.CLINICIAN)
    for change, words in (
        ({"collected_at": "yesterday"}, "is not a date and time"),
        ({"collected_at": "2100-01-01T10:00"}, "in the future"),
        ({"collected_at": "2026-01-01T10:00", "mass_mg": "lots"}, "is not a number"),
        ({"collected_at": "2026-01-01T10:00", "mass_mg": "0"}, "Check the mass mg"),
        ({"collected_at": "2026-01-01T10:00", "site": " "}, "Check the site"),
    ):
        refused = submit(api, f"/patients/{patient['id']}/biopsies", data=_biopsy_form(**change))
        assert refused.status_code == 422, (change, refused.text)
        assert words in refused.text and "REGISTERED — COI" in refused.text
        assert 'id="site"' in refused.text
    assert _biopsies_of(db, patient["id"]) == []
    assert audit_events(db, AuditAction.BIOPSY_REGISTERED) == []


def test_sec_biopsy_pages_are_refused_to_roles_without_the_permission(api, db):
    patient = api.patient()
    biopsy = api.biopsy(patient["id"])
    _page_login(api, Role.TECHNICIAN)
    form = _biopsy_form(collected_at="2026-01-01T10:00")
    assert submit(api, f"/patients/{patient['id']}/biopsies", data=form).status_code == 403
    assert submit(api, f"/biopsies/{biopsy['id']}/void", data={"reason": "x"}).status_code == 403
    _page_login(api, Role.CLINICIAN)
    assert api.client.get("/biopsies/receive").status_code == 403
    receipt = submit(api, f"/biopsies/{biopsy['id']}/receipt", data=_receipt(biopsy))
    assert receipt.status_code == 403
    assert submit(api, f"/biopsies/{biopsy['id']}/batch").status_code == 403
    _page_login(api, Role.ADMIN)
    assert api.client.get(f"/biopsies/{biopsy['id']}").status_code == 403
    assert len(_biopsies_of(db, patient["id"])) == 1
    assert audit_events(db, AuditAction.BIOPSY_RECEIVED) == []


def test_coi4_a_technician_receives_a_biopsy_by_scanning_its_tube_and_registers_the_batch(api, db):
    biopsy = api.biopsy()
    patient = api.get(Role.CLINICIAN, f"/patients/{biopsy['patient_id']}").json()
    _page_login(api, Role.TECHNICIAN)
    bench = api.client.get("/biopsies/receive")
    assert bench.status_code == 200
    assert re.search(r'id="scanned_code"[^>]*autofocus', bench.text)
    found = api.client.get("/biopsies/receive", params={"scanned_code": biopsy["tube_code"]})
    assert found.status_code == 200 and "TUBE FOUND" in found.text
    assert patient["family_name"].upper() in found.text and patient["coi"] in found.text
    assert re.search(r'id="temperature_c"[^>]*autofocus', found.text)
    assert "Receive biopsy" in found.text
    received = submit(
        api,
        f"/biopsies/{biopsy['id']}/receipt",
        data=_receipt(biopsy),
        follow_redirects=False,
    )
    assert received.status_code == 303, received.text
    page = api.client.get(received.headers["location"])
    assert "RECEIVED — tube" in page.text and "4.5 °C" in page.text
    assert "Register batch" in page.text
    assert len(audit_events(db, AuditAction.BIOPSY_RECEIVED)) == 1
    started = submit(api, f"/biopsies/{biopsy['id']}/batch", follow_redirects=False)
    assert started.status_code == 303
    (batch,) = db.exec(select(Batch).where(Batch.biopsy_id == biopsy["id"]))
    assert started.headers["location"] == f"/batches/{batch.id}"
    twice = submit(api, f"/biopsies/{biopsy['id']}/batch")
    assert twice.status_code == 409 and "already has a batch" in twice.text
    assert len(list(db.exec(select(Batch).where(Batch.biopsy_id == biopsy["id"])))) == 1


def test_coi4_a_wrong_or_unknown_tube_code_is_refused_on_the_receipt_page_scan_box_focused(api, db):
    biopsy = api.biopsy()
    batch = api.batch()
    _page_login(api, Role.TECHNICIAN)
    receipts = len(audit_events(db, AuditAction.BIOPSY_RECEIVED))  # the set-up's, of `batch`
    for code, status, words in (
        ("NOT-A-CODE", 422, "scan it again"),
        (biopsy["tube_code"][:-1] + ("A" if biopsy["tube_code"][-1] != "A" else "B"), 422, ""),
        (batch["tube_code"], 200, "NOT RECEIVABLE"),
    ):
        page = api.client.get("/biopsies/receive", params={"scanned_code": code})
        assert page.status_code == status, (code, page.text)
        assert words in page.text
        assert re.search(r'id="scanned_code"[^>]*autofocus', page.text)
        assert 'id="temperature_c"' not in page.text
    assert len(audit_events(db, AuditAction.BIOPSY_RECEIVED)) == receipts
    assert db.get(Biopsy, biopsy["id"]).received_at is None


def test_coi4_a_refused_receipt_keeps_the_form_with_the_biopsy_and_receives_nothing(api, db):
    biopsy = api.biopsy()
    other = api.biopsy()
    _page_login(api, Role.TECHNICIAN)
    for change, status, words in (
        ({"temperature_c": "warm"}, 422, "is not a number"),
        ({"temperature_c": "99"}, 422, "Check the temperature c"),
        ({"accepted": ""}, 422, "Check the accepted"),
        ({"received_at": "2020-01-01T10:00"}, 409, "The time is earlier"),
        ({"scanned_code": other["tube_code"]}, 409, "STOP"),
    ):
        refused = submit(api, f"/biopsies/{biopsy['id']}/receipt", data=_receipt(biopsy, **change))
        assert refused.status_code == status, (change, refused.text)
        assert words in refused.text and "Nothing was received" in refused.text
        assert 'id="temperature_c"' in refused.text and biopsy["din"] in refused.text
    assert audit_events(db, AuditAction.BIOPSY_RECEIVED) == []
    assert len(audit_events(db, AuditAction.BIOPSY_RECEIPT_MISMATCH)) == 1


def test_coi1_qa_voids_a_biopsy_with_its_reason_and_not_one_with_a_live_batch(api, db):
    biopsy = api.biopsy()
    batch = api.batch()
    _page_login(api, Role.QA)
    page = api.client.get(f"/biopsies/{biopsy['id']}")
    assert "Void registration" in page.text and "Register batch" not in page.text
    blank = submit(api, f"/biopsies/{biopsy['id']}/void", data={"reason": ""})
    assert blank.status_code == 422 and "Check the reason" in blank.text
    live = db.exec(select(Batch).where(Batch.id == batch["id"])).one().biopsy_id
    refused = submit(api, f"/biopsies/{live}/void", data={"reason": "Wrong patient"})
    assert refused.status_code == 409 and "destroy the batch first" in refused.text
    assert 'id="reason"' in refused.text and "Wrong patient" in refused.text
    voided = submit(api, f"/biopsies/{biopsy['id']}/void", data={"reason": "Duplicate entry"})
    assert voided.status_code == 200 and "VOIDED — tube" in voided.text
    assert "Void registration" not in voided.text
    assert len(audit_events(db, AuditAction.BIOPSY_VOIDED)) == 1


def test_coi4_a_biopsy_rejected_at_receipt_says_so_and_offers_no_batch(api, db):
    biopsy = api.biopsy()
    _page_login(api, Role.TECHNICIAN)
    found = api.client.get("/biopsies/receive", params={"scanned_code": biopsy["tube_code"]})
    assert 'value="accept"' in found.text and 'value="reject"' in found.text
    data = _receipt(biopsy, accepted="reject", note="Tube leaked in transport")
    rejected = submit(api, f"/biopsies/{biopsy['id']}/receipt", data=data)
    assert rejected.status_code == 200 and "REJECTED AT RECEIPT" in rejected.text
    assert "Register batch" not in rejected.text
    assert db.get(Biopsy, biopsy["id"]).receipt_note == "Tube leaked in transport"
    again = api.client.get("/biopsies/receive", params={"scanned_code": biopsy["tube_code"]})
    assert "NOT RECEIVABLE" in again.text and 'id="temperature_c"' not in again.text


def test_lbl5_the_tube_label_goes_to_a_chosen_network_printer_as_a_logged_print_job(api, db):
    printer = api.post(Role.ADMIN, "/printers", {"name": "Clinic desk", "host": "10.0.0.9"})
    assert printer.status_code == 201, printer.text
    biopsy = api.biopsy()
    _page_login(api, Role.CLINICIAN)
    page = api.client.get(f"/biopsies/{biopsy['id']}")
    assert "Clinic desk (ZPL, 203 dpi)" in page.text
    sent = submit(
        api,
        f"/biopsies/{biopsy['id']}/print",
        data={"printer_id": str(printer.json()["id"]), "reason": ""},
    )
    assert sent.status_code == 200 and "LABEL SENT" in sent.text
    assert "on Clinic desk" in sent.text  # the print is listed with its printer and job
    assert len(audit_events(db, AuditAction.LABEL_PRINTED)) == 1

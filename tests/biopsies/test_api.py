"""Biopsies: DIN with check character, tube vessel, receipt by scanning the tube (COI-1, COI-4)."""

from app.audit.actions import AuditAction
from app.auth.permissions import Role
from app.identity.codes import parse_din, parse_vessel_code
from app.identity.mod37 import check_character
from tests.helpers import ago, audit_events


def test_coi1_biopsy_gets_a_din_with_its_mod37_check_and_a_labelled_tube(api):
    biopsy = api.biopsy()
    assert len(biopsy["din"]) == 13
    assert biopsy["din_check"] == check_character(biopsy["din"])
    assert parse_din(biopsy["din"] + biopsy["din_check"]).value == biopsy["din"]
    assert parse_vessel_code(biopsy["tube_code"]).din.value == biopsy["din"]
    assert biopsy["status"] == "collected"


def test_coi1_dins_are_unique_and_sequential_per_facility_and_year(api):
    dins = [api.biopsy()["din"] for _ in range(3)]
    assert len(set(dins)) == 3
    assert [int(d[-6:]) for d in dins] == sorted(int(d[-6:]) for d in dins)


def test_biopsy_needs_a_live_patient(api):
    body = {"patient_id": 987654, "collected_at": ago(hours=1), "site": "x", "mass_mg": 10}
    assert api.post(Role.CLINICIAN, "/biopsies", body).status_code == 404
    patient = api.patient()
    api.post(Role.QA, f"/patients/{patient['id']}/void", {"reason": "duplicate registration"})
    body["patient_id"] = patient["id"]
    response = api.post(Role.CLINICIAN, "/biopsies", body)
    assert response.status_code == 409 and response.json()["error"] == "invalid_state"


def test_coi4_receipt_scanning_the_right_tube_receives_the_biopsy(api, db):
    biopsy = api.biopsy()
    response = api.receive(biopsy, scanned_code=f"  {biopsy['tube_code'].lower()}\r\n")
    assert response.status_code == 200
    assert response.json()["status"] == "received"
    assert len(audit_events(db, AuditAction.BIOPSY_RECEIVED)) == 1


def test_coi5_receipt_scanning_another_tube_is_identity_mismatch_and_audited(api, db):
    mine, other = api.biopsy(), api.biopsy()
    response = api.receive(mine, scanned_code=other["tube_code"])
    assert response.status_code == 409
    assert response.json()["error"] == "identity_mismatch"
    (event,) = audit_events(db, AuditAction.BIOPSY_RECEIPT_MISMATCH)
    assert event.entity_id == mine["id"]
    assert api.get(Role.TECHNICIAN, f"/biopsies/{mine['id']}").json()["status"] == "collected"


def test_coi4_receipt_with_a_corrupted_code_is_invalid_code(api):
    biopsy = api.biopsy()
    code = biopsy["tube_code"]
    corrupted = code[:5] + ("1" if code[5] != "1" else "2") + code[6:]
    response = api.receive(biopsy, scanned_code=corrupted)
    assert response.status_code == 422 and response.json()["error"] == "invalid_code"


def test_aud6_receipt_happens_once_and_not_before_collection(api):
    biopsy = api.biopsy()
    early = api.receive(biopsy, received_at=ago(hours=5), late_reason="entered from paper")
    assert early.status_code == 409 and early.json()["error"] == "out_of_order"
    assert api.receive(biopsy).status_code == 200
    again = api.receive(biopsy)
    assert again.status_code == 409 and again.json()["error"] == "invalid_state"


def test_a_biopsy_not_accepted_at_receipt_discards_its_tube_and_cannot_start_a_batch(api):
    biopsy = api.biopsy()
    response = api.receive(biopsy, accepted=False, note="tube leaked")
    assert response.json()["status"] == "rejected"
    scan = api.post(Role.TECHNICIAN, "/scan", {"code": biopsy["tube_code"]}).json()
    assert scan["vessel"]["status"] == "discarded"
    batch = api.post(Role.TECHNICIAN, "/batches", {"biopsy_id": biopsy["id"]})
    assert batch.status_code == 409 and batch.json()["error"] == "invalid_state"


def test_coi1_biopsy_void_needs_a_reason_and_frees_the_patient_for_voiding(api):
    biopsy = api.biopsy()
    assert (
        api.post(Role.QA, f"/biopsies/{biopsy['id']}/void", {"reason": "wrong patient"}).json()[
            "status"
        ]
        == "voided"
    )
    assert (
        api.post(Role.QA, f"/patients/{biopsy['patient_id']}/void", {"reason": "r"}).status_code
        == 200
    )
    scan = api.post(Role.TECHNICIAN, "/scan", {"code": biopsy["tube_code"]})
    assert scan.status_code == 409 and scan.json()["error"] == "invalid_state"

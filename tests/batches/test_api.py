from app.auth.permissions import Role


def test_coi2_batch_derives_din_and_coi_from_the_biopsy(api):
    patient = api.patient()
    batch = api.batch(patient["id"])
    assert batch["status"] == "registered"
    assert batch["coi"] == patient["coi"]
    fetched = api.get(Role.TECHNICIAN, f"/batches/{batch['id']}").json()
    assert fetched["patient_id"] == patient["id"]
    assert fetched["din"] == batch["din"]
    assert [v["code"] for v in fetched["vessels"]] == [batch["tube_code"]]


def test_batch_number_and_contract_fields(api):
    batch = api.batch()
    for key in ("id", "batch_number", "din", "coi", "status"):
        assert batch[key] is not None
    assert (
        api.get(Role.QA, f"/batches/{batch['id']}").json()["batch_number"]
        == (batch["batch_number"])
    )


def test_coi2_client_cannot_supply_identity_fields(api):
    biopsy = api.received_biopsy()
    response = api.post(
        Role.TECHNICIAN, "/batches", {"biopsy_id": biopsy["id"], "coi": "CHA999926000001X"}
    )
    assert response.status_code == 422


def test_a_biopsy_yields_one_batch(api):
    biopsy = api.received_biopsy()
    assert api.post(Role.TECHNICIAN, "/batches", {"biopsy_id": biopsy["id"]}).status_code == 201
    again = api.post(Role.TECHNICIAN, "/batches", {"biopsy_id": biopsy["id"]})
    assert again.status_code == 409 and again.json()["error"] == "already_registered"


def test_a_batch_needs_a_received_biopsy(api):
    biopsy = api.biopsy()
    response = api.post(Role.TECHNICIAN, "/batches", {"biopsy_id": biopsy["id"]})
    assert response.status_code == 409 and "collected" in response.json()["detail"]
    assert api.post(Role.TECHNICIAN, "/batches", {"biopsy_id": 424242}).status_code == 404


def test_aud5_batch_timeline_and_csv_export(api):
    batch = api.batch()
    timeline = api.get(Role.QA, f"/batches/{batch['id']}/audit").json()
    actions = [event["action"] for event in timeline]
    for expected in (
        "biopsy.registered",
        "vessel.created",
        "biopsy.received",
        "batch.registered",
        "vessel.assigned_to_batch",
    ):
        assert expected in actions
    assert [e["seq"] for e in timeline] == sorted(e["seq"] for e in timeline)
    csv_response = api.get(Role.QA, f"/batches/{batch['id']}/audit.csv")
    assert csv_response.headers["content-type"].startswith("text/csv")
    lines = csv_response.text.strip().splitlines()
    assert lines[0].startswith("seq,occurred_at,actor,action")
    assert len(lines) == len(timeline) + 1
    patient_csv = api.get(Role.QA, f"/patients/{batch['patient_id']}/audit.csv")
    assert patient_csv.status_code == 200 and "patient.registered" in patient_csv.text
    assert api.get(Role.TECHNICIAN, f"/batches/{batch['id']}/audit").status_code == 403


def test_batch_list_by_patient(api):
    patient = api.patient()
    mine = api.batch(patient["id"])
    api.batch()
    listed = api.get(Role.CLINICIAN, "/batches", params={"patient_id": patient["id"]}).json()
    assert [b["id"] for b in listed] == [mine["id"]]


def test_qa_holds_a_batch_which_then_refuses_steps_and_returns_to_its_state(api):
    """DESIGN §4: any non-final state -> on_hold and back; only QA, always with a reason."""
    batch, flasks = api.expanded_batch()
    path = f"/batches/{batch['id']}"
    assert api.post(Role.TECHNICIAN, f"{path}/hold", {"reason": "OOS"}).status_code == 403
    assert api.post(Role.QA, f"{path}/hold", {}).status_code == 422
    held = api.post(Role.QA, f"{path}/hold", {"reason": "sterility deviation open"})
    assert held.status_code == 200 and held.json()["status"] == "on_hold"
    assert held.json()["allowed_next"] == ["destroyed", "expansion", "rejected"]
    refused = api.step(batch["id"], "passage", [flasks[0]], ["flask"])
    assert refused.status_code == 409 and "on_hold" in refused.json()["detail"]
    lifted = api.post(Role.QA, f"{path}/lift-hold", {"reason": "deviation closed"})
    assert lifted.status_code == 200 and lifted.json()["status"] == "expansion"
    again = api.post(Role.QA, f"{path}/lift-hold", {"reason": "twice"})
    assert again.status_code == 409 and again.json()["error"] == "invalid_state"
    assert api.step(batch["id"], "passage", [flasks[0]], ["flask"]).status_code == 201


def test_qa_destroys_a_batch_with_a_reason_and_it_stays_destroyed(api):
    """DESIGN §4: any state -> destroyed, by QA with a reason; destroyed is final."""
    batch = api.batch()
    path = f"/batches/{batch['id']}"
    assert api.post(Role.TECHNICIAN, f"{path}/destroy", {"reason": "x"}).status_code == 403
    done = api.post(Role.QA, f"{path}/destroy", {"reason": "patient withdrew consent"})
    assert done.status_code == 200 and done.json()["status"] == "destroyed"
    assert api.post(Role.QA, f"{path}/hold", {"reason": "late"}).status_code == 409

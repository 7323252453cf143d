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

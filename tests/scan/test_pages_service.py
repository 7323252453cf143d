"""What the station's pages rely on in the scan service (issue 12 item 2): a batch named by its
number, a DIN or any of its labels; the batch number as an expectation; a scan that says what
it checked and whether the vessel may be used (COI-4, COI-5)."""

import pytest

from app.auth.permissions import Role
from app.batches import service as batches
from app.errors import InvalidCode, NotFound
from app.identity.codes import DIN
from app.scan import service
from tests.helpers import audit_events, make_user


def _scan(api, code, expect=None):
    body = {"code": code} if expect is None else {"code": code, "expect": expect}
    return api.post(Role.TECHNICIAN, "/scan", body)


@pytest.mark.parametrize("how", ["number", "lower", "din", "din_check", "tube", "flask"])
def test_coi4_a_batch_is_resolved_from_its_number_din_or_any_label(api, db, how):
    batch, flasks = api.expanded_batch()
    text = {
        "number": batch["batch_number"],
        "lower": f"  {batch['batch_number'].lower()}\r\n",
        "din": batch["din"],
        "din_check": batch["din"] + DIN(batch["din"]).check,
        "tube": batch["tube_code"],
        "flask": flasks[0],
    }[how]
    assert service.resolve_batch(db, text).batch.id == batch["id"]


def test_coi4_resolving_refuses_bad_codes_and_unknown_batches(api, db):
    batch = api.batch()
    code = batch["tube_code"]
    with pytest.raises(InvalidCode, match="check character"):
        service.resolve_batch(db, code[:-1] + ("A" if code[-1] != "A" else "B"))
    din = batch["din"]
    with pytest.raises(InvalidCode, match="check character"):
        service.resolve_batch(db, din + ("A" if DIN(din).check != "A" else "B"))
    with pytest.raises(InvalidCode, match="batch number"):
        service.resolve_batch(db, "hello")
    with pytest.raises(NotFound):
        service.resolve_batch(db, "B26-99999")
    unregistered = api.received_biopsy()
    with pytest.raises(NotFound, match="not registered"):
        service.resolve_batch(db, unregistered["tube_code"])
    with pytest.raises(NotFound):
        service.resolve_batch(db, unregistered["din"])


def test_coi5_the_batch_number_is_an_expectation_like_the_id(api, db):
    mine, other = api.batch(), api.batch()
    held = _scan(api, mine["tube_code"], {"batch_number": mine["batch_number"].lower()})
    assert held.status_code == 200
    assert held.json()["checked"] == [f"batch {mine['batch_number']}"]
    refused = _scan(api, mine["tube_code"], {"batch_number": other["batch_number"]})
    assert refused.status_code == 409 and refused.json()["error"] == "identity_mismatch"
    detail = refused.json()["detail"]
    assert mine["batch_number"] in detail and other["batch_number"] in detail
    assert len(audit_events(db, "scan.identity_mismatch")) == 1


def test_coi5_the_mismatch_names_the_expected_batch_by_its_number(api):
    mine, other = api.batch(), api.batch()
    refused = _scan(api, mine["tube_code"], {"batch_id": other["id"]})
    assert f"not to the expected batch {other['batch_number']}" in refused.json()["detail"]


def test_coi5_a_plain_look_up_checks_nothing(api):
    batch = api.batch()
    found = _scan(api, batch["tube_code"]).json()
    assert found["checked"] == [] and found["usable"] is True and found["flags"] == []
    expect = {"batch_id": batch["id"], "patient_id": batch["patient_id"], "din": batch["din"]}
    checked = _scan(api, batch["tube_code"], expect).json()["checked"]
    assert checked == [
        f"batch {batch['batch_number']}", f"patient COI {batch['coi']}", f"DIN {batch['din']}"
    ]  # fmt: skip


def test_coi5_consumed_vessels_and_unreceived_or_rejected_tubes_are_not_usable(api):
    batch, _ = api.expanded_batch()
    consumed = _scan(api, batch["tube_code"]).json()
    assert consumed["usable"] is False and "consumed" in consumed["flags"][0]
    unreceived = _scan(api, api.biopsy()["tube_code"]).json()
    assert unreceived["usable"] is False and "not been received" in unreceived["flags"][0]
    biopsy = api.biopsy()
    assert api.receive(biopsy, accepted=False).status_code == 200
    rejected = _scan(api, biopsy["tube_code"]).json()
    assert rejected["usable"] is False and "rejected at receipt" in " ".join(rejected["flags"])


def test_coi5_an_infused_or_discarded_vessel_is_not_usable(api):
    batch, flasks = api.expanded_batch()
    discard = api.step(batch["id"], "discard", [flasks[0]], reason="contaminated")
    assert discard.status_code == 201, discard.text
    gone = _scan(api, flasks[0]).json()
    assert gone["usable"] is False and "discarded" in gone["flags"][0]
    alive = _scan(api, flasks[1], {"batch_id": batch["id"]}).json()
    assert alive["usable"] is True and alive["checked"]


def test_coi5_a_vessel_of_a_held_batch_is_flagged(api, db, settings):
    from app.auth.permissions import Role

    batch, flasks = api.expanded_batch()
    qa = make_user(db, settings, roles=[Role.QA])
    batches.hold(db, actor=qa, batch_id=batch["id"], reason="deviation DEV-1 opened")
    db.commit()
    held = _scan(api, flasks[0]).json()
    assert held["usable"] is True and any("on hold" in flag for flag in held["flags"])

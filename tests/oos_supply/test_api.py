"""REL-7: an out-of-specification batch is dispatched only with the treating physician's
e-signed justification of an immediate significant hazard and the sponsor's and the competent
authority's notification (who, when, reference), each recorded after the failing results and
audited; the certificate shows them (EU GMP Part IV §11.5)."""

from app.auth.permissions import Role
from tests.helpers import audit_events, error, failing_value, ok
from tests.oos_supply.support import dispatch, justify, notify, record_oos_supply
from tests.release.support import oos_ready, pdf_text, row, squash


def _released_oos(api):
    batch, codes = oos_ready(api)
    ok(api.decide(batch["id"]))
    return batch, codes


def test_rel7_an_oos_batch_is_not_dispatched_until_its_supply_record_is_complete(api, db):
    batch, codes = _released_oos(api)
    state = ok(api.get(Role.TECHNICIAN, f"/batches/{batch['id']}/oos-supply"))
    assert state["out_of_specification"] and state["failing_tests"] == ["endotoxin"]
    assert len(state["missing"]) == 3 and not state["complete"]

    detail = error(dispatch(api, codes[0]), 409, "oos_supply_not_recorded")
    assert "endotoxin" in detail and "justification" in detail and "authority" in detail
    ok(justify(api, batch["id"]), 201)
    ok(notify(api, batch["id"], "sponsor"), 201)
    detail = error(dispatch(api, codes[0]), 409, "oos_supply_not_recorded")
    assert "authority" in detail and "sponsor" not in detail

    state = ok(notify(api, batch["id"], "authority"), 201)
    assert state["complete"] and state["missing"] == []
    (justified,) = state["justifications"]
    assert justified["counts"] and justified["signature"]["meaning"] == "approved"
    assert justified["signature"]["matches"]
    assert {n["recipient"]: n["reference"] for n in state["notifications"]} == {
        "sponsor": "SPONSOR-2026-0042",
        "authority": "AUTHORITY-2026-0042",
    }
    ok(dispatch(api, codes[0]), 201)
    assert len(audit_events(db, "oos.justification_recorded")) == 1
    assert len(audit_events(db, "oos.notification_recorded")) == 2


def test_rel7_a_batch_within_specification_needs_no_supply_record(api):
    batch, codes = api.released()
    ok(dispatch(api, codes[0]), 201)
    error(justify(api, batch["id"]), 409, "invalid_state")
    error(notify(api, batch["id"], "sponsor"), 409, "invalid_state")


def test_rel7_a_result_corrected_after_the_record_needs_a_new_record(api):
    batch, _ = _released_oos(api)
    record_oos_supply(api, batch["id"])
    current = row(api, batch["id"], "endotoxin")
    corrected = api.result(
        batch["id"], "endotoxin", failing_value(current), corrects=current["result_id"],
        reason="Dilution factor mistyped",
    )  # fmt: skip
    assert corrected.status_code == 201, corrected.text
    state = ok(api.get(Role.QA, f"/batches/{batch['id']}/oos-supply"))
    assert not state["complete"] and len(state["missing"]) == 3
    assert not any(j["counts"] for j in state["justifications"])
    record_oos_supply(api, batch["id"])  # the correction held the batch; the record is new
    assert ok(api.get(Role.QA, f"/batches/{batch['id']}/oos-supply"))["complete"]


def test_rel7_sig1_the_justification_is_signed_with_the_clinicians_password(api, db):
    batch, _ = _released_oos(api)
    error(justify(api, batch["id"], password="wrong"), 401, "invalid_credentials")
    assert audit_events(db, "oos.justification_recorded") == []
    error(justify(api, batch["id"], justified_at="2001-01-01T00:00:00Z"), 422, "invalid_request")
    error(api.post(Role.TECHNICIAN, f"/batches/{batch['id']}/oos-supply/notifications", {
        "recipient": "sponsor", "party": "x", "notified_at": "2026-01-01T00:00:00Z",
        "reference": "r"}), 403, "forbidden")  # fmt: skip
    error(notify(api, batch["id"], "press"), 422, "invalid_request")


def test_rel7_rel5_the_certificate_shows_the_supply_record(api):
    batch, _ = _released_oos(api)
    record_oos_supply(api, batch["id"])
    html = api.get(Role.QA, f"/batches/{batch['id']}/certificate").text
    assert "immediate significant hazard" in html and "AUTHORITY-2026-0042" in html
    assert "FAMHP" in html and "Homeward Trials NV" in html
    pdf = squash(
        pdf_text(api.get(Role.QA, f"/batches/{batch['id']}/certificate?format=pdf").content)
    )
    assert "AUTHORITY-2026-0042" in pdf and "SPONSOR-2026-0042" in pdf

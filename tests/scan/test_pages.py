"""The scan station page (issue 12 item 2, ADR 0026): a working context kept until cleared and
shown above the code box, every scan checked against it (COI-5), "found" neutral and green only
when something was checked and held, unusable vessels flagged, a STOP that names both
identities and must be acknowledged, refusals inside the station, the last ten scans."""

import json

import pytest

from app.audit.actions import AuditAction
from app.auth.permissions import Role
from app.identity.codes import DIN
from app.scan.station import COOKIE, Station, decode, encode
from tests.helpers import audit_events
from tests.test_pages import _page_login, submit


def _station(api):
    return api.client.get("/scan")


def _set_context(api, text: str = "", **form):
    return submit(api, "/scan/context", {"context": text, **form}, follow_redirects=True)


def _scan(api, code: str):
    return submit(api, "/scan", {"code": code})


@pytest.fixture
def tech(api):
    return _page_login(api, Role.TECHNICIAN)


def test_coi5_without_a_working_context_a_scan_is_found_never_confirmed(api, tech, db):
    batch = api.batch()
    page = _scan(api, batch["tube_code"])
    assert page.status_code == 200
    assert "FOUND — NOTHING CHECKED" in page.text and "Nothing was checked" in page.text
    assert "IDENTITY CONFIRMED" not in page.text and "MATCHES" not in page.text
    assert batch["coi"] in page.text and "No working context" in page.text
    assert len(audit_events(db, AuditAction.SCAN_OK)) == 1


@pytest.mark.parametrize("how", ["batch_number", "din", "din_with_check", "vessel", "chosen"])
def test_coi5_the_context_is_set_by_batch_number_din_label_or_choice_and_shown(api, tech, how):
    batch = api.batch()
    text = {
        "batch_number": batch["batch_number"].lower(),
        "din": batch["din"],
        "din_with_check": batch["din"] + DIN(batch["din"]).check,
        "vessel": batch["tube_code"],
        "chosen": "",
    }[how]
    extra = {"batch_id": str(batch["id"])} if how == "chosen" else {}
    page = _set_context(api, text, **extra)
    assert page.status_code == 200 and "Working context" in page.text
    assert "ROSSI, Anna" in page.text and batch["coi"] in page.text
    assert batch["batch_number"] in page.text
    # The context sits above the autofocused code box.
    assert page.text.index("Working context") < page.text.index('id="code"')


def test_coi5_the_context_stays_for_every_scan_until_cleared(api, tech, db):
    batch = api.batch()
    _set_context(api, batch["batch_number"])
    for _ in range(3):
        page = _scan(api, batch["tube_code"])
        assert page.status_code == 200 and "MATCHES THE WORKING CONTEXT" in page.text
        assert f"Checked and holds: batch {batch['batch_number']}" in page.text
    assert "ROSSI, Anna" in _station(api).text
    submit(api, "/scan/context/clear", {}, follow_redirects=True)
    page = _scan(api, batch["tube_code"])
    assert "FOUND — NOTHING CHECKED" in page.text and "No working context" in page.text
    events = audit_events(db, AuditAction.SCAN_OK)
    assert [e.new_values is not None and '"batch_id"' in e.new_values for e in events] == [
        True, True, True, False
    ]  # fmt: skip


def test_coi5_another_patients_vessel_is_a_stop_naming_both_identities_until_acknowledged(
    api, tech, db
):
    mine = api.batch()
    other_patient = api.patient(family_name="Bianchi", given_name="Carla")
    other = api.batch(other_patient["id"])
    _set_context(api, mine["batch_number"])
    page = _scan(api, other["tube_code"])
    assert page.status_code == 409
    assert "STOP — IDENTITY MISMATCH" in page.text and 'role="alert"' in page.text
    for fact in ("BIANCHI, Carla", other["coi"], other["batch_number"]):
        assert fact in page.text
    for fact in ("ROSSI, Anna", mine["coi"], mine["batch_number"]):
        assert fact in page.text
    assert 'id="code"' not in page.text  # no scan box until acknowledged
    (event,) = audit_events(db, AuditAction.SCAN_IDENTITY_MISMATCH)
    assert event.scope == other["coi"]
    # Reloading or scanning again shows the STOP again; nothing else is scanned.
    assert _station(api).status_code == 409
    assert _scan(api, mine["tube_code"]).status_code == 409
    assert audit_events(db, AuditAction.SCAN_OK) == []
    page = submit(api, "/scan/acknowledge", {}, follow_redirects=True)
    assert page.status_code == 200 and "STOP —" not in page.text
    assert 'id="code"' in page.text and "autofocus" in page.text
    assert "ROSSI, Anna" in page.text  # the context stays
    assert "acknowledged, set aside" in page.text


def test_coi5_the_acknowledgement_of_a_stop_is_audited_beside_its_mismatch(api, tech, db):
    """Who acknowledged which mismatch, and when: one event in the scanned vessel's patient's
    chain naming the vessel, the working context and the mismatch event it answers; an
    acknowledgement with no STOP on the station records nothing."""
    mine = api.batch()
    other = api.batch(api.patient(family_name="Bianchi", given_name="Carla")["id"])
    _set_context(api, mine["batch_number"])
    assert submit(api, "/scan/acknowledge", {}, follow_redirects=True).status_code == 200
    assert audit_events(db, AuditAction.SCAN_STOP_ACKNOWLEDGED) == []
    assert _scan(api, other["tube_code"]).status_code == 409
    (mismatch,) = audit_events(db, AuditAction.SCAN_IDENTITY_MISMATCH)
    page = submit(api, "/scan/acknowledge", {}, follow_redirects=True)
    assert page.status_code == 200 and "acknowledged, set aside" in page.text
    (event,) = audit_events(db, AuditAction.SCAN_STOP_ACKNOWLEDGED)
    assert event.actor_id == tech.id and event.actor == tech.username
    assert event.scope == other["coi"] == mismatch.scope
    assert event.entity_type == "vessel" and event.entity_id == mismatch.entity_id
    assert event.seq > mismatch.seq and event.occurred_at >= mismatch.occurred_at
    facts = json.loads(event.new_values)
    assert facts == {
        "code": other["tube_code"],
        "set_aside": True,
        "expected": {"batch_id": mine["id"], "batch_number": mine["batch_number"]},
        "mismatch_seq": mismatch.seq,
    }
    # Acknowledged once: a second POST (a double Enter) finds no STOP and records nothing more.
    submit(api, "/scan/acknowledge", {}, follow_redirects=True)
    assert len(audit_events(db, AuditAction.SCAN_STOP_ACKNOWLEDGED)) == 1


def test_coi5_consumed_vessels_and_unreceived_tubes_are_not_usable(api, tech):
    batch, _ = api.expanded_batch()
    _set_context(api, batch["batch_number"])
    consumed = _scan(api, batch["tube_code"])  # the tube was consumed by isolation
    assert "NOT USABLE" in consumed.text and "MATCHES" not in consumed.text
    assert "consumed" in consumed.text
    submit(api, "/scan/context/clear", {})
    biopsy = api.biopsy()
    unreceived = _scan(api, biopsy["tube_code"])
    assert "NOT USABLE" in unreceived.text and "not been received" in unreceived.text


def test_coi5_refusals_stay_inside_the_station(api, tech):
    batch = api.batch()
    _set_context(api, batch["batch_number"])
    code = batch["tube_code"]
    wrong = code[:-1] + ("A" if code[-1] != "A" else "B")
    for scanned, status, word in ((wrong, 422, "invalid code"), ("hello", 422, "invalid code")):
        page = _scan(api, scanned)
        assert page.status_code == status and "REFUSED" in page.text and word in page.text
        assert 'id="code"' in page.text and "ROSSI, Anna" in page.text
    page = _set_context(api, "B26-99999")
    assert page.status_code == 404 and "ROSSI, Anna" in page.text  # the context is unchanged
    submit(api, "/scan/context/clear", {})
    page = _set_context(api, "B26-99999")
    assert page.status_code == 404 and "WORKING CONTEXT NOT SET" in page.text
    assert 'id="context"' in page.text
    page = _set_context(api, "")
    assert page.status_code == 422 and "choose it" in page.text


def test_the_last_ten_scans_are_listed(api, tech):
    batch = api.batch()
    for _ in range(12):
        page = _scan(api, batch["tube_code"])
    assert page.text.count(batch["tube_code"]) >= 10
    rows = page.text.split('<section class="recent"')[1].count("<tr class=")
    assert rows == 10


def test_sec_the_station_cookie_is_signed_and_bound_to_its_user(api, tech, settings):
    value = encode(settings, Station(user_id=tech.id, batch_id=7))
    assert decode(settings, value, tech.id).batch_id == 7
    assert decode(settings, value, tech.id + 1).batch_id is None  # another user's
    signature = value.rsplit(".", 1)[1]
    forged = encode(settings, Station(user_id=tech.id, batch_id=8)).rsplit(".", 1)[0]
    assert decode(settings, f"{forged}.{signature}", tech.id).batch_id is None
    assert decode(settings, "garbage", tech.id).batch_id is None
    api.client.cookies.set(COOKIE, f"{forged}.{signature}")
    assert "No working context" in _station(api).text


def test_coi1_a_voided_registrations_tube_is_not_usable_on_the_station(api, tech, db):
    biopsy = api.biopsy()
    voided = api.post(Role.QA, f"/biopsies/{biopsy['id']}/void", {"reason": "wrong patient"})
    assert voided.status_code == 200, voided.text
    page = _scan(api, biopsy["tube_code"])
    assert page.status_code == 409 and "NOT USABLE" in page.text and "voided" in page.text
    assert 'id="code"' in page.text and "STOP" not in page.text
    assert len(audit_events(db, AuditAction.SCAN_VOIDED)) == 1

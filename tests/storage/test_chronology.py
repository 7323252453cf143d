"""AUD-6 for custody (issue 11 findings 1 and 2): a custody event is never earlier than the
vessel's previous one or its creation, a dispatch never earlier than the release, a late entry
needs a reason and is shown as late, and "at the clinic" follows the recorded order of events,
never a client's `occurred_at`."""

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.audit.actions import AuditAction
from app.audit.models import AuditEvent
from app.auth.permissions import Role
from app.auth.service import Principal
from app.db import unit_of_work
from app.storage import service as storage
from app.storage.models import CustodyEvent
from app.storage.schemas import CustodyCreate
from app.vessels.models import Vessel
from tests.clinic.test_bedside import check, ready, verify
from tests.helpers import Api, audit_events, error, iso, make_user, ok
from tests.races import Contender, committed_api, headers_of_new, wait_for_lock_waiters
from tests.test_pages import _page_login


def _custody(api: Api, code: str, role: Role = Role.TECHNICIAN, **body: Any):
    return api.post(role, f"/vessels/{code}/custody", body)


def _history(api: Api, code: str) -> list[dict[str, Any]]:
    return ok(api.get(Role.QA, f"/vessels/{code}/custody"))


def _count(api: Api, model: Any) -> int:
    return api.db.execute(select(func.count()).select_from(model)).scalar_one()


def _dose_on_board(api: Api, batch: dict[str, Any], code: str) -> dict[str, Any]:
    rows = ok(api.get(Role.CLINICIAN, "/clinic/readiness"))
    (row,) = [r for r in rows if r["batch_id"] == batch["id"]]
    (dose,) = [d for d in row["doses"] if d["code"] == code]
    return dose


def test_aud6_a_move_back_dated_before_the_doses_receipt_is_refused_and_it_stays_at_the_clinic(
    api,
):
    """Finding 1: a `moved` to LAB-BENCH-7 dated before the dose's receipt at the clinic is
    refused (409 out_of_order, naming the receipt), changes nothing, and the dose is still at the
    clinic by every reading: board, bedside and history."""
    batch, codes, who = ready(api)
    received = _history(api, codes[0])[-1]
    assert received["event"] == "received"
    before = (_count(api, CustodyEvent), _count(api, AuditEvent))
    back_dated = datetime.fromisoformat(received["occurred_at"]) - timedelta(hours=3)
    detail = error(
        _custody(
            api,
            codes[0],
            event="moved",
            location="LAB-BENCH-7",
            occurred_at=iso(back_dated),
            late_reason="forgot to scan it",
        ),
        409,
        "out_of_order",
    )
    assert "previous custody event (received)" in detail
    assert (_count(api, CustodyEvent), _count(api, AuditEvent)) == before
    assert [e["event"] for e in _history(api, codes[0])] == ["dispatched", "received"]
    dose = _dose_on_board(api, batch, codes[0])
    assert dose["at_clinic"] is True and dose["location"] == "Ward 3"
    ok(verify(api, check(who, codes[0])))


def test_aud6_a_dose_moved_away_after_its_receipt_is_no_longer_at_the_clinic(api):
    """Decisions follow the recorded order: a move recorded after the receipt takes the dose
    out of the clinic (board and bedside), whatever its stated time."""
    batch, codes, who = ready(api)
    ok(_custody(api, codes[0], event="moved", location="LAB-BENCH-7"), 201)
    dose = _dose_on_board(api, batch, codes[0])
    assert dose["at_clinic"] is False and dose["location"] == "LAB-BENCH-7"
    error(verify(api, check(who, codes[0])), 409, "not_at_clinic")
    assert [e["event"] for e in _history(api, codes[0])] == ["dispatched", "received", "moved"]


def test_aud6_at_the_clinic_follows_the_recorded_order_even_for_an_older_stated_time(api):
    """A move stored with a time before the receipt (as the unchecked code let one in, or a row
    written before revision 0008) is still the dose's latest event: the board says not at the
    clinic, the bedside refuses, and the history lists it last, as recorded."""
    batch, codes, who = ready(api)
    dose = api.db.execute(select(Vessel).where(Vessel.code == codes[0])).scalar_one()
    received = _history(api, codes[0])[-1]
    api.db.add(
        CustodyEvent(
            vessel_id=dose.id,
            event="moved",
            from_location="Ward 3",
            to_location="LAB-BENCH-7",
            occurred_at=datetime.fromisoformat(received["occurred_at"]) - timedelta(days=1),
            recorded_at=None,  # as a row from before revision 0008
            recorded_by=dose.created_by,
        )
    )
    api.db.commit()
    assert _dose_on_board(api, batch, codes[0])["at_clinic"] is False
    error(verify(api, check(who, codes[0])), 409, "not_at_clinic")
    history = _history(api, codes[0])
    assert [e["event"] for e in history] == ["dispatched", "received", "moved"]
    assert history[-1]["recorded_at"] is None and history[-1]["late"] is False


def test_aud6_a_receipt_dated_before_its_dispatch_is_refused(api):
    """Finding 2: a receipt 3 days before its dispatch is 409 out_of_order, with or without a
    late-entry reason, and the dose stays dispatched."""
    batch, codes = api.released(doses=1)
    ok(_custody(api, codes[0], event="dispatched", location="Courier", temperature_c=4.5), 201)
    dispatched = datetime.fromisoformat(_history(api, codes[0])[-1]["occurred_at"])
    for reason in (None, "paper receipt entered later"):
        body = {
            "event": "received",
            "location": "Ward 3",
            "temperature_c": 4.5,
            "occurred_at": iso(dispatched - timedelta(days=3)),
        } | ({"late_reason": reason} if reason else {})
        detail = error(_custody(api, codes[0], Role.CLINICIAN, **body), 409, "out_of_order")
        assert "previous custody event (dispatched)" in detail
    assert [e["event"] for e in _history(api, codes[0])] == ["dispatched"]
    shown = ok(api.get(Role.QA, f"/batches/{batch['id']}"))
    assert {v["status"] for v in shown["vessels"] if v["code"] == codes[0]} == {"dispatched"}


def test_aud6_a_dispatch_is_not_dated_before_the_release(api):
    _, codes = api.released(doses=1)
    detail = error(
        _custody(
            api,
            codes[0],
            event="dispatched",
            location="Courier",
            temperature_c=4.5,
            occurred_at=iso(datetime.now(UTC) - timedelta(hours=1)),
            late_reason="courier left before the scan",
        ),
        409,
        "out_of_order",
    )
    assert "release" in detail


def test_aud6_a_custody_event_is_not_dated_before_its_vessel_was_made(api):
    _, flasks = api.expanded_batch()
    detail = error(
        _custody(
            api,
            flasks[0],
            event="moved",
            location="Incubator 3",
            occurred_at=iso(datetime.now(UTC) - timedelta(hours=2)),
            late_reason="entered from the paper log",
        ),
        409,
        "out_of_order",
    )
    assert f"the step that made {flasks[0]}" in detail


def test_aud6_a_late_custody_event_needs_a_reason_and_is_shown_as_late(api_with_skew):
    """Past the skew a stated time needs a late_reason (422 late_entry_reason_required, nothing
    written); with one it is kept, shown as late next to the server's recording time in the
    history, the batch record (JSON and page) and the audit event."""
    api = api_with_skew(1)
    batch, flasks = api.expanded_batch()
    made = datetime.now(UTC)
    time.sleep(1.5)
    body = {"event": "moved", "location": "Incubator 3", "occurred_at": iso(made)}
    before = (_count(api, CustodyEvent), _count(api, AuditEvent))
    detail = error(_custody(api, flasks[0], **body), 422, "late_entry_reason_required")
    assert "late_reason" in detail
    assert (_count(api, CustodyEvent), _count(api, AuditEvent)) == before

    reason = "moved during the power cut, entered afterwards"
    event = ok(_custody(api, flasks[0], **body, late_reason=reason), 201)
    assert event["late"] is True and event["late_reason"] == reason
    assert datetime.fromisoformat(event["occurred_at"]) == made
    assert datetime.fromisoformat(event["recorded_at"]) > made + timedelta(seconds=1)
    (shown,) = _history(api, flasks[0])
    assert shown == event
    record = ok(api.get(Role.QA, f"/batches/{batch['id']}/record"))
    (entry,) = [c for c in record["custody"] if c["vessel_code"] == flasks[0]]
    assert entry["late"] is True and entry["late_reason"] == reason
    audited = audit_events(api.db, AuditAction.CUSTODY_RECORDED.value)[-1]
    assert json.loads(audited.new_values or "{}")["late_reason"] == reason
    _page_login(api, Role.QA)
    page = api.client.get(f"/batches/{batch['id']}")
    assert page.status_code == 200 and "late entry" in page.text and reason in page.text


def test_aud6_a_custody_event_within_the_skew_is_not_late(api):
    """A reason sent with a contemporaneous time is not kept: `late` means entered late."""
    _, flasks = api.expanded_batch()
    event = ok(
        _custody(
            api,
            flasks[0],
            event="moved",
            location="Incubator 3",
            occurred_at=iso(datetime.now(UTC)),
            late_reason="not needed",
        ),
        201,
    )
    assert event["late"] is False and event["late_reason"] is None


@pytest.mark.postgres_only
def test_aud6_a_custody_event_that_waited_for_the_lock_is_checked_against_the_one_before_it(
    committed_engine, settings
):
    """Two custody events on one vessel at once, the second stating an earlier time: the one
    that waited for the batch's lock reads the previous event only once it holds the lock, so it
    is refused (409 out_of_order) instead of slipping in before the event committed first."""
    with committed_api(committed_engine, settings) as (api, factory):
        _, flasks = api.expanded_batch()
        made = datetime.now(UTC)
        tech = make_user(api.db, settings, roles=[Role.TECHNICIAN])
        technician = headers_of_new(api, Role.TECHNICIAN)
        with unit_of_work(factory) as holder:
            storage.record_custody(
                holder,
                settings,
                principal=Principal(user=tech, roles=frozenset({Role.TECHNICIAN})),
                code=flasks[0],
                data=CustodyCreate(
                    event="moved", location="Incubator 5", occurred_at=made + timedelta(seconds=2)
                ),
            )
            earlier = Contender(
                lambda: api.client.post(
                    f"/api/v1/vessels/{flasks[0]}/custody",
                    headers=technician,
                    json={
                        "event": "moved",
                        "location": "Incubator 6",
                        "occurred_at": iso(made + timedelta(seconds=1)),
                    },
                )
            )
            wait_for_lock_waiters(committed_engine, 1)
        detail = error(earlier.response(), 409, "out_of_order")
    assert "previous custody event (moved)" in detail
    with factory() as session:
        events = session.execute(select(CustodyEvent.to_location)).scalars().all()
        assert events == ["Incubator 5"]


def test_aud6_a_late_custody_event_of_a_dose_is_marked_late_in_the_patients_trace_report(
    api_with_skew,
):
    """'Marked late wherever it is shown': the trace report lists a dose's custody, so a late
    dispatch says LATE ENTRY there, with its recording time and reason."""
    api = api_with_skew(1)
    batch, codes = api.released(doses=1)
    released = datetime.now(UTC)
    time.sleep(1.5)
    reason = "dispatch note found in the courier bag"
    body = {"event": "dispatched", "location": "Courier", "temperature_c": 4.5}
    body |= {"occurred_at": iso(released), "late_reason": reason}
    ok(_custody(api, codes[0], **body), 201)
    patient_id = ok(api.get(Role.QA, f"/batches/{batch['id']}"))["patient_id"]
    report = api.get(
        Role.CLINICIAN, f"/patients/{patient_id}/trace-report", params={"format": "html"}
    )
    assert report.status_code == 200
    assert "LATE ENTRY" in report.text and reason in report.text

"""Infusion plans from the protocol template (CLN-2, issue 6 §2): one planned infusion per live
dose up to the protocol's number, the i-th in the middle of its 4 to 6 week window; warnings after a
dose's expiry or outside the window; rescheduling with a reason, audited."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.auth.permissions import Role
from app.gmp_settings.groups import Group
from tests.helpers import Api, approve_gmp_settings, audit_events, error, iso, ok

DAY = timedelta(days=1)


def _formulated(api: Api, doses: int, expires_in: timedelta) -> tuple[dict[str, Any], list[str]]:
    """A batch formulated into `doses` bags expiring `expires_in` from now: (batch, codes)."""
    batch, flasks = api.expanded_batch()
    harvest = ok(api.step(batch["id"], "harvest", flasks, ["tube"]), 201)
    tube = harvest["outputs"][0]["code"]
    expiry = iso(datetime.now(UTC) + expires_in)
    outputs = [api.dose(expires_at=expiry) for _ in range(doses)]
    step = ok(api.step(batch["id"], "formulation", [tube], outputs), 201)
    return batch, [o["code"] for o in step["outputs"]]


def _plan(api: Api, batch_id: int, first: datetime, role: Role = Role.CLINICIAN) -> Any:
    return api.post(role, f"/batches/{batch_id}/infusion-plan", {"first_infusion_at": iso(first)})


def _reschedule(api: Api, planned_id: int, body: dict[str, Any], role=Role.CLINICIAN) -> Any:
    return api.call(role, "PATCH", f"/planned-infusions/{planned_id}", json=body)


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _start() -> datetime:
    """A first infusion two days from now, on the minute."""
    return (datetime.now(UTC) + 2 * DAY).replace(second=0, microsecond=0)


# -- the template ----------------------------------------------------------------------------------


def test_cln2_the_default_plan_is_three_doses_five_weeks_apart_in_a_four_to_six_week_window(api):
    batch, codes = _formulated(api, doses=4, expires_in=200 * DAY)
    first = _start()
    plan = ok(_plan(api, batch["id"], first), 201)

    assert [p["dose_code"] for p in plan] == codes[:3]  # the protocol gives three
    assert [p["sequence"] for p in plan] == [1, 2, 3]
    assert [_at(p["planned_at"]) for p in plan] == [first, first + 35 * DAY, first + 70 * DAY]
    assert [(_at(p["window_start"]), _at(p["window_end"])) for p in plan] == [
        (first, first),
        (first + 28 * DAY, first + 42 * DAY),
        (first + 56 * DAY, first + 84 * DAY),
    ]
    assert all(p["warnings"] == [] and p["infused"] is False for p in plan)
    assert all(p["batch_id"] == batch["id"] and p["dose_expires_at"] for p in plan)

    assert ok(api.get(Role.TECHNICIAN, f"/batches/{batch['id']}/infusion-plan")) == plan
    (event,) = [e for e in audit_events(api.db, "infusion.planned") if e.entity_id == batch["id"]]
    recorded = json.loads(event.new_values or "{}")
    assert [p["dose_code"] for p in recorded["plan"]] == codes[:3]
    assert recorded["protocol"] == {"doses": 3, "interval_days": [28, 42]}


def test_cln2_qc3_the_template_comes_from_the_approved_gmp_settings(api):
    approve_gmp_settings(
        api.db,
        api.settings,
        Group.INFUSION_PROTOCOL,
        doses=2,
        interval_min_days=14,
        interval_max_days=21,
    )
    batch, codes = _formulated(api, doses=3, expires_in=200 * DAY)
    first = _start()
    plan = ok(_plan(api, batch["id"], first), 201)
    middle = timedelta(days=17, hours=12)
    assert [p["dose_code"] for p in plan] == codes[:2]
    assert [_at(p["planned_at"]) for p in plan] == [first, first + middle]
    assert (_at(plan[1]["window_start"]), _at(plan[1]["window_end"])) == (
        first + 14 * DAY,
        first + 21 * DAY,
    )
    assert all(p["warnings"] == [] for p in plan)


def test_cln2_a_protocol_longer_than_the_batch_plans_every_live_dose(api):
    approve_gmp_settings(api.db, api.settings, Group.INFUSION_PROTOCOL, doses=5)
    batch, codes = _formulated(api, doses=3, expires_in=400 * DAY)
    ok(api.step(batch["id"], "discard", codes[1:2], reason="Bag leaked"), 201)
    first = _start()
    plan = ok(_plan(api, batch["id"], first), 201)
    # The discarded dose is not planned; the others take sequences 1 and 2.
    assert [(p["dose_code"], p["sequence"]) for p in plan] == [(codes[0], 1), (codes[2], 2)]
    assert _at(plan[1]["planned_at"]) == first + 35 * DAY


def test_cln2_a_time_given_with_an_offset_is_planned_in_utc(api):
    batch, _ = _formulated(api, doses=1, expires_in=200 * DAY)
    response = api.post(
        Role.CLINICIAN,
        f"/batches/{batch['id']}/infusion-plan",
        {"first_infusion_at": (_start() + DAY).strftime("%Y-%m-%dT09:30:00+02:00")},
    )
    (planned,) = ok(response, 201)
    assert _at(planned["planned_at"]).astimezone(UTC).strftime("%H:%M") == "07:30"


# -- warnings --------------------------------------------------------------------------------------


def test_cln2_a_fresh_dose_planned_after_its_expiry_is_flagged(api):
    batch, _ = api.formulated(doses=2)  # fresh doses: they expire three days after formulation
    first = _start()
    first_planned, second_planned = ok(_plan(api, batch["id"], first), 201)
    assert first_planned["warnings"] == []
    expiry = _at(second_planned["dose_expires_at"])
    assert expiry < _at(second_planned["planned_at"])
    assert second_planned["warnings"] == [
        f"planned after the dose expires ({expiry:%Y-%m-%d %H:%M} UTC)"
    ]
    # The board shows the same plan.
    (row,) = [
        r for r in ok(api.get(Role.CLINICIAN, "/clinic/readiness")) if r["batch_id"] == batch["id"]
    ]
    assert row["planned_infusions"] == [first_planned, second_planned]


def test_cln2_a_reschedule_outside_the_window_is_flagged_and_audited_with_its_reason(api):
    batch, _ = _formulated(api, doses=3, expires_in=200 * DAY)
    first = _start()
    plan = ok(_plan(api, batch["id"], first), 201)
    second = plan[1]

    late = first + 45 * DAY
    moved = ok(_reschedule(api, second["id"], {"planned_at": iso(late), "reason": "Patient flu"}))
    assert _at(moved["planned_at"]) == late
    window = (first + 28 * DAY, first + 42 * DAY)
    assert (_at(moved["window_start"]), _at(moved["window_end"])) == window
    assert moved["warnings"] == [
        f"outside the protocol window {window[0]:%Y-%m-%d} to {window[1]:%Y-%m-%d}"
    ]

    (event,) = audit_events(api.db, "infusion.rescheduled")
    assert event.entity_type == "batch" and event.entity_id == batch["id"]
    assert event.reason == "Patient flu"
    old, new = json.loads(event.old_values or "{}"), json.loads(event.new_values or "{}")
    assert old["planned_infusion_id"] == new["planned_infusion_id"] == second["id"]
    assert _at(old["planned_at"]) == first + 35 * DAY and _at(new["planned_at"]) == late

    # Back inside the window: no warning; the plan shows the move.
    inside = first + 40 * DAY
    moved = ok(_reschedule(api, second["id"], {"planned_at": iso(inside), "reason": "Recovered"}))
    assert moved["warnings"] == []
    shown = ok(api.get(Role.CLINICIAN, f"/batches/{batch['id']}/infusion-plan"))
    assert [_at(p["planned_at"]) for p in shown] == [first, inside, first + 70 * DAY]
    assert len(audit_events(api.db, "infusion.rescheduled")) == 2

    # The first infusion sets the protocol's clock: moving it is no window warning.
    moved = ok(
        _reschedule(api, plan[0]["id"], {"planned_at": iso(first + DAY), "reason": "Bed free"})
    )
    assert moved["warnings"] == []


def test_cln2_a_reschedule_past_a_fresh_doses_expiry_is_flagged(api):
    batch, _ = api.formulated(doses=1)
    first = _start()
    (planned,) = ok(_plan(api, batch["id"], first), 201)
    assert planned["warnings"] == []
    moved = ok(
        _reschedule(api, planned["id"], {"planned_at": iso(first + 5 * DAY), "reason": "Delay"})
    )
    (warning,) = moved["warnings"]
    assert warning.startswith("planned after the dose expires (")


# -- refusals --------------------------------------------------------------------------------------


def test_cln2_a_second_plan_is_a_conflict_and_changes_nothing(api):
    batch, _ = _formulated(api, doses=2, expires_in=200 * DAY)
    first = _start()
    plan = ok(_plan(api, batch["id"], first), 201)
    detail = error(_plan(api, batch["id"], first + 7 * DAY), 409, "conflict")
    assert "already has an infusion plan" in detail
    assert ok(api.get(Role.CLINICIAN, f"/batches/{batch['id']}/infusion-plan")) == plan
    assert len(audit_events(api.db, "infusion.planned")) == 1


def test_cln2_a_batch_without_doses_has_nothing_to_plan(api):
    batch = api.batch()
    error(_plan(api, batch["id"], _start()), 409, "invalid_state")
    assert ok(api.get(Role.CLINICIAN, f"/batches/{batch['id']}/infusion-plan")) == []


def test_cln2_unknown_batches_and_planned_infusions_are_not_found(api):
    error(_plan(api, 987654, _start()), 404, "not_found")
    error(api.get(Role.CLINICIAN, "/batches/987654/infusion-plan"), 404, "not_found")
    body = {"planned_at": iso(_start()), "reason": "Moved"}
    error(_reschedule(api, 987654, body), 404, "not_found")


def test_cln2_a_reschedule_needs_a_reason_and_an_aware_time(api):
    batch, _ = _formulated(api, doses=1, expires_in=200 * DAY)
    (planned,) = ok(_plan(api, batch["id"], _start()), 201)
    later = iso(_start() + DAY)
    for body in (
        {"planned_at": later},
        {"planned_at": later, "reason": ""},
        {"planned_at": later, "reason": "   "},
        {"planned_at": later.replace("+00:00", ""), "reason": "Moved"},
    ):
        error(_reschedule(api, planned["id"], body), 422, "invalid_request")
    assert audit_events(api.db, "infusion.rescheduled") == []
    shown = ok(api.get(Role.CLINICIAN, f"/batches/{batch['id']}/infusion-plan"))
    assert shown == [planned]


def test_cln2_a_plan_needs_an_aware_first_infusion_time(api):
    batch, _ = _formulated(api, doses=1, expires_in=200 * DAY)
    for body in ({}, {"first_infusion_at": "2031-03-03T09:00:00"}, {"first_infusion_at": "soon"}):
        response = api.post(Role.CLINICIAN, f"/batches/{batch['id']}/infusion-plan", body)
        error(response, 422, "invalid_request")
    assert ok(api.get(Role.CLINICIAN, f"/batches/{batch['id']}/infusion-plan")) == []


@pytest.mark.parametrize("role", [Role.TECHNICIAN, Role.QA, Role.ADMIN])
def test_sec_only_clinicians_plan_and_reschedule(api, role):
    batch, _ = _formulated(api, doses=1, expires_in=200 * DAY)
    error(_plan(api, batch["id"], _start(), role=role), 403, "forbidden")
    (planned,) = ok(_plan(api, batch["id"], _start()), 201)
    body = {"planned_at": iso(_start() + DAY), "reason": "Moved"}
    error(_reschedule(api, planned["id"], body, role=role), 403, "forbidden")
    assert audit_events(api.db, "infusion.rescheduled") == []

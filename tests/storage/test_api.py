"""Storage locations and custody through the HTTP API (issue 3 §5, DESIGN §5, §10 CLN-3, §11):
the location hierarchy, one vessel per position, custody events with who/from/to/temperature,
who may record which event, dispatch only of released doses, and the audit of every event."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.audit.service import verify_chain
from app.auth.permissions import Role
from app.auth.service import Principal
from app.batches import service as batches
from app.db import session_factory_for, unit_of_work
from app.identity.codes import DIN, VesselCode
from app.steps import service as steps
from app.steps.models import Step
from app.steps.schemas import OutputSpec, StepCreate
from app.storage import service as storage
from app.storage.models import CustodyEvent, Location
from app.storage.schemas import CustodyCreate, LocationCreate
from app.vessels.models import Vessel
from tests.helpers import (
    Api,
    audit_events,
    committed_biopsy,
    iso,
    make_user,
    one_winner,
    race,
    unique,
)

# -- helpers ---------------------------------------------------------------------------------------


def _created(response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return response.json()


def _error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code, body
    return body["detail"]


def _codes(step: dict[str, Any]) -> list[str]:
    return [o["code"] for o in step["outputs"]]


def _location(api: Api, kind: str, parent_id: int | None = None, **overrides: Any):
    body = {
        "code": unique(f"{kind[:3].upper()}-"),
        "name": f"A {kind}",
        "kind": kind,
        "parent_id": parent_id,
    } | overrides
    return api.post(Role.ADMIN, "/locations", body)


def _hierarchy(api: Api, positions: int = 2) -> dict[str, Any]:
    """site > room > freezer > rack > box > positions, created by an admin."""
    built: dict[str, Any] = {}
    parent_id = None
    for kind in ("site", "room", "freezer", "rack", "box"):
        built[kind] = _created(_location(api, kind, parent_id))
        parent_id = built[kind]["id"]
    built["positions"] = [_created(_location(api, "position", parent_id)) for _ in range(positions)]
    return built


def _locations(api: Api, role: Role = Role.TECHNICIAN) -> dict[str, dict[str, Any]]:
    response = api.get(role, "/locations")
    assert response.status_code == 200, response.text
    return {location["code"]: location for location in response.json()}


def _occupant(api: Api, position_code: str) -> str | None:
    """The code of the vessel holding a position, read from the database (Vessel.position_id)."""
    return api.db.execute(
        select(Vessel.code)
        .join(Location, Location.id == Vessel.position_id)
        .where(Location.code == position_code)
    ).scalar_one_or_none()


def _location_codes(api: Api) -> set[str]:
    return set(api.db.execute(select(Location.code)).scalars())


def _vessels(api: Api, batch_id: int) -> dict[str, dict[str, Any]]:
    response = api.get(Role.TECHNICIAN, f"/batches/{batch_id}")
    assert response.status_code == 200, response.text
    return {v["code"]: v for v in response.json()["vessels"]}


def _custody(api: Api, code: str, event: str, location: str, role: Role, **extra: Any):
    body = {"event": event, "location": location, "temperature_c": 4.0} | extra
    return api.post(role, f"/vessels/{code}/custody", body)


def _move(api: Api, code: str, location: str, **extra: Any):
    return _custody(api, code, "moved", location, Role.TECHNICIAN, **extra)


def _history(api: Api, code: str, role: Role = Role.TECHNICIAN) -> list[dict[str, Any]]:
    response = api.get(role, f"/vessels/{code}/custody")
    assert response.status_code == 200, response.text
    return response.json()


def _counts(api: Api) -> dict[str, int]:
    """Rows a refused custody event or step must not add."""
    db = api.db
    return {
        "custody": db.execute(select(func.count()).select_from(CustodyEvent)).scalar_one(),
        "audit": db.execute(select(func.count()).select_from(AuditEvent)).scalar_one(),
        "vessels": db.execute(select(func.count()).select_from(Vessel)).scalar_one(),
        "steps": db.execute(select(func.count()).select_from(Step)).scalar_one(),
    }


def _formulated(api: Api, doses: int = 2) -> tuple[dict[str, Any], list[str]]:
    """A batch formulated into dose bags, hence in quarantine: (batch, dose codes)."""
    batch, flasks = api.expanded_batch()
    (tube,) = _codes(_created(api.step(batch["id"], "harvest", flasks, ["tube"])))
    formulation = _created(
        api.step(batch["id"], "formulation", [tube], [api.dose() for _ in range(doses)])
    )
    return batch, _codes(formulation)


def _set_batch_status(api: Api, batch_id: int, status: str) -> None:
    """Bring a batch in quarantine to `status` the way the lab does: QA's e-signed decision on
    passed QC, a deviation (hold), or destruction."""
    if status in ("released", "conditionally_released"):
        pending = ("sterility",) if status == "conditionally_released" else ()
        api.pass_qc(batch_id, skip=pending)
        decision = "release" if status == "released" else "conditional_release"
        assert api.decide(batch_id, decision, pending_tests=list(pending)).status_code == 200
    elif status == "rejected":
        assert api.decide(batch_id, "reject").status_code == 200
    elif status == "on_hold":
        body = {"kind": "process", "description": "incubator alarm"}
        assert api.post(Role.TECHNICIAN, f"/batches/{batch_id}/deviations", body).status_code == 201
    else:
        body = {"reason": "contaminated"}
        assert api.post(Role.QA, f"/batches/{batch_id}/destroy", body).status_code == 200
    assert api.get(Role.QA, f"/batches/{batch_id}").json()["status"] == status


# -- locations -------------------------------------------------------------------------------------


def test_admin_builds_a_location_hierarchy_down_to_positions_and_lists_it_with_paths(api):
    """DESIGN §5: site > room > freezer > rack > box > position."""
    built = _hierarchy(api, positions=2)
    listed = _locations(api)
    chain = [built[k] for k in ("site", "room", "freezer", "rack", "box")]
    expected_path = " > ".join(location["code"] for location in chain)
    for level, location in enumerate(chain):
        shown = listed[location["code"]]
        assert shown["id"] == location["id"]
        assert shown["kind"] == ("site", "room", "freezer", "rack", "box")[level]
        assert shown["parent_id"] == (chain[level - 1]["id"] if level else None)
        assert shown["path"] == " > ".join(c["code"] for c in chain[: level + 1])
        assert shown["occupied_by"] is None
    for position in built["positions"]:
        shown = listed[position["code"]]
        assert shown["kind"] == "position" and shown["parent_id"] == built["box"]["id"]
        assert shown["path"] == f"{expected_path} > {position['code']}"
        assert shown["occupied_by"] is None
    # The catalogue is readable by the lab and QA, not by the clinic.
    assert built["box"]["code"] in _locations(api, Role.QA)
    assert built["box"]["code"] in _locations(api, Role.ADMIN)
    assert api.get(Role.CLINICIAN, "/locations").status_code == 403
    assert api.get(None, "/locations").status_code == 401


def test_a_created_location_answers_with_its_full_path(api):
    """The `path` in the answer to POST /locations is the whole path from the site
    (site > room > ... > the location), as GET /locations shows it, not only its own code."""
    built = _hierarchy(api, positions=1)
    chain = [built[k] for k in ("site", "room", "freezer", "rack", "box")] + built["positions"]
    for level, location in enumerate(chain):
        assert location["path"] == " > ".join(c["code"] for c in chain[: level + 1]), location


def test_the_location_list_shows_which_vessel_holds_each_position(api):
    positions = [p["code"] for p in _hierarchy(api, positions=2)["positions"]]
    _, flasks = api.expanded_batch()
    _created(_move(api, flasks[0], positions[1]))
    listed = _locations(api)
    assert listed[positions[0]]["occupied_by"] is None
    assert listed[positions[1]]["occupied_by"] == flasks[0]


def test_a_position_holds_no_locations(api):
    built = _hierarchy(api, positions=1)
    before = _location_codes(api)
    for kind in ("position", "box"):
        detail = _error(_location(api, kind, built["positions"][0]["id"]), 422, "invalid_request")
        assert "position" in detail
    assert _location_codes(api) == before


def test_a_location_code_is_unique(api):
    site = _created(_location(api, "site"))
    room = _created(_location(api, "room", site["id"]))
    _error(_location(api, "room", site["id"], code=room["code"]), 409, "duplicate_code")
    _error(_location(api, "site", code=site["code"], name="Another site"), 409, "duplicate_code")
    assert {site["code"], room["code"]} <= _location_codes(api)
    assert (
        api.db.execute(
            select(func.count()).select_from(Location).where(Location.name == "Another site")
        ).scalar_one()
        == 0
    )


def test_a_location_under_an_unknown_parent_is_404(api):
    _error(_location(api, "room", 987_654), 404, "not_found")


def test_only_admins_manage_locations(api):
    body = {"code": unique("SIT-"), "name": "Lab", "kind": "site"}
    for role in (Role.TECHNICIAN, Role.QA, Role.CLINICIAN):
        _error(api.post(role, "/locations", body), 403, "forbidden")
    assert api.post(None, "/locations", body).status_code == 401
    assert body["code"] not in _location_codes(api)


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "cupboard"},
        {"code": "has space"},
        {"code": ""},
        {"name": ""},
        {"parent_id": 0},
        {"coi": "CHA999925000001X"},
    ],
)
def test_location_input_is_validated(api, change):
    body = {"code": unique("SIT-"), "name": "Lab", "kind": "site"} | change
    _error(api.post(Role.ADMIN, "/locations", body), 422, "invalid_request")


def test_aud1_location_creation_is_audited(api):
    site = _created(_location(api, "site"))
    (event,) = [e for e in audit_events(api.db, "location.created") if e.entity_id == site["id"]]
    assert event.entity_type == "location" and event.scope == "global"
    assert site["code"] in (event.new_values or "")


# -- custody: moves and positions ------------------------------------------------------------------


def test_moving_a_vessel_into_a_position_sets_its_location(api):
    """Issue 3 §5: a `moved` custody event by a technician puts the vessel in the position."""
    position = _hierarchy(api, positions=1)["positions"][0]
    batch, flasks = api.expanded_batch()
    moved = _created(_move(api, flasks[0], position["code"], temperature_c=37.0))
    assert moved["vessel_code"] == flasks[0]
    assert moved["event"] == "moved"
    assert moved["from_location"] is None
    assert moved["to_location"] == position["code"]
    assert moved["temperature_c"] == 37.0
    assert moved["recorded_by"].startswith("technician-")
    assert _vessels(api, batch["id"])[flasks[0]]["location"] == position["code"]
    assert _occupant(api, position["code"]) == flasks[0]


def test_a_position_holds_one_vessel_and_a_refused_move_changes_nothing(api):
    """DESIGN §5: one vessel per position at most; a second vessel is refused with 409."""
    position = _hierarchy(api, positions=1)["positions"][0]["code"]
    batch, flasks = api.expanded_batch()
    _created(_move(api, flasks[1], "Incubator 3"))
    _created(_move(api, flasks[0], position))
    before = _counts(api)
    detail = _error(_move(api, flasks[1], position), 409, "position_taken")
    assert position in detail
    assert _counts(api) == before
    vessels = _vessels(api, batch["id"])
    assert vessels[flasks[0]]["location"] == position
    assert vessels[flasks[1]]["location"] == "Incubator 3"
    assert [e["to_location"] for e in _history(api, flasks[1])] == ["Incubator 3"]
    assert _occupant(api, position) == flasks[0]


def test_moving_a_vessel_out_frees_its_position(api):
    positions = [p["code"] for p in _hierarchy(api, positions=2)["positions"]]
    batch, flasks = api.expanded_batch()
    _created(_move(api, flasks[0], positions[0]))
    # Out to a free-text place: the position is free, another vessel may take it.
    _created(_move(api, flasks[0], "Biosafety cabinet 2"))
    assert _occupant(api, positions[0]) is None
    _created(_move(api, flasks[1], positions[0]))
    # From one position to another: the first is freed, the second taken.
    _created(_move(api, flasks[1], positions[1]))
    assert _occupant(api, positions[0]) is None
    assert _occupant(api, positions[1]) == flasks[1]
    _created(_move(api, flasks[0], positions[0]))
    assert _occupant(api, positions[0]) == flasks[0]
    vessels = _vessels(api, batch["id"])
    assert vessels[flasks[0]]["location"] == positions[0]
    assert vessels[flasks[1]]["location"] == positions[1]


def test_moving_a_vessel_to_the_position_it_is_in_is_not_a_conflict(api):
    position = _hierarchy(api, positions=1)["positions"][0]["code"]
    _, flasks = api.expanded_batch()
    _created(_move(api, flasks[0], position))
    again = _created(_move(api, flasks[0], position))
    assert again["from_location"] == again["to_location"] == position


def test_custody_history_is_complete_and_oldest_first(api):
    """Issue 3 §5: a vessel's full custody history with who, from, to, when and temperature."""
    position = _hierarchy(api, positions=1)["positions"][0]["code"]
    _, flasks = api.expanded_batch()
    _created(_move(api, flasks[0], "Incubator 3", temperature_c=37.0))
    _created(_move(api, flasks[0], position, temperature_c=-150.5))
    _created(_move(api, flasks[0], "Bench 1", temperature_c=None))
    _created(_move(api, flasks[1], "Incubator 4"))
    history = _history(api, flasks[0])
    assert [(e["from_location"], e["to_location"], e["temperature_c"]) for e in history] == [
        (None, "Incubator 3", 37.0),
        ("Incubator 3", position, -150.5),
        (position, "Bench 1", None),
    ]
    assert {e["event"] for e in history} == {"moved"}
    assert {e["vessel_code"] for e in history} == {flasks[0]}
    assert len({e["recorded_by"] for e in history}) == 1
    assert history[0]["recorded_by"].startswith("technician-")
    times = [datetime.fromisoformat(e["occurred_at"]) for e in history]
    assert times == sorted(times)
    assert all(t.utcoffset() == timedelta(0) for t in times)
    # The lab, QA and the clinic read it; admin grants no patient data.
    assert _history(api, flasks[0], Role.QA) == history
    assert _history(api, flasks[0], Role.CLINICIAN) == history
    _error(api.get(Role.ADMIN, f"/vessels/{flasks[0]}/custody"), 403, "forbidden")
    assert api.get(None, f"/vessels/{flasks[0]}/custody").status_code == 401


def test_a_vessel_never_moved_has_an_empty_history(api):
    _, flasks = api.expanded_batch()
    assert _history(api, flasks[0]) == []


def test_a_custody_event_may_be_dated_in_the_past_but_not_in_the_future(api):
    _, flasks = api.expanded_batch()
    # A time older than the flask or than the late-entry skew: tests/storage/test_chronology.py
    earlier = datetime.now(UTC)
    recorded = _created(_move(api, flasks[0], "Incubator 3", occurred_at=iso(earlier)))
    assert datetime.fromisoformat(recorded["occurred_at"]) == earlier
    before = _counts(api)
    later = iso(datetime.now(UTC) + timedelta(hours=2))
    _error(_move(api, flasks[0], "Incubator 4", occurred_at=later), 422, "invalid_request")
    assert _counts(api) == before


@pytest.mark.parametrize(
    "change",
    [
        {"event": "stolen"},
        {"location": ""},
        {"location": "x" * 65},
        {"temperature_c": -300},
        {"temperature_c": 150},
        {"temperature_c": "warm"},
        {"occurred_at": "2025-01-01T10:00:00"},
        {"batch_id": 1},
    ],
)
def test_custody_input_is_validated(api, change):
    _, flasks = api.expanded_batch()
    before = _counts(api)
    body = {"event": "moved", "location": "Incubator 3", "temperature_c": 37.0} | change
    _error(api.post(Role.TECHNICIAN, f"/vessels/{flasks[0]}/custody", body), 422, "invalid_request")
    assert _counts(api) == before


def test_custody_of_an_unknown_or_mistyped_code_is_refused(api):
    batch, flasks = api.expanded_batch()
    corrupt = flasks[0][:-1] + ("0" if flasks[0][-1] != "0" else "1")
    _error(_move(api, corrupt, "Incubator 3"), 422, "invalid_code")
    _error(api.get(Role.TECHNICIAN, f"/vessels/{corrupt}/custody"), 422, "invalid_code")
    unknown = VesselCode.build(DIN(batch["din"]), 9999).value
    _error(_move(api, unknown, "Incubator 3"), 404, "not_found")
    _error(api.get(Role.TECHNICIAN, f"/vessels/{unknown}/custody"), 404, "not_found")


def test_a_step_cannot_store_its_output_in_a_taken_position(api):
    """DESIGN §5: a step may not use a location slot already taken; nothing is written."""
    positions = [p["code"] for p in _hierarchy(api, positions=2)["positions"]]
    batch, flasks = api.expanded_batch()
    _created(_move(api, flasks[0], positions[0]))
    before = _counts(api)
    outputs = [{"kind": "cryovial", "location": positions[0]}]
    _error(api.step(batch["id"], "cryopreservation", [flasks[1]], outputs), 409, "position_taken")
    assert _counts(api) == before
    assert _vessels(api, batch["id"])[flasks[1]]["status"] == "active"
    # Two outputs of one step cannot share a position either.
    twice = [{"kind": "cryovial", "location": positions[1]}] * 2
    _error(api.step(batch["id"], "cryopreservation", [flasks[1]], twice), 409, "position_taken")
    assert _counts(api) == before
    # A free position is fine.
    made = _created(api.step(batch["id"], "cryopreservation", [flasks[1]], twice[:1]))
    assert _occupant(api, positions[1]) == made["outputs"][0]["code"]


@pytest.mark.parametrize("how", ["discarded", "consumed"])
def test_a_vessel_that_is_gone_no_longer_holds_its_position(api, how):
    """One vessel per position (DESIGN §5) counts vessels that are there: a discarded vessel, or
    one consumed by a step, no longer occupies its storage position."""
    position = _hierarchy(api, positions=1)["positions"][0]["code"]
    batch, flasks = api.expanded_batch()
    _created(_move(api, flasks[0], position))
    if how == "discarded":
        _created(api.step(batch["id"], "discard", [flasks[0]], reason="contaminated"))
    else:
        _created(api.step(batch["id"], "passage", [flasks[0]], ["flask"]))
    assert _vessels(api, batch["id"])[flasks[0]]["status"] == how
    assert _occupant(api, position) is None
    _created(_move(api, flasks[1], position))


# -- custody: who records which event -------------------------------------------------------------


def test_only_the_lab_moves_and_dispatches_and_only_the_clinic_receives(api):
    """DESIGN §11: custody `moved`/`dispatched` by technician, `received` by clinician."""
    batch, doses = _formulated(api, doses=1)
    _set_batch_status(api, batch["id"], "released")
    for role in Role:
        api.as_role(role)  # log everyone in first: logins are audited too
    before = _counts(api)
    for role, event in [
        (Role.CLINICIAN, "moved"),
        (Role.CLINICIAN, "dispatched"),
        (Role.TECHNICIAN, "received"),
        (Role.QA, "moved"),
        (Role.QA, "received"),
        (Role.ADMIN, "moved"),
        (Role.ADMIN, "dispatched"),
    ]:
        _error(_custody(api, doses[0], event, "Clinic ward 4", role), 403, "forbidden")
    assert api.post(None, f"/vessels/{doses[0]}/custody", {"event": "moved"}).status_code == 401
    assert _counts(api) == before
    dose = _vessels(api, batch["id"])[doses[0]]
    assert dose["status"] == "active" and dose["location"] is None


def test_cln3_only_doses_are_dispatched(api):
    batch, flasks = api.expanded_batch()
    before = _counts(api)
    detail = _error(
        _custody(api, flasks[0], "dispatched", "Clinic ward 4", Role.TECHNICIAN),
        422,
        "invalid_request",
    )
    assert "dose" in detail
    assert _counts(api) == before
    assert _vessels(api, batch["id"])[flasks[0]]["status"] == "active"


def test_cln3_a_dose_of_a_batch_in_quarantine_cannot_be_dispatched(api):
    batch, doses = _formulated(api)
    assert _vessels(api, batch["id"])[doses[0]]["is_dose"]
    before = _counts(api)
    detail = _error(
        _custody(api, doses[0], "dispatched", "Clinic ward 4", Role.TECHNICIAN),
        409,
        "not_released",
    )
    assert "quarantine" in detail
    assert _counts(api) == before
    dose = _vessels(api, batch["id"])[doses[0]]
    assert dose["status"] == "active" and dose["location"] is None
    assert _history(api, doses[0]) == []


@pytest.mark.parametrize("status", ["on_hold", "rejected", "destroyed"])
def test_cln3_a_dose_of_a_batch_not_released_cannot_be_dispatched(api, status):
    batch, doses = _formulated(api, doses=1)
    _set_batch_status(api, batch["id"], status)
    detail = _error(
        _custody(api, doses[0], "dispatched", "Clinic ward 4", Role.TECHNICIAN),
        409,
        "not_released",
    )
    assert status in detail
    assert _vessels(api, batch["id"])[doses[0]]["status"] == "active"


@pytest.mark.parametrize("status", ["released", "conditionally_released"])
def test_cln3_a_released_dose_is_dispatched_by_the_lab_and_received_by_the_clinic(api, status):
    """CLN-3: dispatch and receipt are custody events with temperature; only doses of a released
    (or conditionally released) batch are dispatched."""
    batch, doses = _formulated(api)
    _set_batch_status(api, batch["id"], status)
    dispatched = _created(
        _custody(api, doses[0], "dispatched", "Courier box 7", Role.TECHNICIAN, temperature_c=5.5)
    )
    assert dispatched["event"] == "dispatched" and dispatched["temperature_c"] == 5.5
    assert dispatched["to_location"] == "Courier box 7"
    vessels = _vessels(api, batch["id"])
    assert vessels[doses[0]]["status"] == "dispatched"
    assert vessels[doses[0]]["location"] == "Courier box 7"
    assert vessels[doses[1]]["status"] == "active"

    received = _created(
        _custody(api, doses[0], "received", "Clinic ward 4", Role.CLINICIAN, temperature_c=6.0)
    )
    assert received["event"] == "received"
    assert received["from_location"] == "Courier box 7"
    assert received["recorded_by"].startswith("clinician-")
    assert _vessels(api, batch["id"])[doses[0]]["status"] == "received"
    history = _history(api, doses[0], Role.CLINICIAN)
    assert [(e["event"], e["to_location"], e["temperature_c"]) for e in history] == [
        ("dispatched", "Courier box 7", 5.5),
        ("received", "Clinic ward 4", 6.0),
    ]
    assert history[0]["recorded_by"].startswith("technician-")

    # Neither can happen twice.
    _error(
        _custody(api, doses[0], "received", "Clinic ward 5", Role.CLINICIAN), 409, "invalid_state"
    )
    _error(_custody(api, doses[0], "dispatched", "Courier", Role.TECHNICIAN), 409, "invalid_state")
    assert len(_history(api, doses[0])) == 2


def test_cln3_a_dose_never_dispatched_cannot_be_received(api):
    batch, doses = _formulated(api, doses=1)
    _set_batch_status(api, batch["id"], "released")
    before = _counts(api)
    detail = _error(
        _custody(api, doses[0], "received", "Clinic ward 4", Role.CLINICIAN), 409, "invalid_state"
    )
    assert "active" in detail
    assert _counts(api) == before
    assert _vessels(api, batch["id"])[doses[0]]["status"] == "active"


def test_cln3_dispatch_takes_the_dose_out_of_its_storage_position(api):
    position = _hierarchy(api, positions=1)["positions"][0]["code"]
    batch, doses = _formulated(api)
    _created(_move(api, doses[0], position, temperature_c=4.0))
    assert _occupant(api, position) == doses[0]
    _set_batch_status(api, batch["id"], "released")
    _created(_custody(api, doses[0], "dispatched", "Courier box 7", Role.TECHNICIAN))
    assert _occupant(api, position) is None
    _created(_move(api, doses[1], position))
    assert _occupant(api, position) == doses[1]


def test_cln3_a_refused_dispatch_into_a_taken_position_changes_nothing(api):
    """The dispatch and the status change are one transaction: a refused placement undoes both."""
    position = _hierarchy(api, positions=1)["positions"][0]["code"]
    batch, doses = _formulated(api)
    _created(_move(api, doses[1], position))
    _set_batch_status(api, batch["id"], "released")
    before = _counts(api)
    _error(_custody(api, doses[0], "dispatched", position, Role.TECHNICIAN), 409, "position_taken")
    assert _counts(api) == before
    assert _vessels(api, batch["id"])[doses[0]]["status"] == "active"


# -- audit -----------------------------------------------------------------------------------------


def test_aud1_every_custody_event_is_audited_in_the_patients_chain(api):
    """AUD-1: who, what, old and new place, in the patient's chain (AUD-3)."""
    patient = api.patient()
    position = _hierarchy(api, positions=1)["positions"][0]["code"]
    batch = api.batch(patient["id"])
    isolation = _created(api.step(batch["id"], "isolation", [batch["tube_code"]], ["flask"]))
    (flask,) = _codes(isolation)
    (passaged,) = _codes(_created(api.step(batch["id"], "passage", [flask], ["flask"])))
    (tube,) = _codes(_created(api.step(batch["id"], "harvest", [passaged], ["tube"])))
    (dose,) = _codes(_created(api.step(batch["id"], "formulation", [tube], [api.dose()])))
    _set_batch_status(api, batch["id"], "released")
    vessel_id = _vessels(api, batch["id"])[dose]["id"]
    before = {e.seq for e in audit_events(api.db, "vessel.custody")}

    _created(_move(api, dose, position, temperature_c=4.0))
    _created(_custody(api, dose, "dispatched", "Courier box 7", Role.TECHNICIAN))
    _created(_custody(api, dose, "received", "Clinic ward 4", Role.CLINICIAN, temperature_c=6.5))

    events = [e for e in audit_events(api.db, "vessel.custody") if e.seq not in before]
    assert len(events) == 3
    assert {e.scope for e in events} == {patient["coi"]}
    assert {(e.entity_type, e.entity_id) for e in events} == {("vessel", vessel_id)}
    assert [e.actor.split("-")[0] for e in events] == ["technician", "technician", "clinician"]
    assert '"Courier box 7"' in (events[1].new_values or "")
    assert f'"{position}"' in (events[1].old_values or "")
    assert '"received"' in (events[2].new_values or "") and "6.5" in (events[2].new_values or "")
    # The status changes are audited too, and the patient's chain still verifies.
    statuses = [
        e.new_values
        for e in audit_events(api.db, "vessel.status_changed")
        if e.entity_id == vessel_id
    ]
    assert any('"dispatched"' in (s or "") for s in statuses)
    assert any('"received"' in (s or "") for s in statuses)
    assert verify_chain(api.db, scope=patient["coi"]).ok


def test_aud1_a_refused_custody_event_is_not_audited_as_recorded(api):
    _, doses = _formulated(api, doses=1)
    before = len(audit_events(api.db, "vessel.custody"))
    _error(_custody(api, doses[0], "dispatched", "Courier", Role.TECHNICIAN), 409, "not_released")
    _error(_custody(api, doses[0], "moved", "Fridge", Role.CLINICIAN), 403, "forbidden")
    assert len(audit_events(api.db, "vessel.custody")) == before


# -- REL: two simultaneous moves into one position -------------------------------------------------


def test_rel_two_simultaneous_moves_into_one_position_leave_one_winner(committed_engine, settings):
    """Issue 3 §5: a position holds at most one vessel, enforced by the database, so two
    simultaneous moves cannot both win: one 201-equivalent, one 409 position_taken."""
    factory = session_factory_for(committed_engine)
    tech, biopsy_id, receipt = committed_biopsy(factory, settings, received=True)
    with unit_of_work(factory) as session:
        admin = make_user(session, settings, roles=[Role.ADMIN])
        site = storage.create_location(
            session, actor=admin, data=LocationCreate(code=unique("S-"), name="Lab", kind="site")
        )
        position = storage.create_location(
            session,
            actor=admin,
            data=LocationCreate(
                code=unique("P-"), name="Slot A1", kind="position", parent_id=site.id
            ),
        )
        position_code, position_id = position.code, position.id
        batch_id = batches.register(session, settings, actor=tech, biopsy_id=biopsy_id).batch.id
        isolation = StepCreate(
            kind="isolation",
            inputs=[receipt.scanned_code],
            outputs=[OutputSpec(kind="flask"), OutputSpec(kind="flask")],
        )
        recorded = steps.record(session, settings, actor=tech, batch_id=batch_id, data=isolation)
        contenders = [v.code for v in recorded.outputs]

    principal = Principal(user=tech, roles=frozenset({Role.TECHNICIAN}))
    move = CustodyCreate(event="moved", location=position_code, temperature_c=-150.0)
    waiting = list(contenders)
    outcomes = race(
        factory,
        lambda s: storage.record_custody(
            s, settings, principal=principal, code=waiting.pop(), data=move
        ),
    )
    one_winner(outcomes, {"position_taken"})
    with factory() as session:
        placed = session.execute(
            select(Vessel.code, Vessel.location).where(Vessel.position_id == position_id)
        ).all()
        assert len(placed) == 1 and placed[0].location == position_code
        loser = (set(contenders) - {placed[0].code}).pop()
        assert (
            session.execute(select(Vessel.location).where(Vessel.code == loser)).scalar_one()
            is None
        )
        assert session.execute(select(func.count()).select_from(CustodyEvent)).scalar_one() == 1
        custody = [e for e in audit_events(session, "vessel.custody")]
        assert len(custody) == 1
        assert session.execute(select(Location.id).where(Location.id == position_id)).first()
        assert verify_chain(session).ok


def test_a_consumed_vessel_cannot_be_moved_and_position_codes_ignore_case(api):
    """DESIGN §5: one vessel per position, whatever case the code is typed in; a vessel that no
    longer exists has no custody."""
    admin_headers = api.as_role(Role.ADMIN)
    position = api.client.post(
        "/api/v1/locations",
        json={"code": "CASE-A1", "name": "Position A1", "kind": "position"},
        headers=admin_headers,
    )
    assert position.status_code == 201, position.text
    batch, flasks = api.expanded_batch()
    move = {"event": "moved", "location": "CASE-A1", "temperature_c": 37.0}
    assert api.post(Role.TECHNICIAN, f"/vessels/{flasks[0]}/custody", move).status_code == 201
    lower = move | {"location": "case-a1"}
    taken = api.post(Role.TECHNICIAN, f"/vessels/{flasks[1]}/custody", lower)
    assert taken.status_code == 409 and taken.json()["error"] == "position_taken"
    api.step(batch["id"], "discard", [flasks[1]], reason="contaminated")
    gone = api.post(Role.TECHNICIAN, f"/vessels/{flasks[1]}/custody", move | {"location": "bin"})
    assert gone.status_code == 409 and gone.json()["error"] == "invalid_state"

"""Materials, lots and equipment through the HTTP API (issue 3 §4, DESIGN §5): the catalogue, its
use by steps, and the recall query from a lot to everything made with it (COI-7)."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.auth.permissions import Role
from app.main import create_app
from app.steps.models import Step
from app.vessels.models import Vessel
from tests.helpers import Api, ago, iso, unique

# -- helpers ---------------------------------------------------------------------------------------


def _in(**delta: float) -> str:
    return iso(datetime.now(UTC) + timedelta(**delta))


def _created(response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return response.json()


def _error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code, body
    return body["detail"]


def _material(api: Api, **overrides: Any) -> dict[str, Any]:
    body = {"code": unique("MED-"), "name": "DMEM/F-12 medium", "category": "medium"} | overrides
    return _created(api.post(Role.ADMIN, "/materials", body))


def _lot(
    api: Api, material_id: int | None = None, *, released: bool = True, **overrides: Any
) -> dict[str, Any]:
    """A lot received (in quarantine), then released by QA unless not `released` (SEC-5)."""
    material_id = material_id or _material(api)["id"]
    body = {
        "material_id": material_id,
        "lot_number": unique("LOT"),
        "supplier": "Acme Bio",
        "expires_at": _in(days=180),
    } | overrides
    lot = _created(api.post(Role.ADMIN, "/lots", body))
    return api.release_lot(lot["id"]) if released else lot


def _equipment(api: Api, *, qualified: bool = True, **overrides: Any) -> dict[str, Any]:
    """Equipment registered, then calibrated and qualified by QA unless not `qualified`."""
    body = {"code": unique("INC-"), "name": "CO2 incubator 3", "kind": "incubator"} | overrides
    equipment = _created(api.post(Role.ADMIN, "/equipment", body))
    return api.qualify_equipment(equipment["id"]) if qualified else equipment


def _service(api: Api, equipment_id: int, in_service: bool):
    return api.call(
        Role.ADMIN, "PUT", f"/equipment/{equipment_id}/service", json={"in_service": in_service}
    )


def _counts(api: Api) -> dict[str, int]:
    db = api.db
    return {
        "vessels": db.execute(select(func.count()).select_from(Vessel)).scalar_one(),
        "steps": db.execute(select(func.count()).select_from(Step)).scalar_one(),
        "audit": db.execute(select(func.count()).select_from(AuditEvent)).scalar_one(),
    }


def _batch(api: Api, batch_id: int) -> dict[str, Any]:
    response = api.get(Role.TECHNICIAN, f"/batches/{batch_id}")
    assert response.status_code == 200, response.text
    return response.json()


def _codes(step: dict[str, Any]) -> list[str]:
    return [o["code"] for o in step["outputs"]]


@pytest.fixture
def lenient_api(db, settings, session_factory):
    """An API driver whose client answers a server error with its 500 instead of raising."""
    app = create_app(settings, session_factory)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, db, settings)


# -- the catalogue ---------------------------------------------------------------------------------


def test_admin_builds_the_catalogue_and_technicians_read_it(api):
    """DESIGN §5: materials, lots with expiry, equipment with an id."""
    material = _material(api, code="PL-STD", name="Platelet lysate", category="platelet_lysate")
    assert material["code"] == "PL-STD" and material["category"] == "platelet_lysate"
    expiry = datetime.now(UTC) + timedelta(days=90)
    lot = _lot(api, material["id"], lot_number="PL2401", supplier="Lysa AG", expires_at=iso(expiry))
    assert lot["material_id"] == material["id"] and lot["material_code"] == "PL-STD"
    assert lot["lot_number"] == "PL2401" and lot["supplier"] == "Lysa AG"
    assert lot["expired"] is False
    equipment = _equipment(api, code="BSC-2", name="Class II cabinet", kind="biosafety_cabinet")
    assert equipment["in_service"] is True and equipment["kind"] == "biosafety_cabinet"

    materials = api.get(Role.TECHNICIAN, "/materials")
    assert materials.status_code == 200
    assert material in materials.json()
    lots = api.get(Role.TECHNICIAN, "/lots").json()
    assert [x["id"] for x in lots].count(lot["id"]) == 1
    listed = next(x for x in lots if x["id"] == lot["id"])
    stored = datetime.fromisoformat(listed["expires_at"].replace("Z", "+00:00"))
    assert abs(stored - expiry) < timedelta(seconds=1)
    assert equipment in api.get(Role.TECHNICIAN, "/equipment").json()
    assert api.get(Role.QA, "/equipment").status_code == 200


def test_an_expired_lot_is_shown_expired(api):
    """DESIGN §5: lots carry their expiry."""
    lot = _lot(api, expires_at=ago(days=1))
    assert lot["expired"] is True
    listed = next(x for x in api.get(Role.TECHNICIAN, "/lots").json() if x["id"] == lot["id"])
    assert listed["expired"] is True


def test_only_admins_manage_the_catalogue(api):
    """DESIGN §5 / permissions: CATALOGUE_MANAGE is the admin's; reading is the lab's."""
    material = _material(api)
    equipment = _equipment(api)
    bodies = {
        "/materials": {"code": unique("M"), "name": "x", "category": "enzyme"},
        "/lots": {
            "material_id": material["id"],
            "lot_number": unique("L"),
            "supplier": "x",
            "expires_at": _in(days=3),
        },
        "/equipment": {"code": unique("E"), "name": "x", "kind": "freezer"},
    }
    for role in (Role.TECHNICIAN, Role.QA, Role.CLINICIAN):
        for path, body in bodies.items():
            assert api.post(role, path, body).status_code == 403, (role, path)
        put = api.call(role, "PUT", f"/equipment/{equipment['id']}/service", json={"in_service": 0})
        assert put.status_code == 403
    for path, body in bodies.items():
        assert api.post(None, path, body).status_code == 401
        assert api.get(None, path).status_code == 401
        assert api.get(Role.CLINICIAN, path).status_code == 403
    assert next(
        e for e in api.get(Role.TECHNICIAN, "/equipment").json() if e["id"] == equipment["id"]
    )["in_service"]


def test_duplicate_catalogue_codes_are_409(api):
    """DESIGN §5: a material code, a lot number of a material, an equipment id are unique."""
    material = _material(api, code="TRYPLE")
    detail = _error(
        api.post(
            Role.ADMIN, "/materials", {"code": "TRYPLE", "name": "Other", "category": "enzyme"}
        ),
        409,
        "duplicate_code",
    )
    assert "TRYPLE" in detail
    _lot(api, material["id"], lot_number="A1")
    again = {
        "material_id": material["id"],
        "lot_number": "A1",
        "supplier": "Other",
        "expires_at": _in(days=9),
    }
    _error(api.post(Role.ADMIN, "/lots", again), 409, "duplicate_code")
    # The same lot number of another material is another lot.
    other = _material(api)
    _lot(api, other["id"], lot_number="A1")
    _equipment(api, code="FRZ-80")
    _error(
        api.post(Role.ADMIN, "/equipment", {"code": "FRZ-80", "name": "y", "kind": "freezer"}),
        409,
        "duplicate_code",
    )
    # A refused duplicate leaves a usable catalogue (the transaction was rolled back cleanly).
    assert [m["code"] for m in api.get(Role.TECHNICIAN, "/materials").json()].count("TRYPLE") == 1


def test_catalogue_input_is_validated(api):
    material = _material(api)
    bad_material = [
        {"code": "has space", "name": "x", "category": "medium"},
        {"code": "OK1", "name": "x", "category": "snake_oil"},
        {"code": "OK2", "name": "", "category": "medium"},
        {"code": "OK3", "name": "x", "category": "medium", "id": 5},
    ]
    for body in bad_material:
        assert api.post(Role.ADMIN, "/materials", body).status_code == 422, body
    naive = {
        "material_id": material["id"],
        "lot_number": "N1",
        "supplier": "x",
        "expires_at": "2030-01-01T00:00:00",
    }
    assert api.post(Role.ADMIN, "/lots", naive).status_code == 422
    unknown = naive | {"expires_at": _in(days=3), "material_id": 987_654}
    _error(api.post(Role.ADMIN, "/lots", unknown), 404, "not_found")
    bad_kind = {"code": "E1", "name": "x", "kind": "toaster"}
    assert api.post(Role.ADMIN, "/equipment", bad_kind).status_code == 422
    _error(_service(api, 987_654, False), 404, "not_found")


def test_aud1_catalogue_changes_are_audited(api):
    material = _material(api)
    lot = _lot(api, material["id"])
    equipment = _equipment(api)
    assert _service(api, equipment["id"], False).status_code == 200
    response = api.get(Role.QA, "/audit")
    assert response.status_code == 200, response.text
    events = response.json()

    def event(action: str, entity_id: int) -> dict[str, Any]:
        found = [e for e in events if e["action"] == action and e["entity_id"] == entity_id]
        assert len(found) == 1, (action, entity_id, found)
        return found[0]

    created = event("material.created", material["id"])
    assert created["entity_type"] == "material"
    assert created["new_values"]["code"] == material["code"]
    assert created["actor_id"] is not None
    assert event("material_lot.created", lot["id"])["new_values"]["lot_number"] == lot["lot_number"]
    assert event("equipment.created", equipment["id"])["new_values"]["code"] == equipment["code"]
    changed = event("equipment.service_changed", equipment["id"])
    assert changed["old_values"] == {"in_service": True}
    assert changed["new_values"] == {"in_service": False}
    # The catalogue holds no patient data: it is on the global chain, visible to an admin too.
    admin_view = api.get(Role.ADMIN, "/audit").json()
    assert any(
        e["action"] == "material.created" and e["entity_id"] == material["id"] for e in admin_view
    )
    # A refused duplicate writes no audit event.
    before = _counts(api)["audit"]
    body = {"code": material["code"], "name": "x", "category": "medium"}
    _error(api.post(Role.ADMIN, "/materials", body), 409, "duplicate_code")
    assert _counts(api)["audit"] == before


# -- steps using lots and equipment ----------------------------------------------------------------


def test_a_step_lists_its_lots_and_equipment(api):
    """Issue 3 §4: steps name the lots and equipment used."""
    enzyme = _material(api, name="Collagenase NB4", category="enzyme")
    medium = _material(api, name="DMEM/F-12")
    enzyme_lot = _lot(api, enzyme["id"])
    medium_lot = _lot(api, medium["id"])
    cabinet = _equipment(api, kind="biosafety_cabinet", name="BSC 1")
    incubator = _equipment(api)
    batch = api.batch()
    step = _created(
        api.step(
            batch["id"],
            "isolation",
            [batch["tube_code"]],
            ["flask"],
            materials=[{"lot_id": enzyme_lot["id"], "quantity": "2 ml"}, medium_lot["id"]],
            equipment=[cabinet["id"], {"equipment_id": incubator["id"]}],
        )
    )
    lots = {m["lot_id"]: m for m in step["materials"]}
    assert set(lots) == {enzyme_lot["id"], medium_lot["id"]}
    assert lots[enzyme_lot["id"]]["lot_number"] == enzyme_lot["lot_number"]
    assert lots[enzyme_lot["id"]]["material_code"] == enzyme["code"]
    assert lots[enzyme_lot["id"]]["material"] == "Collagenase NB4"
    assert lots[enzyme_lot["id"]]["quantity"] == "2 ml"
    assert lots[medium_lot["id"]]["quantity"] is None
    used = {e["equipment_id"]: e for e in step["equipment"]}
    assert set(used) == {cabinet["id"], incubator["id"]}
    assert used[cabinet["id"]]["code"] == cabinet["code"]
    assert used[cabinet["id"]]["name"] == "BSC 1"
    # The batch record reads them back.
    record = api.get(Role.QA, f"/batches/{batch['id']}/record")
    assert record.status_code == 200, record.text
    assert enzyme_lot["lot_number"] in record.text and cabinet["code"] in record.text


def test_the_same_lot_named_twice_is_not_a_server_error(lenient_api):
    """Issue 3 §4: a lot listed twice is refused as a bad request or recorded once; never a 500."""
    api = lenient_api
    lot = _lot(api)
    batch = api.batch()
    response = api.step(
        batch["id"],
        "isolation",
        [batch["tube_code"]],
        ["flask"],
        materials=[lot["id"], {"lot_id": lot["id"], "quantity": "1 ml"}],
    )
    assert response.status_code in (201, 422), response.text
    if response.status_code == 201:
        assert [m["lot_id"] for m in response.json()["materials"]] == [lot["id"]]


def test_the_same_equipment_named_twice_is_recorded_once(api):
    incubator = _equipment(api)
    batch = api.batch()
    response = api.step(
        batch["id"],
        "isolation",
        [batch["tube_code"]],
        ["flask"],
        equipment=[incubator["id"], {"equipment_id": incubator["id"]}],
    )
    assert response.status_code in (201, 422), response.text
    if response.status_code == 201:
        assert [e["equipment_id"] for e in response.json()["equipment"]] == [incubator["id"]]


def test_a_step_refuses_an_expired_lot_and_writes_nothing(api):
    """DESIGN §5: a step may not use an expired lot."""
    good = _lot(api)
    expired = _lot(api, expires_at=ago(hours=2))
    batch = api.batch()
    before = _counts(api)
    response = api.step(
        batch["id"],
        "isolation",
        [batch["tube_code"]],
        ["flask"],
        materials=[good["id"], expired["id"]],
    )
    detail = _error(response, 409, "expired_lot")
    assert expired["lot_number"] in detail
    assert _counts(api) == before
    after = _batch(api, batch["id"])
    assert after["status"] == "registered"
    assert [v["status"] for v in after["vessels"]] == ["active"]
    # Without the expired lot the same step goes through.
    ok = api.step(batch["id"], "isolation", [batch["tube_code"]], ["flask"], materials=[good["id"]])
    assert ok.status_code == 201, ok.text


def test_a_step_refuses_an_unknown_lot_or_equipment(api):
    batch = api.batch()
    before = _counts(api)
    tube = [batch["tube_code"]]
    _error(
        api.step(batch["id"], "isolation", tube, ["flask"], materials=[987_654]), 404, "not_found"
    )
    _error(
        api.step(batch["id"], "isolation", tube, ["flask"], equipment=[987_654]), 404, "not_found"
    )
    assert _counts(api) == before


def test_out_of_service_equipment_is_refused_until_back_in_service(api):
    """Issue 3 §4: out-of-service equipment is refused with a clear error."""
    incubator = _equipment(api, name="Incubator 7")
    out = _service(api, incubator["id"], False)
    assert out.status_code == 200 and out.json()["in_service"] is False
    listed = next(
        e for e in api.get(Role.TECHNICIAN, "/equipment").json() if e["id"] == out.json()["id"]
    )
    assert listed["in_service"] is False
    batch = api.batch()
    before = _counts(api)
    response = api.step(
        batch["id"], "isolation", [batch["tube_code"]], ["flask"], equipment=[incubator["id"]]
    )
    detail = _error(response, 409, "equipment_out_of_service")
    assert incubator["code"] in detail
    assert _counts(api) == before
    assert _batch(api, batch["id"])["status"] == "registered"

    assert _service(api, incubator["id"], True).json()["in_service"] is True
    step = _created(
        api.step(
            batch["id"], "isolation", [batch["tube_code"]], ["flask"], equipment=[incubator["id"]]
        )
    )
    assert [e["equipment_id"] for e in step["equipment"]] == [incubator["id"]]


# -- COI-7: recall from a lot ----------------------------------------------------------------------


def test_coi7_lot_recall_finds_the_batch_steps_vessels_and_doses_made_with_it(api):
    serum_lot = _lot(api, _material(api, category="serum")["id"])
    other_lot = _lot(api)
    # Batch A: isolation (other lot), passage with the recalled lot, harvest, formulation.
    batch = api.batch()
    iso_step = _created(
        api.step(
            batch["id"],
            "isolation",
            [batch["tube_code"]],
            ["flask"],
            materials=[other_lot["id"]],
        )
    )
    (seed_flask,) = _codes(iso_step)
    passage = _created(
        api.step(
            batch["id"],
            "passage",
            [seed_flask],
            ["flask", "flask"],
            materials=[{"lot_id": serum_lot["id"], "quantity": "50 ml"}],
        )
    )
    fed = _codes(passage)
    harvest = _created(api.step(batch["id"], "harvest", fed, ["tube"]))
    (tube,) = _codes(harvest)
    formulation = _created(api.step(batch["id"], "formulation", [tube], [api.dose(), api.dose()]))
    doses = _codes(formulation)
    # Batch B, another patient's, never saw the recalled lot.
    other = api.batch()
    other_flasks = _codes(
        _created(
            api.step(
                other["id"],
                "isolation",
                [other["tube_code"]],
                ["flask"],
                materials=[other_lot["id"]],
            )
        )
    )

    response = api.get(Role.QA, f"/lots/{serum_lot['id']}/recall")
    assert response.status_code == 200, response.text
    recall = response.json()
    assert recall["lot"]["id"] == serum_lot["id"]
    assert [b["id"] for b in recall["batches"]] == [batch["id"]]
    assert recall["batches"][0]["batch_number"] == batch["batch_number"]
    assert [s["id"] for s in recall["steps"]] == [passage["id"]]
    assert recall["steps"][0]["kind"] == "passage"
    assert recall["steps"][0]["batch_id"] == batch["id"]
    recalled = {v["code"] for v in recall["vessels"]}
    # What the passage took and made, and everything made from those since.
    assert {*fed, tube, *doses} <= recalled
    assert seed_flask in recalled
    assert {d["code"] for d in recall["doses"]} == set(doses)
    assert all(d["is_dose"] for d in recall["doses"])
    # Not the vessels of a batch that did not use the lot, nor what came before the lot's use.
    assert not recalled & {other["tube_code"], *other_flasks}
    assert batch["tube_code"] not in recalled
    assert {v["batch_id"] for v in recall["vessels"]} == {batch["id"]}

    # The other lot was used at both isolations: both batches, both steps, all their products.
    both = api.get(Role.TECHNICIAN, f"/lots/{other_lot['id']}/recall").json()
    assert {b["id"] for b in both["batches"]} == {batch["id"], other["id"]}
    assert len(both["steps"]) == 2 and iso_step["id"] in {s["id"] for s in both["steps"]}
    assert {seed_flask, *fed, tube, *doses, *other_flasks} <= {v["code"] for v in both["vessels"]}
    assert {d["code"] for d in both["doses"]} == set(doses)


def test_coi7_recall_of_an_unused_lot_is_empty(api):
    lot = _lot(api)
    recall = api.get(Role.TECHNICIAN, f"/lots/{lot['id']}/recall").json()
    assert recall["lot"]["id"] == lot["id"]
    assert recall["batches"] == recall["steps"] == recall["vessels"] == recall["doses"] == []


def test_coi7_recall_needs_batch_read_and_a_known_lot(api):
    lot = _lot(api)
    assert api.get(Role.ADMIN, f"/lots/{lot['id']}/recall").status_code == 403
    assert api.get(None, f"/lots/{lot['id']}/recall").status_code == 401
    _error(api.get(Role.QA, "/lots/987654/recall"), 404, "not_found")

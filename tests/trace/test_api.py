"""Traceability both ways through the HTTP API (COI-7, 21 CFR 1271.290; issue 3 §6-7): the vessel
tree of a batch, a vessel back to its patient, a patient forward to everything made from them,
the electronic batch record, and a fixed number of SQL round trips however large the tree."""

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import col

from app.auth.permissions import Role
from app.identity.codes import DIN, VesselCode
from app.trace import service as trace
from app.vessels import service as vessels
from app.vessels.models import Vessel
from app.vessels.repository import identity_by_code
from app.vessels.states import VesselKind
from tests.helpers import Api, iso, make_user, statements, unique

# -- helpers ---------------------------------------------------------------------------------------


def _ok(response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _created(response) -> dict[str, Any]:
    return _ok(response, 201)


def _error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code, body
    return body["detail"]


def _codes(step: dict[str, Any]) -> list[str]:
    return [o["code"] for o in step["outputs"]]


def _batch_vessels(api: Api, batch_id: int) -> dict[str, dict[str, Any]]:
    batch = _ok(api.get(Role.TECHNICIAN, f"/batches/{batch_id}"))
    return {v["code"]: v for v in batch["vessels"]}


def _lot(api: Api) -> dict[str, Any]:
    material = _created(
        api.post(
            Role.ADMIN,
            "/materials",
            {"code": unique("MED-"), "name": "DMEM/F-12 medium", "category": "medium"},
        )
    )
    body = {
        "material_id": material["id"],
        "lot_number": unique("LOT"),
        "supplier": "Acme Bio",
        "expires_at": iso(datetime.now(UTC) + timedelta(days=180)),
    }
    return api.release_lot(_created(api.post(Role.ADMIN, "/lots", body))["id"])  # SEC-5


def _equipment(api: Api) -> dict[str, Any]:
    body = {"code": unique("BSC-"), "name": "Biosafety cabinet 2", "kind": "biosafety_cabinet"}
    return api.qualify_equipment(_created(api.post(Role.ADMIN, "/equipment", body))["id"])


def _full_batch(api: Api, patient_id: int | None = None) -> dict[str, Any]:
    """A batch from biopsy to doses and a QC sample:

    tube -isolation-> f1, f2 -passage(f1, f2)-> p1, p2 -harvest(p1, p2)-> h
         -formulation(h)-> d1, d2 ; d1 -qc_sampling-> q
    """
    batch = api.batch(patient_id)
    bid = batch["id"]
    isolation = _created(
        api.step(
            bid,
            "isolation",
            [batch["tube_code"]],
            [{"kind": "flask", "seeded_cells": 1_000_000}] * 2,
            measurements={"method": "enzymatic"},
        )
    )
    f1, f2 = _codes(isolation)
    passage = _created(
        api.step(
            bid,
            "passage",
            [f1, f2],
            ["flask", "flask"],
            measurements={"viable_cells": 8_000_000, "viability_pct": 93.0},
        )
    )
    p1, p2 = _codes(passage)
    harvest = _created(
        api.step(bid, "harvest", [p1, p2], ["tube"], measurements={"total_cells": 9_000_000})
    )
    (h,) = _codes(harvest)
    formulation = _created(api.step(bid, "formulation", [h], [api.dose(), api.dose()]))
    d1, d2 = _codes(formulation)
    sampling = _created(api.step(bid, "qc_sampling", [d1], ["qc_sample"]))
    (q,) = _codes(sampling)
    return {
        "batch": batch,
        "tube": batch["tube_code"],
        "isolated": [f1, f2],
        "passaged": [p1, p2],
        "harvested": h,
        "doses": [d1, d2],
        "sample": q,
        "steps": {
            "isolation": isolation,
            "passage": passage,
            "harvest": harvest,
            "formulation": formulation,
            "qc_sampling": sampling,
        },
    }


# -- lineage ---------------------------------------------------------------------------------------


def test_coi7_lineage_shows_every_vessel_with_the_step_that_made_it_and_its_parent(api):
    made = _full_batch(api)
    other = _full_batch(api)
    bid = made["batch"]["id"]
    lineage = _ok(api.get(Role.QA, f"/batches/{bid}/lineage"))
    assert lineage["batch"]["id"] == bid
    assert lineage["batch"]["coi"] == made["batch"]["coi"]
    nodes = {v["code"]: v for v in lineage["vessels"]}
    # Every vessel of the batch, and no other batch's.
    assert set(nodes) == set(_batch_vessels(api, bid))
    assert len(nodes) == len(lineage["vessels"]) == 1 + 2 + 2 + 1 + 2 + 1
    assert not set(nodes) & set(_batch_vessels(api, other["batch"]["id"]))

    steps = made["steps"]
    tube = nodes[made["tube"]]
    assert tube["kind"] == "biopsy_tube" and tube["made_by"] is None
    assert tube["parent_code"] is None

    def made_by(code: str, kind: str, inputs: list[str], parent: str) -> None:
        node = nodes[code]
        assert node["made_by"] is not None, node
        assert node["made_by"]["kind"] == kind
        assert node["made_by"]["step_id"] == steps[kind]["id"]
        assert node["made_by"]["inputs"] == inputs
        assert node["made_by"]["performed_by"].startswith("technician-")
        assert node["made_by"]["performed_at"]
        assert node["parent_code"] == parent
        assert node["batch_id"] == bid

    for code in made["isolated"]:
        made_by(code, "isolation", [made["tube"]], made["tube"])
    for code in made["passaged"]:
        made_by(code, "passage", made["isolated"], made["isolated"][0])
    made_by(made["harvested"], "harvest", made["passaged"], made["passaged"][0])
    for code in made["doses"]:
        made_by(code, "formulation", [made["harvested"]], made["harvested"])
        assert nodes[code]["is_dose"] and nodes[code]["kind"] == "bag"
    made_by(made["sample"], "qc_sampling", [made["doses"][0]], made["doses"][0])
    assert nodes[made["sample"]]["kind"] == "qc_sample"
    # Statuses tell which vessels are used up.
    assert {nodes[c]["status"] for c in [made["tube"], *made["isolated"], *made["passaged"]]} == {
        "consumed"
    }
    assert nodes[made["doses"][0]]["status"] == "active"
    # The steps, oldest first.
    assert [s["kind"] for s in lineage["steps"]] == [
        "isolation",
        "passage",
        "harvest",
        "formulation",
        "qc_sampling",
    ]
    assert [s["id"] for s in lineage["steps"]] == [s["id"] for s in steps.values()]


def test_coi7_lineage_of_a_new_batch_is_its_biopsy_tube(api):
    batch = api.batch()
    lineage = _ok(api.get(Role.CLINICIAN, f"/batches/{batch['id']}/lineage"))
    assert [(v["code"], v["made_by"]) for v in lineage["vessels"]] == [(batch["tube_code"], None)]
    assert lineage["steps"] == []


def test_coi7_lineage_needs_batch_read_and_a_known_batch(api):
    batch = api.batch()
    _error(api.get(Role.ADMIN, f"/batches/{batch['id']}/lineage"), 403, "forbidden")
    assert api.get(None, f"/batches/{batch['id']}/lineage").status_code == 401
    _error(api.get(Role.TECHNICIAN, "/batches/987654/lineage"), 404, "not_found")


# -- vessel -> patient -----------------------------------------------------------------------------


def test_coi7_a_dose_traces_back_through_every_ancestor_to_the_biopsy_tube(api):
    patient = api.patient()
    made = _full_batch(api, patient["id"])
    other = _full_batch(api)
    dose = made["doses"][1]
    trace = _ok(api.get(Role.CLINICIAN, f"/vessels/{dose}/trace"))
    assert trace["vessel"]["code"] == dose and trace["vessel"]["is_dose"]
    ancestors = {v["code"]: v for v in trace["ancestors"]}
    # Every vessel the dose came from, through every input of every step (not only the first
    # input, which is the recorded parent), back to the biopsy tube.
    assert set(ancestors) == {
        made["tube"],
        *made["isolated"],
        *made["passaged"],
        made["harvested"],
    }
    assert ancestors[made["tube"]]["kind"] == "biopsy_tube"
    assert {v["batch_number"] for v in trace["ancestors"]} == {made["batch"]["batch_number"]}
    # Not its sibling, not the sample taken from the sibling, nothing of another batch.
    assert not set(ancestors) & {made["doses"][0], made["sample"], dose}
    assert not set(ancestors) & set(_batch_vessels(api, other["batch"]["id"]))
    # The identity it carries: the right patient, COI, DIN and batch.
    assert trace["coi"] == patient["coi"] == made["batch"]["coi"]
    assert trace["din"] == made["batch"]["din"]
    assert trace["patient"]["id"] == patient["id"]
    assert trace["patient"]["mrn"] == patient["mrn"]
    assert trace["patient"]["coi"] == patient["coi"]
    assert trace["batch"]["id"] == made["batch"]["id"]
    assert trace["batch"]["batch_number"] == made["batch"]["batch_number"]


def test_coi7_walks_follow_a_recorded_parent_as_well_as_the_inputs_of_a_step(api, db):
    """A vessel with a recorded parent and no producing step (none today but the biopsy tube's
    children could be) is still traced both ways: each walk follows both kinds of edge."""
    made = _full_batch(api)
    by_code = {
        v.code: v
        for v in db.execute(select(Vessel).where(Vessel.batch_id == made["batch"]["id"])).scalars()
    }
    flask = by_code[made["passaged"][1]]  # an input of the harvest, not its recorded parent
    found = identity_by_code(db, flask.code)
    assert found is not None
    technician = make_user(db, api.settings, roles=[Role.TECHNICIAN])
    split = vessels.create(
        db,
        actor=technician,
        biopsy=found.biopsy,
        coi=found.patient.coi,
        batch_id=flask.batch_id,
        kind=VesselKind.FLASK,
        parent=flask,
    )
    assert split.produced_by_step_id is None
    ancestry = {by_id.code for by_id in _vessels(db, trace.ancestors(db, split.id or 0))}
    assert ancestry == {made["tube"], *made["isolated"], flask.code}
    tube = by_code[made["tube"]]
    descent = {v.code for v in _vessels(db, trace.descendants_of(db, [tube.id or 0]))}
    assert descent == set(by_code) | {split.code}


def _vessels(db, ids: list[int]) -> list[Vessel]:
    return list(db.execute(select(Vessel).where(col(Vessel.id).in_(ids))).scalars())


def test_coi7_a_qc_sample_traces_back_through_the_dose_it_was_taken_from(api):
    made = _full_batch(api)
    trace = _ok(api.get(Role.QA, f"/vessels/{made['sample']}/trace"))
    assert {v["code"] for v in trace["ancestors"]} == {
        made["doses"][0],
        made["harvested"],
        *made["passaged"],
        *made["isolated"],
        made["tube"],
    }


def test_coi7_the_biopsy_tube_traces_to_its_patient_with_no_ancestors(api):
    patient = api.patient()
    biopsy = api.biopsy(patient["id"])
    # Before any batch exists, the tube still belongs to its patient.
    trace = _ok(api.get(Role.TECHNICIAN, f"/vessels/{biopsy['tube_code']}/trace"))
    assert trace["ancestors"] == []
    assert trace["batch"] is None
    assert trace["din"] == biopsy["din"]
    assert trace["coi"] == patient["coi"] and trace["patient"]["id"] == patient["id"]


def test_coi7_vessel_trace_refuses_bad_codes_and_unknown_vessels(api):
    made = _full_batch(api)
    dose = made["doses"][0]
    corrupt = dose[:-1] + ("0" if dose[-1] != "0" else "1")
    _error(api.get(Role.TECHNICIAN, f"/vessels/{corrupt}/trace"), 422, "invalid_code")
    unknown = VesselCode.build(DIN(made["batch"]["din"]), 9999).value
    _error(api.get(Role.TECHNICIAN, f"/vessels/{unknown}/trace"), 404, "not_found")
    _error(api.get(Role.ADMIN, f"/vessels/{dose}/trace"), 403, "forbidden")
    assert api.get(None, f"/vessels/{dose}/trace").status_code == 401


# -- patient -> everything -------------------------------------------------------------------------


def test_coi7_patient_trace_lists_everything_of_the_patient_and_nothing_of_another(api):
    patient = api.patient()
    made = _full_batch(api, patient["id"])
    second_biopsy = api.biopsy(patient["id"])  # collected, no batch yet
    stranger = api.patient(family_name="Bianchi")
    theirs = _full_batch(api, stranger["id"])

    trace = _ok(api.get(Role.CLINICIAN, f"/patients/{patient['id']}/trace"))
    assert trace["patient"] == {"id": patient["id"], "mrn": patient["mrn"], "coi": patient["coi"]}
    biopsies = {b["din"]: b for b in trace["biopsies"]}
    assert set(biopsies) == {made["batch"]["din"], second_biopsy["din"]}
    first = biopsies[made["batch"]["din"]]["batch"]
    assert first["id"] == made["batch"]["id"]
    assert first["batch_number"] == made["batch"]["batch_number"]
    assert first["status"] == "quarantine"
    assert biopsies[second_biopsy["din"]]["batch"] is None

    codes = {v["code"] for v in trace["vessels"]}
    assert codes == set(_batch_vessels(api, made["batch"]["id"])) | {second_biopsy["tube_code"]}
    assert {d["code"] for d in trace["doses"]} == set(made["doses"])
    assert all(d["is_dose"] for d in trace["doses"])
    assert not codes & set(_batch_vessels(api, theirs["batch"]["id"]))

    # And the other way round.
    other = _ok(api.get(Role.QA, f"/patients/{stranger['id']}/trace"))
    assert {b["din"] for b in other["biopsies"]} == {theirs["batch"]["din"]}
    assert {v["code"] for v in other["vessels"]} == set(_batch_vessels(api, theirs["batch"]["id"]))
    assert {d["code"] for d in other["doses"]} == set(theirs["doses"])
    assert not {v["code"] for v in other["vessels"]} & codes


def test_coi7_patient_trace_of_a_patient_with_nothing_yet_is_empty(api):
    patient = api.patient()
    trace = _ok(api.get(Role.TECHNICIAN, f"/patients/{patient['id']}/trace"))
    assert trace["patient"]["coi"] == patient["coi"]
    assert trace["biopsies"] == trace["vessels"] == trace["doses"] == []


def test_coi7_patient_trace_needs_patient_read_and_a_known_patient(api):
    patient = api.patient()
    _error(api.get(Role.ADMIN, f"/patients/{patient['id']}/trace"), 403, "forbidden")
    assert api.get(None, f"/patients/{patient['id']}/trace").status_code == 401
    _error(api.get(Role.QA, "/patients/987654/trace"), 404, "not_found")


# -- the electronic batch record -------------------------------------------------------------------


def test_coi7_batch_record_has_steps_lineage_custody_scans_and_culture_clocks(api):
    """Issue 3 §7: the document QA reads before release."""
    patient = api.patient()
    lot = _lot(api)
    cabinet = _equipment(api)
    batch = api.batch(patient["id"])
    bid = batch["id"]
    isolation = _created(
        api.step(
            bid,
            "isolation",
            [batch["tube_code"]],
            [{"kind": "flask", "seeded_cells": 1_000_000}],
            materials=[{"lot_id": lot["id"], "quantity": "10 ml"}],
            equipment=[cabinet["id"]],
            measurements={"method": "enzymatic", "tissue_mg": 150.5},
            note="Clean dissection",
        )
    )
    (flask,) = _codes(isolation)
    passage = _created(
        api.step(
            bid,
            "passage",
            [flask],
            ["flask", "flask"],
            measurements={"viable_cells": 4_000_000, "viability_pct": 95.0},
        )
    )
    passaged = _codes(passage)
    _created(
        api.post(
            Role.TECHNICIAN,
            f"/vessels/{passaged[0]}/custody",
            {"event": "moved", "location": "Incubator 3", "temperature_c": 37.0},
        )
    )
    _ok(api.post(Role.TECHNICIAN, "/scan", {"code": passaged[1], "expect": {"batch_id": bid}}))
    wrong = {"code": passaged[0], "expect": {"patient_id": patient["id"] + 100_000}}
    _error(api.post(Role.TECHNICIAN, "/scan", wrong), 409, "identity_mismatch")
    # Another batch's custody and scans stay in its own record.
    stranger, stranger_flasks = api.expanded_batch()
    _ok(api.post(Role.TECHNICIAN, "/scan", {"code": stranger_flasks[0]}))
    _created(
        api.post(
            Role.TECHNICIAN,
            f"/vessels/{stranger_flasks[0]}/custody",
            {"event": "moved", "location": "Incubator 9", "temperature_c": 37.0},
        )
    )

    record = _ok(api.get(Role.QA, f"/batches/{bid}/record"))
    assert record["batch"]["id"] == bid and record["batch"]["status"] == "expansion"
    assert record["patient"] == {"id": patient["id"], "coi": patient["coi"], "mrn": patient["mrn"]}
    assert record["biopsy"]["din"] == batch["din"]
    assert record["biopsy"]["received_at"] is not None
    assert record["biopsy"]["receipt_temperature_c"] == 4.5

    # The timeline of steps with who, when, measurements, lots and equipment.
    first, second = record["steps"]
    assert (first["id"], second["id"]) == (isolation["id"], passage["id"])
    assert first["kind"] == "isolation" and second["kind"] == "passage"
    assert first["performed_by"].startswith("technician-") and first["performed_at"]
    assert first["measurements"] == {"method": "enzymatic", "tissue_mg": 150.5}
    assert first["note"] == "Clean dissection"
    assert first["inputs"] == [batch["tube_code"]]
    assert [o["code"] for o in first["outputs"]] == [flask]
    assert [(m["lot_id"], m["quantity"]) for m in first["materials"]] == [(lot["id"], "10 ml")]
    assert first["materials"][0]["lot_number"] == lot["lot_number"]
    assert [e["equipment_id"] for e in first["equipment"]] == [cabinet["id"]]
    assert second["measurements"]["population_doublings"] == 2.0
    assert second["measurements"]["viability_pct"] == 95.0

    # The lineage tree.
    lineage = {v["code"]: v for v in record["lineage"]}
    assert set(lineage) == {batch["tube_code"], flask, *passaged}
    assert lineage[passaged[1]]["made_by"]["kind"] == "passage"
    assert lineage[passaged[1]]["parent_code"] == flask

    # Custody and scans of this batch's vessels only.
    assert [
        (c["vessel_code"], c["to_location"], c["temperature_c"]) for c in record["custody"]
    ] == [(passaged[0], "Incubator 3", 37.0)]
    assert record["custody"][0]["recorded_by"].startswith("technician-")
    scans = [(s["action"], s["entity_id"]) for s in record["scans"]]
    ids = {code: v["id"] for code, v in lineage.items()}
    assert scans == [
        ("scan.ok", ids[passaged[1]]),
        ("scan.identity_mismatch", ids[passaged[0]]),
    ]
    assert all(s["actor"].startswith("technician-") for s in record["scans"])
    assert stranger["batch_number"] != batch["batch_number"]

    # Culture clocks: passage, days in culture, cumulative population doublings.
    culture = record["culture"]
    assert culture["passage"] == 1
    assert culture["cumulative_population_doublings"] == 2.0
    assert culture["days_in_culture"] is not None and 0 <= culture["days_in_culture"] < 1
    assert culture["warnings"] == []
    assert record["deviations"] == []


def test_coi7_batch_record_needs_batch_read_and_a_known_batch(api):
    batch = api.batch()
    assert _ok(api.get(Role.CLINICIAN, f"/batches/{batch['id']}/record"))["steps"] == []
    _error(api.get(Role.ADMIN, f"/batches/{batch['id']}/record"), 403, "forbidden")
    _error(api.get(Role.QA, "/batches/987654/record"), 404, "not_found")


# -- a fixed number of SQL round trips -------------------------------------------------------------


def _grown_batch(
    api: Api, patient_id: int, *, width: int, rounds: int, doses: int
) -> dict[str, Any]:
    """A batch of `width` parallel flask lines passaged `rounds` times, harvested, formulated
    into `doses` doses, with a QC sample, custody moves and scans; every step uses one lot and
    one piece of equipment."""
    lot, cabinet = _lot(api), _equipment(api)
    used = {"materials": [{"lot_id": lot["id"]}], "equipment": [cabinet["id"]]}
    batch = api.batch(patient_id)
    bid = batch["id"]
    flasks = _codes(
        _created(api.step(bid, "isolation", [batch["tube_code"]], ["flask"] * width, **used))
    )
    for _ in range(rounds):
        flasks = [
            _codes(_created(api.step(bid, "passage", [flask], ["flask"], **used)))[0]
            for flask in flasks
        ]
    (tube,) = _codes(_created(api.step(bid, "harvest", flasks, ["tube"], **used)))
    made = _codes(_created(api.step(bid, "formulation", [tube], [api.dose()] * doses, **used)))
    _created(api.step(bid, "qc_sampling", [made[0]], ["qc_sample"], **used))
    for code in made:
        body = {"event": "moved", "location": "Quarantine fridge", "temperature_c": 4.0}
        _created(api.post(Role.TECHNICIAN, f"/vessels/{code}/custody", body))
        _ok(api.post(Role.TECHNICIAN, "/scan", {"code": code}))
    return {"batch": batch, "lot": lot, "doses": made}


def _count(api: Api, engine: Engine, path: str) -> tuple[int, dict[str, Any]]:
    """Statements sent during one GET of `path` (after an identical warm-up call, so the token's
    last-use touch, if due, falls outside the count)."""
    _ok(api.get(Role.QA, path))
    with statements(engine) as sent:
        body = _ok(api.get(Role.QA, path))
    return len(sent), body


def test_coi7_trace_queries_are_a_fixed_number_of_round_trips_however_large_the_tree(api, engine):
    """Issue 3 §6 / DESIGN §12: lineage, vessel trace, patient trace, lot recall (and the batch
    record built on them) are a fixed number of SQL statements: the same for a batch of a
    handful of vessels as for one many times larger."""
    small = _grown_batch(api, api.patient()["id"], width=1, rounds=1, doses=1)
    large_patient = api.patient()["id"]
    api.biopsy(large_patient)  # a second biopsy, not processed
    large = _grown_batch(api, large_patient, width=3, rounds=8, doses=4)

    counts: dict[str, tuple[int, int]] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for name, path, size_of in [
        ("lineage", "/batches/{batch}/lineage", lambda b: len(b["vessels"])),
        ("vessel trace", "/vessels/{dose}/trace", lambda b: len(b["ancestors"])),
        ("patient trace", "/patients/{patient}/trace", lambda b: len(b["vessels"])),
        ("lot recall", "/lots/{lot}/recall", lambda b: len(b["vessels"])),
        ("batch record", "/batches/{batch}/record", lambda b: len(b["steps"])),
    ]:
        measured = []
        for grown in (small, large):
            where = {
                "batch": grown["batch"]["id"],
                "dose": grown["doses"][-1],
                "patient": grown["batch"]["patient_id"],
                "lot": grown["lot"]["id"],
            }
            measured.append(_count(api, engine, path.format(**where)))
        counts[name] = (measured[0][0], measured[1][0])
        sizes[name] = (size_of(measured[0][1]), size_of(measured[1][1]))

    # The large tree really is several times larger in every answer...
    for name, (small_size, large_size) in sizes.items():
        assert small_size >= 1 and large_size >= 4 * small_size, (name, sizes)
    # ...and costs exactly as many statements.
    assert {name: c[0] for name, c in counts.items()} == {name: c[1] for name, c in counts.items()}
    assert all(c[0] > 0 for c in counts.values()), counts

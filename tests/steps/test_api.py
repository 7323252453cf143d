"""Process steps through the HTTP API (issue 3): every kind of step, identity rules (COI-2, COI-3),
the batch and vessel lifecycles (DESIGN §4) and the culture clocks."""

import math
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlmodel import col

from app.audit.models import AuditEvent
from app.auth.permissions import Role
from app.batches.models import Batch
from app.gmp_settings.groups import Group
from app.identity.codes import DIN, VesselCode
from app.main import create_app
from app.steps.models import Step
from app.vessels.models import Vessel
from tests.helpers import Api, ago, approve_gmp_settings, audit_events, iso

# -- helpers ---------------------------------------------------------------------------------------


def _ok(response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return response.json()


def _codes(step: dict[str, Any]) -> list[str]:
    return [o["code"] for o in step["outputs"]]


def _error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code, body
    return body["detail"]


def _batch(api: Api, batch_id: int) -> dict[str, Any]:
    response = api.get(Role.TECHNICIAN, f"/batches/{batch_id}")
    assert response.status_code == 200, response.text
    return response.json()


def _vessels(api: Api, batch_id: int) -> dict[str, dict[str, Any]]:
    return {v["code"]: v for v in _batch(api, batch_id)["vessels"]}


def _counts(api: Api) -> dict[str, int]:
    """Rows that a refused step must not add."""
    db = api.db
    return {
        "vessels": db.execute(select(func.count()).select_from(Vessel)).scalar_one(),
        "steps": db.execute(select(func.count()).select_from(Step)).scalar_one(),
        "audit": db.execute(select(func.count()).select_from(AuditEvent)).scalar_one(),
    }


def _isolated(api: Api, flasks: int = 1, **spec: Any) -> tuple[dict[str, Any], list[str]]:
    """A batch in isolation: (batch, active flask codes)."""
    batch = api.batch()
    outputs = [{"kind": "flask"} | spec for _ in range(flasks)]
    step = _ok(api.step(batch["id"], "isolation", [batch["tube_code"]], outputs))
    return batch, _codes(step)


def _harvested(api: Api) -> tuple[dict[str, Any], str]:
    """A batch harvested into one tube: (batch, tube code)."""
    batch, flasks = api.expanded_batch()
    step = _ok(api.step(batch["id"], "harvest", flasks, ["tube"]))
    return batch, _codes(step)[0]


def _unknown_code(din: str) -> str:
    """A well-formed vessel code (right check character) that no vessel has."""
    return VesselCode.build(DIN(din), 9999).value


def _corrupt(code: str) -> str:
    """The code with a wrong check character."""
    return code[:-1] + ("0" if code[-1] != "0" else "1")


@pytest.fixture
def api_with(db, settings, session_factory) -> Iterator[Callable[..., Api]]:
    """Builds an API driver on a fresh app whose settings differ from the shared ones."""
    with ExitStack() as stack:

        def make(raise_server_exceptions: bool = True, **changes: Any) -> Api:
            changed = settings.model_copy(update=changes)
            app = create_app(changed, session_factory)
            client = TestClient(app, raise_server_exceptions=raise_server_exceptions)
            return Api(stack.enter_context(client), db, changed)

        yield make


# -- every kind of step ----------------------------------------------------------------------------


def test_isolation_turns_the_biopsy_tube_into_flasks_and_starts_the_batch(api):
    """DESIGN §4: the first isolation moves the batch to `isolation` and consumes the tube."""
    batch = api.batch()
    assert batch["status"] == "registered"
    step = _ok(
        api.step(
            batch["id"],
            "isolation",
            [batch["tube_code"]],
            ["flask", "flask"],
            measurements={"method": "enzymatic", "tissue_mg": 150.5},
        )
    )
    assert step["kind"] == "isolation" and step["batch_id"] == batch["id"]
    assert step["inputs"] == [batch["tube_code"]]
    assert step["measurements"] == {"method": "enzymatic", "tissue_mg": 150.5}
    assert step["warnings"] == []
    assert len(step["outputs"]) == 2
    for output in step["outputs"]:
        assert output["kind"] == "flask" and output["status"] == "active"
        assert output["passage"] == 0 and output["parent_code"] == batch["tube_code"]
        assert output["produced_by_step_id"] == step["id"] and not output["is_dose"]
    after = _batch(api, batch["id"])
    assert after["status"] == "isolation"
    vessels = {v["code"]: v for v in after["vessels"]}
    assert vessels[batch["tube_code"]]["status"] == "consumed"
    assert {vessels[c]["status"] for c in _codes(step)} == {"active"}


def test_a_second_isolation_keeps_the_batch_in_isolation(api):
    """DESIGN §4: only the first isolation moves the batch; isolation needs the biopsy tube."""
    batch, flasks = _isolated(api)
    again = api.step(batch["id"], "isolation", [flasks[0]], ["flask"])
    assert again.status_code == 422, again.text  # a flask is not a biopsy tube
    assert _batch(api, batch["id"])["status"] == "isolation"


def test_passage_makes_flasks_at_the_next_passage_and_moves_the_batch_to_expansion(api):
    """DESIGN §4 / issue 3 §8: passage + 1, batch -> expansion, population doublings computed."""
    batch, flasks = _isolated(api, seeded_cells=1_000_000)
    step = _ok(
        api.step(
            batch["id"],
            "passage",
            flasks,
            [{"kind": "flask", "seeded_cells": 500_000}] * 3,
            measurements={"viable_cells": 8_000_000, "viability_pct": 94.5},
        )
    )
    assert [o["passage"] for o in step["outputs"]] == [1, 1, 1]
    assert step["measurements"]["population_doublings"] == pytest.approx(3.0)
    assert step["measurements"]["viable_cells"] == 8_000_000
    after = _batch(api, batch["id"])
    assert after["status"] == "expansion"
    vessels = {v["code"]: v for v in after["vessels"]}
    assert vessels[flasks[0]]["status"] == "consumed"

    # The next passage counts from the seeded cells recorded on those outputs (3 x 500 000).
    again = _ok(
        api.step(
            batch["id"],
            "passage",
            _codes(step),
            ["flask"],
            measurements={"viable_cells": 10_000_000},
        )
    )
    assert again["outputs"][0]["passage"] == 2
    expected = round(math.log2(10_000_000 / 1_500_000), 3)
    assert again["measurements"]["population_doublings"] == pytest.approx(expected)
    assert _batch(api, batch["id"])["status"] == "expansion"


def test_passage_without_seeding_records_no_population_doublings(api):
    """Issue 3 §1: doublings are computed from counts, never invented when a count is missing."""
    batch, flasks = _isolated(api)  # no seeded_cells recorded
    step = _ok(
        api.step(batch["id"], "passage", flasks, ["flask"], measurements={"viable_cells": 10**6})
    )
    assert "population_doublings" not in step["measurements"]


def test_harvest_pools_flasks_into_one_tube(api):
    """DESIGN §4: harvest -> `harvested`; every input flask consumed."""
    batch, flasks = api.expanded_batch()
    step = _ok(
        api.step(
            batch["id"],
            "harvest",
            flasks,
            ["tube"],
            measurements={"total_cells": 2_000_000_000, "viable_cells": 1_900_000_000},
        )
    )
    (tube,) = step["outputs"]
    assert tube["kind"] == "tube" and tube["status"] == "active"
    assert sorted(step["inputs"]) == sorted(flasks)
    after = _batch(api, batch["id"])
    assert after["status"] == "harvested"
    vessels = {v["code"]: v for v in after["vessels"]}
    assert all(vessels[code]["status"] == "consumed" for code in flasks)


def test_harvest_makes_exactly_one_tube(api):
    """Issue 3 §1: flasks -> a tube; two tubes or a flask is a malformed request."""
    batch, flasks = api.expanded_batch()
    _error(api.step(batch["id"], "harvest", flasks, ["tube", "tube"]), 422, "invalid_request")
    _error(api.step(batch["id"], "harvest", flasks, ["flask"]), 422, "invalid_request")
    assert _batch(api, batch["id"])["status"] == "expansion"


def test_cryopreservation_freezes_its_outputs_and_thaw_keeps_the_vessel(api):
    """DESIGN §4: active -> frozen (cryopreservation) -> thawed (thaw, same vessel) -> consumed."""
    batch, tube = _harvested(api)
    frozen = _ok(
        api.step(
            batch["id"],
            "cryopreservation",
            [tube],
            ["cryovial", "cryovial", "bag"],
            measurements={"freezing_profile": "CRF-1C-per-min", "dmso_pct": 10},
        )
    )
    assert [o["status"] for o in frozen["outputs"]] == ["frozen"] * 3
    assert [o["kind"] for o in frozen["outputs"]] == ["cryovial", "cryovial", "bag"]
    vial, other, _ = _codes(frozen)
    assert _vessels(api, batch["id"])[tube]["status"] == "consumed"
    assert _batch(api, batch["id"])["status"] == "harvested"  # freezing does not move the batch

    # A frozen vessel cannot be used before it is thawed.
    detail = _error(
        api.step(batch["id"], "formulation", [vial], [api.dose()]), 409, "invalid_state"
    )
    assert "frozen" in detail

    thawed = _ok(
        api.step(batch["id"], "thaw", [vial], [], measurements={"post_thaw_viability_pct": 88.0})
    )
    assert thawed["outputs"] == [] and thawed["inputs"] == [vial]
    vessels = _vessels(api, batch["id"])
    assert vessels[vial]["status"] == "thawed"
    assert vessels[other]["status"] == "frozen"

    # Thawing twice is refused; the thawed vial is usable.
    _error(api.step(batch["id"], "thaw", [vial]), 409, "invalid_state")
    doses = _ok(api.step(batch["id"], "formulation", [vial], [api.dose()]))
    assert doses["outputs"][0]["is_dose"]
    assert _vessels(api, batch["id"])[vial]["status"] == "consumed"


def test_thaw_makes_no_outputs_and_needs_a_frozen_vessel(api):
    """Issue 3 §1: a thaw step records the thawing of a vessel; it creates none."""
    batch, tube = _harvested(api)
    (vial,) = _codes(_ok(api.step(batch["id"], "cryopreservation", [tube], ["cryovial"])))
    _error(api.step(batch["id"], "thaw", [vial], ["cryovial"]), 422, "invalid_request")
    assert _vessels(api, batch["id"])[vial]["status"] == "frozen"


def test_formulation_makes_doses_and_moves_the_batch_to_quarantine(api):
    """DESIGN §4: formulation -> `quarantine`; its bags are doses with count, volume and expiry."""
    batch, tube = _harvested(api)
    expires = datetime.now(UTC) + timedelta(days=2)
    step = _ok(
        api.step(
            batch["id"],
            "formulation",
            [tube],
            [
                api.dose(cell_count=120_000_000, volume_ml=40.0, expires_at=iso(expires)),
                api.dose(cell_count=80_000_000, volume_ml=25.5, expires_at=iso(expires)),
            ],
        )
    )
    first, second = step["outputs"]
    assert first["kind"] == second["kind"] == "bag"
    assert first["is_dose"] and second["is_dose"]
    assert (first["cell_count"], first["volume_ml"]) == (120_000_000, 40.0)
    assert (second["cell_count"], second["volume_ml"]) == (80_000_000, 25.5)
    stored = datetime.fromisoformat(first["expires_at"].replace("Z", "+00:00"))
    assert abs(stored - expires) < timedelta(seconds=1)
    after = _batch(api, batch["id"])
    assert after["status"] == "quarantine"
    vessels = {v["code"]: v for v in after["vessels"]}
    assert vessels[tube]["status"] == "consumed"
    assert all(vessels[code]["is_dose"] for code in _codes(step))


@pytest.mark.parametrize("missing", ["cell_count", "volume_ml", "expires_at"])
def test_a_dose_bag_needs_count_volume_and_expiry(api, missing):
    """Issue 3 §1: formulation outputs dose bags with `cell_count`, `volume_ml`, `expires_at`."""
    batch, tube = _harvested(api)
    before = _counts(api)
    dose = api.dose()
    del dose[missing]
    detail = _error(api.step(batch["id"], "formulation", [tube], [dose]), 422, "invalid_request")
    assert missing in detail
    assert _counts(api) == before
    assert _batch(api, batch["id"])["status"] == "harvested"


def test_a_dose_cannot_be_made_already_expired_or_as_a_flask(api):
    """Issue 3 §1: a dose is a bag, and it must not be born expired."""
    batch, tube = _harvested(api)
    expired = api.dose(expires_at=ago(hours=1))
    _error(api.step(batch["id"], "formulation", [tube], [expired]), 422, "invalid_request")
    flask = api.dose(kind="flask")
    _error(api.step(batch["id"], "formulation", [tube], [flask]), 422, "invalid_request")
    assert _vessels(api, batch["id"])[tube]["status"] == "active"


def test_qc_sampling_leaves_its_input_active_and_records_qc_samples(api):
    """Issue 3 §1: QC sample vessels; the sampled vessel stays in use."""
    batch, flasks = api.expanded_batch()
    step = _ok(api.step(batch["id"], "qc_sampling", [flasks[0]], ["tube", "cryovial"]))
    assert [o["kind"] for o in step["outputs"]] == ["qc_sample", "qc_sample"]
    assert all(o["status"] == "active" for o in step["outputs"])
    assert all(o["parent_code"] == flasks[0] for o in step["outputs"])
    vessels = _vessels(api, batch["id"])
    assert vessels[flasks[0]]["status"] == "active"
    for code in _codes(step):
        assert vessels[code]["kind"] == "qc_sample"
    assert _batch(api, batch["id"])["status"] == "expansion"
    # The sampled flask is still usable.
    _ok(api.step(batch["id"], "passage", [flasks[0]], ["flask"]))


def test_qc_sampling_is_not_allowed_before_isolation(api):
    """DESIGN §4: there is nothing to sample while the batch is only registered."""
    batch = api.batch()
    detail = _error(
        api.step(batch["id"], "qc_sampling", [batch["tube_code"]], ["tube"]), 409, "invalid_state"
    )
    assert "registered" in detail


def test_discard_needs_a_reason_and_discards_its_inputs(api):
    """DESIGN §4: active -> discarded, with a reason."""
    batch, flasks = api.expanded_batch()
    before = _counts(api)
    detail = _error(api.step(batch["id"], "discard", [flasks[0]]), 422, "invalid_request")
    assert "reason" in detail
    assert _counts(api) == before
    assert _vessels(api, batch["id"])[flasks[0]]["status"] == "active"

    step = _ok(api.step(batch["id"], "discard", [flasks[0]], reason="Contamination seen"))
    assert step["reason"] == "Contamination seen" and step["outputs"] == []
    vessels = _vessels(api, batch["id"])
    assert vessels[flasks[0]]["status"] == "discarded"
    assert vessels[flasks[1]]["status"] == "active"
    assert _batch(api, batch["id"])["status"] == "expansion"


def test_discard_makes_no_outputs_and_takes_frozen_vessels(api):
    """DESIGN §4: a frozen vessel can be discarded; a discard creates nothing."""
    batch, tube = _harvested(api)
    (vial,) = _codes(_ok(api.step(batch["id"], "cryopreservation", [tube], ["cryovial"])))
    _error(api.step(batch["id"], "discard", [vial], ["tube"], reason="x"), 422, "invalid_request")
    _ok(api.step(batch["id"], "discard", [vial], reason="Freezer excursion"))
    assert _vessels(api, batch["id"])[vial]["status"] == "discarded"


def test_step_is_audited_in_the_patient_chain(api):
    """AUD-1: a recorded step and the vessels it made are in the batch's patient chain."""
    batch, flasks = _isolated(api)
    events = audit_events(api.db, "step.recorded")
    assert events, "no step.recorded event"
    event = events[-1]
    assert event.scope == batch["coi"]
    assert event.entity_type == "step"
    created = [e for e in audit_events(api.db, "vessel.created") if flasks[0] in e.new_values]
    assert len(created) == 1 and created[0].scope == batch["coi"]


def test_only_technicians_record_steps(api):
    """DESIGN §4: steps are recorded by the lab (STEP_RECORD)."""
    batch = api.batch()
    body = {"kind": "isolation", "inputs": [batch["tube_code"]], "outputs": [{"kind": "flask"}]}
    for role in (Role.QA, Role.CLINICIAN, Role.ADMIN):
        assert api.post(role, f"/batches/{batch['id']}/steps", body).status_code == 403
    assert api.post(None, f"/batches/{batch['id']}/steps", body).status_code == 401
    assert _batch(api, batch["id"])["status"] == "registered"


def test_a_step_on_an_unknown_batch_is_404(api):
    batch = api.batch()
    response = api.step(987_654, "isolation", [batch["tube_code"]], ["flask"])
    _error(response, 404, "not_found")


def test_a_step_cannot_be_dated_in_the_future(api):
    batch = api.batch()
    future = iso(datetime.now(UTC) + timedelta(days=1))
    response = api.step(
        batch["id"], "isolation", [batch["tube_code"]], ["flask"], performed_at=future
    )
    _error(response, 422, "invalid_request")


# -- COI-2: identity comes from the batch ----------------------------------------------------------


def test_coi2_outputs_carry_the_batch_din_and_batch(api):
    patient = api.patient()
    batch, flasks = api.expanded_batch(patient["id"])
    for code in flasks:
        assert code.startswith(batch["din"])
    harvest = _ok(api.step(batch["id"], "harvest", flasks, ["tube"]))
    (tube,) = _codes(harvest)
    assert tube.startswith(batch["din"])
    assert harvest["outputs"][0]["batch_id"] == batch["id"]
    doses = _ok(api.step(batch["id"], "formulation", [tube], [api.dose(), api.dose()]))
    for output in doses["outputs"]:
        assert output["code"].startswith(batch["din"]) and output["batch_id"] == batch["id"]
    # From any output back to the patient (COI-7 view of the same derivation).
    trace = api.get(Role.TECHNICIAN, f"/vessels/{doses['outputs'][0]['code']}/trace")
    assert trace.status_code == 200, trace.text
    assert trace.json()["coi"] == patient["coi"] == batch["coi"]
    assert trace.json()["patient"]["id"] == patient["id"]


def test_coi2_output_codes_are_distinct_and_valid(api):
    _, flasks = _isolated(api, flasks=5)
    assert len(set(flasks)) == 5
    for code in flasks:
        assert len(code) == 18
        assert VesselCode.build(DIN(code[:13]), int(code[13:17])).value == code


@pytest.mark.parametrize(
    "extra",
    [
        {"coi": "CHA999926000001X"},
        {"batch_id": 1},
        {"code": "A99992600000100011"},
        {"din": "A999926000001"},
        {"patient_id": 1},
    ],
)
def test_coi2_outputs_refuse_identity_fields(api, extra):
    batch = api.batch()
    before = _counts(api)
    response = api.step(batch["id"], "isolation", [batch["tube_code"]], [{"kind": "flask"} | extra])
    assert response.status_code == 422, response.text
    assert _counts(api) == before


@pytest.mark.parametrize("extra", [{"coi": "CHA999926000001X"}, {"batch_id": 1}, {"din": "x"}])
def test_coi2_step_request_refuses_identity_fields(api, extra):
    batch = api.batch()
    body = {"kind": "isolation", "inputs": [batch["tube_code"]], "outputs": [{"kind": "flask"}]}
    response = api.post(Role.TECHNICIAN, f"/batches/{batch['id']}/steps", body | extra)
    assert response.status_code == 422, response.text
    assert _batch(api, batch["id"])["status"] == "registered"


# -- COI-3: no pooling across batches or patients --------------------------------------------------


def test_coi3_inputs_from_two_batches_are_refused_and_nothing_is_written(api):
    mine, my_flasks = _isolated(api)
    other, other_flasks = _isolated(api)
    before = _counts(api)
    mismatches = len(audit_events(api.db, "step.identity_mismatch"))
    response = api.step(mine["id"], "passage", [my_flasks[0], other_flasks[0]], ["flask"])
    detail = _error(response, 409, "identity_mismatch")
    assert other_flasks[0] in detail and my_flasks[0] not in detail
    after = _counts(api)
    assert after["vessels"] == before["vessels"]
    assert after["steps"] == before["steps"]
    # The refusal itself is audited, and it is the only trace it leaves.
    assert after["audit"] == before["audit"] + 1
    assert len(audit_events(api.db, "step.identity_mismatch")) == mismatches + 1
    assert audit_events(api.db)[-1].action == "step.identity_mismatch"
    # Both flasks untouched, both batches unmoved.
    assert _vessels(api, mine["id"])[my_flasks[0]]["status"] == "active"
    assert _vessels(api, other["id"])[other_flasks[0]]["status"] == "active"
    assert _batch(api, mine["id"])["status"] == "isolation"
    assert _batch(api, other["id"])["status"] == "isolation"


def test_coi3_another_patients_vessel_on_this_batch_is_refused_and_audited_here(api):
    mine, _ = _isolated(api)
    theirs, their_flasks = _isolated(api)
    assert mine["coi"] != theirs["coi"]
    before = _counts(api)
    response = api.step(mine["id"], "passage", [their_flasks[0]], ["flask"])
    detail = _error(response, 409, "identity_mismatch")
    assert "another patient" in detail
    assert _counts(api)["steps"] == before["steps"]
    assert _counts(api)["vessels"] == before["vessels"]
    (event,) = audit_events(api.db, "step.identity_mismatch")[-1:]
    assert event.scope == mine["coi"]  # this batch's patient chain, not the other's
    assert event.entity_type == "batch" and event.entity_id == mine["id"]
    assert their_flasks[0] in event.new_values
    assert _vessels(api, theirs["id"])[their_flasks[0]]["status"] == "active"
    # QA sees it on this batch's trail.
    trail = api.get(Role.QA, f"/batches/{mine['id']}/audit").json()
    assert "step.identity_mismatch" in [e["action"] for e in trail]


def test_coi3_another_batch_of_the_same_patient_is_refused(api):
    patient = api.patient()
    first, _ = _isolated_for(api, patient["id"])
    second, second_flasks = _isolated_for(api, patient["id"])
    assert first["coi"] == second["coi"] and first["id"] != second["id"]
    detail = _error(
        api.step(first["id"], "passage", [second_flasks[0]], ["flask"]), 409, "identity_mismatch"
    )
    assert "another batch" in detail
    assert _vessels(api, second["id"])[second_flasks[0]]["status"] == "active"


def test_coi3_another_batchs_biopsy_tube_cannot_start_this_batch(api):
    mine = api.batch()
    theirs = api.batch()
    response = api.step(mine["id"], "isolation", [theirs["tube_code"]], ["flask"])
    _error(response, 409, "identity_mismatch")
    assert _batch(api, mine["id"])["status"] == "registered"
    assert _vessels(api, theirs["id"])[theirs["tube_code"]]["status"] == "active"


def test_coi3_a_refused_vessel_is_refused_whatever_the_step_kind(api):
    mine, tube = _harvested(api)
    theirs, their_tube = _harvested(api)
    for kind, outputs, extra in (
        ("formulation", [api.dose()], {}),
        ("cryopreservation", ["cryovial"], {}),
        ("qc_sampling", ["tube"], {}),
        ("discard", [], {"reason": "cleanup"}),
    ):
        response = api.step(mine["id"], kind, [their_tube], outputs, **extra)
        _error(response, 409, "identity_mismatch")
    assert _vessels(api, theirs["id"])[their_tube]["status"] == "active"
    assert _batch(api, mine["id"])["status"] == "harvested"
    assert _vessels(api, mine["id"])[tube]["status"] == "active"


def _isolated_for(api: Api, patient_id: int) -> tuple[dict[str, Any], list[str]]:
    batch = api.batch(patient_id)
    step = _ok(api.step(batch["id"], "isolation", [batch["tube_code"]], ["flask"]))
    return batch, _codes(step)


# -- invalid states and malformed inputs -----------------------------------------------------------


def test_a_consumed_vessel_cannot_be_an_input(api):
    """DESIGN §4: consumed is final."""
    batch, flasks = _isolated(api)
    # The batch is in isolation, where isolation is allowed, but its tube is spent.
    before = _counts(api)
    again = api.step(batch["id"], "isolation", [batch["tube_code"]], ["flask"])
    detail = _error(again, 409, "invalid_state")
    assert batch["tube_code"] in detail and "consumed" in detail
    assert _counts(api) == before
    _ok(api.step(batch["id"], "passage", flasks, ["flask"]))
    before = _counts(api)
    detail = _error(api.step(batch["id"], "passage", flasks, ["flask"]), 409, "invalid_state")
    assert flasks[0] in detail and "consumed" in detail
    assert _counts(api) == before


def test_a_discarded_vessel_cannot_be_an_input(api):
    """DESIGN §4: discarded is final."""
    batch, flasks = api.expanded_batch()
    _ok(api.step(batch["id"], "discard", [flasks[0]], reason="Dropped"))
    before = _counts(api)
    for kind, outputs, extra in (
        ("passage", ["flask"], {}),
        ("harvest", ["tube"], {}),
        ("qc_sampling", ["tube"], {}),
        ("discard", [], {"reason": "again"}),
    ):
        detail = _error(
            api.step(batch["id"], kind, [flasks[0]], outputs, **extra), 409, "invalid_state"
        )
        assert "discarded" in detail
    assert _counts(api) == before
    assert _batch(api, batch["id"])["status"] == "expansion"


def test_formulation_on_a_registered_batch_names_the_current_state(api):
    """DESIGN §4: an illegal step is refused naming the current state and what is allowed."""
    batch = api.batch()
    before = _counts(api)
    detail = _error(
        api.step(batch["id"], "formulation", [batch["tube_code"]], [api.dose()]),
        409,
        "invalid_state",
    )
    assert "registered" in detail and "harvested" in detail
    assert _counts(api) == before
    assert _batch(api, batch["id"])["status"] == "registered"


def test_passage_after_harvest_is_refused_naming_the_state(api):
    """DESIGN §4: no passage once the batch is harvested."""
    batch, flasks = api.expanded_batch()
    _ok(api.step(batch["id"], "harvest", [flasks[0]], ["tube"]))
    detail = _error(api.step(batch["id"], "passage", [flasks[1]], ["flask"]), 409, "invalid_state")
    assert "harvested" in detail
    assert "expansion" in detail and "isolation" in detail  # the states it is allowed in
    assert _vessels(api, batch["id"])[flasks[1]]["status"] == "active"


def test_harvest_before_expansion_is_refused_naming_the_state(api):
    """DESIGN §4: the steps follow the batch lifecycle."""
    batch, flasks = _isolated(api)
    detail = _error(api.step(batch["id"], "harvest", flasks, ["tube"]), 409, "invalid_state")
    assert "isolation" in detail and "expansion" in detail
    assert _vessels(api, batch["id"])[flasks[0]]["status"] == "active"


def test_cryopreservation_makes_cryovials_or_bags_only(api):
    """Issue 3 §1: cryopreservation outputs cryovials or bags."""
    batch, tube = _harvested(api)
    detail = _error(
        api.step(batch["id"], "cryopreservation", [tube], ["flask"]), 422, "invalid_request"
    )
    assert "flask" in detail


def test_no_second_formulation_once_the_batch_is_in_quarantine(api):
    """DESIGN §4: formulation only from `harvested`; the batch is then in `quarantine`."""
    batch, tube = _harvested(api)
    vials = _codes(_ok(api.step(batch["id"], "cryopreservation", [tube], ["cryovial"] * 2)))
    _ok(api.step(batch["id"], "thaw", vials))
    _ok(api.step(batch["id"], "formulation", [vials[0]], [api.dose()]))
    assert _batch(api, batch["id"])["status"] == "quarantine"
    detail = _error(
        api.step(batch["id"], "formulation", [vials[1]], [api.dose()]), 409, "invalid_state"
    )
    assert "quarantine" in detail
    assert _vessels(api, batch["id"])[vials[1]]["status"] == "thawed"


def test_a_destroyed_batch_takes_no_step_but_a_discard(api):
    """DESIGN §4: `destroyed` is final; its remaining vessels can only be discarded."""
    batch, flasks = api.expanded_batch()
    destroyed = api.post(Role.QA, f"/batches/{batch['id']}/destroy", {"reason": "Sterility fail"})
    assert destroyed.status_code == 200, destroyed.text
    assert destroyed.json()["status"] == "destroyed"
    detail = _error(api.step(batch["id"], "passage", [flasks[0]], ["flask"]), 409, "invalid_state")
    assert "destroyed" in detail
    _error(api.step(batch["id"], "qc_sampling", [flasks[0]], ["tube"]), 409, "invalid_state")
    _ok(api.step(batch["id"], "discard", flasks, reason="Batch destroyed"))
    assert {v["status"] for v in _batch(api, batch["id"])["vessels"] if v["code"] in flasks} == {
        "discarded"
    }


def test_an_invalid_code_is_422_invalid_code(api):
    """COI-4 on step inputs: a corrupted code is never looked up."""
    batch = api.batch()
    before = _counts(api)
    for bad in (_corrupt(batch["tube_code"]), "NOT-A-CODE", batch["tube_code"][:-2]):
        response = api.step(batch["id"], "isolation", [bad], ["flask"])
        _error(response, 422, "invalid_code")
    assert _counts(api) == before
    assert _vessels(api, batch["id"])[batch["tube_code"]]["status"] == "active"


def test_a_scanned_code_with_scanner_noise_is_accepted(api):
    """COI-4: lower case and an AIM prefix are forgiven; the canonical code is recorded."""
    batch = api.batch()
    noisy = "]C1" + batch["tube_code"].lower() + "\r\n"
    step = _ok(api.step(batch["id"], "isolation", [noisy], ["flask"]))
    assert step["inputs"] == [batch["tube_code"]]


def test_an_unknown_well_formed_code_is_404(api):
    batch = api.batch()
    before = _counts(api)
    unknown = _unknown_code(batch["din"])
    detail = _error(api.step(batch["id"], "isolation", [unknown], ["flask"]), 404, "not_found")
    assert unknown in detail
    assert _counts(api) == before


def test_the_same_input_twice_is_422(api):
    batch, flasks = _isolated(api)
    before = _counts(api)
    response = api.step(batch["id"], "passage", [flasks[0], flasks[0].lower()], ["flask"])
    _error(response, 422, "invalid_request")
    assert _counts(api) == before


def test_a_passage_of_a_tube_is_the_wrong_input_kind(api):
    """Issue 3 §1: passage takes flasks."""
    batch, flasks = api.expanded_batch()
    sample = _codes(_ok(api.step(batch["id"], "qc_sampling", [flasks[0]], ["tube"])))[0]
    before = _counts(api)
    detail = _error(api.step(batch["id"], "passage", [sample], ["flask"]), 422, "invalid_request")
    assert sample in detail
    assert _counts(api) == before


@pytest.mark.parametrize(
    ("kind", "outputs"),
    [
        ("isolation", []),  # isolation makes at least one flask
        ("isolation", ["tube"]),  # and only flasks
        ("passage", []),
        ("qc_sampling", []),
    ],
)
def test_output_shape_is_checked_per_step_kind(api, kind, outputs):
    batch = api.batch()
    response = api.step(batch["id"], kind, [batch["tube_code"]], outputs)
    _error(response, 422, "invalid_request")


def test_a_step_needs_inputs(api):
    batch = api.batch()
    _error(api.step(batch["id"], "isolation", [], ["flask"]), 422, "invalid_request")
    response = api.step(batch["id"], "fermentation", [batch["tube_code"]], ["flask"])
    assert response.status_code == 422


# -- culture clocks --------------------------------------------------------------------------------


def test_culture_clock_passage_soft_limit_warns_and_hard_limit_refuses(api_with):
    """Issue 3 §8: past the soft limit a warning; past the hard limit 409 `culture_limit`."""
    api = api_with()
    approve_gmp_settings(api.db, api.settings, Group.CULTURE_LIMITS, passage_soft=1, passage_hard=2)
    batch, flasks = _isolated(api)
    first = _ok(api.step(batch["id"], "passage", flasks, ["flask"]))  # passage 1: at the soft limit
    assert first["outputs"][0]["passage"] == 1 and first["warnings"] == []
    second = _ok(api.step(batch["id"], "passage", _codes(first), ["flask"]))  # passage 2
    assert second["outputs"][0]["passage"] == 2
    assert second["warnings"] and any("passage 2" in w for w in second["warnings"])
    before = _counts(api)
    detail = _error(
        api.step(batch["id"], "passage", _codes(second), ["flask"]), 409, "culture_limit"
    )
    assert "passage 3" in detail
    assert _counts(api) == before
    assert _vessels(api, batch["id"])[_codes(second)[0]]["status"] == "active"
    # Harvest is still possible: the limit stops further expansion, not the batch.
    _ok(api.step(batch["id"], "harvest", _codes(second), ["tube"]))


def test_culture_clock_population_doublings_limits(api_with):
    """Issue 3 §8: cumulative population doublings, computed from counts, are limited."""
    api = api_with()
    approve_gmp_settings(
        api.db, api.settings, Group.CULTURE_LIMITS, doublings_soft=3.0, doublings_hard=5.0
    )
    batch, flasks = _isolated(api, seeded_cells=1_000_000)
    # 1e6 -> 16e6 : 4 doublings, past the soft limit only.
    first = _ok(
        api.step(
            batch["id"],
            "passage",
            flasks,
            [{"kind": "flask", "seeded_cells": 1_000_000}],
            measurements={"viable_cells": 16_000_000},
        )
    )
    assert first["measurements"]["population_doublings"] == pytest.approx(4.0)
    assert any("doublings" in w for w in first["warnings"])
    # 1e6 -> 4e6 : 2 more, 6 in all, past the hard limit.
    before = _counts(api)
    response = api.step(
        batch["id"], "passage", _codes(first), ["flask"], measurements={"viable_cells": 4_000_000}
    )
    assert "doublings" in _error(response, 409, "culture_limit")
    assert _counts(api) == before


def test_culture_clock_days_in_culture_limits(api_with):
    """Issue 3 §8: days in culture count from the isolation."""
    api = api_with()
    approve_gmp_settings(api.db, api.settings, Group.CULTURE_LIMITS, days_soft=3, days_hard=5)
    batch = _old_batch(api)
    isolation = api.step(
        batch["id"],
        "isolation",
        [batch["tube_code"]],
        ["flask"],
        performed_at=ago(days=8),
        late_reason="entered from the paper record",
    )
    flasks = _codes(_ok(isolation))
    response = api.step(batch["id"], "passage", flasks, ["flask"])
    assert "days in culture" in _error(response, 409, "culture_limit")

    approve_gmp_settings(api.db, api.settings, Group.CULTURE_LIMITS, days_soft=3, days_hard=70)
    batch = _old_batch(api)
    isolation = api.step(
        batch["id"],
        "isolation",
        [batch["tube_code"]],
        ["flask"],
        performed_at=ago(days=4),
        late_reason="entered from the paper record",
    )
    step = _ok(api.step(batch["id"], "passage", _codes(_ok(isolation)), ["flask"]))
    assert any("days in culture" in w for w in step["warnings"])


def _old_batch(api: Api) -> dict[str, Any]:
    """A batch whose biopsy was collected ten days ago, registered nine days ago (AUD-6: no step
    precedes its batch; the registration time is the server's, so it is set in the database)."""
    patient = api.patient()
    body = {
        "patient_id": patient["id"],
        "collected_at": ago(days=10),
        "site": "vastus lateralis",
        "mass_mg": 120.0,
    }
    biopsy = api.post(Role.CLINICIAN, "/biopsies", body)
    assert biopsy.status_code == 201, biopsy.text
    biopsy = biopsy.json()
    received = api.receive(
        biopsy, received_at=ago(days=9, hours=20), late_reason="entered from the paper record"
    )
    assert received.status_code == 200, received.text
    response = api.post(Role.TECHNICIAN, "/batches", {"biopsy_id": biopsy["id"]})
    assert response.status_code == 201, response.text
    registered = datetime.now(UTC) - timedelta(days=9)
    api.db.execute(
        update(Batch).where(col(Batch.id) == response.json()["id"]).values(created_at=registered)
    )
    api.db.commit()
    return response.json() | {"tube_code": biopsy["tube_code"]}


def test_default_limits_give_no_warning_on_an_ordinary_run(api):
    """Issue 3 §8: the shipped limits do not fire on a two-passage culture."""
    batch, flasks = api.expanded_batch()
    step = _ok(api.step(batch["id"], "passage", flasks, ["flask"]))
    assert step["warnings"] == []


@pytest.mark.parametrize("value", ["lots", -100, True])
def test_population_doublings_cannot_be_supplied_by_the_client(api_with, value):
    """Issue 3 §1/§8: doublings are computed by the server from counts; a client-supplied
    `population_doublings` must neither break the request nor wind the clock back."""
    api = api_with(raise_server_exceptions=False)
    approve_gmp_settings(
        api.db, api.settings, Group.CULTURE_LIMITS, doublings_soft=3.0, doublings_hard=5.0
    )
    batch, flasks = _isolated(api, seeded_cells=1_000_000)
    forged = api.step(
        batch["id"],
        "passage",
        flasks,
        [{"kind": "flask", "seeded_cells": 1_000_000}],
        measurements={"population_doublings": value},
    )
    assert forged.status_code in (201, 422), forged.text  # never a 500
    recorded = None
    if forged.status_code == 201:
        flasks = _codes(forged.json())
        recorded = forged.json()["measurements"].get("population_doublings")
    # 1e6 -> 64e6: 6 doublings, past the hard limit of 5 whatever was sent before.
    response = api.step(
        batch["id"], "passage", flasks, ["flask"], measurements={"viable_cells": 64_000_000}
    )
    _error(response, 409, "culture_limit")
    assert recorded is None, f"client value {value!r} recorded as the computed doublings"

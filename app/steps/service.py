"""Recording a processing step: identity checked on every input (COI-3), outputs derived from
the inputs on the server (COI-2), the step's rule (rules.py) applied, everything audited."""

import math
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from app import chronology
from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.audit.chain import canonical_json
from app.auth.models import User
from app.batches import service as batches
from app.batches.service import BatchContext
from app.batches.states import BATCH_LIFECYCLE, BatchStatus
from app.biopsies.models import Biopsy
from app.clock import utcnow
from app.config import Settings
from app.errors import IdentityMismatch, InvalidRequest, InvalidState, NotFound
from app.identity.codes import parse_vessel_code
from app.lifecycle import transition
from app.materials import service as materials
from app.qualifications import service as qualifications
from app.qualifications.schemas import Duty
from app.steps.clocks import culture_clock
from app.steps.models import Step, StepEquipment, StepInput, StepMaterial
from app.steps.repository import step_views
from app.steps.rules import RULES, StepKind, StepRule
from app.steps.schemas import EquipmentUse, MaterialUse, OutputSpec, StepCreate, StepPublic
from app.storage import service as storage
from app.storage.models import Location
from app.storage.repository import lock_positions
from app.vessels import service as vessels
from app.vessels.models import Vessel
from app.vessels.repository import lock_vessels
from app.vessels.service import DoseFacts
from app.vessels.states import VESSEL_LIFECYCLE, VesselKind, VesselStatus

GONE = frozenset({VesselStatus.CONSUMED, VesselStatus.DISCARDED})


@dataclass(frozen=True)
class RecordedStep:
    step: Step
    inputs: list[Vessel]
    outputs: list[Vessel]
    warnings: list[str]


def _check_shape(rule: StepRule, data: StepCreate) -> None:
    """Counts, kinds and required fields: a request that cannot be right is a 422."""
    low, high = rule.inputs
    if not low <= len(data.inputs) <= high:
        raise InvalidRequest(f"A {data.kind} step takes {_count(low, high)} input vessel(s).")
    low, high = rule.outputs
    if not low <= len(data.outputs) <= high:
        raise InvalidRequest(f"A {data.kind} step makes {_count(low, high)} output vessel(s).")
    for output in data.outputs:
        if output.kind not in rule.output_kinds:
            allowed = ", ".join(sorted(rule.output_kinds))
            raise InvalidRequest(f"A {data.kind} step makes {allowed}, not {output.kind}.")
        if rule.makes_doses:
            _check_dose(output)
    if rule.needs_reason and not data.reason:
        raise InvalidRequest(f"A {data.kind} step needs a reason.")


def _count(low: int, high: int) -> str:
    return str(low) if low == high else f"{low} to {high}"


def _check_dose(output: OutputSpec) -> None:
    missing = [f for f in ("cell_count", "volume_ml", "expires_at") if getattr(output, f) is None]
    if missing:
        raise InvalidRequest(f"A dose bag needs {', '.join(missing)}.")
    assert output.expires_at is not None
    if output.expires_at <= utcnow():
        raise InvalidRequest("A dose cannot be made already expired.")


def _inputs(session: Session, codes: list[str]) -> list[Vessel]:
    """The input vessels in the order named, not locked yet; 404 if one is unknown."""
    by_code = {
        vessel.code: vessel
        for vessel in session.execute(select(Vessel).where(col(Vessel.code).in_(codes))).scalars()
    }
    for code in codes:
        if code not in by_code:
            raise NotFound(f"No vessel has code {code}.")
    return [by_code[code] for code in codes]


def _check_identity(
    session: Session, actor: User, context: BatchContext, inputs: list[Vessel], kind: StepKind
) -> None:
    """COI-3: every input belongs to the batch named in the path (hence to its patient)."""
    strangers = [v for v in inputs if v.batch_id != context.batch.id]
    if not strangers:
        return
    owners = session.execute(
        select(Biopsy.patient_id).where(col(Biopsy.id).in_({v.biopsy_id for v in strangers}))
    ).scalars()
    other_patient = any(owner != context.patient.id for owner in owners)
    whose = "another patient's batch" if other_patient else "another batch of the same patient"
    codes = ", ".join(v.code for v in strangers)
    raise IdentityMismatch(
        f"Refused: {codes} belong(s) to {whose}, not to batch {context.batch.batch_number}. "
        "A step never mixes vessels of two batches or patients; set the vessel(s) aside.",
        aftermath=partial(
            audit.record,
            actor=actor,
            action=AuditAction.STEP_IDENTITY_MISMATCH,
            entity_type=EntityType.BATCH,
            entity_id=context.batch.id,
            coi=context.patient.coi,
            new={"kind": kind.value, "foreign_inputs": [v.code for v in strangers]},
        ),
    )


def _check_inputs(rule: StepRule, inputs: list[Vessel], kind: StepKind) -> None:
    for vessel in inputs:
        if vessel.kind not in rule.input_kinds:
            allowed = ", ".join(sorted(rule.input_kinds))
            raise InvalidRequest(
                f"A {kind} step takes {allowed}; {vessel.code} is a {vessel.kind}."
            )
        if vessel.status not in rule.input_statuses:
            allowed = ", ".join(sorted(rule.input_statuses))
            raise InvalidState(
                f"Vessel {vessel.code} is {vessel.status}; a {kind} step needs it {allowed}."
            )


def _doublings(inputs: list[Vessel], measurements: dict[str, Any]) -> float | None:
    """Population doublings of a passage: log2(viable cells harvested / cells seeded)."""
    seeded = sum(v.seeded_cells or 0 for v in inputs)
    harvested = measurements.get("viable_cells")
    if not seeded or not isinstance(harvested, (int, float)) or harvested <= 0:
        return None
    return round(math.log2(harvested / seeded), 3)


def record(
    session: Session, settings: Settings, *, actor: User, batch_id: int, data: StepCreate
) -> RecordedStep:
    """Record one step on batch `batch_id`, or refuse it whole."""
    rule = RULES[data.kind]
    _check_shape(rule, data)
    codes = [parse_vessel_code(code).value for code in data.inputs]
    if len(set(codes)) != len(codes):
        raise InvalidRequest("The same vessel is listed twice among the inputs.")
    context = batches.get(session, batch_id, lock=True)
    inputs = _inputs(session, codes)
    # A vessel's batch never changes once set, so identity is checked before the vessels are
    # locked: a step locks only vessels of its own batch, after the batch (ADR 0011).
    _check_identity(session, actor, context, inputs, data.kind)
    lock_vessels(session, [v.id or 0 for v in inputs])  # the same objects, read afresh
    status = BatchStatus(context.batch.status)
    if status not in rule.batch_states:
        allowed = ", ".join(sorted(rule.batch_states))
        raise InvalidState(
            f"Batch {context.batch.batch_number} is {status}; a {data.kind} step is allowed only "
            f"when the batch is {allowed}."
        )
    _check_inputs(rule, inputs, data.kind)
    # The inputs and the batch are locked: their times cannot change before this step is in.
    dated = chronology.check(
        f"{data.kind.value} step",
        data.performed_at,
        not_before=[
            (f"batch {context.batch.batch_number}'s registration", context.batch.created_at),
            *chronology.vessel_origins(session, inputs).values(),
        ],
        now=utcnow(),
        skew=settings.late_entry_skew,
        late_reason=data.late_reason,
    )
    performed_at = dated.occurred_at
    # SEC-5: the performer, the lots and the equipment are held shared until commit, after the
    # batch and its vessels (ADR 0011, 0024).
    qualifications.require(
        session, actor, Duty.of_step(data.kind), at=performed_at, context={"batch_id": batch_id}
    )
    lot_uses = [m if isinstance(m, MaterialUse) else MaterialUse(lot_id=m) for m in data.materials]
    materials.usable_lots(session, [use.lot_id for use in lot_uses], at=performed_at)
    equipment = materials.usable_equipment(
        session,
        [e.equipment_id if isinstance(e, EquipmentUse) else e for e in data.equipment],
        at=performed_at,
    )
    passage = max((v.passage for v in inputs), default=0) + rule.passage_increment
    measurements = dict(data.measurements)
    if (
        data.kind is StepKind.PASSAGE
        and (doublings := _doublings(inputs, measurements)) is not None
    ):
        measurements["population_doublings"] = doublings
    clock = culture_clock(session, context, now=performed_at)
    if data.kind is StepKind.PASSAGE:
        clock.refuse_past_hard_limits(
            passage=passage, extra_doublings=measurements.get("population_doublings", 0.0)
        )

    step = Step(
        batch_id=context.batch.id or 0,
        kind=data.kind.value,
        performed_at=performed_at,
        performed_by=actor.id or 0,
        recorded_at=dated.recorded_at,
        late_reason=dated.late_reason,
        measurements=canonical_json(measurements) or "{}",
        reason=data.reason,
        note=data.note,
    )
    session.add(step)
    session.flush()
    assert step.id is not None
    session.add_all(StepInput(step_id=step.id, vessel_id=v.id or 0) for v in inputs)
    session.add_all(
        StepMaterial(step_id=step.id, lot_id=use.lot_id, quantity=use.quantity) for use in lot_uses
    )
    session.add_all(StepEquipment(step_id=step.id, equipment_id=e.id or 0) for e in equipment)
    session.flush()
    coi = context.patient.coi
    if rule.inputs_become is not None:
        for vessel in inputs:
            transition(
                session,
                VESSEL_LIFECYCLE,
                vessel,
                rule.inputs_become,
                actor=actor,
                coi=coi,
                label=f"Vessel {vessel.code}",
                extra={"step_id": step.id},
            )
            if rule.inputs_become in GONE:
                vessel.position_id = None  # a vessel that no longer exists frees its position
                session.add(vessel)
    positions = lock_positions(session, [spec.location for spec in data.outputs if spec.location])
    outputs = [
        _make_output(session, actor, context, rule, step, spec, inputs, passage, positions)
        for spec in data.outputs
    ]
    if status in rule.moves_batch:
        transition(
            session,
            BATCH_LIFECYCLE,
            context.batch,
            rule.moves_batch[status],
            actor=actor,
            coi=coi,
            label=f"Batch {context.batch.batch_number}",
            extra={"step_id": step.id},
        )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.STEP_RECORDED,
        entity_type=EntityType.STEP,
        entity_id=step.id,
        coi=coi,
        new={
            "batch_id": context.batch.id,
            "kind": data.kind.value,
            "performed_at": performed_at,
            "late": dated.late,
            "late_reason": dated.late_reason,
            "inputs": codes,
            "outputs": [v.code for v in outputs],
            "materials": [{"lot_id": u.lot_id, "quantity": u.quantity} for u in lot_uses],
            "equipment": [e.id for e in equipment],
            "measurements": measurements,
            "reason": data.reason,
            "note": data.note,
        },
    )
    if context.batch.status == BatchStatus.ISSUED:
        batches.complete_if_done(session, actor=actor, batch_id=context.batch.id or 0)
    warnings = culture_clock(session, context, now=performed_at).warnings()
    return RecordedStep(step=step, inputs=inputs, outputs=outputs, warnings=warnings)


def _make_output(
    session: Session,
    actor: User,
    context: BatchContext,
    rule: StepRule,
    step: Step,
    spec: OutputSpec,
    inputs: list[Vessel],
    passage: int,
    positions: dict[str, Location],
) -> Vessel:
    """An output vessel whose identity comes from the batch (COI-2), never from the request."""
    dose = (
        DoseFacts(cell_count=spec.cell_count, volume_ml=spec.volume_ml, expires_at=spec.expires_at)
        if rule.makes_doses
        else None
    )
    vessel = vessels.create(
        session,
        actor=actor,
        biopsy=context.biopsy,
        coi=context.patient.coi,
        batch_id=context.batch.id,
        kind=rule.records_outputs_as or VesselKind(spec.kind),
        parent=inputs[0],
        passage=passage,
        status=rule.outputs_start,
        produced_by_step_id=step.id,
        seeded_cells=spec.seeded_cells,
        dose=dose,  # type: ignore[arg-type]  # all three checked by _check_dose
    )
    if spec.location:
        storage.place(session, vessel, spec.location, positions)
    return vessel


def public(session: Session, step: Step, *, warnings: list[str]) -> StepPublic:
    (view,) = step_views(session, Step.id == step.id, warnings=warnings)
    return view


def view(session: Session, step_id: int) -> StepPublic:
    """One recorded step, fully described; 404 if there is none."""
    found = step_views(session, Step.id == step_id)
    if not found:
        raise NotFound(f"No step has id {step_id}.")
    return found[0]


def kinds_allowed(status: BatchStatus) -> list[StepKind]:
    """The kinds of step the rule table allows on a batch in `status` (a hint for a person; the
    rule itself is applied by `record`)."""
    return [kind for kind, rule in RULES.items() if status in rule.batch_states]

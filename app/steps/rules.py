"""What each kind of step may do, as one table (CONVENTIONS 5): the batch states it is allowed
in, the vessels it takes and makes, what happens to its inputs and to the batch."""

from dataclasses import dataclass, field
from enum import StrEnum

from app.batches.states import BatchStatus
from app.vessels.states import VesselKind, VesselStatus


class StepKind(StrEnum):
    ISOLATION = "isolation"
    PASSAGE = "passage"
    HARVEST = "harvest"
    CRYOPRESERVATION = "cryopreservation"
    THAW = "thaw"
    FORMULATION = "formulation"
    QC_SAMPLING = "qc_sampling"
    DISCARD = "discard"


B, K, V = BatchStatus, VesselKind, VesselStatus
_LIVE = frozenset(
    {B.REGISTERED, B.ISOLATION, B.EXPANSION, B.HARVESTED, B.QUARANTINE, B.RELEASED,
     B.CONDITIONALLY_RELEASED, B.ISSUED}
)  # fmt: skip
_CULTURE = frozenset({K.FLASK})
_CELLS = frozenset({K.FLASK, K.TUBE, K.CRYOVIAL, K.BAG})
_USABLE = frozenset({V.ACTIVE, V.THAWED})


@dataclass(frozen=True)
class StepRule:
    batch_states: frozenset[BatchStatus]
    input_kinds: frozenset[VesselKind]
    input_statuses: frozenset[VesselStatus]
    inputs: tuple[int, int]  # how many, at least and at most
    output_kinds: frozenset[VesselKind]
    outputs: tuple[int, int]
    inputs_become: VesselStatus | None  # None: the inputs stay as they are (sampling)
    outputs_start: VesselStatus = V.ACTIVE
    # The batch moves when the step is the first of its kind: from -> to.
    moves_batch: dict[BatchStatus, BatchStatus] = field(default_factory=dict)
    passage_increment: int = 0
    needs_reason: bool = False
    makes_doses: bool = False
    # Outputs recorded as this kind whatever container the client names (QC samples).
    records_outputs_as: VesselKind | None = None


RULES: dict[StepKind, StepRule] = {
    StepKind.ISOLATION: StepRule(
        batch_states=frozenset({B.REGISTERED, B.ISOLATION}),
        input_kinds=frozenset({K.BIOPSY_TUBE}),
        input_statuses=_USABLE,
        inputs=(1, 1),
        output_kinds=_CULTURE,
        outputs=(1, 50),
        inputs_become=V.CONSUMED,
        moves_batch={B.REGISTERED: B.ISOLATION},
    ),
    StepKind.PASSAGE: StepRule(
        batch_states=frozenset({B.ISOLATION, B.EXPANSION}),
        input_kinds=_CULTURE,
        input_statuses=_USABLE,
        inputs=(1, 50),
        output_kinds=_CULTURE,
        outputs=(1, 100),
        inputs_become=V.CONSUMED,
        moves_batch={B.ISOLATION: B.EXPANSION},
        passage_increment=1,
    ),
    StepKind.HARVEST: StepRule(
        batch_states=frozenset({B.EXPANSION}),
        input_kinds=_CULTURE,
        input_statuses=_USABLE,
        inputs=(1, 100),
        output_kinds=frozenset({K.TUBE}),
        outputs=(1, 1),
        inputs_become=V.CONSUMED,
        moves_batch={B.EXPANSION: B.HARVESTED},
    ),
    StepKind.CRYOPRESERVATION: StepRule(
        batch_states=frozenset({B.EXPANSION, B.HARVESTED, B.QUARANTINE}),
        input_kinds=_CELLS,
        input_statuses=_USABLE,
        inputs=(1, 50),
        output_kinds=frozenset({K.CRYOVIAL, K.BAG}),
        outputs=(1, 100),
        inputs_become=V.CONSUMED,
        outputs_start=V.FROZEN,
    ),
    StepKind.THAW: StepRule(
        batch_states=_LIVE - {B.REGISTERED, B.ISOLATION},
        input_kinds=frozenset({K.CRYOVIAL, K.BAG}),
        input_statuses=frozenset({V.FROZEN}),
        inputs=(1, 50),
        output_kinds=frozenset(),
        outputs=(0, 0),
        inputs_become=V.THAWED,
    ),
    StepKind.FORMULATION: StepRule(
        batch_states=frozenset({B.HARVESTED}),
        input_kinds=frozenset({K.TUBE, K.CRYOVIAL}),
        input_statuses=_USABLE,
        inputs=(1, 50),
        output_kinds=frozenset({K.BAG}),
        outputs=(1, 20),
        inputs_become=V.CONSUMED,
        moves_batch={B.HARVESTED: B.QUARANTINE},
        makes_doses=True,
    ),
    StepKind.QC_SAMPLING: StepRule(
        batch_states=_LIVE - {B.REGISTERED},
        input_kinds=_CELLS,
        input_statuses=_USABLE,
        inputs=(1, 1),
        output_kinds=frozenset({K.TUBE, K.CRYOVIAL, K.QC_SAMPLE}),
        outputs=(1, 20),
        inputs_become=None,
        records_outputs_as=K.QC_SAMPLE,
    ),
    StepKind.DISCARD: StepRule(
        batch_states=_LIVE | {B.ON_HOLD, B.REJECTED, B.DESTROYED},
        input_kinds=frozenset(VesselKind),
        # A dose may be disposed of wherever it is, the clinic included (an expired dose).
        input_statuses=frozenset({V.ACTIVE, V.THAWED, V.FROZEN, V.DISPATCHED, V.RECEIVED}),
        inputs=(1, 100),
        output_kinds=frozenset(),
        outputs=(0, 0),
        inputs_become=V.DISCARDED,
        needs_reason=True,
    ),
}

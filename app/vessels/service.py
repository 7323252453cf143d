"""Creating vessels. Code, biopsy and batch are set here from the parent, never by a client."""

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlmodel import Session

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.auth.models import User
from app.biopsies.models import Biopsy
from app.identity.codes import DIN, VesselCode
from app.identity.sequences import next_value
from app.vessels.models import Vessel
from app.vessels.schemas import VesselPublic
from app.vessels.states import VesselKind, VesselStatus


@dataclass(frozen=True, slots=True)
class DoseFacts:
    """What a dose carries from formulation: the clinic infuses by these."""

    cell_count: int
    volume_ml: float
    expires_at: datetime


def public(vessel: Vessel, parent_code: str | None) -> VesselPublic:
    assert vessel.id is not None
    return VesselPublic(
        id=vessel.id,
        code=vessel.code,
        kind=VesselKind(vessel.kind),
        status=VesselStatus(vessel.status),
        batch_id=vessel.batch_id,
        parent_code=parent_code,
        passage=vessel.passage,
        location=vessel.location,
        created_at=vessel.created_at,
        is_dose=vessel.is_dose,
        cell_count=vessel.cell_count,
        volume_ml=vessel.volume_ml,
        expires_at=vessel.expires_at,
        produced_by_step_id=vessel.produced_by_step_id,
        label_url=f"/api/v1/vessels/{vessel.code}/label",
    )


def create(
    session: Session,
    *,
    actor: User,
    biopsy: Biopsy,
    coi: str,
    batch_id: int | None,
    kind: VesselKind,
    parent: Vessel | None = None,
    passage: int = 0,
    location: str | None = None,
    status: VesselStatus = VesselStatus.ACTIVE,
    produced_by_step_id: int | None = None,
    seeded_cells: int | None = None,
    dose: DoseFacts | None = None,
) -> Vessel:
    """A new vessel of `biopsy`, with the next code of its DIN, audited."""
    assert biopsy.id is not None and actor.id is not None
    sequence = next_value(session, f"vessel:{biopsy.din}")
    vessel = Vessel(
        code=VesselCode.build(DIN(biopsy.din), sequence).value,
        biopsy_id=biopsy.id,
        batch_id=batch_id,
        sequence=sequence,
        kind=kind.value,
        status=status.value,
        parent_id=parent.id if parent is not None else None,
        passage=passage,
        location=location,
        created_by=actor.id,
        produced_by_step_id=produced_by_step_id,
        seeded_cells=seeded_cells,
        is_dose=dose is not None,
        cell_count=dose.cell_count if dose else None,
        volume_ml=dose.volume_ml if dose else None,
        expires_at=dose.expires_at if dose else None,
    )
    session.add(vessel)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.VESSEL_CREATED,
        entity_type=EntityType.VESSEL,
        entity_id=vessel.id,
        coi=coi,
        new={
            "code": vessel.code,
            "kind": vessel.kind,
            "batch_id": batch_id,
            "parent_code": parent.code if parent is not None else None,
            "passage": passage,
            "location": location,
            "status": status.value,
            "step_id": produced_by_step_id,
            "seeded_cells": seeded_cells,
            "dose": None if dose is None else asdict(dose),
        },
    )
    return vessel

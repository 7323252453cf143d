"""The electronic batch record: everything QA reads before release, in a fixed number of queries."""

from typing import Any

from sqlmodel import Session, col

from app.audit import service as audit
from app.audit.actions import EntityType
from app.audit.schemas import AuditEventPublic
from app.batches import service as batches
from app.clock import utcnow
from app.config import Settings
from app.deviations import service as deviations
from app.labels import service as labels
from app.qc import service as qc
from app.release import service as release
from app.steps.clocks import culture_clock
from app.steps.models import Step
from app.steps.repository import step_views
from app.storage import service as storage
from app.trace import service as trace
from app.vessels.repository import vessels_with_parent_codes

SCAN_ACTIONS = ("scan.ok", "scan.identity_mismatch")


def batch_record(session: Session, settings: Settings, batch_id: int) -> dict[str, Any]:
    """The record of batch `batch_id`: identity, timeline of steps, lineage, custody, scans,
    culture clocks, QC with its history, deviations and QA's decisions."""
    context = batches.get(session, batch_id)
    vessel_rows = vessels_with_parent_codes(session, biopsy_id=context.biopsy.id or 0)
    vessel_ids = [vessel.id or 0 for vessel, _ in vessel_rows]
    scans = [
        AuditEventPublic.from_event(event).model_dump()
        for event in audit.events_of_entities(session, {EntityType.VESSEL: vessel_ids})
        if event.action in SCAN_ACTIONS
    ]
    custody = [
        storage.custody_public(event, code, username).model_dump()
        for event, code, username in storage.history(session, vessel_ids)
    ]
    clock = culture_clock(session, context, now=utcnow())
    return {
        "batch": batches.detail(session, context).model_dump(),
        "patient": {
            "id": context.patient.id,
            "coi": context.patient.coi,
            "mrn": context.patient.mrn,
        },
        "biopsy": {
            "id": context.biopsy.id,
            "din": context.biopsy.din,
            "collected_at": context.biopsy.collected_at,
            "received_at": context.biopsy.received_at,
            "receipt_temperature_c": context.biopsy.receipt_temperature_c,
            "receipt_recorded_at": context.biopsy.receipt_recorded_at,
            "receipt_late": context.biopsy.receipt_late_reason is not None,
            "receipt_late_reason": context.biopsy.receipt_late_reason,
        },
        "steps": [s.model_dump() for s in step_views(session, col(Step.batch_id) == batch_id)],
        "lineage": trace.lineage(session, batch_id)["vessels"],
        "custody": custody,
        "scans": scans,
        "culture": clock.as_dict(),
        "qc": qc.qc_public(session, settings, batch_id).model_dump(),
        "deviations": [d.model_dump() for d in deviations.find(session, batch_id=batch_id)],
        "releases": [r.model_dump() for r in release.decisions(session, batch_id)],
        "physician_acceptances": [a.model_dump() for a in release.acceptances(session, batch_id)],
        "labels": labels.reconciliation(session, batch_id).model_dump(),
    }

"""Printing labels (LBL-1..4): what a label says, every print logged (copy 1 the original, later
copies marked REPRINT), voiding, network printers (jobs sent by app/labels/printing.py after the
commit), and the per-batch reconciliation of labels printed against vessels that exist."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, col

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.auth import service as auth
from app.auth.models import User
from app.batches import service as batches
from app.batches.service import BatchContext
from app.biopsies.models import Biopsy
from app.clock import utcnow
from app.db import add_unique
from app.errors import DuplicateCode, InvalidState, NotFound
from app.identity.codes import DIN, parse_vessel_code
from app.labels import pdf, printing, raster, svg, zpl
from app.labels.layout import DoseContent, LabelContent, layout
from app.labels.models import LabelPrint, LabelPrinter, PrintAttempt, PrintJob
from app.labels.schemas import (
    LabelFormat,
    LabelPrintPublic,
    LabelReconciliation,
    PrintAttemptPublic,
    PrinterCreate,
    PrintJobPublic,
    SheetFormat,
    SheetLayout,
)
from app.labels.states import PrintJobStatus
from app.patients.models import Patient
from app.release import integrity
from app.vessels.models import Vessel
from app.vessels.repository import identity_by_code, lock_vessels
from app.vessels.states import NO_LONGER_IN_USE, VesselStatus

MEDIA_TYPES = {
    LabelFormat.SVG: "image/svg+xml",
    LabelFormat.PNG: "image/png",
    LabelFormat.ZPL: "application/zpl; charset=utf-8",
    SheetFormat.PDF: "application/pdf",
}
# A print record stands for a label in hand when it was downloaded (no job) or its job was sent.
_ON_A_LABEL = frozenset({None, PrintJobStatus.SENT.value})


def content_of(vessel: Vessel, biopsy: Biopsy, patient: Patient, *, reprint: bool) -> LabelContent:
    """What the label of `vessel` shows; identity from its biopsy and patient (COI-2)."""
    dose = None
    if vessel.is_dose:
        assert vessel.expires_at is not None and vessel.cell_count is not None
        dose = DoseContent(
            patient_name=f"{patient.family_name.upper()}, {patient.given_name}",
            birth_date=patient.birth_date,
            mrn=patient.mrn,
            coi=patient.coi,
            expires_at=vessel.expires_at,
            cell_count=vessel.cell_count,
            volume_ml=vessel.volume_ml or 0.0,
        )
    return LabelContent(
        code=vessel.code,
        din=biopsy.din,
        din_check=DIN(biopsy.din).check,
        kind=vessel.kind,
        passage=vessel.passage,
        made_on=vessel.created_at.date(),
        reprint=reprint,
        dose=dose,
    )


def render(content: LabelContent, fmt: LabelFormat, dpi: int) -> bytes:
    """One label in `fmt` (from the caches of the renderers)."""
    if fmt is LabelFormat.SVG:
        return svg.svg(content).encode()
    if fmt is LabelFormat.PNG:
        return raster.png(content, dpi)
    return zpl.zpl(content, dpi).encode()


def _next_copies(session: Session, vessels: Sequence[Vessel]) -> list[int]:
    """The copy number each vessel's next label gets (1: the original; the vessels are locked)."""
    rows = session.execute(
        select(LabelPrint.vessel_id, func.max(LabelPrint.copy_number))
        .where(col(LabelPrint.vessel_id).in_([v.id for v in vessels]))
        .group_by(col(LabelPrint.vessel_id))
    )
    last = {vessel_id: copy_number for vessel_id, copy_number in rows}
    return [last.get(v.id or 0, 0) + 1 for v in vessels]


@dataclass(frozen=True)
class Printed:
    body: bytes
    media_type: str
    prints: list[LabelPrint]
    filename: str
    job: PrintJob | None  # the job that takes the labels to a printer


def _deliver(
    session: Session,
    *,
    actor: User,
    vessels: Sequence[Vessel],
    copies: Sequence[int],
    fmt: str,
    dpi: int | None,
    printer: LabelPrinter | None,
    body: bytes,
) -> tuple[list[LabelPrint], PrintJob | None]:
    """A print record per vessel, and for a printer the job carrying exactly `body` to it."""
    job = None
    if printer is not None:
        job = printing.queue(session, actor=actor, printer=printer, payload=body.decode())
    prints = [
        LabelPrint(
            vessel_id=v.id or 0,
            batch_id=v.batch_id,
            copy_number=copy_number,
            format=fmt,
            dpi=dpi,
            printer_id=printer.id if printer else None,
            print_job_id=job.id if job else None,
            printed_by=actor.id or 0,
        )
        for v, copy_number in zip(vessels, copies, strict=True)
    ]
    session.add_all(prints)
    session.flush()
    return prints, job


def _logged(
    prints: Sequence[LabelPrint],
    vessels: Sequence[Vessel],
    printer: LabelPrinter | None,
    job: PrintJob | None,
) -> dict[str, Any]:
    """What the `label.printed` event says of every print call: labels, printer, job."""
    return {
        "labels": [
            {"id": p.id, "code": v.code, "copy_number": p.copy_number}
            for p, v in zip(prints, vessels, strict=True)
        ],
        "printer": printer.name if printer else None,
        "print_job": job.id if job else None,
    }


def print_vessel(
    session: Session,
    *,
    actor: User,
    code: str,
    fmt: LabelFormat,
    dpi: int,
    printer: LabelPrinter | None = None,
) -> Printed:
    """The label of one vessel, logged as a print (a reprint after the first); with a printer,
    also queued as a job for it."""
    parsed = parse_vessel_code(code).value
    found = identity_by_code(session, parsed, lock=True)
    if found is None:
        raise NotFound(f"No vessel has code {parsed}.")
    if found.vessel.is_dose:
        integrity.require_release_intact(session, actor=actor, batch_id=found.vessel.batch_id)
    vessels = [found.vessel]
    (copy_number,) = copies = _next_copies(session, vessels)
    content = content_of(found.vessel, found.biopsy, found.patient, reprint=copy_number > 1)
    body = render(content, fmt, dpi)
    prints, job = _deliver(
        session,
        actor=actor,
        vessels=vessels,
        copies=copies,
        fmt=fmt.value,
        dpi=dpi,
        printer=printer,
        body=body,
    )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.LABEL_PRINTED,
        entity_type=EntityType.VESSEL,
        entity_id=found.vessel.id,
        coi=found.patient.coi,
        new=_logged(prints, vessels, printer, job)
        | {"format": fmt.value, "dpi": dpi, "reprint": copy_number > 1},
    )
    return Printed(
        body=body,
        media_type=MEDIA_TYPES[fmt],
        prints=prints,
        filename=f"label-{parsed}.{fmt.value}",
        job=job,
    )


def _batch_vessels(session: Session, context: BatchContext, *, live_only: bool) -> list[Vessel]:
    """The batch's vessels in code order, locked in id order (the one lock order, ADR 0011)."""
    ids = session.execute(select(Vessel.id).where(Vessel.batch_id == context.batch.id)).scalars()
    locked = lock_vessels(session, list(ids))
    chosen = [v for v in locked if not (live_only and VesselStatus(v.status) in NO_LONGER_IN_USE)]
    return sorted(chosen, key=lambda v: v.sequence)


def print_batch(
    session: Session,
    *,
    actor: User,
    batch_id: int,
    fmt: SheetFormat,
    sheet: SheetLayout,
    dpi: int,
    live_only: bool,
    printer: LabelPrinter | None = None,
) -> Printed:
    """Every vessel label of the batch as one PDF (roll or A4 sheets) or one ZPL job, each label
    logged as a print; with a printer, the ZPL also queued as a job for it."""
    context = batches.get(session, batch_id, lock=True)
    integrity.require_release_intact(session, actor=actor, batch_id=batch_id)
    vessels = _batch_vessels(session, context, live_only=live_only)
    if not vessels:
        raise InvalidState(f"Batch {context.batch.batch_number} has no vessel in use to label.")
    copies = _next_copies(session, vessels)
    contents = [
        content_of(v, context.biopsy, context.patient, reprint=copy_number > 1)
        for v, copy_number in zip(vessels, copies, strict=True)
    ]
    if fmt is SheetFormat.ZPL:
        body = "".join(zpl.zpl(c, dpi) for c in contents).encode()
        media = MEDIA_TYPES[LabelFormat.ZPL]
    else:
        labels = [layout(c) for c in contents]
        body = pdf.roll(labels) if sheet is SheetLayout.ROLL else pdf.sheets(labels)
        media = MEDIA_TYPES[SheetFormat.PDF]
    prints, job = _deliver(
        session,
        actor=actor,
        vessels=vessels,
        copies=copies,
        fmt=fmt.value,
        dpi=dpi,
        printer=printer,
        body=body,
    )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.LABEL_PRINTED,
        entity_type=EntityType.BATCH,
        entity_id=batch_id,
        coi=context.patient.coi,
        new=_logged(prints, vessels, printer, job)
        | {
            "format": fmt.value,
            "layout": sheet.value,
            "dpi": dpi,
            "reprints": sum(1 for c in copies if c > 1),
        },
    )
    name = f"labels-{context.batch.batch_number}.{fmt.value}"
    return Printed(body=body, media_type=media, prints=prints, filename=name, job=job)


def send_vessel_label(
    session: Session, *, actor: User, code: str, printer_id: int
) -> PrintJobPublic:
    """The vessel's label queued for a network printer as ZPL at the printer's resolution."""
    device = printer(session, printer_id)
    printed = print_vessel(
        session, actor=actor, code=code, fmt=LabelFormat.ZPL, dpi=device.dpi, printer=device
    )
    return _job_of(session, printed)


def send_batch_labels(
    session: Session, *, actor: User, batch_id: int, printer_id: int
) -> PrintJobPublic:
    """The labels of the batch's vessels still in use queued for a network printer as one job."""
    device = printer(session, printer_id)
    printed = print_batch(
        session,
        actor=actor,
        batch_id=batch_id,
        fmt=SheetFormat.ZPL,
        sheet=SheetLayout.ROLL,
        dpi=device.dpi,
        live_only=True,
        printer=device,
    )
    return _job_of(session, printed)


def _job_of(session: Session, printed: Printed) -> PrintJobPublic:
    assert printed.job is not None
    return print_job(session, printed.job.id or 0)


def printer(session: Session, printer_id: int) -> LabelPrinter:
    found = session.get(LabelPrinter, printer_id)
    if found is None:
        raise NotFound(f"No printer has id {printer_id}.")
    return found


def create_printer(session: Session, *, actor: User, data: PrinterCreate) -> LabelPrinter:
    row = LabelPrinter(**data.model_dump())
    add_unique(session, row, DuplicateCode(f"A printer named {data.name!r} exists."))
    audit.record(
        session,
        actor=actor,
        action=AuditAction.PRINTER_CREATED,
        entity_type=EntityType.PRINTER,
        entity_id=row.id,
        new=data.model_dump(),
        coi=None,
    )
    return row


def printers(session: Session) -> list[LabelPrinter]:
    return list(session.execute(select(LabelPrinter).order_by(col(LabelPrinter.name))).scalars())


def void(session: Session, *, actor: User, label_id: int, reason: str) -> LabelPrint:
    """Void a printed label (misprint, torn, lost) with a reason; the print stays on record."""
    label = session.get(LabelPrint, label_id, with_for_update=True)
    if label is None:
        raise NotFound(f"No label has id {label_id}.")
    if label.voided_at is not None:
        raise InvalidState(f"Label {label_id} is already voided.")
    vessel = session.get(Vessel, label.vessel_id)
    assert vessel is not None
    patient = session.execute(
        select(Patient)
        .join(Biopsy, col(Biopsy.patient_id) == Patient.id)
        .where(Biopsy.id == vessel.biopsy_id)
    ).scalar_one()
    label.voided_at = utcnow()
    label.voided_by = actor.id
    label.void_reason = reason
    session.add(label)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.LABEL_VOIDED,
        entity_type=EntityType.VESSEL,
        entity_id=vessel.id,
        coi=patient.coi,
        old={"label_id": label_id, "voided": False},
        new={
            "label_id": label_id,
            "voided": True,
            "code": vessel.code,
            "copy_number": label.copy_number,
        },
        reason=reason,
    )
    return label


def history(
    session: Session,
    *,
    vessel_ids: Sequence[int] | None = None,
    label_ids: Sequence[int] = (),
    job_ids: Sequence[int] | None = None,
) -> list[LabelPrintPublic]:
    """Prints of the given vessels (or print jobs, or labels), oldest first, in two queries."""
    query = (
        select(LabelPrint, Vessel.code, LabelPrinter.name, PrintJob.status)
        .join(Vessel, col(Vessel.id) == LabelPrint.vessel_id)
        .outerjoin(LabelPrinter, col(LabelPrinter.id) == LabelPrint.printer_id)
        .outerjoin(PrintJob, col(PrintJob.id) == LabelPrint.print_job_id)
        .order_by(col(LabelPrint.id))
    )
    if vessel_ids is not None:
        query = query.where(col(LabelPrint.vessel_id).in_(list(vessel_ids)))
    elif job_ids is not None:
        query = query.where(col(LabelPrint.print_job_id).in_(list(job_ids)))
    else:
        query = query.where(col(LabelPrint.id).in_(list(label_ids)))
    rows = list(session.execute(query).all())
    people = auth.usernames(session, [p.printed_by for p, _, _, _ in rows])
    return [
        LabelPrintPublic(
            id=p.id or 0,
            vessel_code=code,
            copy_number=p.copy_number,
            reprint=p.copy_number > 1,
            format=p.format,
            dpi=p.dpi,
            printer=printer_name,
            print_job_id=p.print_job_id,
            job_status=job_status,
            printed_by=people[p.printed_by],
            printed_at=p.printed_at,
            voided=p.voided_at is not None,
            voided_at=p.voided_at,
            void_reason=p.void_reason,
        )
        for p, code, printer_name, job_status in rows
    ]


def print_jobs(
    session: Session,
    *,
    status: PrintJobStatus | None = None,
    job_ids: Sequence[int] | None = None,
    limit: int = 200,
) -> list[PrintJobPublic]:
    """The newest print jobs (of a status, or the given ones) with their labels and every
    attempt, in five queries whatever their number."""
    query = (
        select(PrintJob, LabelPrinter.name)
        .join(LabelPrinter, col(LabelPrinter.id) == PrintJob.printer_id)
        .order_by(col(PrintJob.id).desc())
        .limit(limit)
    )
    if status is not None:
        query = query.where(PrintJob.status == status.value)
    if job_ids is not None:
        query = query.where(col(PrintJob.id).in_(list(job_ids)))
    rows = list(session.execute(query).all())
    ids = [job.id or 0 for job, _ in rows]
    labels: dict[int, list[LabelPrintPublic]] = {job_id: [] for job_id in ids}
    for label in history(session, job_ids=ids):
        labels[label.print_job_id or 0].append(label)
    attempts: dict[int, list[PrintAttemptPublic]] = {job_id: [] for job_id in ids}
    for attempt in session.execute(
        select(PrintAttempt).where(col(PrintAttempt.job_id).in_(ids)).order_by(col(PrintAttempt.id))
    ).scalars():
        attempts[attempt.job_id].append(
            PrintAttemptPublic(attempted_at=attempt.attempted_at, error=attempt.error)
        )
    people = auth.usernames(session, [job.created_by for job, _ in rows])
    return [
        PrintJobPublic(
            id=job.id or 0,
            printer=printer_name,
            status=job.status,
            attempts=attempts[job.id or 0],
            last_error=job.last_error,
            next_attempt_at=(
                job.next_attempt_at if job.status == PrintJobStatus.QUEUED.value else None
            ),
            created_by=people[job.created_by],
            created_at=job.created_at,
            sent_at=job.sent_at,
            labels=labels[job.id or 0],
        )
        for job, printer_name in rows
    ]


def print_job(session: Session, job_id: int) -> PrintJobPublic:
    found = print_jobs(session, job_ids=[job_id])
    if not found:
        raise NotFound(f"No print job has id {job_id}.")
    return found[0]


def vessel_history(session: Session, code: str) -> list[LabelPrintPublic]:
    parsed = parse_vessel_code(code).value
    found = identity_by_code(session, parsed)
    if found is None:
        raise NotFound(f"No vessel has code {parsed}.")
    return history(session, vessel_ids=[found.vessel.id or 0])


def reconciliation(session: Session, batch_id: int) -> LabelReconciliation:
    """Labels printed against vessels that exist, for one batch (LBL-4), in three queries. A label
    sent to a printer counts once its job is sent; until then it is awaited or failed."""
    batches.get(session, batch_id)
    vessels = list(
        session.execute(
            select(Vessel).where(Vessel.batch_id == batch_id).order_by(col(Vessel.sequence))
        ).scalars()
    )
    rows = list(
        session.execute(
            select(LabelPrint, PrintJob.status)
            .outerjoin(PrintJob, col(PrintJob.id) == LabelPrint.print_job_id)
            .where(col(LabelPrint.vessel_id).in_([v.id for v in vessels]))
        ).all()
    )
    prints = [p for p, _ in rows]
    unvoided = [(p, job_status) for p, job_status in rows if p.voided_at is None]
    on_vessels = {p.vessel_id for p, job_status in unvoided if job_status in _ON_A_LABEL}
    live = [v for v in vessels if VesselStatus(v.status) not in NO_LONGER_IN_USE]
    unlabelled = [v.code for v in live if v.id not in on_vessels]
    gone_ids = {v.id for v in vessels if VesselStatus(v.status) in NO_LONGER_IN_USE}
    return LabelReconciliation(
        batch_id=batch_id,
        vessels=len(vessels),
        live_vessels=len(live),
        labelled=len(live) - len(unlabelled),
        unlabelled=unlabelled,
        labels_printed=len(prints),
        reprints=sum(1 for p in prints if p.copy_number > 1),
        voided=sum(1 for p in prints if p.voided_at is not None),
        awaiting_printer=sum(1 for _, s in unvoided if s == PrintJobStatus.QUEUED.value),
        printer_failed=sum(1 for _, s in unvoided if s == PrintJobStatus.FAILED.value),
        labels_of_gone_vessels=sum(
            1 for p, s in unvoided if s in _ON_A_LABEL and p.vessel_id in gone_ids
        ),
        complete=not unlabelled,
    )

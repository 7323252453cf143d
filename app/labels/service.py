"""Printing labels (LBL-1..4): what a label says, every print logged (copy 1 the original, later
copies marked REPRINT), voiding, network printers, and the per-batch reconciliation of labels
printed against vessels that exist."""

import socket
from collections.abc import Sequence
from dataclasses import dataclass

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
from app.errors import DuplicateCode, InvalidState, NotFound, PrinterUnavailable
from app.identity.codes import DIN, parse_vessel_code
from app.labels import pdf, raster, svg, zpl
from app.labels.layout import DoseContent, LabelContent, layout
from app.labels.models import LabelPrint, LabelPrinter
from app.labels.schemas import (
    LabelFormat,
    LabelPrintPublic,
    LabelReconciliation,
    PrinterCreate,
    SheetFormat,
    SheetLayout,
)
from app.patients.models import Patient
from app.vessels.models import Vessel
from app.vessels.repository import identity_by_code
from app.vessels.states import NO_LONGER_IN_USE, VesselStatus

MEDIA_TYPES = {
    LabelFormat.SVG: "image/svg+xml",
    LabelFormat.PNG: "image/png",
    LabelFormat.ZPL: "application/zpl; charset=utf-8",
    SheetFormat.PDF: "application/pdf",
}
PRINTER_TIMEOUT_S = 5.0


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


def _last_copies(session: Session, vessel_ids: Sequence[int]) -> dict[int, int]:
    rows = session.execute(
        select(LabelPrint.vessel_id, func.max(LabelPrint.copy_number))
        .where(col(LabelPrint.vessel_id).in_(list(vessel_ids)))
        .group_by(col(LabelPrint.vessel_id))
    )
    return {vessel_id: copy_number for vessel_id, copy_number in rows}


def _log(
    session: Session,
    *,
    actor: User,
    vessels: Sequence[Vessel],
    fmt: str,
    dpi: int | None,
    printer: LabelPrinter | None,
) -> list[LabelPrint]:
    """A print record per vessel (the vessels are locked by the caller)."""
    last = _last_copies(session, [v.id or 0 for v in vessels])
    prints = [
        LabelPrint(
            vessel_id=v.id or 0,
            batch_id=v.batch_id,
            copy_number=last.get(v.id or 0, 0) + 1,
            format=fmt,
            dpi=dpi,
            printer_id=printer.id if printer else None,
            printed_by=actor.id or 0,
        )
        for v in vessels
    ]
    session.add_all(prints)
    session.flush()
    return prints


@dataclass(frozen=True)
class Printed:
    body: bytes
    media_type: str
    prints: list[LabelPrint]
    filename: str


def print_vessel(
    session: Session,
    *,
    actor: User,
    code: str,
    fmt: LabelFormat,
    dpi: int,
    printer: LabelPrinter | None = None,
) -> Printed:
    """The label of one vessel, logged as a print (a reprint after the first)."""
    parsed = parse_vessel_code(code).value
    found = identity_by_code(session, parsed, lock=True)
    if found is None:
        raise NotFound(f"No vessel has code {parsed}.")
    (printed,) = _log(
        session, actor=actor, vessels=[found.vessel], fmt=fmt.value, dpi=dpi, printer=printer
    )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.LABEL_PRINTED,
        entity_type=EntityType.VESSEL,
        entity_id=found.vessel.id,
        coi=found.patient.coi,
        new={
            "labels": [{"id": printed.id, "code": parsed, "copy_number": printed.copy_number}],
            "format": fmt.value,
            "dpi": dpi,
            "printer": printer.name if printer else None,
            "reprint": printed.copy_number > 1,
        },
    )
    content = content_of(found.vessel, found.biopsy, found.patient, reprint=printed.copy_number > 1)
    return Printed(
        body=render(content, fmt, dpi),
        media_type=MEDIA_TYPES[fmt],
        prints=[printed],
        filename=f"label-{parsed}.{fmt.value}",
    )


def _batch_vessels(session: Session, context: BatchContext, *, live_only: bool) -> list[Vessel]:
    """The batch's vessels in code order, locked in id order (as steps lock them)."""
    query = select(Vessel).where(Vessel.batch_id == context.batch.id).order_by(col(Vessel.id))
    locked = list(session.execute(query.with_for_update()).scalars())
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
    logged as a print."""
    context = batches.get(session, batch_id, lock=True)
    vessels = _batch_vessels(session, context, live_only=live_only)
    if not vessels:
        raise InvalidState(f"Batch {context.batch.batch_number} has no vessel in use to label.")
    prints = _log(session, actor=actor, vessels=vessels, fmt=fmt.value, dpi=dpi, printer=printer)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.LABEL_PRINTED,
        entity_type=EntityType.BATCH,
        entity_id=batch_id,
        coi=context.patient.coi,
        new={
            "labels": [
                {"id": p.id, "code": v.code, "copy_number": p.copy_number}
                for p, v in zip(prints, vessels, strict=True)
            ],
            "format": fmt.value,
            "layout": sheet.value,
            "dpi": dpi,
            "printer": printer.name if printer else None,
            "reprints": sum(1 for p in prints if p.copy_number > 1),
        },
    )
    contents = [
        content_of(v, context.biopsy, context.patient, reprint=p.copy_number > 1)
        for p, v in zip(prints, vessels, strict=True)
    ]
    if fmt is SheetFormat.ZPL:
        body = "".join(zpl.zpl(c, dpi) for c in contents).encode()
        media = MEDIA_TYPES[LabelFormat.ZPL]
    else:
        labels = [layout(c) for c in contents]
        body = pdf.roll(labels) if sheet is SheetLayout.ROLL else pdf.sheets(labels)
        media = MEDIA_TYPES[SheetFormat.PDF]
    name = f"labels-{context.batch.batch_number}.{fmt.value}"
    return Printed(body=body, media_type=media, prints=prints, filename=name)


def send(printer: LabelPrinter, job: bytes) -> None:
    """Send a ZPL job to the printer's raw TCP port; an unreachable printer is a 503."""
    try:
        with socket.create_connection((printer.host, printer.port), PRINTER_TIMEOUT_S) as conn:
            conn.sendall(job)
    except OSError as exc:
        raise PrinterUnavailable(
            f"Printer {printer.name} ({printer.host}:{printer.port}) cannot be reached; nothing "
            "was printed."
        ) from exc


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
    session: Session, *, vessel_ids: Sequence[int] | None = None, label_ids: Sequence[int] = ()
) -> list[LabelPrintPublic]:
    """Prints of the given vessels (or the given labels), oldest first, in one query."""
    query = (
        select(LabelPrint, Vessel.code, LabelPrinter.name)
        .join(Vessel, col(Vessel.id) == LabelPrint.vessel_id)
        .outerjoin(LabelPrinter, col(LabelPrinter.id) == LabelPrint.printer_id)
        .order_by(col(LabelPrint.id))
    )
    if vessel_ids is not None:
        query = query.where(col(LabelPrint.vessel_id).in_(list(vessel_ids)))
    else:
        query = query.where(col(LabelPrint.id).in_(list(label_ids)))
    rows = list(session.execute(query).all())
    people = auth.usernames(session, [p.printed_by for p, _, _ in rows])
    return [
        LabelPrintPublic(
            id=p.id or 0,
            vessel_code=code,
            copy_number=p.copy_number,
            reprint=p.copy_number > 1,
            format=p.format,
            dpi=p.dpi,
            printer=printer_name,
            printed_by=people[p.printed_by],
            printed_at=p.printed_at,
            voided=p.voided_at is not None,
            voided_at=p.voided_at,
            void_reason=p.void_reason,
        )
        for p, code, printer_name in rows
    ]


def vessel_history(session: Session, code: str) -> list[LabelPrintPublic]:
    parsed = parse_vessel_code(code).value
    found = identity_by_code(session, parsed)
    if found is None:
        raise NotFound(f"No vessel has code {parsed}.")
    return history(session, vessel_ids=[found.vessel.id or 0])


def reconciliation(session: Session, batch_id: int) -> LabelReconciliation:
    """Labels printed against vessels that exist, for one batch (LBL-4), in three queries."""
    batches.get(session, batch_id)
    vessels = list(
        session.execute(
            select(Vessel).where(Vessel.batch_id == batch_id).order_by(col(Vessel.sequence))
        ).scalars()
    )
    prints = list(
        session.execute(
            select(LabelPrint).where(col(LabelPrint.vessel_id).in_([v.id for v in vessels]))
        ).scalars()
    )
    valid = {p.vessel_id for p in prints if p.voided_at is None}
    live = [v for v in vessels if VesselStatus(v.status) not in NO_LONGER_IN_USE]
    unlabelled = [v.code for v in live if v.id not in valid]
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
        labels_of_gone_vessels=sum(
            1 for p in prints if p.voided_at is None and p.vessel_id in gone_ids
        ),
        complete=not unlabelled,
    )

"""Labels (LBL-1..5): what a label says; previews that log nothing; prints that are logged
(copy 1 the original, later copies marked REPRINT and given a reason), sent to network printers
through an outbox (app/labels/printing.py); voids as rows of their own; and the per-batch
reconciliation of labels printed against vessels that exist. Vessels no longer in use and
vessels of voided registrations get no label, previewed or printed."""

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
from app.batches.models import Batch
from app.batches.service import BatchContext
from app.biopsies.models import Biopsy
from app.config import Settings
from app.db import add_unique
from app.errors import (
    DuplicateCode,
    InvalidRequest,
    InvalidState,
    NotFound,
    ReprintReasonRequired,
)
from app.identity.codes import DIN, MAX_DIVISIONS
from app.labels import accompanying, pdf, printing, raster, svg, zpl
from app.labels.layout import DoseContent, LabelContent, layout
from app.labels.models import LabelPrint, LabelPrinter, LabelVoid, PrintAttempt, PrintJob
from app.labels.product import LabelProduct, label_product
from app.labels.repository import dose_numbers
from app.labels.scanned import scanned_vessel_code
from app.labels.schemas import (
    BatchPrintRequest,
    LabelFormat,
    LabelPrintPublic,
    LabelReconciliation,
    PrintAttemptPublic,
    PrinterCreate,
    PrintFormat,
    PrintJobPublic,
    SheetFormat,
    SheetLayout,
    VesselPrintRequest,
)
from app.labels.states import PrintJobStatus
from app.patients.models import Patient
from app.release import integrity
from app.vessels.models import Vessel
from app.vessels.repository import VesselIdentity, identity_by_code, lock_vessels
from app.vessels.states import NO_LONGER_IN_USE, VesselStatus

MEDIA_TYPES = {
    PrintFormat.SVG: "image/svg+xml",
    PrintFormat.PNG: "image/png",
    PrintFormat.ZPL: "application/zpl; charset=utf-8",
    PrintFormat.PDF: "application/pdf",
}
# A print record stands for a label in hand when it was downloaded (no job) or its job was sent.
_ON_A_LABEL = frozenset({None, PrintJobStatus.SENT.value})
DEFAULT_DPI = {PrintFormat.ZPL: 203}  # a Zebra's own resolution; images at 300 dpi
IMAGE_DPI = 300


def default_dpi(fmt: str) -> int:
    return DEFAULT_DPI.get(PrintFormat(fmt), IMAGE_DPI)


@dataclass(frozen=True)
class Labelling:
    """What every label printed now shares: the QA-controlled product particulars and the
    facility's time zone (LBL-6)."""

    settings: Settings
    product_of: LabelProduct  # read once per request, through label_product(session)

    @classmethod
    def now(cls, session: Session, settings: Settings) -> "Labelling":
        return cls(settings, label_product(session))


def contents_of(
    session: Session,
    labelling: Labelling,
    vessels: Sequence[Vessel],
    copies: Sequence[int],
    *,
    biopsy: Biopsy,
    patient: Patient,
    batch: Batch | None,
) -> list[LabelContent]:
    """What the labels of `vessels` (of one biopsy) show; identity from the biopsy and patient
    (COI-2), each dose numbered in its set (its DIN flags and division code, LBL-6)."""
    numbers = dose_numbers(session, biopsy.id or 0) if any(v.is_dose for v in vessels) else {}
    found = []
    for vessel, copy_number in zip(vessels, copies, strict=True):
        dose = None
        if vessel.is_dose:
            assert vessel.expires_at is not None and vessel.cell_count is not None
            number = numbers[vessel.id or 0]
            if number > MAX_DIVISIONS:
                raise InvalidState(
                    f"Dose {vessel.code} is dose {number} of its set; an ISBT 128 product label "
                    f"numbers at most {MAX_DIVISIONS} doses."
                )
            dose = DoseContent(
                patient_name=f"{patient.family_name.upper()}, {patient.given_name}",
                birth_date=patient.birth_date,
                mrn=patient.mrn,
                coi=patient.coi,
                expires_at=vessel.expires_at,
                cell_count=vessel.cell_count,
                volume_ml=vessel.volume_ml or 0.0,
                batch_number=batch.batch_number if batch else "",
                dose_number=number,
                collected_at=biopsy.collected_at,
                product=labelling.product_of,
            )
        found.append(
            LabelContent(
                code=vessel.code,
                din=biopsy.din,
                din_check=DIN(biopsy.din).check,
                kind=vessel.kind,
                passage=vessel.passage,
                made_on=vessel.created_at.date(),
                reprint=copy_number > 1,
                dose=dose,
                zone=labelling.settings.display_timezone,
            )
        )
    return found


def render(contents: Sequence[LabelContent], fmt: str, dpi: int, sheet: SheetLayout) -> bytes:
    """Labels in `fmt` (from the caches of the renderers): SVG and PNG hold one label; ZPL one
    job per label; a PDF one page per label (`roll`) or A4 sheets."""
    chosen = PrintFormat(fmt)
    if chosen is PrintFormat.SVG:
        (content,) = contents
        return svg.svg(content).encode()
    if chosen is PrintFormat.PNG:
        (content,) = contents
        return raster.png(content, dpi)
    if chosen is PrintFormat.ZPL:
        return "".join(zpl.zpl(c, dpi) for c in contents).encode()
    labels = [layout(c) for c in contents]
    return pdf.roll(labels) if sheet is SheetLayout.ROLL else pdf.sheets(labels)


def _no_label_for(vessel: Vessel, biopsy: Biopsy, patient: Patient) -> str | None:
    """Why `vessel` gets no label (LBL-5), or None: it no longer exists as a container, or it
    belongs to a voided registration (COI-1) and must not be used."""
    if VesselStatus(vessel.status) in NO_LONGER_IN_USE:
        return f"Vessel {vessel.code} is {vessel.status}; a vessel no longer in use gets no label."
    if biopsy.voided_at is not None or patient.voided_at is not None:
        return (
            f"Vessel {vessel.code} belongs to a voided registration; it gets no label and must "
            "not be used."
        )
    return None


def _labelled_vessel(session: Session, code: str, *, lock: bool) -> VesselIdentity:
    parsed = scanned_vessel_code(session, code)
    found = identity_by_code(session, parsed, lock=lock)
    if found is None:
        raise NotFound(f"No vessel has code {parsed}.")
    refusal = _no_label_for(found.vessel, found.biopsy, found.patient)
    if refusal is not None:
        raise InvalidState(refusal)
    return found


def _live_vessels(session: Session, context: BatchContext, *, lock: bool) -> list[Vessel]:
    """The batch's vessels that get a label, in code order; with `lock`, locked in id order
    (the one lock order, ADR 0011; the caller holds the batch)."""
    batch = context.batch
    voided = context.biopsy.voided_at is not None or context.patient.voided_at is not None
    of_batch = Vessel.batch_id == batch.id
    if lock:
        vessels = lock_vessels(
            session, list(session.execute(select(Vessel.id).where(of_batch)).scalars())
        )
    else:
        vessels = list(session.execute(select(Vessel).where(of_batch)).scalars())
    live = [v for v in vessels if VesselStatus(v.status) not in NO_LONGER_IN_USE]
    if voided or not live:
        why = "belongs to a voided registration" if voided else "has no vessel in use"
        raise InvalidState(f"Batch {batch.batch_number} {why}: it gets no label.")
    return sorted(live, key=lambda v: v.sequence)


def _next_copies(session: Session, vessels: Sequence[Vessel]) -> list[int]:
    """The copy number each vessel's next label gets (1: the original; 2 on: reprints)."""
    rows = session.execute(
        select(LabelPrint.vessel_id, func.max(LabelPrint.copy_number))
        .where(col(LabelPrint.vessel_id).in_([v.id for v in vessels]))
        .group_by(col(LabelPrint.vessel_id))
    )
    last = {vessel_id: copy_number for vessel_id, copy_number in rows}
    return [last.get(v.id or 0, 0) + 1 for v in vessels]


@dataclass(frozen=True)
class Rendered:
    """A label or a sheet of labels as a document."""

    body: bytes
    media_type: str
    filename: str


@dataclass(frozen=True)
class Printed:
    document: Rendered
    prints: list[LabelPrint]
    job: PrintJob | None  # the job that takes the labels to a printer


def _contents(
    session: Session, settings: Settings, found: VesselIdentity, copies: Sequence[int]
) -> list[LabelContent]:
    return contents_of(
        session,
        Labelling.now(session, settings),
        [found.vessel],
        copies,
        biopsy=found.biopsy,
        patient=found.patient,
        batch=found.batch,
    )


def preview_vessel(
    session: Session, settings: Settings, *, code: str, fmt: LabelFormat, dpi: int
) -> Rendered:
    """The vessel's label as its next print would come out (REPRINT once a print is on record):
    a preview, which writes nothing (LBL-5)."""
    found = _labelled_vessel(session, code, lock=False)
    contents = _contents(session, settings, found, _next_copies(session, [found.vessel]))
    body = render(contents, fmt.value, dpi, SheetLayout.ROLL)
    return Rendered(body, MEDIA_TYPES[PrintFormat(fmt)], f"label-{found.vessel.code}.{fmt.value}")


def accompanying_document(session: Session, settings: Settings, *, code: str) -> Rendered:
    """The document that travels with a dose (LBL-6, ADR 0020): a document, not a label, so it is
    not a print of the label log; reading it writes nothing."""
    found = _labelled_vessel(session, code, lock=False)
    if not found.vessel.is_dose:
        raise InvalidRequest(
            f"Vessel {found.vessel.code} is not a dose; only doses have an accompanying document."
        )
    (content,) = _contents(session, settings, found, [1])
    body = accompanying.render(content)
    return Rendered(body, "application/pdf", f"accompanying-{found.vessel.code}.pdf")


def preview_batch(
    session: Session,
    settings: Settings,
    *,
    batch_id: int,
    fmt: SheetFormat,
    sheet: SheetLayout,
    dpi: int,
) -> Rendered:
    """The labels of the batch's vessels still in use, as their next print would come out: a
    preview, which writes nothing (LBL-5)."""
    context = batches.get(session, batch_id)
    vessels = _live_vessels(session, context, lock=False)
    copies = _next_copies(session, vessels)
    return _sheet(session, settings, context, vessels, copies, fmt.value, sheet, dpi)


def _sheet(
    session: Session,
    settings: Settings,
    context: BatchContext,
    vessels: Sequence[Vessel],
    copies: Sequence[int],
    fmt: str,
    sheet: SheetLayout,
    dpi: int,
) -> Rendered:
    contents = contents_of(
        session,
        Labelling.now(session, settings),
        vessels,
        copies,
        biopsy=context.biopsy,
        patient=context.patient,
        batch=context.batch,
    )
    body = render(contents, fmt, dpi, sheet)
    name = f"labels-{context.batch.batch_number}.{fmt}"
    return Rendered(body, MEDIA_TYPES[PrintFormat(fmt)], name)


def _reason_for(vessels: Sequence[Vessel], copies: Sequence[int], reason: str | None) -> None:
    """A reprint needs its reason (LBL-5); checked on the locked vessels' print log."""
    again = [v.code for v, copy_number in zip(vessels, copies, strict=True) if copy_number > 1]
    if again and reason is None:
        raise ReprintReasonRequired(
            f"The label of {', '.join(again)} was printed before: say why it is printed again "
            "(reason)."
        )


def _deliver(
    session: Session,
    *,
    actor: User,
    vessels: Sequence[Vessel],
    copies: Sequence[int],
    fmt: str,
    dpi: int | None,
    printer: LabelPrinter | None,
    reason: str | None,
    document: Rendered,
) -> Printed:
    """A print record per vessel, and for a printer the job carrying exactly the document."""
    job = None
    if printer is not None:
        job = printing.queue(session, actor=actor, printer=printer, payload=document.body.decode())
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
            reason=reason,
        )
        for v, copy_number in zip(vessels, copies, strict=True)
    ]
    session.add_all(prints)
    session.flush()
    return Printed(document=document, prints=prints, job=job)


def _logged(
    printed: Printed, vessels: Sequence[Vessel], printer: LabelPrinter | None
) -> dict[str, Any]:
    """What the `label.printed` event says of every print call: labels, printer, job."""
    return {
        "labels": [
            {"id": p.id, "code": v.code, "copy_number": p.copy_number}
            for p, v in zip(printed.prints, vessels, strict=True)
        ],
        "printer": printer.name if printer else None,
        "print_job": printed.job.id if printed.job else None,
    }


def _device(session: Session, printer_id: int | None) -> LabelPrinter | None:
    return None if printer_id is None else printer(session, printer_id)


def print_vessel(
    session: Session, settings: Settings, *, actor: User, code: str, request: VesselPrintRequest
) -> Printed:
    """The vessel's label printed (LBL-5): downloaded, or queued as ZPL for a network printer at
    its resolution; logged as a print, a reprint (with its reason) after the first."""
    device = _device(session, request.printer_id)
    found = _labelled_vessel(session, code, lock=True)
    if found.vessel.is_dose:
        integrity.require_release_intact(session, actor=actor, batch_id=found.vessel.batch_id)
    vessels = [found.vessel]
    (copy_number,) = copies = _next_copies(session, vessels)
    _reason_for(vessels, copies, request.reason)
    fmt = request.chosen_format
    dpi = device.dpi if device else request.dpi or default_dpi(fmt)
    document = Rendered(
        render(_contents(session, settings, found, copies), fmt, dpi, SheetLayout.ROLL),
        MEDIA_TYPES[PrintFormat(fmt)],
        f"label-{found.vessel.code}.{fmt}",
    )
    printed = _deliver(
        session,
        actor=actor,
        vessels=vessels,
        copies=copies,
        fmt=fmt,
        dpi=dpi,
        printer=device,
        reason=request.reason,
        document=document,
    )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.LABEL_PRINTED,
        entity_type=EntityType.VESSEL,
        entity_id=found.vessel.id,
        coi=found.patient.coi,
        new=_logged(printed, vessels, device)
        | {"format": fmt, "dpi": dpi, "reprint": copy_number > 1},
        reason=request.reason,
    )
    return printed


def print_batch(
    session: Session, settings: Settings, *, actor: User, batch_id: int, request: BatchPrintRequest
) -> Printed:
    """The labels of the batch's vessels still in use printed as one PDF (roll or A4) or one
    ZPL job (downloaded, or queued for a network printer), each label logged as a print."""
    device = _device(session, request.printer_id)
    context = batches.get(session, batch_id, lock=True)
    integrity.require_release_intact(session, actor=actor, batch_id=batch_id)
    vessels = _live_vessels(session, context, lock=True)
    copies = _next_copies(session, vessels)
    _reason_for(vessels, copies, request.reason)
    fmt = request.chosen_format
    dpi = device.dpi if device else request.dpi or default_dpi(fmt)
    document = _sheet(session, settings, context, vessels, copies, fmt, request.layout, dpi)
    printed = _deliver(
        session,
        actor=actor,
        vessels=vessels,
        copies=copies,
        fmt=fmt,
        dpi=dpi,
        printer=device,
        reason=request.reason,
        document=document,
    )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.LABEL_PRINTED,
        entity_type=EntityType.BATCH,
        entity_id=batch_id,
        coi=context.patient.coi,
        new=_logged(printed, vessels, device)
        | {
            "format": fmt,
            "layout": request.layout.value,
            "dpi": dpi,
            "reprints": sum(1 for c in copies if c > 1),
        },
        reason=request.reason,
    )
    return printed


def job_of(session: Session, printed: Printed) -> PrintJobPublic:
    """The print job a print to a network printer queued, as the queue shows it."""
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
    """Void a printed label (misprint, torn, lost) with a reason: a `label_void` row naming the
    print, which stays as it was (append-only). The vessel is locked first (batch, then vessel:
    ADR 0011), so two voids of one label serialize and the second sees the first."""
    label = session.get(LabelPrint, label_id)
    if label is None:
        raise NotFound(f"No label has id {label_id}.")
    vessel = session.get(Vessel, label.vessel_id)
    assert vessel is not None
    found = identity_by_code(session, vessel.code, lock=True)
    assert found is not None
    already = InvalidState(f"Label {label_id} is already voided.")
    if session.execute(select(LabelVoid.id).where(LabelVoid.label_print_id == label_id)).first():
        raise already
    add_unique(
        session,
        LabelVoid(label_print_id=label_id, reason=reason, voided_by=actor.id or 0),
        already,
    )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.LABEL_VOIDED,
        entity_type=EntityType.VESSEL,
        entity_id=vessel.id,
        coi=found.patient.coi,
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
    """Prints of the given vessels (or print jobs, or labels) with their voids, oldest first, in
    two queries."""
    query = (
        select(LabelPrint, LabelVoid, Vessel.code, LabelPrinter.name, PrintJob.status)
        .join(Vessel, col(Vessel.id) == LabelPrint.vessel_id)
        .outerjoin(LabelVoid, col(LabelVoid.label_print_id) == LabelPrint.id)
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
    people = auth.usernames(
        session,
        [p.printed_by for p, *_ in rows] + [v.voided_by for _, v, *_ in rows if v is not None],
    )
    return [
        LabelPrintPublic(
            id=p.id or 0,
            vessel_code=code,
            copy_number=p.copy_number,
            reprint=p.copy_number > 1,
            reason=p.reason,
            format=p.format,
            dpi=p.dpi,
            printer=printer_name,
            print_job_id=p.print_job_id,
            job_status=job_status,
            printed_by=people[p.printed_by],
            printed_at=p.printed_at,
            voided=voided is not None,
            voided_at=voided.voided_at if voided else None,
            voided_by=people[voided.voided_by] if voided else None,
            void_reason=voided.reason if voided else None,
        )
        for p, voided, code, printer_name, job_status in rows
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
    parsed = scanned_vessel_code(session, code)
    found = identity_by_code(session, parsed)
    if found is None:
        raise NotFound(f"No vessel has code {parsed}.")
    return history(session, vessel_ids=[found.vessel.id or 0])


def reconciliation(session: Session, batch_id: int) -> LabelReconciliation:
    """Labels printed against vessels that exist, for one batch (LBL-4), in three queries. A label
    sent to a printer counts once its job is sent; until then it is awaited or failed. A voided
    label is one a `label_void` row names."""
    batches.get(session, batch_id)
    vessels = list(
        session.execute(
            select(Vessel).where(Vessel.batch_id == batch_id).order_by(col(Vessel.sequence))
        ).scalars()
    )
    rows = list(
        session.execute(
            select(LabelPrint, PrintJob.status, col(LabelVoid.id).is_not(None))
            .outerjoin(PrintJob, col(PrintJob.id) == LabelPrint.print_job_id)
            .outerjoin(LabelVoid, col(LabelVoid.label_print_id) == LabelPrint.id)
            .where(col(LabelPrint.vessel_id).in_([v.id for v in vessels]))
        ).all()
    )
    prints = [p for p, _, _ in rows]
    unvoided = [(p, job_status) for p, job_status, voided in rows if not voided]
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
        voided=len(prints) - len(unvoided),
        awaiting_printer=sum(1 for _, s in unvoided if s == PrintJobStatus.QUEUED.value),
        printer_failed=sum(1 for _, s in unvoided if s == PrintJobStatus.FAILED.value),
        labels_of_gone_vessels=sum(
            1 for p, s in unvoided if s in _ON_A_LABEL and p.vessel_id in gone_ids
        ),
        complete=not unlabelled,
    )

from typing import Annotated, Any

from fastapi import Depends, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from sqlmodel import Session

from app.auth.deps import require
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.config import SettingsDep
from app.labels import service
from app.labels.schemas import (
    BatchPrintRequest,
    LabelFormat,
    LabelPrintPublic,
    LabelReconciliation,
    PrinterCreate,
    PrinterPublic,
    PrintJobPublic,
    QueryDpi,
    SheetFormat,
    SheetLayout,
    VesselPrintRequest,
)
from app.labels.service import Printed, Rendered
from app.labels.states import PrintJobStatus
from app.patients.schemas import VoidRequest
from app.pipeline import Router, SessionDep
from app.types import CodeInput, Id

router = Router(tags=["labels"])

Printer = Annotated[Principal, Depends(require(Permission.LABEL_PRINT))]
Voider = Annotated[Principal, Depends(require(Permission.LABEL_VOID))]
Manager = Annotated[Principal, Depends(require(Permission.CATALOGUE_MANAGE))]
Reader = Annotated[Principal, Depends(require(Permission.BATCH_READ))]
JobReader = Annotated[Principal, Depends(require(Permission.PRINT_JOBS_READ))]


def _document(rendered: Rendered, headers: dict[str, str] | None = None) -> Response:
    return Response(
        rendered.body,
        media_type=rendered.media_type,
        headers={"Content-Disposition": f'inline; filename="{rendered.filename}"'}
        | (headers or {}),
    )


def _printed(session: Session, printed: Printed) -> Response:
    """A print's answer: the document (200) with its print records' ids, or, sent to a network
    printer, its job (201)."""
    if printed.job is not None:
        job = service.job_of(session, printed)
        return JSONResponse(jsonable_encoder(job), status_code=201)
    return _document(
        printed.document,
        {
            "X-Label-Ids": ",".join(str(p.id) for p in printed.prints),
            "X-Label-Reprints": str(sum(1 for p in printed.prints if p.copy_number > 1)),
        },
    )


_PRINTED: dict[int | str, dict[str, Any]] = {
    200: {"description": "The printed document (PDF, PNG, SVG or ZPL), logged as a print"},
    201: {"model": PrintJobPublic, "description": "The print job queued for a network printer"},
}


@router.get("/vessels/{code}/label", response_class=Response)
def vessel_label(
    code: CodeInput,
    session: SessionDep,
    settings: SettingsDep,
    _: Reader,
    format: Annotated[LabelFormat, Query()] = LabelFormat.SVG,
    dpi: Annotated[QueryDpi | None, Query()] = None,
) -> Response:
    """A preview of the vessel's label (LBL-1, LBL-2) as SVG, PNG or ZPL, exactly as its next
    print would come out; it logs nothing (LBL-5): printing is `POST /vessels/{code}/print`.
    PNG defaults to 300 dpi, ZPL to a 203 dpi printer."""
    chosen = dpi or service.default_dpi(format)
    return _document(service.preview_vessel(session, settings, code=code, fmt=format, dpi=chosen))


@router.get("/vessels/{code}/label/accompanying", response_class=Response)
def accompanying_document(
    code: CodeInput, session: SessionDep, settings: SettingsDep, _: Reader
) -> Response:
    """The A4 document that travels with a dose (LBL-6): the product particulars that do not fit
    on the bag label (excipients, storage conditions, establishment, instructions, disposal)
    with the identifiers that tie it to the bag. A document: reading it logs nothing."""
    return _document(service.accompanying_document(session, settings, code=code))


@router.get("/batches/{batch_id}/labels", response_class=Response)
def batch_labels(
    batch_id: Id,
    session: SessionDep,
    settings: SettingsDep,
    _: Reader,
    format: Annotated[SheetFormat, Query()] = SheetFormat.PDF,
    layout: Annotated[SheetLayout, Query()] = SheetLayout.ROLL,
    dpi: Annotated[QueryDpi, Query()] = 203,
) -> Response:
    """A preview of the labels of the batch's vessels still in use (LBL-3): a PDF at real label
    sizes (`layout=roll`) or on A4 sheets, or ZPL; it logs nothing (LBL-5): printing is
    `POST /batches/{id}/labels/print`."""
    rendered = service.preview_batch(
        session, settings, batch_id=batch_id, fmt=format, sheet=layout, dpi=dpi
    )
    return _document(rendered)


@router.post("/vessels/{code}/print", response_class=Response, responses=_PRINTED)
def print_vessel(
    code: CodeInput,
    body: VesselPrintRequest,
    session: SessionDep,
    settings: SettingsDep,
    principal: Printer,
) -> Response:
    """Print the vessel's label (LBL-5): 200 with the document, or with `printer_id` 201 with
    the job that takes its ZPL to the network printer (raw TCP, port 9100) right after the
    commit (GET /print-jobs/{id} for its status). Logged either way; a reprint needs a reason."""
    printed = service.print_vessel(session, settings, actor=principal.user, code=code, request=body)
    return _printed(session, printed)


@router.post("/batches/{batch_id}/labels/print", response_class=Response, responses=_PRINTED)
def print_batch(
    batch_id: Id,
    body: BatchPrintRequest,
    session: SessionDep,
    settings: SettingsDep,
    principal: Printer,
) -> Response:
    """Print the labels of the batch's vessels still in use as one document or one print job,
    each label logged (LBL-5); a reprint of any of them needs a reason."""
    printed = service.print_batch(
        session, settings, actor=principal.user, batch_id=batch_id, request=body
    )
    return _printed(session, printed)


@router.get("/print-jobs", response_model=list[PrintJobPublic])
def print_jobs(
    session: SessionDep,
    _: JobReader,
    status: Annotated[PrintJobStatus | None, Query()] = None,
) -> list[PrintJobPublic]:
    """The newest print jobs (200), with their labels and every attempt; `status=failed` lists
    the labels a printer never took."""
    return service.print_jobs(session, status=status)


@router.get("/print-jobs/{job_id}", response_model=PrintJobPublic)
def print_job(job_id: Id, session: SessionDep, _: JobReader) -> PrintJobPublic:
    return service.print_job(session, job_id)


@router.get("/vessels/{code}/labels", response_model=list[LabelPrintPublic])
def label_history(code: CodeInput, session: SessionDep, _: Reader) -> list[LabelPrintPublic]:
    """Every label printed for the vessel, voided ones included."""
    return service.vessel_history(session, code)


@router.post("/labels/{label_id}/void", response_model=LabelPrintPublic)
def void_label(
    label_id: Id, body: VoidRequest, session: SessionDep, principal: Voider
) -> LabelPrintPublic:
    label = service.void(session, actor=principal.user, label_id=label_id, reason=body.reason)
    (view,) = service.history(session, label_ids=[label.id or 0])
    return view


@router.get("/batches/{batch_id}/labels/reconciliation", response_model=LabelReconciliation)
def label_reconciliation(batch_id: Id, session: SessionDep, _: Reader) -> LabelReconciliation:
    """Labels printed against vessels that exist (LBL-4)."""
    return service.reconciliation(session, batch_id)


@router.get("/printers", response_model=list[PrinterPublic])
def list_printers(session: SessionDep, _: Printer) -> list[PrinterPublic]:
    return [
        PrinterPublic.model_validate(p, from_attributes=True) for p in service.printers(session)
    ]


@router.post("/printers", response_model=PrinterPublic, status_code=201)
def create_printer(body: PrinterCreate, session: SessionDep, p: Manager) -> PrinterPublic:
    printer = service.create_printer(session, actor=p.user, data=body)
    return PrinterPublic.model_validate(printer, from_attributes=True)

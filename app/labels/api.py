from typing import Annotated

from fastapi import Depends, Query
from fastapi.responses import Response

from app.auth.deps import require
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.labels import service
from app.labels.schemas import (
    LabelFormat,
    LabelPrintPublic,
    LabelReconciliation,
    PrinterCreate,
    PrinterPublic,
    PrintJobPublic,
    PrintRequest,
    QueryDpi,
    SheetFormat,
    SheetLayout,
)
from app.labels.service import Printed
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


def _download(printed: Printed) -> Response:
    ids = ",".join(str(p.id) for p in printed.prints)
    return Response(
        printed.body,
        media_type=printed.media_type,
        headers={
            "Content-Disposition": f'inline; filename="{printed.filename}"',
            "X-Label-Ids": ids,
            "X-Label-Reprints": str(sum(1 for p in printed.prints if p.copy_number > 1)),
        },
    )


@router.get("/vessels/{code}/label", response_class=Response)
def vessel_label(
    code: CodeInput,
    session: SessionDep,
    principal: Printer,
    format: Annotated[LabelFormat, Query()] = LabelFormat.SVG,
    dpi: Annotated[QueryDpi | None, Query()] = None,
) -> Response:
    """The vessel's label (LBL-1, LBL-2) as SVG, PNG or ZPL; logged as a print, a reprint after
    the first (LBL-4). PNG defaults to 300 dpi, ZPL to a 203 dpi printer."""
    chosen = dpi or (203 if format is LabelFormat.ZPL else 300)
    printed = service.print_vessel(session, actor=principal.user, code=code, fmt=format, dpi=chosen)
    return _download(printed)


@router.get("/batches/{batch_id}/labels", response_class=Response)
def batch_labels(
    batch_id: Id,
    session: SessionDep,
    principal: Printer,
    format: Annotated[SheetFormat, Query()] = SheetFormat.PDF,
    layout: Annotated[SheetLayout, Query()] = SheetLayout.ROLL,
    dpi: Annotated[QueryDpi, Query()] = 203,
    live: Annotated[bool, Query()] = False,
) -> Response:
    """Every vessel label of the batch (only vessels still in use with `live=true`): a PDF at
    real label sizes (`layout=roll`) or on A4 sheets, or one ZPL job (LBL-3)."""
    printed = service.print_batch(
        session,
        actor=principal.user,
        batch_id=batch_id,
        fmt=format,
        sheet=layout,
        dpi=dpi,
        live_only=live,
    )
    return _download(printed)


@router.post("/vessels/{code}/print", response_model=PrintJobPublic, status_code=201)
def print_vessel(
    code: CodeInput, body: PrintRequest, session: SessionDep, principal: Printer
) -> PrintJobPublic:
    """Queue the vessel's label for a network printer as ZPL (raw TCP, port 9100): 201 with the
    job, sent by the printer worker right after the commit (GET /print-jobs/{id} for its status)."""
    return service.send_vessel_label(
        session, actor=principal.user, code=code, printer_id=body.printer_id
    )


@router.post("/batches/{batch_id}/labels/print", response_model=PrintJobPublic, status_code=201)
def print_batch(
    batch_id: Id, body: PrintRequest, session: SessionDep, principal: Printer
) -> PrintJobPublic:
    """Queue every vessel label of the batch still in use for a network printer as one job."""
    return service.send_batch_labels(
        session, actor=principal.user, batch_id=batch_id, printer_id=body.printer_id
    )


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

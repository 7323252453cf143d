"""The label printers page (issue 12 item 7): the Zebra printers labels can be sent to, and the
form to register one, for whoever manages the catalogue. The form builds the JSON API's own
`PrinterCreate` and calls the service `POST /api/v1/printers` calls; a refusal is shown on the
page, read afresh beside it (app/pageflow.py)."""

from functools import partial
from typing import Annotated, get_args

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from app import pageflow
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.errors import HomewardError
from app.labels import service
from app.labels.schemas import Dpi, PrinterCreate, PrinterPublic, typed_int
from app.pipeline import Router, SessionDep
from app.web import detached, form_model, refusals_shown_on, render_refusable

router = Router(include_in_schema=False)

Manager = Annotated[
    Principal, Depends(refusals_shown_on("admin/refused.html", Permission.CATALOGUE_MANAGE))
]
Field = Annotated[str, Form(max_length=255)]


def _printers(session: Session, principal: Principal) -> dict:
    printers = [
        PrinterPublic.model_validate(p, from_attributes=True) for p in service.printers(session)
    ]
    return {"printers": printers, "principal": detached(principal)}


async def _show(
    request: Request,
    session: Session,
    principal: Principal,
    *,
    refusal: HomewardError | None = None,
    typed: dict | None = None,
    registered: str | None = None,
) -> HTMLResponse:
    shown = await pageflow.read(session, partial(_printers, session, principal))
    return render_refusable(
        request,
        "admin/printers.html",
        refusal,
        **shown,
        typed=typed or {},
        registered=registered,
        resolutions=get_args(Dpi),
    )


@router.get("/admin/printers", response_class=HTMLResponse)
async def printers_page(
    request: Request, session: SessionDep, principal: Manager, registered: str = ""
) -> Response:
    principal = await pageflow.signed_in(session, principal)
    return await _show(request, session, principal, registered=registered[:64] or None)


@router.post("/admin/printers", response_class=HTMLResponse)
async def register_printer(
    request: Request,
    session: SessionDep,
    principal: Manager,
    name: Field = "",
    host: Field = "",
    port: Field = "9100",
    dpi: Field = "203",
) -> Response:
    """POST /api/v1/printers from a form: the printer's name, address, port and resolution."""
    principal = await pageflow.signed_in(session, principal)

    def act() -> int:
        data = form_model(PrinterCreate, name=name, host=host, port=port, dpi=typed_int(dpi))
        return service.create_printer(session, actor=principal.user, data=data).id or 0

    typed = {"name": name, "host": host, "port": port, "dpi": dpi}
    return await pageflow.act_or_show(
        session,
        act,
        done=lambda printer_id: RedirectResponse(
            f"/admin/printers?registered={printer_id}#printer-{printer_id}", status_code=303
        ),
        show=lambda refusal: _show(request, session, principal, refusal=refusal, typed=typed),
    )

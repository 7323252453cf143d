"""Step entry by scanning, for the batch of the scan station's working context (issue 12 item 3,
ADR 0026): each scanned input is checked against the context at once by the scan service, the
step is recorded by the same service as the API, and the outputs' labels are offered for an
explicit print right after."""

from dataclasses import replace
from functools import partial
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from app import pageflow
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.batches import service as batches
from app.config import SettingsDep
from app.errors import HomewardError, InvalidRequest
from app.labels import service as labels
from app.labels.schemas import VesselPrintRequest
from app.materials import service as materials
from app.pipeline import Router, SessionDep
from app.scan import service as scans
from app.scan import views
from app.scan.pages import acknowledge_stop
from app.scan.schemas import ScanResult
from app.scan.station import Station, Verdict, load, store
from app.scan.views import after_scan, expectation, verdict_of
from app.steps import service
from app.steps.form import MEASUREMENTS, StepForm
from app.steps.rules import RULES, StepKind
from app.types import Id
from app.web import page_require, render, render_refusable

router = Router(include_in_schema=False)

Operator = Annotated[Principal, Depends(page_require(Permission.STEP_RECORD))]
Reader = Annotated[Principal, Depends(page_require(Permission.BATCH_READ))]
Printer = Annotated[Principal, Depends(page_require(Permission.LABEL_PRINT))]


def _kind(value: object) -> StepKind | None:
    try:
        return StepKind(str(value))
    except ValueError:
        return None


def _catalogue(session, station: Station) -> dict:
    """What the step form shows besides the form itself (read only)."""
    view = views.station_view(session, station, choices=True)
    status = view.context.batch.status if view.context and view.context.batch else None
    return {
        "view": view,
        "allowed": service.kinds_allowed(status) if status else [],
        "lots": [(lot, m) for lot, m in materials.list_lots(session)],
        "equipment": [e for e in materials.list_equipment(session) if e.in_service],
    }


async def _show_form(
    request: Request,
    session: SessionDep,
    principal: Principal,
    station: Station,
    form: StepForm | None,
    *,
    outcome: ScanResult | HomewardError | None = None,
    refusal: HomewardError | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    shown = await pageflow.read(session, partial(_catalogue, session, station))
    failed = outcome if isinstance(outcome, HomewardError) else None
    status = 409 if shown["view"].stop else next((e.status for e in (failed, refusal) if e), 200)
    response = render(
        request,
        "steps/new.html",
        status_code=status,
        principal=principal,
        form=form,
        kinds=list(StepKind),
        rule=RULES[form.kind] if form else None,
        measurements=MEASUREMENTS[form.kind] if form else (),
        outcome=outcome,
        failed=failed,
        verdict=verdict_of(outcome) if outcome is not None else None,
        refusal=refusal,
        notice=notice,
        next_path=f"/steps/new?kind={form.kind.value}" if form else "/steps/new",
        stop_action="/steps/new",
        stop_hidden=form.hidden() if form else [],
        zone=request.app.state.settings.display_timezone,
        **shown,
    )
    return store(request, response, station)


@router.get("/steps/new", response_class=HTMLResponse)
async def step_form(
    request: Request, session: SessionDep, principal: Operator, kind: str = ""
) -> Response:
    principal = await pageflow.signed_in(session, principal)
    chosen = _kind(kind)
    station = load(request, principal.user.id or 0)
    form = StepForm.empty(chosen) if chosen else None
    return await _show_form(request, session, principal, station, form)


@router.post("/steps/new", response_class=HTMLResponse)
async def step_submit(request: Request, session: SessionDep, principal: Operator) -> Response:
    """One round of the form: scan an input, add or remove a row, acknowledge a STOP, or record
    the step. Nothing is recorded but by the last."""
    principal = await pageflow.signed_in(session, principal)
    posted = await request.form()
    kind = _kind(posted.get("kind"))
    station = load(request, principal.user.id or 0)
    action = str(posted.get("action") or "scan")
    form = StepForm.parse(kind, posted) if kind else None
    if action == "ack":
        after = await acknowledge_stop(session, principal, station)
        if isinstance(after, HomewardError):
            return await _show_form(request, session, principal, station, form, refusal=after)
        return await _show_form(request, session, principal, after, form)
    if form is None:
        return await _show_form(request, session, principal, station, form)
    if station.stop or station.batch_id is None:
        return await _show_form(request, session, principal, station, form)
    if action.startswith("remove:"):
        form.inputs = [code for code in form.inputs if code != action.removeprefix("remove:")]
    elif action == "add_output" and len(form.outputs) < RULES[kind].outputs[1]:
        form.outputs.append(
            replace(form.outputs[-1]) if form.outputs else StepForm.empty(kind).outputs[0]
        )
    elif action.startswith("drop_output:") and len(form.outputs) > RULES[kind].outputs[0]:
        index = action.removeprefix("drop_output:")
        form.outputs = [row for i, row in enumerate(form.outputs) if str(i) != index]
    elif action == "record":
        return await _record(request, session, principal, station, form)
    else:
        return await _scan_input(request, session, principal, station, form, posted.get("scan"))
    return await _show_form(request, session, principal, station, form)


async def _scan_input(request, session, principal, station, form: StepForm, scanned) -> Response:
    """The scanned input, checked against the working context at once (COI-5); kept only when
    it holds and the vessel is usable."""
    code = scanned.strip() if isinstance(scanned, str) else ""
    if not code:
        notice = "Scan an input vessel's label into the box, or record the step."
        return await _show_form(request, session, principal, station, form, notice=notice)
    outcome = await pageflow.attempt(
        session,
        partial(
            scans.scan,
            session,
            actor=principal.user,
            code=code[:200],
            expect=expectation(station),
            record_accepted=request.app.state.settings.scan_audit,
        ),
    )
    station = after_scan(station, code, outcome)
    notice = None
    if isinstance(outcome, ScanResult) and verdict_of(outcome) is Verdict.HELD:
        if outcome.vessel.code in form.inputs:
            notice = f"{outcome.vessel.code} is already among the inputs."
        else:
            form.inputs.append(outcome.vessel.code)
            notice = f"{outcome.vessel.code} added to the inputs."
    return await _show_form(
        request, session, principal, station, form, outcome=outcome, notice=notice
    )


async def _record(request, session, principal, station: Station, form: StepForm) -> Response:
    settings = request.app.state.settings
    zone = ZoneInfo(settings.display_timezone)

    def record() -> int:
        data = form.to_create(zone)
        recorded = service.record(
            session, settings, actor=principal.user, batch_id=station.batch_id or 0, data=data
        )
        return recorded.step.id or 0

    done = await pageflow.attempt(session, record)
    if isinstance(done, HomewardError):
        return await _show_form(request, session, principal, station, form, refusal=done)
    return RedirectResponse(f"/steps/{done}", status_code=303)


def _step_page(session, step_id: int) -> dict:
    step = service.view(session, step_id)
    context = views.identity_of(batches.get(session, step.batch_id))
    return {"step": step, "context": context, "printers": labels.printers(session)}


async def _show_step(
    request, session, principal, step_id: int, *, printed=None, refusal=None, code=None
) -> HTMLResponse:
    shown = await pageflow.read(session, partial(_step_page, session, step_id))
    return render_refusable(
        request,
        "steps/recorded.html",
        refusal,
        principal=principal,
        printed=printed,
        refused_code=code,
        **shown,
    )


@router.get("/steps/{step_id}", response_class=HTMLResponse)
async def step_recorded(
    request: Request, step_id: Id, session: SessionDep, principal: Reader
) -> Response:
    """A recorded step with its outputs, each label offered for printing (never printed by
    itself: LBL-5)."""
    principal = await pageflow.signed_in(session, principal)
    return await _show_step(request, session, principal, step_id)


@router.post("/steps/{step_id}/print", response_model=None)
async def print_output(
    request: Request,
    step_id: Id,
    session: SessionDep,
    principal: Printer,
    settings: SettingsDep,
    code: Annotated[str, Form(max_length=200)],
    printer_id: Annotated[str, Form(max_length=12)] = "",
    reason: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """Print one output's label through the label service (logged, a reprint with its reason):
    downloaded as a PDF, or sent as ZPL to the chosen network printer."""
    principal = await pageflow.signed_in(session, principal)

    def print_label() -> labels.Printed:
        try:
            wanted = VesselPrintRequest(
                printer_id=int(printer_id) if printer_id.isdigit() else None,
                reason=reason.strip() or None,
            )
        except ValidationError as exc:
            raise InvalidRequest(f"The print form is not valid: {exc.errors()[0]['msg']}.") from exc
        return labels.print_vessel(
            session, settings, actor=principal.user, code=code, request=wanted
        )

    printed = await pageflow.attempt(session, print_label)
    if isinstance(printed, HomewardError):
        return await _show_step(request, session, principal, step_id, refusal=printed, code=code)
    if printed.job is None:
        document = printed.document
        return Response(
            document.body,
            media_type=document.media_type,
            headers={"Content-Disposition": f'attachment; filename="{document.filename}"'},
        )
    return await _show_step(request, session, principal, step_id, printed=(code, printed.job))

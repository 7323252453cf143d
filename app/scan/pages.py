"""The scan station: a working context kept until cleared, every scan checked against it through
the scan service (COI-5), a STOP to acknowledge on a mismatch, the last scans (ADR 0026).

A refusal never replaces the station: the act runs in its own unit of work and the station is
read afresh in another (`app.pageflow`)."""

from dataclasses import replace
from functools import partial
from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app import pageflow
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.batches import service as batches
from app.errors import HomewardError, InvalidRequest
from app.pipeline import Router, SessionDep
from app.scan import service, views
from app.scan.schemas import ScanResult
from app.scan.station import Station, load, store
from app.scan.views import acknowledged, after_scan, expectation, verdict_of
from app.types import Id
from app.web import page_require, render

router = Router(include_in_schema=False)

Scanner = Annotated[Principal, Depends(page_require(Permission.SCAN))]
Scanned = Annotated[str, Form(max_length=200)]


async def show_station(
    request: Request,
    session: SessionDep,
    principal: Principal,
    station: Station,
    *,
    outcome: ScanResult | HomewardError | None = None,
    refusal: HomewardError | None = None,
) -> HTMLResponse:
    """The station, read afresh, with the outcome of what was just done; the status follows the
    refusal (409 for a STOP) while the page stays the station."""
    view = await pageflow.read(session, partial(views.station_view, session, station))
    failed = outcome if isinstance(outcome, HomewardError) else None
    status = 409 if view.stop else next((e.status for e in (failed, refusal) if e), 200)
    response = render(
        request,
        "scan/station.html",
        status_code=status,
        principal=principal,
        view=view,
        outcome=outcome,
        failed=failed,
        verdict=verdict_of(outcome) if outcome is not None else None,
        refusal=refusal,
    )
    store(request, response, station)
    return response


def local_path(value: object) -> str:
    """Where a station form goes back to: a path of this site, never another site."""
    target = value if isinstance(value, str) else ""
    if not target.startswith("/") or target.startswith(("//", "/\\")) or len(target) > 200:
        return "/scan"
    return target


def _back_to(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


@router.get("/scan", response_class=HTMLResponse)
async def scan_station(request: Request, session: SessionDep, principal: Scanner) -> Response:
    principal = await pageflow.signed_in(session, principal)
    return await show_station(request, session, principal, load(request, principal.user.id or 0))


@router.post("/scan", response_class=HTMLResponse)
async def scan_submit(
    request: Request, session: SessionDep, principal: Scanner, code: Scanned = ""
) -> Response:
    """One scan, checked against the working context when there is one (COI-5)."""
    principal = await pageflow.signed_in(session, principal)
    station = load(request, principal.user.id or 0)
    if station.stop:  # nothing is scanned until the STOP is acknowledged
        return await show_station(request, session, principal, station)
    outcome = await pageflow.attempt(
        session,
        partial(
            service.scan,
            session,
            actor=principal.user,
            code=code,
            expect=expectation(station),
            record_accepted=request.app.state.settings.scan_audit,
        ),
    )
    station = after_scan(station, code, outcome)
    return await show_station(request, session, principal, station, outcome=outcome)


@router.post("/scan/context", response_class=HTMLResponse)
async def set_context(
    request: Request,
    session: SessionDep,
    principal: Scanner,
    context: Scanned = "",
    batch_id: Annotated[Id | None, Form()] = None,
) -> Response:
    """Set the working context from a scanned label, a DIN or a batch number, or the batch
    chosen in the list; it stays until cleared."""
    principal = await pageflow.signed_in(session, principal)
    station = load(request, principal.user.id or 0)
    if station.stop:
        return await show_station(request, session, principal, station)

    def resolve() -> int:
        if context.strip():
            found = service.resolve_batch(session, context)
        elif batch_id is not None:
            found = batches.get(session, batch_id)
        else:
            raise InvalidRequest("Scan a label of the batch, type its number, or choose it.")
        return found.batch.id or 0

    chosen = await pageflow.attempt(session, resolve)
    if isinstance(chosen, HomewardError):
        return await show_station(request, session, principal, station, refusal=chosen)
    station = Station(user_id=station.user_id, batch_id=chosen, recent=station.recent)
    form = await request.form()
    return store(request, _back_to(local_path(form.get("next"))), station)


@router.post("/scan/context/clear")
async def clear_context(request: Request, session: SessionDep, principal: Scanner) -> Response:
    principal = await pageflow.signed_in(session, principal)
    station = load(request, principal.user.id or 0)
    if station.stop:
        return _back_to("/scan")
    return store(request, _back_to("/scan"), replace(station, batch_id=None))


async def acknowledge_stop(
    session: SessionDep, principal: Principal, station: Station
) -> Station | HomewardError:
    """The station once its STOP is acknowledged, the acknowledgement audited first in a unit
    of work of its own (who, when, which mismatch); the refusal if that failed, the STOP then
    kept. A station with no STOP is returned as it is: there is nothing to acknowledge."""
    if not station.stop:
        return station
    done = await pageflow.attempt(
        session,
        partial(
            service.acknowledge_stop,
            session,
            actor=principal.user,
            code=station.stop,
            batch_id=station.batch_id,
        ),
    )
    return done if isinstance(done, HomewardError) else acknowledged(station)


@router.post("/scan/acknowledge")
async def acknowledge(request: Request, session: SessionDep, principal: Scanner) -> Response:
    """The person has read the STOP and set the vessel aside; the station carries on."""
    principal = await pageflow.signed_in(session, principal)
    station = load(request, principal.user.id or 0)
    after = await acknowledge_stop(session, principal, station)
    if isinstance(after, HomewardError):
        return await show_station(request, session, principal, station, refusal=after)
    form = await request.form()
    return store(request, _back_to(local_path(form.get("next"))), after)

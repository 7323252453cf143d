"""Bench pages of storage (issue 12 item 7): moving and dispatching vessels by scanning them,
and the storage locations with a form to add one. Each calls the service the JSON API calls
(`storage.service.record_custody`, `create_location`), the request built with the API's own
schema; receipt at the clinic stays on `/clinic/receive`.

A refusal never replaces the page: the act runs in its own unit of work and the page, with the
vessel's identity, the locations and the recent events, is read afresh in another
(`app.pageflow`, ADR 0026)."""

from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from app import pageflow
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.errors import HomewardError, InvalidRequest
from app.labels.scanned import scanned_vessel_code
from app.pipeline import Router, SessionDep
from app.storage import service
from app.storage.schemas import CustodyCreate, CustodyPublic, LocationCreate, LocationKind
from app.trace import service as trace
from app.web import form_model, page_require, render, render_refusable

router = Router(include_in_schema=False)

Custodian = Annotated[Principal, Depends(page_require(Permission.CUSTODY_RECORD))]
Reader = Annotated[Principal, Depends(page_require(Permission.CATALOGUE_READ))]
Manager = Annotated[Principal, Depends(page_require(Permission.CATALOGUE_MANAGE))]
Field = Annotated[str, Form(max_length=256)]
Text = Annotated[str, Form(max_length=4000)]


def temperature(text: str) -> float | None:
    """A typed temperature in °C: blank is none, a decimal comma reads as a point; the API's
    schema judges the number."""
    typed = text.strip().replace(",", ".")
    if not typed:
        return None
    try:
        return float(typed)
    except ValueError as exc:
        raise InvalidRequest(f"The temperature {text!r} is not a number of °C.") from exc


@dataclass
class Move:
    """The custody form as typed, shown again after a refusal."""

    code: str = ""
    location: str = ""
    temperature_c: str = ""

    def request(self, event: str) -> CustodyCreate:
        return form_model(
            CustodyCreate,
            event=event,
            location=self.location,
            temperature_c=temperature(self.temperature_c),
        )


def _vessel(session: Session, code: str) -> tuple[dict[str, Any] | None, HomewardError | None]:
    """Whose the scanned vessel is (a vessel label or a dose's product label), or why not."""
    if not code.strip():
        return None, None
    try:
        return trace.vessel_trace(session, scanned_vessel_code(session, code)), None
    except HomewardError as refusal:
        return None, refusal


def _custody_page(session: Session, code: str) -> dict[str, Any]:
    vessel, problem = _vessel(session, code)
    return {
        "vessel": vessel,
        "problem": problem,
        "locations": service.locations_public(session),
        "recent": service.recent_custody(session),
    }


async def _show_custody(
    request: Request,
    session: Session,
    principal: Principal,
    move: Move,
    *,
    recorded: CustodyPublic | None = None,
    refusal: HomewardError | None = None,
) -> HTMLResponse:
    shown = await pageflow.read(session, partial(_custody_page, session, move.code))
    failed = refusal or shown["problem"]
    return render(
        request,
        "storage/custody.html",
        status_code=failed.status if failed else 200,
        principal=principal,
        move=move,
        recorded=recorded,
        error=failed,
        **shown,
    )


@router.get("/custody", response_class=HTMLResponse)
async def custody_page(
    request: Request, session: SessionDep, principal: Custodian, code: str = ""
) -> Response:
    """The scan box; with a scanned `code`, whose vessel it is and the form to move or
    dispatch it."""
    principal = await pageflow.signed_in(session, principal)
    return await _show_custody(request, session, principal, Move(code=code[:200]))


@router.post("/custody", response_class=HTMLResponse)
async def record_custody(
    request: Request,
    session: SessionDep,
    principal: Custodian,
    code: Field = "",
    event: Field = "",
    location: Field = "",
    temperature_c: Field = "",
) -> Response:
    """A move or a dispatch, recorded as `POST /vessels/{code}/custody` records it; the scan box
    then waits for the next vessel."""
    principal = await pageflow.signed_in(session, principal)
    settings = request.app.state.settings
    move = Move(code, location, temperature_c)

    def record() -> CustodyPublic:
        done = service.record_custody(
            session, settings, principal=principal, code=code, data=move.request(event)
        )
        vessel_code = scanned_vessel_code(session, code)
        return service.custody_public(done, vessel_code, principal.user.username)

    recorded = await pageflow.attempt(session, record)
    if isinstance(recorded, HomewardError):
        return await _show_custody(request, session, principal, move, refusal=recorded)
    shown = Move(code=recorded.vessel_code)
    return await _show_custody(request, session, principal, shown, recorded=recorded)


def _locations_page(session: Session) -> dict[str, Any]:
    return {"locations": service.locations_public(session), "kinds": list(LocationKind)}


@dataclass
class NewLocation:
    """The location form as typed, shown again after a refusal."""

    code: str = ""
    name: str = ""
    kind: str = ""
    parent_id: str = ""


async def _show_locations(
    request: Request,
    session: Session,
    principal: Principal,
    typed: NewLocation,
    *,
    created: str | None = None,
    refusal: HomewardError | None = None,
) -> HTMLResponse:
    shown = await pageflow.read(session, partial(_locations_page, session))
    return render_refusable(
        request,
        "storage/locations.html",
        refusal,
        principal=principal,
        typed=typed,
        created=created,
        **shown,
    )


@router.get("/locations", response_class=HTMLResponse)
async def locations_page(request: Request, session: SessionDep, principal: Reader) -> Response:
    """Every storage location with its path and what occupies it."""
    principal = await pageflow.signed_in(session, principal)
    return await _show_locations(request, session, principal, NewLocation())


@router.post("/locations", response_class=HTMLResponse)
async def add_location(
    request: Request,
    session: SessionDep,
    principal: Manager,
    code: Field = "",
    name: Field = "",
    kind: Field = "",
    parent_id: Field = "",
) -> Response:
    """A new location, created as `POST /locations` creates it (audited)."""
    principal = await pageflow.signed_in(session, principal)
    typed = NewLocation(code, name, kind, parent_id)

    def create() -> str:
        data = form_model(
            LocationCreate, code=code, name=name, kind=kind, parent_id=parent_id.strip() or None
        )
        return service.create_location(session, actor=principal.user, data=data).code

    created = await pageflow.attempt(session, create)
    if isinstance(created, HomewardError):
        return await _show_locations(request, session, principal, typed, refusal=created)
    return await _show_locations(request, session, principal, NewLocation(), created=created)

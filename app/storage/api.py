from typing import Annotated, Any

from fastapi import Depends

from app.auth.deps import require
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.config import SettingsDep
from app.labels.scanned import scanned_vessel_code
from app.pipeline import Router, SessionDep
from app.storage import service
from app.storage.schemas import CustodyCreate, CustodyPublic, LocationCreate, LocationPublic
from app.trace import service as trace
from app.types import CodeInput

router = Router(tags=["storage and custody"])

Reader = Annotated[Principal, Depends(require(Permission.CATALOGUE_READ))]
Manager = Annotated[Principal, Depends(require(Permission.CATALOGUE_MANAGE))]
Custodian = Annotated[Principal, Depends(require(Permission.CUSTODY_RECORD))]
Tracer = Annotated[Principal, Depends(require(Permission.BATCH_READ))]


@router.get("/locations", response_model=list[LocationPublic])
def list_locations(session: SessionDep, _: Reader) -> list[LocationPublic]:
    return service.locations_public(session)


@router.post("/locations", response_model=LocationPublic, status_code=201)
def create_location(body: LocationCreate, session: SessionDep, p: Manager) -> LocationPublic:
    location = service.create_location(session, actor=p.user, data=body)
    (created,) = [view for view in service.locations_public(session) if view.id == location.id]
    return created


@router.post("/vessels/{code}/custody", response_model=CustodyPublic, status_code=201)
def record_custody(
    code: CodeInput,
    body: CustodyCreate,
    session: SessionDep,
    settings: SettingsDep,
    principal: Custodian,
) -> CustodyPublic:
    event = service.record_custody(session, settings, principal=principal, code=code, data=body)
    vessel_code = scanned_vessel_code(session, code)  # the QR's or the product label's dose
    return service.custody_public(event, vessel_code, principal.user.username)


@router.get("/vessels/{code}/custody", response_model=list[CustodyPublic])
def custody_history(code: CodeInput, session: SessionDep, _: Tracer) -> list[CustodyPublic]:
    return service.vessel_history(session, code)


@router.get("/vessels/{code}/custody-report")
def custody_report(
    code: CodeInput, session: SessionDep, settings: SettingsDep, _: Tracer
) -> dict[str, Any]:
    """The chain-of-custody report of a vessel or dose, temperatures checked (CLN-3)."""
    return service.custody_report(session, settings, code)


@router.get("/vessels/{code}/trace")
def vessel_trace(code: CodeInput, session: SessionDep, _: Tracer) -> dict[str, Any]:
    """A vessel back to its patient (COI-7)."""
    return trace.vessel_trace(session, code)

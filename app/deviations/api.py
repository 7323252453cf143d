from typing import Annotated

from fastapi import Depends

from app.auth.deps import require
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.batches import service as batches
from app.config import SettingsDep
from app.deviations import service
from app.deviations.models import Deviation
from app.deviations.schemas import DeviationClose, DeviationCreate, DeviationPublic, DeviationUpdate
from app.pipeline import Router, SessionDep
from app.types import Id

router = Router(tags=["deviations"])

Reader = Annotated[Principal, Depends(require(Permission.BATCH_READ))]
Opener = Annotated[Principal, Depends(require(Permission.DEVIATION_OPEN))]
Investigator = Annotated[Principal, Depends(require(Permission.DEVIATION_INVESTIGATE))]
Closer = Annotated[Principal, Depends(require(Permission.DEVIATION_CLOSE))]


def _public(session: SessionDep, deviation: Deviation) -> DeviationPublic:
    (view,) = [
        d for d in service.find(session, batch_id=deviation.batch_id) if d.id == deviation.id
    ]
    return view


@router.get("/deviations", response_model=list[DeviationPublic])
def list_deviations(
    session: SessionDep, _: Reader, unresolved: bool = False
) -> list[DeviationPublic]:
    """Every deviation (or only those not closed: QA's queue), oldest first."""
    return service.find(session, unresolved_only=unresolved)


@router.get("/batches/{batch_id}/deviations", response_model=list[DeviationPublic])
def batch_deviations(batch_id: Id, session: SessionDep, _: Reader) -> list[DeviationPublic]:
    batches.get(session, batch_id)
    return service.find(session, batch_id=batch_id)


@router.post("/batches/{batch_id}/deviations", response_model=DeviationPublic, status_code=201)
def open_deviation(
    batch_id: Id, body: DeviationCreate, session: SessionDep, principal: Opener
) -> DeviationPublic:
    """Open a deviation; the batch goes on hold until it is closed."""
    deviation = service.create(session, actor=principal.user, batch_id=batch_id, data=body)
    return _public(session, deviation)


@router.patch("/deviations/{deviation_id}", response_model=DeviationPublic)
def investigate(
    deviation_id: Id, body: DeviationUpdate, session: SessionDep, principal: Investigator
) -> DeviationPublic:
    """Record the investigation, root cause and CAPA (audited, old and new values)."""
    deviation = service.update(session, actor=principal.user, deviation_id=deviation_id, data=body)
    return _public(session, deviation)


@router.post("/deviations/{deviation_id}/close", response_model=DeviationPublic)
def close_deviation(
    deviation_id: Id,
    body: DeviationClose,
    session: SessionDep,
    settings: SettingsDep,
    principal: Closer,
) -> DeviationPublic:
    """QA closes the deviation with an e-signature; the batch's hold lifts with its last one."""
    deviation = service.close(
        session, settings, actor=principal.user, deviation_id=deviation_id, data=body
    )
    return _public(session, deviation)

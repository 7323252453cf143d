"""The OOS supply record of a batch (REL-7): the physician's justification, the sponsor's and
the authority's notifications."""

from typing import Annotated

from fastapi import Depends

from app.auth.deps import require
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.config import SettingsDep
from app.oos_supply import service
from app.oos_supply.schemas import JustificationCreate, NotificationCreate, OosSupplyPublic
from app.pipeline import Router, SessionDep
from app.types import Id

router = Router(tags=["oos supply"])

Reader = Annotated[Principal, Depends(require(Permission.BATCH_READ))]
Physician = Annotated[Principal, Depends(require(Permission.PHYSICIAN_ACCEPTANCE))]
Notifier = Annotated[Principal, Depends(require(Permission.OOS_NOTIFY))]


@router.get("/batches/{batch_id}/oos-supply", response_model=OosSupplyPublic)
def supply_record(batch_id: Id, session: SessionDep, _: Reader) -> OosSupplyPublic:
    """What an out-of-specification batch has, and lacks, before a dose is dispatched."""
    return service.public(session, batch_id)


@router.post(
    "/batches/{batch_id}/oos-supply/justification", response_model=OosSupplyPublic, status_code=201
)
def justification(
    batch_id: Id,
    body: JustificationCreate,
    session: SessionDep,
    settings: SettingsDep,
    p: Physician,
) -> OosSupplyPublic:
    """The treating physician's justification of an immediate significant hazard, e-signed."""
    service.record_justification(session, settings, actor=p.user, batch_id=batch_id, data=body)
    return service.public(session, batch_id)


@router.post(
    "/batches/{batch_id}/oos-supply/notifications", response_model=OosSupplyPublic, status_code=201
)
def notification(
    batch_id: Id, body: NotificationCreate, session: SessionDep, p: Notifier
) -> OosSupplyPublic:
    """The sponsor or the competent authority notified: who, when, their reference."""
    service.record_notification(session, actor=p.user, batch_id=batch_id, data=body)
    return service.public(session, batch_id)

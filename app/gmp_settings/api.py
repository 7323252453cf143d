from typing import Annotated

from fastapi import Depends, Query

from app.auth.deps import require
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.config import SettingsDep
from app.gmp_settings import service
from app.gmp_settings.groups import Group
from app.gmp_settings.schemas import GmpSettingApprove, GmpSettingPropose, GmpSettingPublic
from app.pipeline import Router, SessionDep
from app.types import Id

router = Router(tags=["change control"])

Reader = Annotated[Principal, Depends(require(Permission.BATCH_READ))]
Manager = Annotated[Principal, Depends(require(Permission.SPECIFICATION_MANAGE))]


@router.get("/gmp-settings", response_model=list[GmpSettingPublic])
def list_settings(
    session: SessionDep, _: Reader, group: Annotated[Group | None, Query()] = None
) -> list[GmpSettingPublic]:
    """Every version of every group (or of `group`); `in_force` marks the approved one."""
    return service.list_public(session, group=group)


@router.get("/gmp-settings/{setting_id}", response_model=GmpSettingPublic)
def get_setting(setting_id: Id, session: SessionDep, _: Reader) -> GmpSettingPublic:
    (found,) = service.list_public(session, only=setting_id)
    return found


@router.post("/gmp-settings", response_model=GmpSettingPublic, status_code=201)
def propose_setting(
    body: GmpSettingPropose, session: SessionDep, principal: Manager
) -> GmpSettingPublic:
    """A new draft version of one group, with the reason for the change (QC-3)."""
    setting = service.propose(session, actor=principal.user, data=body)
    (created,) = service.list_public(session, only=setting.id)
    return created


@router.post("/gmp-settings/{setting_id}/approve", response_model=GmpSettingPublic)
def approve_setting(
    setting_id: Id,
    body: GmpSettingApprove,
    session: SessionDep,
    settings: SettingsDep,
    principal: Manager,
) -> GmpSettingPublic:
    """QA puts a draft in force, e-signed with a reason (SIG-1..3); the previous version is
    superseded."""
    service.approve(session, settings, actor=principal.user, setting_id=setting_id, data=body)
    (approved,) = service.list_public(session, only=setting_id)
    return approved

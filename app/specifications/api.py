from typing import Annotated

from fastapi import Depends

from app.auth.deps import require
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.config import SettingsDep
from app.pipeline import Router, SessionDep
from app.specifications import service
from app.specifications.schemas import SpecificationCreate, SpecificationPublic
from app.types import Id

router = Router(tags=["quality control"])

Reader = Annotated[Principal, Depends(require(Permission.BATCH_READ))]
Author = Annotated[Principal, Depends(require(Permission.SPECIFICATION_MANAGE))]


@router.get("/specifications", response_model=list[SpecificationPublic])
def list_specifications(
    session: SessionDep, settings: SettingsDep, _: Reader
) -> list[SpecificationPublic]:
    """Every version, newest first; `in_force` marks the one new batches are pinned to."""
    return service.list_public(session, settings)


@router.get("/specifications/{specification_id}", response_model=SpecificationPublic)
def get_specification(
    specification_id: Id, session: SessionDep, settings: SettingsDep, _: Reader
) -> SpecificationPublic:
    (found,) = service.list_public(session, settings, only=specification_id)
    return found


@router.post("/specifications", response_model=SpecificationPublic, status_code=201)
def create_specification(
    body: SpecificationCreate, session: SessionDep, settings: SettingsDep, principal: Author
) -> SpecificationPublic:
    """A new version, e-signed by the QA author (password required, SIG-1)."""
    spec = service.create(session, settings, actor=principal.user, data=body)
    (created,) = service.list_public(session, settings, only=spec.id)
    return created

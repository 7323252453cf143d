from typing import Annotated

from fastapi import Depends

from app.auth.deps import require
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.config import SettingsDep
from app.pipeline import Router, SessionDep
from app.signatures.schemas import SignatureInput
from app.specifications import service
from app.specifications.schemas import SpecificationCreate, SpecificationPublic
from app.types import Id

router = Router(tags=["quality control"])

Reader = Annotated[Principal, Depends(require(Permission.BATCH_READ))]
Author = Annotated[Principal, Depends(require(Permission.SPECIFICATION_MANAGE))]


@router.get("/specifications", response_model=list[SpecificationPublic])
def list_specifications(session: SessionDep, _: Reader) -> list[SpecificationPublic]:
    """Every version, newest first, with its status (`draft`, `approved`, `superseded`);
    `in_force` marks the approved one new batches are pinned to."""
    return service.list_public(session)


@router.get("/specifications/{specification_id}", response_model=SpecificationPublic)
def get_specification(specification_id: Id, session: SessionDep, _: Reader) -> SpecificationPublic:
    (found,) = service.list_public(session, only=specification_id)
    return found


@router.post("/specifications", response_model=SpecificationPublic, status_code=201)
def create_specification(
    body: SpecificationCreate, session: SessionDep, settings: SettingsDep, principal: Author
) -> SpecificationPublic:
    """A new version as a draft, e-signed by its QA author (password required, SIG-1); in force
    once another QA user approves it (QC-3)."""
    spec = service.create(session, settings, actor=principal.user, data=body)
    (created,) = service.list_public(session, only=spec.id)
    return created


@router.post("/specifications/{specification_id}/approve", response_model=SpecificationPublic)
def approve_specification(
    specification_id: Id,
    body: SignatureInput,
    session: SessionDep,
    settings: SettingsDep,
    principal: Author,
) -> SpecificationPublic:
    """QA puts a draft in force, e-signed `approved` (SIG-1..3, not by its author: SIG-4); the
    version in force before is superseded (QC-3)."""
    service.approve(
        session, settings, actor=principal.user, specification_id=specification_id, data=body
    )
    (approved,) = service.list_public(session, only=specification_id)
    return approved

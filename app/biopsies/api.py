from typing import Annotated

from fastapi import Depends

from app.auth.deps import require
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.biopsies import service
from app.biopsies.schemas import BiopsyCreate, BiopsyPublic, BiopsyReceipt
from app.config import SettingsDep
from app.patients.schemas import VoidRequest
from app.pipeline import Router, SessionDep
from app.types import Id

router = Router(tags=["biopsies"])

Registrar = Annotated[Principal, Depends(require(Permission.BIOPSY_REGISTER))]
Receiver = Annotated[Principal, Depends(require(Permission.BIOPSY_RECEIVE))]
Reader = Annotated[Principal, Depends(require(Permission.BATCH_READ))]
Voider = Annotated[Principal, Depends(require(Permission.BIOPSY_VOID))]


@router.post("/biopsies", response_model=BiopsyPublic, status_code=201)
def register_biopsy(
    body: BiopsyCreate, session: SessionDep, settings: SettingsDep, principal: Registrar
) -> BiopsyPublic:
    return service.public(*service.register(session, settings, actor=principal.user, data=body))


@router.get("/biopsies/{biopsy_id}", response_model=BiopsyPublic)
def get_biopsy(biopsy_id: Id, session: SessionDep, _: Reader) -> BiopsyPublic:
    biopsy, _patient, tube = service.get(session, biopsy_id)
    return service.public(biopsy, tube)


@router.post("/biopsies/{biopsy_id}/receipt", response_model=BiopsyPublic)
def receive_biopsy(
    biopsy_id: Id,
    body: BiopsyReceipt,
    session: SessionDep,
    settings: SettingsDep,
    principal: Receiver,
) -> BiopsyPublic:
    return service.public(
        *service.receive(session, settings, actor=principal.user, biopsy_id=biopsy_id, data=body)
    )


@router.post("/biopsies/{biopsy_id}/void", response_model=BiopsyPublic)
def void_biopsy(
    biopsy_id: Id, body: VoidRequest, session: SessionDep, principal: Voider
) -> BiopsyPublic:
    return service.public(
        *service.void(session, actor=principal.user, biopsy_id=biopsy_id, reason=body.reason)
    )

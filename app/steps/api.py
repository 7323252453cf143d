from typing import Annotated

from fastapi import Depends

from app.auth.deps import require
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.config import SettingsDep
from app.pipeline import Router, SessionDep
from app.steps import service
from app.steps.schemas import StepCreate, StepPublic
from app.types import Id

router = Router(tags=["steps"])

Operator = Annotated[Principal, Depends(require(Permission.STEP_RECORD))]


@router.post("/batches/{batch_id}/steps", response_model=StepPublic, status_code=201)
def record_step(
    batch_id: Id, body: StepCreate, session: SessionDep, settings: SettingsDep, principal: Operator
) -> StepPublic:
    recorded = service.record(session, settings, actor=principal.user, batch_id=batch_id, data=body)
    return service.public(session, recorded.step, warnings=recorded.warnings)

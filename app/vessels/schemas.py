from datetime import datetime

from pydantic import BaseModel

from app.vessels.states import VesselKind, VesselStatus


class VesselPublic(BaseModel):
    id: int
    code: str
    kind: VesselKind
    status: VesselStatus
    batch_id: int | None
    parent_code: str | None
    passage: int
    location: str | None
    created_at: datetime
    is_dose: bool = False
    cell_count: int | None = None
    volume_ml: float | None = None
    expires_at: datetime | None = None
    produced_by_step_id: int | None = None
    label_url: str | None = None  # every vessel has its label from creation (LBL-1)

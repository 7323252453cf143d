import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from app.audit.chain import Verification
from app.audit.models import AuditEvent


class AuditEventPublic(BaseModel):
    seq: int
    scope: str
    occurred_at: datetime
    actor_id: int | None
    actor: str
    action: str
    entity_type: str
    entity_id: int | None
    old_values: dict[str, Any] | None
    new_values: dict[str, Any] | None
    reason: str | None
    prev_hash: str
    hash: str

    @classmethod
    def from_event(cls, event: AuditEvent) -> "AuditEventPublic":
        data = event.model_dump()
        for field in ("old_values", "new_values"):
            data[field] = json.loads(data[field]) if data[field] is not None else None
        return cls(**data)


class VerificationPublic(BaseModel):
    ok: bool
    events_checked: int
    first_bad_seq: int | None

    @classmethod
    def of(cls, result: Verification) -> "VerificationPublic":
        return cls(
            ok=result.ok, events_checked=result.events_checked, first_bad_seq=result.first_bad_seq
        )

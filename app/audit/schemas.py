import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from app.audit.actions import EntityType
from app.audit.models import AuditEvent
from app.audit.service import TrailCheck
from app.types import Id


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


class RecordProblemPublic(BaseModel):
    table: str
    id: int
    field: str | None
    detail: str


class VerificationPublic(BaseModel):
    """AUD-3 and AUD-7: `ok` only if every event, every chain's head and every tracked record
    hold. `first_bad_seq` names a broken event, `bad_scope` a chain that does not end at its
    head, `first_bad_record` the first record not in its last recorded state."""

    ok: bool
    events_checked: int
    first_bad_seq: int | None
    chains_checked: int = 0
    bad_scope: str | None = None
    records_checked: int | None = None
    records_differing: int | None = None
    first_bad_record: RecordProblemPublic | None = None
    detail: str

    @classmethod
    def of(cls, result: TrailCheck) -> "VerificationPublic":
        chain, records = result.chain, result.records
        bad = records.first_bad_record if records is not None else None
        return cls(
            ok=result.ok,
            events_checked=chain.events_checked,
            first_bad_seq=chain.first_bad_seq,
            chains_checked=len(chain.tails),
            bad_scope=chain.bad_scope,
            records_checked=records.records_checked if records is not None else None,
            records_differing=records.records_differing if records is not None else None,
            first_bad_record=RecordProblemPublic(**bad.public()) if bad is not None else None,
            detail=result.detail,
        )


class AuditFilter(BaseModel):
    """Which events an export holds: those of one kind of record, or of one record."""

    model_config = ConfigDict(extra="forbid")

    entity_type: EntityType | None = None
    entity_id: Id | None = None

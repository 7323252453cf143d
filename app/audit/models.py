from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, Text
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit sequence.
SeqType = BigInteger().with_variant(Integer(), "sqlite")


class AuditEvent(SQLModel, table=True):
    """One append-only, hash-chained record of a change (AUD-1..4). Never updated or deleted."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_scope_seq", "scope", "seq"),
        Index("ix_audit_event_entity", "entity_type", "entity_id"),
        # The periodic review reads the trail by time (AUD-8).
        Index("ix_audit_event_occurred_at", "occurred_at"),
    )

    seq: int | None = Field(default=None, primary_key=True, sa_type=SeqType)
    scope: str = Field(max_length=16)
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    actor_id: int | None = None
    actor: str = Field(max_length=64)
    action: str = Field(max_length=64)
    entity_type: str = Field(max_length=32)
    entity_id: int | None = None
    old_values: str | None = Field(default=None, sa_type=Text)
    new_values: str | None = Field(default=None, sa_type=Text)
    reason: str | None = Field(default=None, sa_type=Text)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)


class AuditHead(SQLModel, table=True):
    """Where each scope's chain ends: written by the same append, in the same transaction, as
    the events (AUD-7). A chain whose last events were deleted no longer reaches its head."""

    __tablename__ = "audit_head"

    scope: str = Field(primary_key=True, max_length=16)
    count: int = Field(sa_type=SeqType)
    last_seq: int = Field(sa_type=SeqType)
    last_hash: str = Field(max_length=64)

from datetime import datetime

from sqlalchemy import Index, Text
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime


class Signature(SQLModel, table=True):
    """A Part 11 electronic signature bound to one record by the hash of its content (SIG-2, SIG-3).

    Append-only: database triggers refuse UPDATE and DELETE (migration 0003).
    """

    __tablename__ = "signature"
    __table_args__ = (Index("ix_signature_record", "record_type", "record_id"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id")
    username: str = Field(max_length=64)
    printed_name: str = Field(max_length=200)
    meaning: str = Field(max_length=16)
    signed_at: datetime = Field(sa_type=UTCDateTime)
    record_type: str = Field(max_length=32)
    record_id: int
    record_hash: str = Field(max_length=64)
    comment: str | None = Field(default=None, sa_type=Text)

from datetime import datetime

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.db import UTCDateTime


class WebhookDelivery(SQLModel, table=True):
    """One notification to one URL: written in the transaction of the event (an outbox), then
    delivered by the worker with retries and back-off."""

    __tablename__ = "webhook_delivery"

    id: int | None = Field(default=None, primary_key=True)
    event: str = Field(max_length=48)
    url: str = Field(max_length=2000)
    body: str = Field(sa_type=Text)
    signature: str = Field(max_length=80)
    status: str = Field(max_length=16, index=True)  # pending, delivered, failed
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebhookAttempt(SQLModel, table=True):
    """Every delivery attempt, answered or not (the delivery log)."""

    __tablename__ = "webhook_attempt"

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="webhook_delivery.id", index=True)
    attempted_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=500)

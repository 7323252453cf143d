"""The batch row lock: the first lock of every write path that touches a batch or anything in it
(ADR 0011: batch, then its vessels in id order, then storage positions)."""

from sqlalchemy import select
from sqlmodel import Session, col

from app.batches.models import Batch
from app.errors import NotFound


def lock_batch(session: Session, batch_id: int) -> Batch:
    """The batch, locked until commit and read afresh once locked (never a copy the session read
    before the lock), so every rule checked after this sees the latest committed state; 404 if
    no batch has that id. SQLite needs no row lock: BEGIN IMMEDIATE serializes its writers."""
    batch = session.execute(
        select(Batch)
        .where(col(Batch.id) == batch_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if batch is None:
        raise NotFound(f"No batch has id {batch_id}.")
    return batch

"""The queries of qualifications: the one in force for an act (locked shared), the latest of a
person's grants for a duty (to explain a refusal), the listing."""

from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session, col

from app.auth.models import User
from app.errors import NotFound
from app.qualifications.models import Qualification


def in_force(session: Session, user_id: int, duty: str, at: datetime) -> Qualification | None:
    """A grant of `duty` to `user_id` valid at `at` and not revoked, locked FOR SHARE until
    commit and read afresh: a revocation committed meanwhile is seen (ADR 0024), and acts of
    many people (shared locks) never wait for one another."""
    return session.execute(
        select(Qualification)
        .where(
            Qualification.user_id == user_id,
            Qualification.duty == duty,
            col(Qualification.valid_from) <= at,
            col(Qualification.expires_at) > at,
            col(Qualification.revoked_at).is_(None),
        )
        .order_by(col(Qualification.expires_at).desc(), col(Qualification.id))
        .limit(1)
        .with_for_update(read=True)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def latest(session: Session, user_id: int, duty: str) -> Qualification | None:
    """The most recent grant of `duty` to `user_id`, whatever its state."""
    return session.execute(
        select(Qualification)
        .where(Qualification.user_id == user_id, Qualification.duty == duty)
        .order_by(col(Qualification.granted_at).desc(), col(Qualification.id).desc())
        .limit(1)
    ).scalar_one_or_none()


def lock(session: Session, qualification_id: int) -> Qualification:
    """The qualification locked FOR UPDATE and read afresh; 404 if none has that id. Taken only
    by a revocation, which locks nothing else: it is outside the batch lock order."""
    found = session.execute(
        select(Qualification)
        .where(Qualification.id == qualification_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"No qualification has id {qualification_id}.")
    return found


def listing(session: Session, *, user_id: int | None = None) -> list[tuple[Qualification, str]]:
    """Qualifications with their holder's username, by holder then duty, newest first."""
    query = select(Qualification, User.username).join(User, col(User.id) == Qualification.user_id)
    if user_id is not None:
        query = query.where(Qualification.user_id == user_id)
    rows = session.execute(
        query.order_by(
            col(User.username), col(Qualification.duty), col(Qualification.granted_at).desc()
        )
    )
    return [(qualification, username) for qualification, username in rows]

"""The user row lock: role changes of one user serialize on it (SEC-2), so two concurrent changes
can never leave a role set that neither of them asked for. And when each user last signed in."""

from datetime import datetime

from sqlalchemy import func, select
from sqlmodel import Session, col

from app.auth.models import AuthToken, User
from app.errors import NotFound


def lock_user(session: Session, user_id: int) -> User:
    """The user, locked until commit and read afresh once locked; 404 if no user has that id.
    Taken by account changes only, which lock no batch: it is outside the batch lock order."""
    user = session.execute(
        select(User)
        .where(col(User.id) == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if user is None:
        raise NotFound(f"No user has id {user_id}.")
    return user


def last_sign_ins(session: Session, user_ids: list[int]) -> dict[int, datetime]:
    """When each of `user_ids` last signed in (their newest token: every sign-in issues one and
    tokens are revoked, never deleted), in one query; a user who never signed in is absent."""
    if not user_ids:
        return {}
    rows = session.execute(
        select(AuthToken.user_id, func.max(AuthToken.created_at))
        .where(col(AuthToken.user_id).in_(user_ids))
        .group_by(col(AuthToken.user_id))
    )
    return {user_id: at for user_id, at in rows}

"""The user row lock: role changes of one user serialize on it (SEC-2), so two concurrent changes
can never leave a role set that neither of them asked for."""

from sqlalchemy import select
from sqlmodel import Session, col

from app.auth.models import User
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

"""Changing a password (its owner, who knows the current one) and resetting it (an admin, after
which the owner must change it at once): SEC-3, 21 CFR 11.300(b)."""

from functools import partial

from sqlalchemy import delete, select
from sqlmodel import Session, col

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.auth import policy, security
from app.auth.models import PasswordHistory, User
from app.auth.repository import lock_user
from app.auth.service import Principal, record_failed_password, revoke_tokens
from app.clock import utcnow
from app.config import Settings
from app.errors import Forbidden, InvalidCredentials


def _previous_hashes(session: Session, user_id: int) -> list[str]:
    """The user's earlier password hashes, newest first."""
    rows = session.execute(
        select(PasswordHistory.password_hash)
        .where(col(PasswordHistory.user_id) == user_id)
        .order_by(col(PasswordHistory.replaced_at).desc(), col(PasswordHistory.id).desc())
    )
    return list(rows.scalars())


def _replace(session: Session, settings: Settings, user: User, new_password: str) -> None:
    """Store `new_password` as `user`'s, keeping the one it replaces in the history (at most
    `password_history` kept)."""
    assert user.id is not None
    now = utcnow()
    session.add(PasswordHistory(user_id=user.id, password_hash=user.password_hash, replaced_at=now))
    user.password_hash = security.hash_password(settings, new_password)
    user.password_changed_at = now
    session.add(user)
    session.flush()
    keep = select(PasswordHistory.id).where(col(PasswordHistory.user_id) == user.id)
    keep = keep.order_by(col(PasswordHistory.replaced_at).desc(), col(PasswordHistory.id).desc())
    kept = list(session.execute(keep.limit(max(settings.password_history, 1))).scalars())
    session.execute(
        delete(PasswordHistory).where(
            col(PasswordHistory.user_id) == user.id, col(PasswordHistory.id).not_in(kept)
        )
    )


def change_password(
    session: Session,
    settings: Settings,
    *,
    principal: Principal,
    current_password: str,
    new_password: str,
    token_digest: str,
) -> None:
    """Replace the signed-in user's password with `new_password`. A wrong current password is a
    401 that counts towards the lockout like any other (SEC-4); a weak or recently used new one
    is a 422. Other sessions of the user end; this one continues, free to work."""
    assert principal.user.id is not None
    user = lock_user(session, principal.user.id)
    assert user.id is not None
    if not security.password_matches(settings, user.password_hash, current_password):
        raise InvalidCredentials(
            "The current password is wrong; the password was not changed.",
            aftermath=partial(
                record_failed_password,
                settings=settings,
                user_id=user.id,
                action=AuditAction.PASSWORD_CHANGE_FAILED,
            ),
        )
    policy.check_strength(settings, new_password, username=user.username, full_name=user.full_name)
    policy.check_not_reused(
        settings,
        new_password,
        current_hash=user.password_hash,
        previous=_previous_hashes(session, user.id),
    )
    forced = policy.change_required(settings, user) is not None
    _replace(session, settings, user, new_password)
    user.password_change_required = False
    user.failed_logins = 0
    session.add(user)
    revoke_tokens(session, user, keep=token_digest)
    session.flush()
    audit.record(
        session,
        actor=user,
        action=AuditAction.PASSWORD_CHANGED,
        entity_type=EntityType.USER,
        entity_id=user.id,
        new={"forced": forced, "other_sessions_ended": True},
        coi=None,
    )


def reset_password(
    session: Session, settings: Settings, *, actor: User, user_id: int, password: str, reason: str
) -> User:
    """An admin sets a temporary password for user `user_id` (who forgot theirs): the user's
    sessions end, any lock is lifted, and at the next sign-in every call but the change answers
    403 until they choose their own (SEC-3). Nobody resets their own password this way."""
    user = lock_user(session, user_id)
    if user.id == actor.id:
        raise Forbidden("Change your own password with your current one (POST /auth/password).")
    policy.check_strength(settings, password, username=user.username, full_name=user.full_name)
    old = {"password_change_required": user.password_change_required, "locked": user.locked}
    _replace(session, settings, user, password)
    user.password_change_required = True
    user.locked = False
    user.locked_until = None
    user.failed_logins = 0
    session.add(user)
    revoke_tokens(session, user)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.PASSWORD_RESET,
        entity_type=EntityType.USER,
        entity_id=user.id,
        old=old,
        new={"password_change_required": True, "locked": False},
        reason=reason,
        coi=None,
    )
    return user

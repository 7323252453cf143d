"""Users, roles, tokens, lockout. Every change is audited in its own transaction. Sign-in itself
is in `signin`, password changes and resets in `passwords`."""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, or_, select, update
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.auth import policy, security
from app.auth.models import AuthToken, User, UserRole
from app.auth.permissions import Permission, Role, incompatible, permissions_of
from app.auth.repository import lock_user
from app.auth.schemas import USERNAME_PATTERN
from app.clock import as_utc, utcnow
from app.config import Settings
from app.db import add_unique, busy_error
from app.errors import (
    Aftermath,
    Conflict,
    DuplicateUsername,
    Forbidden,
    IncompatibleRoles,
    NotAuthenticated,
    NotFound,
)

USERNAME_RE = re.compile(USERNAME_PATTERN)

# A token's last use is written at most this often: idle expiry stays exact to the minute
# without a write on every request.
TOUCH_INTERVAL = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated user of a request, with what their roles allow."""

    user: User
    roles: frozenset[Role]
    # Why the user must change their password before anything else (SEC-3), or None.
    password_change: str | None = None

    @property
    def permissions(self) -> frozenset[Permission]:
        return permissions_of(self.roles)

    def require(self, permission: Permission) -> None:
        if permission not in self.permissions:
            raise Forbidden(
                f"Your roles ({', '.join(sorted(self.roles)) or 'none'}) do not allow this "
                f"action ({permission.value})."
            )


def roles_of(session: Session, user_id: int) -> frozenset[Role]:
    rows = session.execute(select(UserRole.role).where(UserRole.user_id == user_id)).scalars()
    return frozenset(Role(role) for role in rows)


def roles_by_user(session: Session, user_ids: list[int]) -> dict[int, list[Role]]:
    """Roles of many users in one query."""
    result: dict[int, list[Role]] = {user_id: [] for user_id in user_ids}
    rows = session.execute(
        select(UserRole.user_id, UserRole.role).where(col(UserRole.user_id).in_(user_ids))
    )
    for user_id, role in rows:
        result[user_id].append(Role(role))
    return {user_id: sorted(roles) for user_id, roles in result.items()}


def usernames(session: Session, user_ids: "set[int | None] | list[int | None]") -> dict[int, str]:
    """Username of each of `user_ids` (None ignored), in one query."""
    wanted = {user_id for user_id in user_ids if user_id is not None}
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.username).where(col(User.id).in_(wanted)))
    return {user_id: username for user_id, username in rows}


@dataclass(frozen=True)
class Person:
    """Someone as a page names them: full name, and the username the audit trail records."""

    full_name: str
    username: str


@dataclass(frozen=True)
class People:
    """The people a page names, by id and by username, read in one query (`people`)."""

    by_id: dict[int, Person]
    by_username: dict[str, Person]

    def of(self, user_id: int | None) -> Person | None:
        return None if user_id is None else self.by_id.get(user_id)

    def named(self, username: str | None) -> Person | None:
        """The person of `username`; one not on record keeps the username as their name."""
        if username is None:
            return None
        return self.by_username.get(username) or Person(username, username)


def people(
    session: Session,
    *,
    ids: Iterable[int | None] = (),
    usernames: Iterable[str | None] = (),
) -> People:
    """Full names of the users of `ids` and of `usernames` (None ignored), in one query: for
    display only — the audit trail keeps usernames as recorded."""
    wanted_ids = {i for i in ids if i is not None}
    wanted_names = {u for u in usernames if u is not None}
    if not wanted_ids and not wanted_names:
        return People({}, {})
    rows = session.execute(
        select(User.id, User.username, User.full_name).where(
            or_(col(User.id).in_(wanted_ids), col(User.username).in_(wanted_names))
        )
    ).all()
    found = {user_id: Person(full_name, username) for user_id, username, full_name in rows}
    return People(found, {p.username: p for p in found.values()})


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"No user has id {user_id}.")
    return user


def user_by_username(session: Session, username: str) -> User | None:
    """The user named `username`; a name no account could have is not even looked up."""
    if not USERNAME_RE.fullmatch(username):
        return None
    return session.execute(select(User).where(User.username == username)).scalar_one_or_none()


def list_users(session: Session) -> list[User]:
    return list(session.execute(select(User).order_by(col(User.username))).scalars())


def check_separation(roles: "list[Role] | frozenset[Role]") -> None:
    """Refuse a role set one person may not hold (SEC-2): the API, the CLI and the demo all
    create and change users through this check."""
    pairs = incompatible(roles)
    if pairs:
        named = "; ".join(" with ".join(sorted(pair)) for pair in pairs)
        raise IncompatibleRoles(
            f"One person cannot hold {named}: an administrator never releases, signs or "
            "infuses (separation of duties, SEC-2). Give these duties to separate accounts."
        )


def refuse_admin(
    session: Session, user: User, act: str, *, aftermath: Aftermath | None = None
) -> None:
    """403 when `user` holds `admin` (SEC-2): checked at the act itself, so an account created
    with such roles before the rule existed still cannot release, sign, infuse or witness."""
    assert user.id is not None
    if Role.ADMIN in roles_of(session, user.id):
        raise Forbidden(
            f"{user.username} holds the admin role; an administrator cannot {act} "
            "(separation of duties, SEC-2).",
            aftermath=aftermath,
        )


def create_user(
    session: Session,
    settings: Settings,
    *,
    actor: User | str,
    username: str,
    full_name: str,
    password: str,
    roles: list[Role],
    must_change_password: bool = False,
) -> User:
    """A new active user with `roles`; a taken username is a 409, roles one person may not hold
    together a 422 (SEC-2), a password too easy to guess a 422 (SEC-3). With
    `must_change_password` (an account an admin created) every call but the change answers 403
    until the user has chosen their own password."""
    check_separation(roles)
    policy.check_strength(settings, password, username=username, full_name=full_name)
    user = User(
        username=username,
        full_name=full_name,
        password_hash=security.hash_password(settings, password),
        password_change_required=must_change_password,
    )
    add_unique(session, user, DuplicateUsername(f"The username {username!r} is already taken."))
    assert user.id is not None
    session.add_all(UserRole(user_id=user.id, role=role.value) for role in roles)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.USER_CREATED,
        entity_type=EntityType.USER,
        entity_id=user.id,
        new={
            "username": username,
            "full_name": full_name,
            "roles": sorted(roles),
            "password_change_required": must_change_password,
        },
        coi=None,
    )
    return user


def set_roles(
    session: Session, *, actor: User, user_id: int, roles: list[Role], reason: str
) -> User:
    """Replace the roles of user `user_id`, with a reason (SEC-2). Nobody changes their own
    roles; the user row is locked first, so concurrent changes of one user apply one after the
    other and each is checked against separation of duties on its own."""
    user = lock_user(session, user_id)
    if user.id == actor.id:
        raise Forbidden("You cannot change your own roles; ask another administrator (SEC-2).")
    check_separation(roles)
    old = sorted(roles_of(session, user_id))
    session.execute(delete(UserRole).where(col(UserRole.user_id) == user_id))
    session.add_all(UserRole(user_id=user_id, role=role.value) for role in roles)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.USER_ROLES_SET,
        entity_type=EntityType.USER,
        entity_id=user_id,
        old={"roles": old},
        new={"roles": sorted(roles)},
        reason=reason,
        coi=None,
    )
    return user


def set_active(session: Session, *, actor: User, user: User, active: bool) -> None:
    """Deactivate (revoking every token) or reactivate an account."""
    if user.id == actor.id and not active:
        raise Conflict("You cannot deactivate your own account.")
    if user.active == active:
        return
    user.active = active
    session.add(user)
    if not active:
        revoke_tokens(session, user)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.USER_REACTIVATED if active else AuditAction.USER_DEACTIVATED,
        entity_type=EntityType.USER,
        entity_id=user.id,
        old={"active": not active},
        new={"active": active},
        coi=None,
    )


def unlock(session: Session, *, actor: User, user: User) -> None:
    """Lift a lockout and reset the failure count."""
    old = {"locked": is_locked(user), "failed_logins": user.failed_logins}
    user.locked = False
    user.locked_until = None
    user.failed_logins = 0
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.USER_UNLOCKED,
        entity_type=EntityType.USER,
        entity_id=user.id,
        old=old,
        new={"locked": False, "failed_logins": 0},
        coi=None,
    )


def is_locked(user: User, now: datetime | None = None) -> bool:
    """True while `user`'s lock holds: a temporary lock ends by itself at `locked_until`."""
    if not user.locked:
        return False
    return user.locked_until is None or as_utc(user.locked_until) > (now or utcnow())


def record_failed_password(
    session: Session,
    settings: Settings,
    *,
    user_id: int,
    action: AuditAction,
    context: dict[str, Any] | None = None,
) -> None:
    """Count one wrong password against `user_id`, lock at the threshold, audit both (SIG-5).

    Runs as the aftermath of a refusal, in its own transaction; the increment is atomic so
    concurrent failures all count. The lock lasts `lockout_minutes` (SEC-4). A lock caused by
    sign-ins, which anyone can attempt, leaves the user's open sessions alone (they proved the
    password); one caused inside a session (a signature, a witness, a password change) ends them.
    """
    failures = session.execute(
        update(User)
        .where(col(User.id) == user_id)
        .values(failed_logins=col(User.failed_logins) + 1)
        .returning(col(User.failed_logins))
    ).scalar_one()
    user = session.get(User, user_id, populate_existing=True)
    assert user is not None
    audit.record(
        session,
        actor=user,
        action=action,
        entity_type=EntityType.USER,
        entity_id=user_id,
        new={"failed_attempts": failures, **(context or {})},
        coi=None,
    )
    if failures >= settings.lockout_threshold and not is_locked(user):
        user.locked = True
        minutes = settings.lockout_minutes
        user.locked_until = utcnow() + timedelta(minutes=minutes) if minutes else None
        session.add(user)
        if action != AuditAction.LOGIN_FAILED:
            revoke_tokens(session, user)
        session.flush()
        until = user.locked_until.isoformat() if user.locked_until else None
        audit.record(
            session,
            actor="system",
            action=AuditAction.USER_LOCKED,
            entity_type=EntityType.USER,
            entity_id=user_id,
            old={"locked": False},
            new={"locked": True, "failed_attempts": failures, "locked_until": until},
            reason=f"{failures} consecutive failed password attempts",
            coi=None,
        )


# A token's two live-ness columns with its user and each of the user's roles (built once: it
# runs on every request; the token row itself is not needed as an entity).
_TOKEN_USER_ROLES = (
    select(col(AuthToken.last_used_at), col(AuthToken.revoked_at), User, UserRole.role)
    .join(User, col(User.id) == col(AuthToken.user_id))
    .outerjoin(UserRole, col(UserRole.user_id) == col(User.id))
    .where(col(AuthToken.digest) == bindparam("digest"))
)


def authenticate(session: Session, settings: Settings, token: str) -> Principal:
    """The principal owning a live token; an unknown, revoked or idle-expired token is a 401.

    Token, user and roles come in one query: this runs on every request.
    """
    digest = security.token_digest(settings, token)
    rows = session.execute(_TOKEN_USER_ROLES, {"digest": digest}).all()
    ended = NotAuthenticated("Your session has ended or the token is not valid; log in again.")
    if not rows:
        raise ended
    last_used_at, revoked_at, user, _ = rows[0]
    now = utcnow()
    idle = now - as_utc(last_used_at)
    if revoked_at is not None or idle > timedelta(minutes=settings.token_idle_minutes):
        raise ended
    # A lock stops new sign-ins, not the sessions that proved the password before it (SEC-4);
    # a lock earned inside a session revoked that session's tokens when it was set.
    if not user.active:
        raise ended
    if idle > TOUCH_INTERVAL:
        _touch(session, digest, now)
    return Principal(
        user=user,
        roles=frozenset(Role(r) for *_, r in rows if r is not None),
        password_change=policy.change_required(settings, user, now),
    )


def _touch(session: Session, digest: str, now: datetime) -> None:
    """Record the token's use; best effort, since it only moves the idle expiry forward.

    It runs in the request's own transaction (ADR 0014), so the row lock it takes is held to
    the commit: a token row another request is touching is skipped (`SKIP LOCKED`), never
    waited for. On SQLite the request's read transaction may be unable to take the write lock
    at once (another writer is active): the token is then touched by a later request.
    """
    free = (
        select(col(AuthToken.digest))
        .where(col(AuthToken.digest) == digest)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    try:
        with session.begin_nested():
            session.execute(
                update(AuthToken)
                .where(
                    col(AuthToken.digest) == free,
                    col(AuthToken.last_used_at) < now - TOUCH_INTERVAL,
                )
                .values(last_used_at=now)
            )
    except OperationalError as exc:
        if busy_error(exc) is None:
            raise


def logout(session: Session, settings: Settings, *, principal: Principal, token: str) -> None:
    """Revoke `token` now."""
    row = session.get(AuthToken, security.token_digest(settings, token))
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)
        session.flush()
    audit.record(
        session,
        actor=principal.user,
        action=AuditAction.LOGOUT,
        entity_type=EntityType.USER,
        entity_id=principal.user.id,
        coi=None,
    )


def revoke_tokens(session: Session, user: User, *, keep: str | None = None) -> None:
    """End every open session of `user`, except the token whose digest is `keep`."""
    query = update(AuthToken).where(
        col(AuthToken.user_id) == user.id, col(AuthToken.revoked_at).is_(None)
    )
    if keep is not None:
        query = query.where(col(AuthToken.digest) != keep)
    session.execute(query.values(revoked_at=utcnow()))

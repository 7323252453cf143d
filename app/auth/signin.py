"""Signing in (SEC-4, 21 CFR 11.300(d)): one answer in one time for unknown, wrong and locked;
temporary locks; per-source throttling; the report of failed sign-ins and locks."""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import delete, func, select
from sqlmodel import Session, col

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.audit.chain import GLOBAL_SCOPE
from app.audit.models import AuditEvent
from app.auth import policy, security
from app.auth.models import AuthToken, SignInFailure, User
from app.auth.service import USERNAME_RE, is_locked, record_failed_password, user_by_username
from app.clock import as_utc, utcnow
from app.config import Settings
from app.errors import AccountLocked, InvalidCredentials, TooManyAttempts, chained

WRONG = "Wrong username or password."
# What the report lists: every refused password, wherever it was typed, and every lock.
REPORTED = (
    AuditAction.LOGIN_FAILED,
    AuditAction.LOGIN_THROTTLED,
    AuditAction.SIGNATURE_FAILED,
    AuditAction.WITNESS_FAILED,
    AuditAction.PASSWORD_CHANGE_FAILED,
    AuditAction.USER_LOCKED,
    AuditAction.USER_UNLOCKED,
)
REPORT_LIMIT = 2_000


@dataclass(frozen=True, slots=True)
class SignIn:
    """A token just issued, and whether its user must change their password first."""

    token: str
    password_change: str | None


def _source(source: str | None) -> str:
    return (source or "unknown")[:64]


def _count_source_failure(session: Session, settings: Settings, *, source: str) -> None:
    """Remember one refused sign-in from `source` (pruning what the window no longer counts)."""
    now = utcnow()
    window = timedelta(minutes=settings.signin_source_window_minutes)
    # Rows another failure is pruning are left to it (SKIP LOCKED): concurrent prunes never
    # wait for, or deadlock on, each other (SQLite has one writer at a time anyway).
    stale = session.execute(
        select(SignInFailure.id)
        .where(col(SignInFailure.at) < now - window)
        .limit(500)
        .with_for_update(skip_locked=True)
    ).scalars()
    stale_ids = list(stale)
    if stale_ids:
        session.execute(delete(SignInFailure).where(col(SignInFailure.id).in_(stale_ids)))
    session.add(SignInFailure(source=source, at=now))
    session.flush()


def _throttled(session: Session, settings: Settings, source: str) -> bool:
    since = utcnow() - timedelta(minutes=settings.signin_source_window_minutes)
    failures = session.execute(
        select(func.count())
        .select_from(SignInFailure)
        .where(col(SignInFailure.source) == source, col(SignInFailure.at) >= since)
    ).scalar_one()
    return failures >= settings.signin_source_limit


def _audit_refusal(
    session: Session,
    *,
    actor: User | str,
    user_id: int | None,
    source: str,
    reason: str,
    action: AuditAction = AuditAction.LOGIN_FAILED,
    **extra: Any,
) -> None:
    audit.record(
        session,
        actor=actor,
        action=action,
        entity_type=EntityType.USER,
        entity_id=user_id,
        new={"reason": reason, "source": source, **extra},
        coi=None,
    )


def _shown_username(username: str) -> str:
    return username if USERNAME_RE.fullmatch(username) else "(not a valid username)"


def login(
    session: Session, settings: Settings, *, username: str, password: str, source: str | None
) -> SignIn:
    """A new bearer token for valid credentials. Unknown, inactive, wrong and locked all cost
    one Argon2 verification and are audited; failures count towards the account's temporary
    lock and the source's throttling (SEC-4)."""
    source = _source(source)
    count = partial(_count_source_failure, settings=settings, source=source)
    if _throttled(session, settings, source):
        raise TooManyAttempts(
            f"Too many failed sign-ins from this address; try again in "
            f"{settings.signin_source_window_minutes} minutes.",
            aftermath=partial(
                _audit_refusal,
                actor="anonymous",
                user_id=None,
                source=source,
                reason="source throttled",
                action=AuditAction.LOGIN_THROTTLED,
                username=_shown_username(username),
            ),
        )
    user = user_by_username(session, username)
    if user is None or not user.active:
        security.burn_password_check(settings, password)
        unknown = partial(
            _audit_refusal,
            actor="anonymous",
            user_id=None,
            source=source,
            reason="unknown or inactive user",
            username=_shown_username(username),
        )
        raise InvalidCredentials(WRONG, aftermath=chained(unknown, count))
    assert user.id is not None
    # Verified even when the account is locked: the answer takes the same time either way.
    matches = security.password_matches(settings, user.password_hash, password)
    if is_locked(user):
        locked = partial(
            _audit_refusal, actor=user.username, user_id=user.id, source=source,
            reason="account locked",
        )  # fmt: skip
        raise AccountLocked(
            "This account is locked after repeated failed attempts; try again later or ask an "
            "administrator to unlock it.",
            aftermath=chained(locked, count),
        )
    if not matches:
        failed = partial(
            record_failed_password,
            settings=settings,
            user_id=user.id,
            action=AuditAction.LOGIN_FAILED,
            context={"source": source},
        )
        raise InvalidCredentials(WRONG, aftermath=chained(failed, count))
    return _issue_token(session, settings, user, source)


def _issue_token(session: Session, settings: Settings, user: User, source: str) -> SignIn:
    assert user.id is not None
    user.failed_logins = 0
    user.locked = False  # an expired lock ends with the first sign-in after it
    user.locked_until = None
    session.add(user)
    token = security.new_token()
    now = utcnow()
    session.add(
        AuthToken(
            digest=security.token_digest(settings, token),
            user_id=user.id,
            created_at=now,
            last_used_at=now,
        )
    )
    session.flush()
    change = policy.change_required(settings, user, now)
    audit.record(
        session,
        actor=user,
        action=AuditAction.LOGIN,
        entity_type=EntityType.USER,
        entity_id=user.id,
        new={"source": source, "password_change_required": change is not None},
        coi=None,
    )
    return SignIn(token=token, password_change=change)


@dataclass(frozen=True, slots=True)
class ReportRow:
    at: datetime
    action: str
    actor: str
    user_id: int | None
    username: str | None
    source: str | None
    reason: str | None
    failed_attempts: int | None
    locked_until: str | None


@dataclass(frozen=True, slots=True)
class Report:
    since: datetime
    failed: int
    locks: int
    events: list[ReportRow]


_FAILURES = frozenset(action.value for action in REPORTED) - {
    AuditAction.USER_LOCKED.value,
    AuditAction.USER_UNLOCKED.value,
}


REPORT_DEFAULT_DAYS = 7


def report(
    session: Session, *, since: datetime | None = None, until: datetime | None = None
) -> Report:
    """Every refused password and every lock or unlock from `since` (default: the last
    REPORT_DEFAULT_DAYS; newest first, at most REPORT_LIMIT), from the audit trail, for QA's
    review of break-in attempts (11.300(d))."""
    since = since or utcnow() - timedelta(days=REPORT_DEFAULT_DAYS)
    query = (
        select(AuditEvent)
        .where(
            col(AuditEvent.scope) == GLOBAL_SCOPE,
            col(AuditEvent.action).in_([action.value for action in REPORTED]),
            col(AuditEvent.occurred_at) >= since,
        )
        .order_by(col(AuditEvent.seq).desc())
        .limit(REPORT_LIMIT)
    )
    if until is not None:
        query = query.where(col(AuditEvent.occurred_at) < until)
    events = list(session.execute(query).scalars())
    user_ids = {event.entity_id for event in events if event.entity_id is not None}
    names = dict(
        session.execute(select(User.id, User.username).where(col(User.id).in_(user_ids))).all()
    )
    rows = [_row(event, names) for event in events]
    return Report(
        since=since,
        failed=sum(row.action in _FAILURES for row in rows),
        locks=sum(row.action == AuditAction.USER_LOCKED.value for row in rows),
        events=rows,
    )


def _row(event: AuditEvent, names: dict[int | None, str]) -> ReportRow:
    new = json.loads(event.new_values) if event.new_values else {}
    return ReportRow(
        at=as_utc(event.occurred_at),
        action=event.action,
        actor=event.actor,
        user_id=event.entity_id,
        username=names.get(event.entity_id) or new.get("username"),
        source=new.get("source"),
        reason=event.reason or new.get("reason"),
        failed_attempts=new.get("failed_attempts"),
        locked_until=new.get("locked_until"),
    )

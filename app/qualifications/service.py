"""Who may do what, until when (SEC-5; EU GMP Part I 2.8-2.11, 21 CFR 1271.170): QA grants and
revokes qualifications with a reason, every act the lab gates asks `require()` first."""

from datetime import datetime
from functools import partial
from typing import Any

from sqlmodel import Session

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.auth import service as auth
from app.auth.models import User
from app.auth.permissions import Role
from app.auth.repository import lock_user
from app.clock import utcnow
from app.errors import Conflict, Forbidden, InvalidRequest, NotQualified
from app.gmp_settings import service as gmp_settings
from app.qualifications import repository
from app.qualifications.models import Qualification
from app.qualifications.schemas import Duty, QualificationGrant, QualificationPublic

STEP_DUTIES = frozenset(Duty) - {Duty.QC_REVIEW, Duty.BEDSIDE_WITNESS}
# The duties each role has a use for: a grant no role of the person can exercise is refused.
ROLE_DUTIES: dict[Role, frozenset[Duty]] = {
    Role.TECHNICIAN: STEP_DUTIES | {Duty.QC_REVIEW},
    Role.QA: frozenset({Duty.QC_REVIEW}),
    Role.CLINICIAN: frozenset({Duty.BEDSIDE_WITNESS}),
    Role.ADMIN: frozenset(),
}
_WHAT = {Duty.QC_REVIEW: "review QC results", Duty.BEDSIDE_WITNESS: "witness an infusion"}


def duties_for(roles: "frozenset[Role] | set[Role] | list[Role]") -> frozenset[Duty]:
    """Every duty a person holding `roles` may be qualified for."""
    duties: frozenset[Duty] = frozenset()
    for role in roles:
        duties |= ROLE_DUTIES[role]
    return duties


def _name(actor: User | str) -> str:
    return actor.username if isinstance(actor, User) else actor


def grant(
    session: Session, *, actor: User | str, user_id: int, data: QualificationGrant
) -> list[Qualification]:
    """New qualifications of user `user_id`, one per duty, audited with the reason. Nobody
    qualifies themselves; a duty none of the person's roles can exercise is a 422."""
    if isinstance(actor, User) and actor.id == user_id:
        raise Forbidden("You cannot grant yourself a qualification; ask another QA person.")
    user = lock_user(session, user_id)
    roles = auth.roles_of(session, user_id)
    useless = sorted(set(data.duties) - duties_for(roles))
    if useless:
        held = ", ".join(sorted(roles)) or "no role"
        raise InvalidRequest(
            f"{user.username} holds {held}, which cannot exercise {', '.join(useless)}."
        )
    now = utcnow()
    valid_from = data.valid_from or now
    if data.expires_at <= max(valid_from, now):
        raise InvalidRequest("A qualification must expire after it starts and after today.")
    granted = [
        Qualification(
            user_id=user_id,
            duty=duty.value,
            valid_from=valid_from,
            expires_at=data.expires_at,
            reason=data.reason,
            granted_by=_name(actor),
            granted_at=now,
        )
        for duty in sorted(set(data.duties))
    ]
    session.add_all(granted)
    session.flush()
    for qualification in granted:
        audit.record(
            session,
            actor=actor,
            action=AuditAction.QUALIFICATION_GRANTED,
            entity_type=EntityType.QUALIFICATION,
            entity_id=qualification.id,
            coi=None,
            new={
                "user_id": user_id,
                "username": user.username,
                "duty": qualification.duty,
                "valid_from": valid_from,
                "expires_at": data.expires_at,
            },
            reason=data.reason,
        )
    return granted


def grant_for_roles(
    session: Session,
    *,
    actor: User | str,
    user: User,
    expires_at: datetime,
    reason: str,
    valid_from: datetime | None = None,
) -> list[Qualification]:
    """Every duty `user`'s roles can exercise (the demo's and the test builders' users)."""
    duties = duties_for(auth.roles_of(session, user.id or 0))
    if not duties:
        return []
    data = QualificationGrant(
        duties=sorted(duties), expires_at=expires_at, valid_from=valid_from, reason=reason
    )
    return grant(session, actor=actor, user_id=user.id or 0, data=data)


def revoke(session: Session, *, actor: User, qualification_id: int, reason: str) -> Qualification:
    """Withdraw a qualification at once (a failed assessment, a deviation), with the reason.
    Acts already recorded stay valid; the row is locked, so an act in progress either commits
    before the revocation or sees it."""
    qualification = repository.lock(session, qualification_id)
    if qualification.user_id == actor.id:
        raise Forbidden("You cannot revoke your own qualification; ask another QA person.")
    if qualification.revoked_at is not None:
        raise Conflict(f"Qualification {qualification_id} is already revoked.")
    qualification.revoked_at = utcnow()
    qualification.revoked_by = actor.username
    qualification.revoke_reason = reason
    session.add(qualification)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.QUALIFICATION_REVOKED,
        entity_type=EntityType.QUALIFICATION,
        entity_id=qualification.id,
        coi=None,
        old={"revoked_at": None},
        new={"revoked_at": qualification.revoked_at, "duty": qualification.duty},
        reason=reason,
    )
    return qualification


def require(
    session: Session,
    user: User,
    duty: Duty,
    *,
    at: datetime,
    context: dict[str, Any] | None = None,
) -> Qualification | None:
    """The qualification that lets `user` perform `duty` at `at`, held (shared) until commit;
    403 `not_qualified` otherwise, the refusal audited (ADR 0004) with `context`. None while
    the site does not enforce people's qualifications (the `qualification_gating` settings)."""
    if not gmp_settings.qualification_gating(session).people:
        return None
    found = repository.in_force(session, user.id or 0, duty.value, at)
    if found is not None:
        return found
    latest = repository.latest(session, user.id or 0, duty.value)
    raise NotQualified(
        _refusal(user, duty, at, latest),
        aftermath=partial(
            audit.record,
            actor=user,
            action=AuditAction.QUALIFICATION_REFUSED,
            entity_type=EntityType.USER,
            entity_id=user.id,
            coi=None,
            new={"duty": duty.value, "at": at, **(context or {})},
        ),
    )


def _refusal(user: User, duty: Duty, at: datetime, latest: Qualification | None) -> str:
    act = _WHAT.get(duty, f"perform a {duty.value} step")
    who = f"{user.full_name} ({user.username})"
    if latest is None:
        why = "holds no qualification for it"
    elif latest.revoked_at is not None:
        why = f"had the qualification revoked on {latest.revoked_at:%Y-%m-%d}"
    elif latest.expires_at <= at:
        why = f"had a qualification that expired on {latest.expires_at:%Y-%m-%d}"
    else:
        why = f"is qualified only from {latest.valid_from:%Y-%m-%d}"
    return f"{who} may not {act}: {why}. QA records training; nothing was changed."


def public(qualification: Qualification, username: str, now: datetime) -> QualificationPublic:
    return QualificationPublic(
        id=qualification.id or 0,
        user_id=qualification.user_id,
        username=username,
        duty=Duty(qualification.duty),
        valid_from=qualification.valid_from,
        expires_at=qualification.expires_at,
        reason=qualification.reason,
        granted_by=qualification.granted_by,
        granted_at=qualification.granted_at,
        revoked_at=qualification.revoked_at,
        revoked_by=qualification.revoked_by,
        revoke_reason=qualification.revoke_reason,
        current=qualification.revoked_at is None
        and qualification.valid_from <= now < qualification.expires_at,
    )


def listing(session: Session, *, user_id: int | None = None) -> list[QualificationPublic]:
    now = utcnow()
    return [public(q, name, now) for q, name in repository.listing(session, user_id=user_id)]


def granted_public(session: Session, granted: list[Qualification]) -> list[QualificationPublic]:
    names = auth.usernames(session, [q.user_id for q in granted])
    now = utcnow()
    return [public(q, names[q.user_id], now) for q in granted]

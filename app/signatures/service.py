"""Electronic signatures (21 CFR 11.50, 11.70, 11.200): re-authenticate, hash, bind, audit.

Signing is two calls so that a signature can never be made without the password: `authenticate`
checks the password (SIG-1) and returns a `Signer`, the only thing `apply` accepts. Callers
authenticate first, check their own rules, write the record, then apply the signature over the
record's canonical content (SIG-3), all in one transaction.
"""

import hashlib
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.audit.chain import canonical_json
from app.auth import security
from app.auth import service as auth
from app.auth.models import User
from app.clock import utcnow
from app.config import Settings
from app.errors import AccountLocked, InvalidCredentials
from app.signatures.models import Signature
from app.signatures.schemas import Meaning, SignaturePublic, SignedRecord


@dataclass(frozen=True, slots=True)
class Signer:
    """A user who has just re-entered their password to sign, with the meaning they sign with."""

    user: User
    meaning: Meaning
    comment: str | None


def record_hash(content: dict[str, Any]) -> str:
    """SHA-256 (hex) of a record's canonical JSON content."""
    return hashlib.sha256((canonical_json(content) or "").encode()).hexdigest()


def authenticate(
    session: Session,
    settings: Settings,
    *,
    user: User,
    password: str,
    meaning: Meaning,
    comment: str | None = None,
    record_type: SignedRecord,
    record_id: int | None,
) -> Signer:
    """Re-authenticate `user` with their password (SIG-1), even inside a session.

    A wrong password is a 401 whose aftermath audits the attempt and counts it towards the
    account's lockout (SIG-5), after everything else the request did is rolled back. Anyone
    holding `admin` is refused once the password is checked (SEC-2).
    """
    assert user.id is not None
    if auth.is_locked(user) or not user.active:
        raise AccountLocked("This account is locked or inactive; it cannot sign.")
    if not security.password_matches(settings, user.password_hash, password):
        raise InvalidCredentials(
            "The password is wrong; nothing was signed.",
            aftermath=partial(
                auth.record_failed_password,
                settings=settings,
                user_id=user.id,
                action=AuditAction.SIGNATURE_FAILED,
                context={
                    "record_type": record_type.value,
                    "record_id": record_id,
                    "meaning": meaning.value,
                },
            ),
        )
    auth.refuse_admin(session, user, "sign")
    return Signer(user=user, meaning=meaning, comment=comment)


def apply(
    session: Session,
    signer: Signer,
    *,
    record_type: SignedRecord,
    record_id: int,
    content: dict[str, Any],
    coi: str | None,
) -> Signature:
    """Bind `signer`'s signature to the record whose canonical content is `content` (SIG-2/3)."""
    user = signer.user
    assert user.id is not None
    signature = Signature(
        user_id=user.id,
        username=user.username,
        printed_name=user.full_name,
        meaning=signer.meaning.value,
        signed_at=utcnow(),
        record_type=record_type.value,
        record_id=record_id,
        record_hash=record_hash(content),
        comment=signer.comment,
    )
    session.add(signature)
    if user.failed_logins:
        # A successful signature ends a run of wrong passwords, as a successful login does.
        user.failed_logins = 0
        session.add(user)
    session.flush()
    audit.record(
        session,
        actor=user,
        action=AuditAction.SIGNATURE_APPLIED,
        entity_type=EntityType.SIGNATURE,
        entity_id=signature.id,
        coi=coi,
        new={
            "record_type": record_type.value,
            "record_id": record_id,
            "meaning": signer.meaning.value,
            "printed_name": user.full_name,
            "record_hash": signature.record_hash,
            "comment": signer.comment,
        },
    )
    return signature


def of_records(
    session: Session, record_type: SignedRecord, record_ids: list[int]
) -> dict[int, list[Signature]]:
    """The signatures of many records of one type, oldest first, in one query."""
    found: dict[int, list[Signature]] = {record_id: [] for record_id in record_ids}
    if not record_ids:
        return found
    rows = session.execute(
        select(Signature)
        .where(Signature.record_type == record_type.value, col(Signature.record_id).in_(record_ids))
        .order_by(col(Signature.id))
    ).scalars()
    for signature in rows:
        found[signature.record_id].append(signature)
    return found


def public(signature: Signature, content: dict[str, Any]) -> SignaturePublic:
    """The manifestation of `signature`, saying whether `content` (the record as it is now) still
    hashes to what was signed (SIG-3)."""
    assert signature.id is not None
    return SignaturePublic(
        id=signature.id,
        signed_by=signature.printed_name,
        username=signature.username,
        user_id=signature.user_id,
        signed_at=signature.signed_at,
        meaning=Meaning(signature.meaning),
        record_type=SignedRecord(signature.record_type),
        record_id=signature.record_id,
        record_hash=signature.record_hash,
        comment=signature.comment,
        matches=record_hash(content) == signature.record_hash,
    )

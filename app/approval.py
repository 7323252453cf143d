"""Change control (QC-3, ADR 0022): the one approval of a versioned record, draft → approved →
superseded, shared by specification versions and GMP settings.

QA approves a draft with an e-signature (SIG-1..3) over its content; the version it replaces is
superseded in the same transaction; both moves are audited. At most one version of a family is
approved at a time: a partial unique index decides between two approvals made at once.
"""

from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.auth.models import User
from app.config import Settings
from app.errors import Conflict, Forbidden, NotDraft, NotFound
from app.signatures import service as signatures
from app.signatures.schemas import Meaning, SignedRecord


class VersionStatus(StrEnum):
    DRAFT = "draft"
    APPROVED = "approved"
    SUPERSEDED = "superseded"


class Versioned(Protocol):
    id: int | None
    version: int
    status: str
    created_by: int | None


V = TypeVar("V", bound=SQLModel)


def lock_version(session: Session, model: type[V], record_id: int, label: str) -> V:
    """The version, locked until commit and read afresh once locked; 404 if there is none."""
    found = session.execute(
        select(model)
        .where(col(model.id) == record_id)  # type: ignore[attr-defined]
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"No {label} has id {record_id}.")
    return found


def approve(
    session: Session,
    settings: Settings,
    *,
    model: type[V],
    family: ColumnElement[bool],
    record_id: int,
    actor: User,
    password: str,
    comment: str | None,
    record_type: SignedRecord,
    entity_type: EntityType,
    approved: AuditAction,
    superseded: AuditAction,
    label: str,
    content: Callable[[V], dict[str, Any]],
) -> V:
    """Put the draft `record_id` in force, e-signed `approved` by `actor` (not its author,
    SIG-4), superseding the version of its `family` in force. Audited in this transaction."""
    draft: Any = lock_version(session, model, record_id, label)
    name = f"{label} version {draft.version}"
    if draft.status != VersionStatus.DRAFT:
        raise NotDraft(f"The {name} is {draft.status}; only a draft can be approved.")
    current: Any = session.execute(
        select(model)
        .where(family, col(model.status) == VersionStatus.APPROVED.value)  # type: ignore[attr-defined]
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if current is not None and current.version > draft.version:
        raise NotDraft(
            f"The {name} is older than version {current.version} in force; propose a new "
            "version instead."
        )
    if draft.created_by is not None and draft.created_by == actor.id:
        raise Forbidden(f"The author of the {name} cannot approve it (four-eyes, SIG-4).")
    signer = signatures.authenticate(
        session,
        settings,
        user=actor,
        password=password,
        meaning=Meaning.APPROVED,
        comment=comment,
        record_type=record_type,
        record_id=record_id,
    )
    if current is not None:
        current.status = VersionStatus.SUPERSEDED.value
        session.add(current)
        session.flush()
        _moved(session, actor, superseded, entity_type, current, VersionStatus.APPROVED, comment)
    try:
        with session.begin_nested():
            draft.status = VersionStatus.APPROVED.value
            session.add(draft)
    except IntegrityError as exc:
        raise Conflict(
            f"Another {label} version was approved at the same moment; reload and check which "
            "one is in force."
        ) from exc
    _moved(session, actor, approved, entity_type, draft, VersionStatus.DRAFT, comment)
    signatures.apply(
        session,
        signer,
        record_type=record_type,
        record_id=record_id,
        content=content(draft),
        coi=None,
    )
    return draft


def _moved(
    session: Session,
    actor: User,
    action: AuditAction,
    entity_type: EntityType,
    record: Any,
    before: VersionStatus,
    reason: str | None,
) -> None:
    audit.record(
        session,
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=record.id,
        old={"status": before.value},
        new={"status": record.status, "version": record.version},
        reason=reason,
        coi=None,
    )

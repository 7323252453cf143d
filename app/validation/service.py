"""QA's e-signature on an operational-qualification report, bound to the report's SHA-256."""

from sqlalchemy import select
from sqlmodel import Session, col

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.auth.models import User
from app.clock import utcnow
from app.config import Settings
from app.signatures import service as signatures
from app.signatures.schemas import Meaning, SignedRecord
from app.validation.models import ValidationReport
from app.validation.schemas import ValidationReportPublic, ValidationReportSign


def _content(report: ValidationReport) -> dict[str, str]:
    """What the signature covers: the report's hash and the meaning it was signed with."""
    return {"sha256": report.sha256, "meaning": report.meaning}


def sign(
    session: Session, settings: Settings, *, actor: User, data: ValidationReportSign
) -> ValidationReportPublic:
    """Re-authenticate `actor` (SIG-1; a wrong password is audited, SIG-5), record the signed act
    and bind the signature to the report's hash, audited in the same transaction."""
    signer = signatures.authenticate(
        session,
        settings,
        user=actor,
        password=data.password,
        meaning=Meaning(data.meaning.value),
        comment=data.comment,
        record_type=SignedRecord.VALIDATION_REPORT,
        record_id=None,
    )
    assert actor.id is not None
    report = ValidationReport(
        sha256=data.sha256.lower(),
        meaning=data.meaning.value,
        signed_by=actor.id,
        signed_at=utcnow(),
    )
    session.add(report)
    session.flush()
    assert report.id is not None
    audit.record(
        session,
        actor=actor,
        action=AuditAction.VALIDATION_REPORT_SIGNED,
        entity_type=EntityType.VALIDATION_REPORT,
        entity_id=report.id,
        coi=None,
        new=_content(report),
    )
    signature = signatures.apply(
        session,
        signer,
        record_type=SignedRecord.VALIDATION_REPORT,
        record_id=report.id,
        content=_content(report),
        coi=None,
    )
    return ValidationReportPublic(
        id=report.id,
        sha256=report.sha256,
        meaning=report.meaning,
        signature=signatures.public(signature, _content(report)),
    )


def signed(session: Session, sha256: str | None = None) -> list[ValidationReportPublic]:
    """Every signed act on a report (of one hash when given), newest first, in two queries."""
    query = select(ValidationReport).order_by(col(ValidationReport.id).desc())
    if sha256 is not None:
        query = query.where(ValidationReport.sha256 == sha256.lower())
    reports = list(session.execute(query).scalars())
    found = signatures.of_records(
        session, SignedRecord.VALIDATION_REPORT, [r.id for r in reports if r.id is not None]
    )
    return [
        ValidationReportPublic(
            id=report.id,
            sha256=report.sha256,
            meaning=report.meaning,
            signature=signatures.public(signature, _content(report)),
        )
        for report in reports
        if report.id is not None
        for signature in found[report.id][:1]
    ]

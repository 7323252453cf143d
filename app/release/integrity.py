"""A changed signed record blocks (SIG-6): a dose whose batch's release signature no longer
matches the record it signed is not dispatched, verified, infused or labelled, and QA is told.

Dispatch (`storage`), the bedside check and infusion (`clinic.bedside`) and label printing
(`labels`) all call `require_release_intact`, so the rule has one wording and one alert."""

from functools import partial

from sqlalchemy import select
from sqlmodel import Session, col

from app.auth.models import User
from app.batches import service as batches
from app.batches.models import BatchAlert
from app.errors import SignatureMismatch
from app.release import service as release
from app.release.models import ReleaseDecision
from app.signatures import service as signatures
from app.signatures.schemas import SignedRecord

ALERT_KIND = "signature_mismatch"


def release_matches(session: Session, batch_id: int) -> bool:
    """Whether the latest release decision of the batch (if any) still matches its signature:
    its doses, results and deviations hash to what QA signed (SIG-3)."""
    latest = session.execute(
        select(ReleaseDecision)
        .where(ReleaseDecision.batch_id == batch_id)
        .order_by(col(ReleaseDecision.id).desc())
        .limit(1)
    ).scalar_one_or_none()
    if latest is None:
        return True
    signed = signatures.of_records(session, SignedRecord.RELEASE, [latest.id or 0])
    content = release.content(session, batches.get(session, batch_id), latest)
    digest = signatures.record_hash(content)
    return all(signature.record_hash == digest for signature in signed[latest.id or 0])


def require_release_intact(session: Session, *, actor: User, batch_id: int | None) -> None:
    """409 `signature_mismatch` when the release signature of the batch no longer matches; the
    refusal's aftermath (ADR 0004) raises one alert for QA on the batch, kept after the
    rollback and raised once however many uses are refused."""
    if batch_id is None or release_matches(session, batch_id):
        return
    context = batches.get(session, batch_id)
    raise SignatureMismatch(
        f"STOP: the release of batch {context.batch.batch_number} no longer matches what QA "
        "signed (a dose, result or deviation changed since); its doses may not be dispatched, "
        "verified, infused or labelled. QA has been alerted.",
        aftermath=partial(_alert_once, batch_id=batch_id, actor_id=actor.id or 0),
    )


def _alert_once(session: Session, *, batch_id: int, actor_id: int) -> None:
    context = batches.get(session, batch_id, lock=True)
    raised = session.execute(
        select(BatchAlert.id)
        .where(BatchAlert.batch_id == batch_id, BatchAlert.kind == ALERT_KIND)
        .limit(1)
    ).first()
    if raised is not None:
        return
    actor = session.get(User, actor_id)
    assert actor is not None
    batches.raise_alert(
        session,
        actor=actor,
        context=context,
        kind=ALERT_KIND,
        message=(
            "The release signature no longer matches the batch record: something QA signed "
            "changed afterwards. Its doses are blocked until QA investigates."
        ),
    )

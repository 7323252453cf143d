"""What the release gate asks of labels (REL-6): every dose of the batch still in use carries a
printed label that was not voided."""

from sqlalchemy import select
from sqlmodel import Session, col, or_

from app.labels.models import LabelPrint, PrintJob
from app.labels.states import PrintJobStatus
from app.vessels.models import Vessel
from app.vessels.states import NO_LONGER_IN_USE, VesselStatus


def unlabelled_doses(session: Session, batch_id: int) -> list[str]:
    """Codes of the batch's doses in use without a label in hand, in code order (two queries).
    A label is in hand when it was printed (downloaded, or its printer job was sent) and not
    voided; a job still queued or failed has labelled nothing yet."""
    doses = [
        dose
        for dose in session.execute(
            select(Vessel)
            .where(Vessel.batch_id == batch_id, col(Vessel.is_dose).is_(True))
            .order_by(col(Vessel.sequence))
        ).scalars()
        if VesselStatus(dose.status) not in NO_LONGER_IN_USE
    ]
    if not doses:
        return []
    labelled = set(
        session.execute(
            select(LabelPrint.vessel_id)
            .outerjoin(PrintJob, col(PrintJob.id) == LabelPrint.print_job_id)
            .where(
                col(LabelPrint.vessel_id).in_([dose.id for dose in doses]),
                col(LabelPrint.voided_at).is_(None),
                or_(
                    col(LabelPrint.print_job_id).is_(None),
                    col(PrintJob.status) == PrintJobStatus.SENT.value,
                ),
            )
        ).scalars()
    )
    return [dose.code for dose in doses if dose.id not in labelled]

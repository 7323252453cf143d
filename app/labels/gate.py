"""What the release gate asks of labels (REL-6): every dose of the batch still in use carries a
printed label that was not voided."""

from sqlalchemy import Select, select
from sqlmodel import Session, col

from app.labels.models import LabelPrint, LabelVoid, PrintJob
from app.labels.states import PrintJobStatus
from app.vessels.models import Vessel
from app.vessels.states import NO_LONGER_IN_USE, VesselStatus


def valid_prints() -> Select:
    """Prints that stand for a label on its vessel: not voided (no `label_void` row names them)
    and downloaded, or sent by their print job. Columns: the print's `vessel_id` and `id`."""
    return (
        select(LabelPrint.vessel_id, LabelPrint.id)
        .outerjoin(LabelVoid, col(LabelVoid.label_print_id) == LabelPrint.id)
        .outerjoin(PrintJob, col(PrintJob.id) == LabelPrint.print_job_id)
        .where(
            col(LabelVoid.id).is_(None),
            col(LabelPrint.print_job_id).is_(None) | (PrintJob.status == PrintJobStatus.SENT.value),
        )
    )


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
    in_hand = valid_prints().where(col(LabelPrint.vessel_id).in_([dose.id for dose in doses]))
    labelled = {vessel_id for vessel_id, _ in session.execute(in_hand)}
    return [dose.code for dose in doses if dose.id not in labelled]

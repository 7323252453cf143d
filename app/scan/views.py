"""What the scan station and step entry show around a scan: the working context with its
patient, COI and batch number read from the database, and the two identities of a STOP."""

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlmodel import Session

from app.batches import service as batches
from app.batches.schemas import BatchSummary
from app.batches.service import BatchContext
from app.batches.states import FINAL
from app.errors import NotFound
from app.identity.codes import DIN
from app.scan import service
from app.scan.station import RecentScan, Station


@dataclass(frozen=True)
class Identity:
    """Whose something is, as a person compares it: patient, birth date, COI, batch, DIN."""

    patient_name: str
    birth_date: date
    coi: str
    batch_number: str | None
    din: str
    din_check: str
    batch: BatchSummary | None = None


@dataclass(frozen=True)
class Stop:
    code: str
    scanned: Identity | None  # None: the code no longer reads as a vessel
    context: Identity | None


@dataclass(frozen=True)
class Recent:
    scan: RecentScan
    at: datetime


@dataclass(frozen=True)
class StationView:
    context: Identity | None
    stop: Stop | None
    recent: list[Recent]
    choices: list[Identity]
    lost_context: bool = False  # the cookie named a batch that no longer exists


def identity_of(context: BatchContext) -> Identity:
    patient, biopsy = context.patient, context.biopsy
    return Identity(
        patient_name=f"{patient.family_name.upper()}, {patient.given_name}",
        birth_date=patient.birth_date,
        coi=patient.coi,
        batch_number=context.batch.batch_number,
        din=biopsy.din,
        din_check=DIN(biopsy.din).check,
        batch=batches.summary(context),
    )


def _scanned_identity(session: Session, code: str) -> Identity | None:
    found = service.whose(session, code)
    if found is None:
        return None
    patient, biopsy = found.patient, found.biopsy
    return Identity(
        patient_name=f"{patient.family_name.upper()}, {patient.given_name}",
        birth_date=patient.birth_date,
        coi=patient.coi,
        batch_number=found.batch.batch_number if found.batch else None,
        din=biopsy.din,
        din_check=DIN(biopsy.din).check,
    )


def working_context(session: Session, station: Station) -> Identity | None:
    if station.batch_id is None:
        return None
    try:
        return identity_of(batches.get(session, station.batch_id))
    except NotFound:
        return None


def station_view(session: Session, station: Station, *, choices: bool = True) -> StationView:
    """Everything the station shows besides the outcome of the last scan (read only)."""
    context = working_context(session, station)
    stop = (
        Stop(station.stop, _scanned_identity(session, station.stop), context)
        if station.stop
        else None
    )
    open_batches = (
        [identity_of(c) for c in batches.find(session, limit=50) if c.batch.status not in FINAL]
        if choices and context is None
        else []
    )
    return StationView(
        context=context,
        stop=stop,
        recent=[Recent(r, datetime.fromtimestamp(r.at, UTC)) for r in station.recent],
        choices=open_batches,
        lost_context=station.batch_id is not None and context is None,
    )

"""What the scan station and step entry show around a scan: the working context with its
patient, COI and batch number read from the database, and the two identities of a STOP."""

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from sqlmodel import Session

from app.batches import service as batches
from app.batches.schemas import BatchSummary
from app.batches.service import BatchContext
from app.batches.states import FINAL
from app.errors import HomewardError, IdentityMismatch, InvalidState, NotFound
from app.identity.codes import DIN, normalize
from app.scan import service
from app.scan.schemas import ScanExpectation, ScanResult
from app.scan.station import RecentScan, Station, Verdict


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


def verdict_of(outcome: ScanResult | HomewardError) -> Verdict:
    """The word the station shows for a scan's outcome: green only when something was checked
    and held; a vessel that must not be used is NOT USABLE whatever was checked."""
    if isinstance(outcome, IdentityMismatch):
        return Verdict.STOP
    if isinstance(outcome, InvalidState):  # a voided registration's vessel
        return Verdict.NOT_USABLE
    if isinstance(outcome, HomewardError):
        return Verdict.REFUSED
    if not outcome.usable:
        return Verdict.NOT_USABLE
    return Verdict.HELD if outcome.checked else Verdict.FOUND


def after_scan(station: Station, code: str, outcome: ScanResult | HomewardError) -> Station:
    """The station once `code` was scanned: the scan listed, a mismatch held as a STOP."""
    verdict = verdict_of(outcome)
    shown = normalize(code)[:40] or "(empty)"
    if isinstance(outcome, HomewardError):
        station = station.with_scan(shown, verdict, outcome.code.replace("_", " "))
    else:
        note = f"{outcome.vessel.kind.value.replace('_', ' ')} · {outcome.vessel.status.value}"
        station = station.with_scan(outcome.vessel.code, verdict, note)
    return replace(station, stop=shown) if verdict is Verdict.STOP else station


def acknowledged(station: Station) -> Station:
    """The station once a person acknowledged its STOP: listed as set aside, scanning again."""
    if not station.stop:
        return station
    return replace(station, stop=None).with_scan(
        station.stop, Verdict.STOP, "acknowledged, set aside"
    )


def expectation(station: Station) -> ScanExpectation | None:
    return ScanExpectation(batch_id=station.batch_id) if station.batch_id else None

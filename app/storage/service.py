"""Storage locations and custody: where every vessel is, who moved it, at what temperature."""

from enum import StrEnum
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from app import chronology
from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.auth.models import User
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.batches import service as batches
from app.batches.states import BatchStatus
from app.clock import utcnow
from app.config import Settings
from app.db import add_unique
from app.deviations import service as deviations
from app.deviations.states import DeviationKind
from app.errors import (
    DuplicateCode,
    InvalidRequest,
    InvalidState,
    NotFound,
    NotReleased,
    PositionTaken,
)
from app.gmp_settings import service as gmp_settings
from app.gmp_settings.groups import TransportTemperatures
from app.identity.codes import parse_vessel_code
from app.labels.scanned import scanned_vessel_code
from app.lifecycle import transition
from app.oos_supply import service as oos_supply
from app.release import integrity
from app.storage.models import CustodyEvent, Location
from app.storage.repository import lock_positions
from app.storage.schemas import (
    CustodyCreate,
    CustodyKind,
    CustodyPublic,
    LocationCreate,
    LocationKind,
    LocationPublic,
)
from app.vessels.models import Vessel
from app.vessels.repository import VesselIdentity, identity_by_code
from app.vessels.states import NO_LONGER_IN_USE, VESSEL_LIFECYCLE, VesselStatus

# Who records which custody event (DESIGN §11): the lab moves and dispatches, the clinic receives.
EVENT_PERMISSION = {
    CustodyKind.MOVED: Permission.CUSTODY_MOVE,
    CustodyKind.DISPATCHED: Permission.CUSTODY_DISPATCH,
    CustodyKind.RECEIVED: Permission.CUSTODY_RECEIVE,
}
EVENT_STATUS = {
    CustodyKind.DISPATCHED: VesselStatus.DISPATCHED,
    CustodyKind.RECEIVED: VesselStatus.RECEIVED,
}
DISPATCHABLE_BATCH = frozenset(
    {BatchStatus.RELEASED, BatchStatus.CONDITIONALLY_RELEASED, BatchStatus.ISSUED}
)
FIRST_ISSUE = frozenset({BatchStatus.RELEASED, BatchStatus.CONDITIONALLY_RELEASED})


class StorageType(StrEnum):
    FRESH = "fresh"
    CRYOPRESERVED = "cryopreserved"


def create_location(session: Session, *, actor: User, data: LocationCreate) -> Location:
    if data.parent_id is not None:
        parent = session.get(Location, data.parent_id)
        if parent is None:
            raise NotFound(f"No location has id {data.parent_id}.")
        if parent.kind == LocationKind.POSITION:
            raise InvalidRequest("A position is the end of the hierarchy; it holds no locations.")
    location = Location(**data.model_dump())
    add_unique(session, location, DuplicateCode(f"A location with code {data.code} exists."))
    audit.record(
        session,
        actor=actor,
        action=AuditAction.LOCATION_CREATED,
        entity_type=EntityType.LOCATION,
        entity_id=location.id,
        new=data.model_dump(),
        coi=None,
    )
    return location


def list_locations(session: Session) -> list[tuple[Location, str | None]]:
    """Every location with the code of the vessel occupying it (positions), in one query."""
    rows = session.execute(
        select(Location, Vessel.code)
        .outerjoin(Vessel, col(Vessel.position_id) == Location.id)
        .order_by(col(Location.id))
    )
    return [(location, code) for location, code in rows]


def locations_public(session: Session) -> list[LocationPublic]:
    """Every location with its full path and the vessel occupying it (one query)."""
    rows = list_locations(session)
    full_paths = paths([location for location, _ in rows])
    return [
        LocationPublic(
            id=location.id or 0,
            code=location.code,
            name=location.name,
            kind=LocationKind(location.kind),
            parent_id=location.parent_id,
            path=full_paths[location.id or 0],
            occupied_by=code,
        )
        for location, code in rows
    ]


def paths(locations: list[Location]) -> dict[int, str]:
    """`site > room > freezer > ...` for each location, from one list (no query per level)."""
    by_id = {location.id: location for location in locations}
    result: dict[int, str] = {}
    for location in locations:
        names, node, seen = [], location, set()
        while node is not None and node.id not in seen:
            seen.add(node.id)
            names.append(node.code)
            node = by_id.get(node.parent_id) if node.parent_id is not None else None
        result[location.id or 0] = " > ".join(reversed(names))
    return result


def place(session: Session, vessel: Vessel, where: str, positions: dict[str, Location]) -> None:
    """Put `vessel` at `where`: a storage position (one of `positions`, which the caller locked
    with `repository.lock_positions`) or a free-text place name. One vessel per position is
    enforced by the database; a taken position is a 409 and changes nothing."""
    # Case-insensitive, so a typed "box1-a1" cannot dodge the one-vessel rule of "BOX1-A1".
    position = positions.get(where.upper())
    vessel.location = where
    vessel.position_id = position.id if position is not None else None
    session.add(vessel)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise PositionTaken(f"Position {where} already holds another vessel.") from exc


def record_custody(
    session: Session, settings: Settings, *, principal: Principal, code: str, data: CustodyCreate
) -> CustodyEvent:
    """A custody event for the vessel with `code`; dispatch only for doses of released batches
    (CLN-3), receipt only of a dispatched dose; a dose's first dispatch issues its batch; a dose
    outside its storage type's temperature range opens a deviation."""
    principal.require(EVENT_PERMISSION[data.event])
    parsed = scanned_vessel_code(session, code)
    found = identity_by_code(session, parsed, lock=True)
    if found is None:
        raise NotFound(f"No vessel has code {parsed}.")
    vessel = found.vessel
    if vessel.status in NO_LONGER_IN_USE:
        raise InvalidState(f"Vessel {parsed} is {vessel.status}; it no longer moves.")
    dated = chronology.check(
        "custody event",
        data.occurred_at,
        not_before=_precedents(session, found, data.event),
        now=utcnow(),
        skew=settings.late_entry_skew,
        late_reason=data.late_reason,
    )
    if data.event is CustodyKind.DISPATCHED:
        if not vessel.is_dose:
            raise InvalidRequest(f"Vessel {parsed} is not a dose; only doses are dispatched.")
        if found.batch is None or found.batch.status not in DISPATCHABLE_BATCH:
            status = found.batch.status if found.batch else "not in a batch"
            raise NotReleased(
                f"Dose {parsed} belongs to a batch that is {status}; only doses of a released "
                "batch can be dispatched."
            )
        integrity.require_release_intact(session, actor=principal.user, batch_id=found.batch.id)
        # REL-7: an out-of-specification batch only with its OOS supply record (batch locked).
        oos_supply.require_recorded(session, batch_id=found.batch.id or 0, dose_code=parsed)
    storage_type = None
    if vessel.is_dose and data.event in EVENT_STATUS:
        if data.temperature_c is None:
            raise InvalidRequest(f"A dose's {data.event.value} records its temperature.")
        storage_type = _storage_type(session, vessel)
    from_location = vessel.location
    if data.event in EVENT_STATUS:
        transition(
            session,
            VESSEL_LIFECYCLE,
            vessel,
            EVENT_STATUS[data.event],
            actor=principal.user,
            coi=found.patient.coi,
            label=f"Vessel {parsed}",
        )
    place(session, vessel, data.location, lock_positions(session, [data.location]))
    event = CustodyEvent(
        vessel_id=vessel.id or 0,
        event=data.event.value,
        from_location=from_location,
        to_location=data.location,
        temperature_c=data.temperature_c,
        storage_type=storage_type,
        occurred_at=dated.occurred_at,
        recorded_at=dated.recorded_at,
        late_reason=dated.late_reason,
        recorded_by=principal.user.id or 0,
    )
    session.add(event)
    session.flush()
    audit.record(
        session,
        actor=principal.user,
        action=AuditAction.CUSTODY_RECORDED,
        entity_type=EntityType.VESSEL,
        entity_id=vessel.id,
        coi=found.patient.coi,
        old={"location": from_location},
        new=data.model_dump()
        | {
            "occurred_at": dated.occurred_at,
            "recorded_at": dated.recorded_at,
            "late": dated.late,
            "late_reason": dated.late_reason,
            "storage_type": storage_type,
        },
    )
    batch = found.batch
    if data.event is CustodyKind.DISPATCHED and batch is not None and batch.status in FIRST_ISSUE:
        batches.issue(session, actor=principal.user, batch_id=batch.id or 0, dose_code=parsed)
    if storage_type is not None and batch is not None:
        _check_temperature(session, settings, principal.user, found, event)
    return event


def latest_event(session: Session, vessel_id: int) -> CustodyEvent | None:
    """The vessel's last custody event as recorded (AUD-6: by the server's order, never by a
    client's `occurred_at`): where it is and in whose hands now."""
    return session.execute(
        select(CustodyEvent)
        .where(CustodyEvent.vessel_id == vessel_id)
        .order_by(col(CustodyEvent.id).desc())
        .limit(1)
    ).scalar_one_or_none()


def _precedents(
    session: Session, found: VesselIdentity, event: CustodyKind
) -> list[chronology.Precedent]:
    """What a custody event of the (locked) vessel follows (AUD-6): its previous custody event,
    its creation, and for a dispatch the batch's release."""
    vessel = found.vessel
    previous = latest_event(session, vessel.id or 0)
    follows = [chronology.vessel_origins(session, [vessel])[vessel.id or 0]]
    if previous is not None:
        follows.append(
            (f"the vessel's previous custody event ({previous.event})", previous.occurred_at)
        )
    if event is CustodyKind.DISPATCHED and found.batch is not None:
        follows.append(
            ("the batch's release", chronology.released_at(session, found.batch.id or 0))
        )
    return follows


def _storage_type(session: Session, vessel: Vessel) -> str:
    """A dose travels frozen (dispatched from the freezer) or fresh; a receipt keeps the type of
    its dispatch."""
    if vessel.status == VesselStatus.FROZEN:
        return StorageType.CRYOPRESERVED
    dispatched = session.execute(
        select(CustodyEvent.storage_type)
        .where(
            CustodyEvent.vessel_id == vessel.id,
            CustodyEvent.event == CustodyKind.DISPATCHED.value,
        )
        .order_by(col(CustodyEvent.id).desc())
        .limit(1)
    ).scalar_one_or_none()
    return dispatched or StorageType.FRESH


def acceptable(
    temperatures: TransportTemperatures, storage_type: str
) -> tuple[float | None, float]:
    """The acceptable temperature range (°C) of a dose's storage type (CLN-3), from the GMP
    settings in force (QC-3)."""
    if storage_type == StorageType.CRYOPRESERVED:
        return None, temperatures.cryopreserved_max_c
    return temperatures.fresh_min_c, temperatures.fresh_max_c


def _check_temperature(
    session: Session,
    settings: Settings,
    actor: User,
    found: VesselIdentity,
    event: CustodyEvent,
) -> None:
    """Outside its range, a dose's temperature is audited and opens a deviation (which holds the
    batch until QA closes it)."""
    assert event.temperature_c is not None and event.storage_type is not None
    low, high = acceptable(gmp_settings.transport_temperatures(session), event.storage_type)
    t = event.temperature_c
    if (low is None or t >= low) and t <= high:
        return
    limits = f"{low:g} to {high:g} °C" if low is not None else f"at most {high:g} °C"
    finding = (
        f"Dose {found.vessel.code} {event.event} at {t:g} °C; a {event.storage_type} dose must "
        f"be kept {limits}."
    )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.TEMPERATURE_EXCURSION,
        entity_type=EntityType.VESSEL,
        entity_id=found.vessel.id,
        coi=found.patient.coi,
        new={"custody_event_id": event.id, "temperature_c": t, "limits": [low, high]},
    )
    assert found.batch is not None
    deviations.open_deviation(
        session,
        actor=actor,
        context=batches.get(session, found.batch.id or 0, lock=True),
        kind=DeviationKind.TEMPERATURE,
        description=finding,
    )


def _events() -> Select[tuple[CustodyEvent, str, str]]:
    """Custody events with their vessel's code and who recorded them, in one query."""
    return (
        select(CustodyEvent, Vessel.code, User.username)
        .join(Vessel, col(Vessel.id) == CustodyEvent.vessel_id)
        .join(User, col(User.id) == CustodyEvent.recorded_by)
    )


def history(session: Session, vessel_ids: list[int]) -> list[tuple[CustodyEvent, str, str]]:
    """Custody events of the vessels in the order they were recorded (AUD-6), with vessel code
    and who recorded them."""
    if not vessel_ids:
        return []
    rows = session.execute(
        _events().where(col(CustodyEvent.vessel_id).in_(vessel_ids)).order_by(col(CustodyEvent.id))
    )
    return [(event, code, username) for event, code, username in rows]


def recent_custody(session: Session, limit: int = 20) -> list[CustodyPublic]:
    """The last `limit` custody events recorded, newest first (the custody page's list)."""
    rows = session.execute(_events().order_by(col(CustodyEvent.id).desc()).limit(limit))
    return [custody_public(event, code, username) for event, code, username in rows]


def custody_public(event: CustodyEvent, code: str, username: str) -> CustodyPublic:
    return CustodyPublic(
        id=event.id or 0,
        vessel_code=code,
        event=CustodyKind(event.event),
        from_location=event.from_location,
        to_location=event.to_location,
        temperature_c=event.temperature_c,
        occurred_at=event.occurred_at,
        recorded_by=username,
        recorded_at=event.recorded_at,
        late=event.late_reason is not None,
        late_reason=event.late_reason,
    )


def vessel_history(session: Session, code: str) -> list[CustodyPublic]:
    """The full custody history of one vessel, in the order it was recorded."""
    parsed = parse_vessel_code(code).value
    found = identity_by_code(session, parsed)
    if found is None:
        raise NotFound(f"No vessel has code {parsed}.")
    return [
        custody_public(event, vessel_code, username)
        for event, vessel_code, username in history(session, [found.vessel.id or 0])
    ]


def custody_report(session: Session, settings: Settings, code: str) -> dict[str, Any]:
    """The chain of custody of one vessel (CLN-3): whose it is, every hand and place it passed
    through with the temperature, and whether each temperature was in range for a dose."""
    parsed = parse_vessel_code(code).value
    found = identity_by_code(session, parsed)
    if found is None:
        raise NotFound(f"No vessel has code {parsed}.")
    events = []
    temperatures = gmp_settings.transport_temperatures(session)
    for event, _, username in history(session, [found.vessel.id or 0]):
        in_range = None
        if event.storage_type is not None and event.temperature_c is not None:
            low, high = acceptable(temperatures, event.storage_type)
            in_range = (low is None or event.temperature_c >= low) and event.temperature_c <= high
        events.append(
            custody_public(event, parsed, username).model_dump()
            | {"storage_type": event.storage_type, "in_range": in_range}
        )
    return {
        "vessel": parsed,
        "is_dose": found.vessel.is_dose,
        "status": found.vessel.status,
        "coi": found.patient.coi,
        "din": found.biopsy.din,
        "batch_number": found.batch.batch_number if found.batch else None,
        "events": events,
        "excursions": sum(1 for e in events if e["in_range"] is False),
    }

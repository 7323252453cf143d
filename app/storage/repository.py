"""Storage position locks: the last row locks of a write path, after its batch and vessels
(ADR 0011)."""

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlmodel import Session, col

from app.storage.models import Location
from app.storage.schemas import LocationKind


def lock_positions(session: Session, places: Iterable[str]) -> dict[str, Location]:
    """The storage positions named among `places` (case-insensitively), locked until commit in id
    order and read afresh, keyed by upper-cased code; a place that is no position (a free-text
    place name) is absent."""
    codes = sorted({place.upper() for place in places})
    if not codes:
        return {}
    rows = session.execute(
        select(Location)
        .where(func.upper(Location.code).in_(codes), Location.kind == LocationKind.POSITION)
        .order_by(col(Location.id))
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalars()
    return {location.code.upper(): location for location in rows}

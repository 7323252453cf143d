"""The one source of the current time: UTC and timezone-aware (CONVENTIONS 11)."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

# Clocks of the lab's and clinic's devices drift: a time this far ahead is still accepted.
CLOCK_SKEW = timedelta(minutes=10)


def utcnow() -> datetime:
    """Now, in UTC, timezone-aware."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """The same instant in UTC; a naive value is taken to be UTC already (as stored by SQLite)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def in_future(moment: datetime) -> bool:
    """True if `moment` is later than now, beyond the devices' clock drift."""
    return moment > utcnow() + CLOCK_SKEW


def local(value: datetime, zone: str) -> datetime:
    """The same instant on the wall clock of time zone `zone` (aware)."""
    return as_utc(value).astimezone(ZoneInfo(zone))


def local_text(value: datetime, zone: str) -> str:
    """An instant as pages, labels and documents show it: local time with its zone
    (`2026-12-05 23:32 CET`, CONVENTIONS 11)."""
    return local(value, zone).strftime("%Y-%m-%d %H:%M %Z")

"""AUD-6: the chronology rule itself (app/chronology.py) and its setting."""

from datetime import UTC, datetime, timedelta

import pytest

from app import chronology
from app.clock import CLOCK_SKEW
from app.config import Settings
from app.errors import InvalidRequest, LateEntryReasonRequired, OutOfOrder

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
SKEW = timedelta(seconds=300)


def _check(at: datetime | None, *, after: datetime | None = None, reason: str | None = None):
    return chronology.check(
        "custody event",
        at,
        not_before=[("the previous event", after), ("nothing yet", None)],
        now=NOW,
        skew=SKEW,
        late_reason=reason,
    )


def test_aud6_no_client_time_is_the_servers_time_and_not_late():
    dated = _check(None)
    assert dated.occurred_at == dated.recorded_at == NOW and not dated.late


def test_aud6_within_the_skew_either_way_is_contemporaneous():
    for offset in (-SKEW, SKEW, timedelta(0)):
        dated = _check(NOW + offset, reason="kept only when late")
        assert dated.occurred_at == NOW + offset and dated.late_reason is None


def test_aud6_beyond_the_clock_drift_in_the_future_is_refused():
    """The future bound is the devices' drift, not the late-entry window: a time hours ahead
    would make every later record out of order."""
    assert _check(NOW + CLOCK_SKEW).occurred_at == NOW + CLOCK_SKEW
    with pytest.raises(InvalidRequest, match="future"):
        _check(NOW + CLOCK_SKEW + timedelta(seconds=1), reason="any")


def test_aud6_older_than_the_skew_needs_a_reason_and_is_then_late():
    old = NOW - SKEW - timedelta(seconds=1)
    with pytest.raises(LateEntryReasonRequired):
        _check(old)
    dated = _check(old, reason="entered from paper")
    assert dated.late and dated.late_reason == "entered from paper" and dated.recorded_at == NOW


def test_aud6_earlier_than_what_it_follows_is_out_of_order_whatever_the_reason():
    with pytest.raises(OutOfOrder) as refused:
        _check(NOW - timedelta(days=3), after=NOW - timedelta(days=1), reason="late")
    assert refused.value.status == 409 and refused.value.code == "out_of_order"
    assert (
        "the previous event" in refused.value.detail
        and "2026-12-01 12:00:00" in refused.value.detail
    )
    assert _check(NOW, after=NOW).occurred_at == NOW  # the same instant is not earlier


def test_aud6_the_skew_is_a_setting_with_a_sensible_default(monkeypatch):
    assert Settings().late_entry_skew == timedelta(hours=2)
    monkeypatch.setenv("HOMEWARD_LATE_ENTRY_SKEW_S", "60")
    assert Settings().late_entry_skew == timedelta(seconds=60)

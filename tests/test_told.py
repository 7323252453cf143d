"""One mechanism for refusals and warnings that name instants (CONVENTIONS 11, issue 12 lab
day): the API's sentence in UTC, a page's in the facility's local time with its zone named."""

from datetime import UTC, datetime

from app.errors import Expired, InvalidRequest, Told, told_in

AT = datetime(2030, 7, 1, 20, 45, 30, tzinfo=UTC)  # 22:45:30 in Rome, summer time


def test_a_told_sentence_is_utc_as_a_string_and_local_on_a_page():
    told = Told("before the result ({at:s}); ends {at}", at=AT)
    assert told == "before the result (2030-07-01 20:45:30 UTC); ends 2030-07-01 20:45 UTC"
    assert told.told_in("Europe/Rome") == (
        "before the result (2030-07-01 22:45:30 CEST); ends 2030-07-01 22:45 CEST"
    )


def test_any_refusal_with_a_told_detail_is_shown_local_and_a_plain_one_as_it_is():
    refusal = InvalidRequest(Told("The acceptance time is before {since:s}.", since=AT))
    assert refusal.detail == "The acceptance time is before 2030-07-01 20:45:30 UTC."
    assert (
        refusal.told_in("Europe/Rome") == "The acceptance time is before 2030-07-01 22:45:30 CEST."
    )
    assert InvalidRequest("No time {here}.").told_in("Europe/Rome") == "No time {here}."
    assert told_in("a plain warning", "Europe/Rome") == "a plain warning"


def test_expired_keeps_its_instant_and_a_name_with_braces_is_taken_as_written():
    expired = Expired("Dose {X}", AT)
    assert expired.detail == "Dose {X} expired at 2030-07-01 20:45 UTC."
    assert expired.told_in("Europe/Rome") == "Dose {X} expired at 2030-07-01 22:45 CEST."
    assert expired.at == AT and expired.what == "Dose {X}"

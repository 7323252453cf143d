"""Birth dates as nurses type them at the bedside (COI-6's second identifier, issue 12 item 6)."""

from datetime import date

import pytest

from app.clinic.birthdates import parse_birth_date
from app.errors import InvalidRequest


@pytest.mark.parametrize(
    "typed", ["14/03/1979", "14.03.1979", "14-03-1979", "1979-03-14", " 14/3/1979 "]
)
def test_coi6_a_birth_date_is_read_in_the_formats_nurses_type(typed):
    assert parse_birth_date(typed) == date(1979, 3, 14)


def test_coi6_an_ambiguous_day_and_month_follow_the_setting_default_day_first():
    assert parse_birth_date("03/04/1979") == date(1979, 4, 3)
    assert parse_birth_date("03/04/1979", order="month_first") == date(1979, 3, 4)
    assert parse_birth_date("1979-04-03", order="month_first") == date(1979, 4, 3)


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("03/14/1979", "not a real date"),  # day first: there is no month 14
        ("14/03/79", "four digits"),
        ("14 March 1979", "not a birth date"),
        ("", "not a birth date"),
        ("31/02/1979", "not a real date"),
    ],
)
def test_coi6_a_birth_date_that_cannot_be_read_is_refused_in_plain_words(typed, says):
    with pytest.raises(InvalidRequest) as refused:
        parse_birth_date(typed)
    assert says in refused.value.detail and "1979-03-14" in refused.value.detail

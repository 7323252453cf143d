"""Birth dates as nurses type them at the bedside: 14/03/1979, 14.03.1979, 14-03-1979 or
1979-03-14. One function reads them all; the order of day and month is a setting, never a guess."""

import re
from datetime import date
from typing import Literal

from app.errors import InvalidRequest

DateOrder = Literal["day_first", "month_first"]

_YEAR_FIRST = re.compile(r"(\d{4})[-./](\d{1,2})[-./](\d{1,2})")
_YEAR_LAST = re.compile(r"(\d{1,2})[-./ ](\d{1,2})[-./ ](\d{2,4})")

HINTS: dict[DateOrder, str] = {
    "day_first": "day/month/year (14/03/1979 or 14.03.1979) or 1979-03-14",
    "month_first": "month/day/year (03/14/1979) or 1979-03-14",
}


def parse_birth_date(text: str, *, order: DateOrder = "day_first") -> date:
    """The date `text` names, read year-first (ISO) or in `order` with a four-digit year;
    anything else is refused with a sentence saying how to type it (422 invalid_request)."""
    typed = text.strip()
    hint = HINTS[order]
    if match := _YEAR_FIRST.fullmatch(typed):
        year, month, day = (int(part) for part in match.groups())
    elif match := _YEAR_LAST.fullmatch(typed):
        first, second, year_text = match.groups()
        if len(year_text) != 4:
            raise InvalidRequest(
                f"Type the birth year with four digits ({hint}): {typed!r} could be more than "
                "one century."
            )
        day, month = (
            (int(first), int(second)) if order == "day_first" else (int(second), int(first))
        )
        year = int(year_text)
    else:
        raise InvalidRequest(f"{typed!r} is not a birth date; type it as {hint}.")
    try:
        return date(year, month, day)
    except ValueError as exc:
        raise InvalidRequest(
            f"{typed!r} is not a real date (read as day {day}, month {month}, year {year}); "
            f"type it as {hint}."
        ) from exc

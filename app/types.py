"""Constrained field types shared by request schemas, so no input can reach the database unchecked.

Integers stay within 32-bit keys, strings carry no NUL or control characters (PostgreSQL refuses
NUL), numbers are finite and timestamps carry a time zone (CONVENTIONS 11).
"""

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints

MAX_ID = 2_147_483_647
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_no_control_characters),
]
ShortText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(_no_control_characters),
]
LongText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=4000),
    AfterValidator(_no_control_characters),
]
# A scanned or typed code: lenient in shape (the identity parser judges it), bounded in size.
CodeInput = Annotated[str, StringConstraints(min_length=1, max_length=200)]


def _plausible_utc(value: datetime) -> datetime:
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is outside the range of dates Homeward records") from None
    if not 2000 <= value.year <= 2199:
        raise ValueError("must be between the years 2000 and 2199")
    return value


# An instant of lab or clinic life: time zone required, kept in UTC.
Timestamp = Annotated[AwareDatetime, AfterValidator(_plausible_utc)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]

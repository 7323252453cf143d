"""Evaluating an entered value against a specification test (QC-2): units, answers, limits."""

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from app.errors import InvalidRequest
from app.specifications.models import SpecificationTest
from app.specifications.service import answers_of, number_text


class Outcome(StrEnum):
    PENDING = "pending"
    PASS = "pass"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Evaluated:
    number: float | None
    text: str | None
    unit: str | None
    outcome: Outcome
    entered_as: dict[str, object] | None  # the value and unit as typed, when converted


def _key(unit: str) -> str:
    return "".join(unit.split()).casefold().replace("\u00d7", "x").replace("^", "")


# Exact conversions into a specification's unit: (entered unit, specification unit) -> factor.
# Powers of ten only, applied in decimal, so no value is rounded on the way.
_FACTORS: dict[tuple[str, str], Decimal] = {
    ("fraction", "%"): Decimal(100),
    ("x106cells", "cells"): Decimal(10) ** 6,
    ("106cells", "cells"): Decimal(10) ** 6,
    ("1e6cells", "cells"): Decimal(10) ** 6,
    ("millioncells", "cells"): Decimal(10) ** 6,
    ("eu/l", "eu/ml"): Decimal("0.001"),
}
_SAME = {"percent": "%", "cell": "cells", "viablecells": "cells"}


def _convert(value: float, entered: str | None, test: SpecificationTest) -> float | None:
    """`value` in the test's unit, or None when it already is in that unit."""
    assert test.unit is not None
    if entered is None:
        return None
    source, target = _SAME.get(_key(entered), _key(entered)), _key(test.unit)
    if source == target:
        return None
    factor = _FACTORS.get((source, target))
    if factor is None:
        raise InvalidRequest(
            f"{test.test} is reported in {test.unit}; {entered!r} is not that unit and has no "
            "exact conversion to it."
        )
    return float(Decimal(repr(value)) * factor)


def within(test: SpecificationTest, value: float) -> bool:
    low, high = test.minimum, test.maximum
    if low is not None and (value < low or (value == low and not test.minimum_inclusive)):
        return False
    return not (
        high is not None and (value > high or (value == high and not test.maximum_inclusive))
    )


_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
# A decimal comma is read only where it cannot be a thousands separator: "91,5" and "0,12" are
# numbers, "150,000" (150 or 150 000?) is refused.
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,(\d{1,2}|\d{4,})")


def _as_number(test: SpecificationTest, value: object) -> float:
    """A finite number, from a JSON number or a numeric string (as instruments often send)."""
    if isinstance(value, str):
        text = value.strip()
        if _DECIMAL_COMMA.fullmatch(text):
            text = text.replace(",", ".")  # "91,5" as typed in Europe
        try:
            number = float(text) if _PLAIN_NUMBER.fullmatch(text) else math.nan
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return number
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise InvalidRequest(
        f"{test.test} is a number in {test.unit}; {value!r} is not a number (write it with a "
        "decimal point and no thousands separator)."
    )


def evaluate(test: SpecificationTest, value: object, unit: str | None) -> Evaluated:
    """The stored value and its pass/fail outcome; a value of the wrong kind or unit is a 422."""
    if test.expected is not None:
        return _qualitative(test, value, unit)
    number = _as_number(test, value)
    converted = _convert(number, unit, test)
    final = number if converted is None else converted
    return Evaluated(
        number=final,
        text=None,
        unit=test.unit,
        outcome=Outcome.PASS if within(test, final) else Outcome.FAIL,
        entered_as=None if converted is None else {"value": value, "unit": unit},
    )


def _qualitative(test: SpecificationTest, value: object, unit: str | None) -> Evaluated:
    if unit is not None:
        raise InvalidRequest(f"{test.test} is a qualitative result; it has no unit.")
    if not isinstance(value, str):
        raise InvalidRequest(
            f"{test.test} is a qualitative result (expected {test.expected!r}); "
            f"{value!r} is not an answer."
        )
    answer = " ".join(value.split()).casefold()
    answers = answers_of(test)
    if answers is None:  # an open list: the expected answer passes, any other fails
        passes = answer == test.expected
    elif answer in answers:
        passes = answers[answer]
    else:
        known = ", ".join(repr(a) for a in sorted(answers))
        raise InvalidRequest(f"{test.test} takes one of {known}; {value!r} is not one of them.")
    return Evaluated(
        number=None,
        text=answer,
        unit=None,
        outcome=Outcome.PASS if passes else Outcome.FAIL,
        entered_as=None,
    )


def value_text(number: float | None, text: str | None, unit: str | None) -> str:
    """A stored result as a person reads it."""
    if text is not None:
        return text
    assert number is not None
    return f"{number_text(number)} {unit}" if unit else number_text(number)

"""The specification draft form (QC-1, QC-3): a new version written from the one in force, one
row per test (code, name, method, unit, limits, expected answer, critical), turned into the
API's own `SpecificationCreate` so that the page and the API are refused alike. Rows are text as
typed: a refused draft comes back with every box as the person left it (never the password)."""

from collections.abc import Mapping
from typing import Any

from app.errors import InvalidRequest
from app.specifications.schemas import SpecificationPublic, SpecificationTestPublic

# A row's boxes, each named after the API's field; the checkboxes are on when sent.
TEXT_FIELDS = ("test", "name", "method", "unit", "min", "max", "expected", "answers")
CHECKBOXES = ("min_inclusive", "max_inclusive", "critical")
BLANK_ROWS = 3  # room for new tests; a row without a test code is left out
MAX_ROWS = 60
PASS, FAIL = "pass", "fail"

Row = dict[str, str]


def _answers_text(answers: dict[str, bool] | None) -> str:
    """`{"normal": True, "abnormal": False}` as typed: `normal: pass; abnormal: fail`."""
    return "; ".join(f"{a}: {PASS if ok else FAIL}" for a, ok in (answers or {}).items())


def _limit_text(value: float | None) -> str:
    """A limit as a box holds it, exactly (10000000, 0.5, 1e-07): never rounded for display."""
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def row_of(test: SpecificationTestPublic) -> Row:
    """A test of the version drafted from, as the form's boxes."""
    row = {
        "test": test.test,
        "name": test.name,
        "method": test.method,
        "unit": test.unit or "",
        "min": _limit_text(test.min),
        "max": _limit_text(test.max),
        "expected": test.expected or "",
        "answers": _answers_text(test.answers),
    }
    checks = {"min_inclusive": test.min_inclusive, "max_inclusive": test.max_inclusive}
    return row | {name: "on" for name, on in (checks | {"critical": test.critical}).items() if on}


def blank_row() -> Row:
    return {"min_inclusive": "on", "max_inclusive": "on"}


def rows_from(base: SpecificationPublic | None) -> list[Row]:
    """The form's rows for a new draft: the base version's tests, then blank rows."""
    tests = base.tests if base is not None else []
    return [row_of(t) for t in tests] + [blank_row() for _ in range(BLANK_ROWS)]


def rows_typed(form: Mapping[str, Any]) -> list[Row]:
    """The rows as sent (`tests-<i>-<field>`), in order, as text."""
    sent = str(form.get("rows", ""))
    count = min(int(sent), MAX_ROWS) if sent.isdigit() else 0
    rows = []
    for index in range(count):
        prefix = f"tests-{index}-"
        row = {
            name: str(form.get(prefix + name, "")).strip()
            for name in (*TEXT_FIELDS, *CHECKBOXES)
            if str(form.get(prefix + name, "")).strip()
        }
        rows.append(row)
    return rows


def _answers(text: str, test: str) -> dict[str, bool] | None:
    """`normal: pass; abnormal: fail` as the API's answers; None when empty."""
    if not text:
        return None
    found = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        answer, _, verdict = part.rpartition(":")
        if not answer.strip() or verdict.strip().lower() not in (PASS, FAIL):
            raise InvalidRequest(
                f"Test {test}: write each answer as “answer: pass” or “answer: fail”, "
                "separated by semicolons (e.g. normal: pass; abnormal: fail)."
            )
        found[answer.strip()] = verdict.strip().lower() == PASS
    return found


def tests_of(rows: list[Row]) -> list[dict[str, Any]]:
    """The rows with a test code as the API's tests: blanks are absent, checkboxes booleans;
    the schema (SpecificationTestIn) judges the rest."""
    tests = []
    for row in rows:
        code = row.get("test", "")
        if not code:
            continue
        test: dict[str, Any] = {
            name: row[name]
            for name in ("test", "name", "method", "unit", "min", "max", "expected")
            if row.get(name)
        }
        test |= {name: name in row for name in CHECKBOXES}
        if answers := _answers(row.get("answers", ""), code):
            test["answers"] = answers
        tests.append(test)
    return tests

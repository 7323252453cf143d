"""Generate docs/traceability.md (requirement -> tests) from the test suite itself.

A test proves a requirement when its name carries the ID (`test_coi5_...` for COI-5, `test_sec_...`
for the SEC quality bar) or its docstring names it (`COI-5`). The regulation clauses each
requirement serves are read from its `*Serves:*` line in docs/requirements.md (kept there only).
tests/test_traceability.py fails when the committed matrix differs from what this script generates,
so it cannot go stale, and when a requirement has no test and is not planned by a named issue.

    .venv/bin/python scripts/traceability.py          # rewrite docs/traceability.md
"""

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MATRIX = ROOT / "docs" / "traceability.md"
REQUIREMENTS_DOC = ROOT / "docs" / "requirements.md"

# Requirement IDs of docs/requirements.md with a short title, and the issue that delivers the
# ones not built yet. The planned issue is an explicit, visible exception: it excuses a requirement
# with no test from failing tests/test_traceability.py, and the matrix shows the row as not met.
# Once a requirement has a test the marker is ignored (and should be removed).
REQUIREMENTS: dict[str, tuple[str, str | None]] = {
    "COI-1": ("patient↔COI and biopsy↔DIN created once, never edited; void and redo", None),
    "COI-2": ("everything belongs to one batch/patient, derived on the server", None),
    "COI-3": ("no step across batches/patients", None),
    "COI-4": ("every code validated (format, check character) before lookup", None),
    "COI-5": ("scan expectation mismatch refused and audited", None),
    "COI-6": ("bedside: right patient, released, unexpired, once, two people", None),
    "COI-7": ("tracing both ways, and from a material lot", None),
    "AUD-1": ("every change, login, failure, print and mismatch audited", None),
    "AUD-2": ("append-only, enforced by database triggers", None),
    "AUD-3": ("hash chain per patient scope; verification names the first broken seq", None),
    "AUD-4": ("event written in the same transaction as its change", None),
    "AUD-5": ("batch/patient trail as timeline and CSV", None),
    "AUD-6": ("chronology: no dated record earlier than what it follows", None),
    "AUD-7": ("verification covers the records; chain heads kept; append-only rows", None),
    "AUD-8": ("periodic audit-trail review, exceptions first, e-signed per period", None),
    "AUD-9": ("documents mark corrections (original, who, when, why); no broken ids", None),
    "SIG-1": ("signing re-authenticates", None),
    "SIG-2": ("signature manifestation: name, user, time, meaning", None),
    "SIG-3": ("signature stores the record hash; mismatch shown", None),
    "SIG-4": ("four-eyes", None),
    "SIG-5": ("failed signature attempts audited, lock the account", None),
    "SIG-6": ("meaning bound to the act; acceptance e-signed; changed release blocks", None),
    "QC-1": ("default mesoangioblast specification, versioned by QA", None),
    "QC-2": ("results evaluated on entry; fail opens a deviation", None),
    "QC-3": ("change control: specification and GMP settings approved by QA, e-signed", "issue 14"),
    "REL-1": ("release gate", None),
    "REL-2": ("conditional release and late failure alert", None),
    "REL-3": ("release/reject e-signed by QA", None),
    "REL-4": ("releaser did no step/result of the batch", None),
    "REL-5": ("release certificate HTML and PDF", None),
    "REL-6": ("gate needs reviewed critical results and labelled doses", None),
    "REL-7": ("OOS supply: physician's justification, sponsor and authority notified", None),
    "LBL-1": ("QR label for every vessel", None),
    "LBL-2": ("dose label content and Data Matrix", None),
    "LBL-3": ("SVG, PNG, PDF sheet, ZPL", None),
    "LBL-4": ("print log, reprints, voiding, reconciliation", None),
    "LBL-5": ("GET previews; printing is a logged POST; no label for used-up vessels", None),
    "LBL-6": ("dose label content of EU/US/trial rules; ISBT 128 data structures", None),
    "CLN-1": ("readiness board", None),
    "CLN-2": ("infusion scheduling", None),
    "CLN-3": ("dispatch and receipt custody with temperature", None),
    "SEC-2": ("separation of duties: admin never with qa or clinician; reasons", None),
    "SEC-3": ("password change, forced change, ageing, history, strength", None),
    "SEC-4": ("sign-in: lockout no stranger can abuse, equal-time answers, report", None),
    "SEC-5": ("qualified people, calibrated equipment, QC-released lots only", None),
    "SEC": ("Argon2, idle expiry, revocation, lockout, permission table, no PII in logs", None),
    "REL": ("bad input 4xx and no change; concurrent conflicts have one winner", None),
    "PERF": ("measured by benchmarks in benchmarks/, not by tests", None),
    "VAL-1": ("`homeward validate`: operational qualification of a live install", None),
}

_NAME_ID = re.compile(r"(?:^|_)(coi|aud|sig|qc|rel|lbl|cln|sec|val)(\d+)(?=_|$)")
_NAME_BAR = re.compile(r"(?:^|_)(sec|rel|perf)(?=_)")
_DOC_ID = re.compile(r"\b(COI|AUD|SIG|QC|REL|LBL|CLN|SEC|VAL)-(\d+)\b|\b(SEC|REL|PERF)\b(?!-)")


def requirement_ids(name: str, docstring: str | None) -> set[str]:
    """The requirement IDs a test names in its name or docstring."""
    test_name = name.removeprefix("test_")
    found = {f"{kind.upper()}-{number}" for kind, number in _NAME_ID.findall(test_name)}
    found |= {bar.upper() for bar in _NAME_BAR.findall("_" + test_name)}
    for kind, number, bar in _DOC_ID.findall(docstring or ""):
        found.add(f"{kind}-{number}" if kind else bar)
    return found


_DEFINITION = re.compile(r"^- \*\*([A-Z]+(?:-\d+)?)\*\* ")
_SERVES = re.compile(r"^  \*Serves:\* (.+?)\.?$")


def clauses(text: str | None = None) -> dict[str, str]:
    """requirement ID -> the regulation clauses it serves: the `*Serves:*` line of its definition
    in docs/requirements.md (an indented line of the definition's bullet)."""
    text = REQUIREMENTS_DOC.read_text(encoding="utf-8") if text is None else text
    found: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if definition := _DEFINITION.match(line):
            current = definition.group(1)
        elif not line.startswith("  "):
            current = None
        elif current and (serves := _SERVES.match(line)):
            found[current] = serves.group(1)
    return found


def untested(matrix: dict[str, list[str]]) -> list[str]:
    """Requirements with no test and no planned-by-issue marker: each one fails the matrix test."""
    return [key for key, (_, plan) in REQUIREMENTS.items() if not matrix.get(key) and not plan]


def collect(tests_dir: Path = ROOT / "tests") -> dict[str, list[str]]:
    """requirement ID -> sorted test node ids."""
    matrix: dict[str, list[str]] = {key: [] for key in REQUIREMENTS}
    for path in sorted(tests_dir.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nodes = [(None, node) for node in tree.body]
        nodes += [
            (cls.name, node)
            for cls in tree.body
            if isinstance(cls, ast.ClassDef)
            for node in cls.body
        ]
        for owner, node in nodes:
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
                continue
            node_id = f"{path.relative_to(ROOT)}::{owner + '::' if owner else ''}{node.name}"
            for requirement in requirement_ids(node.name, ast.get_docstring(node)):
                matrix.setdefault(requirement, []).append(node_id)
    return {key: sorted(set(value)) for key, value in matrix.items()}


def render(matrix: dict[str, list[str]], served: dict[str, str] | None = None) -> str:
    served = clauses() if served is None else served
    lines = [
        "# Traceability matrix: requirement → tests",
        "",
        "Generated by `scripts/traceability.py` from the tests' names and docstrings "
        "(`test_coi5_…` proves COI-5). `tests/test_traceability.py` fails when this file is "
        "out of date or a listed test is gone, and when a requirement has no test (unless it is "
        "marked as planned by a named issue: that row reads **not met**). Requirement IDs and the "
        "regulation clauses they serve are those of [requirements.md](requirements.md).",
        "",
        "| requirement | what | serves | tests |",
        "| --- | --- | --- | --- |",
    ]
    for key, (title, planned) in REQUIREMENTS.items():
        tests = matrix.get(key, [])
        cell = "<br>".join(f"`{test}`" for test in tests)
        if not tests:
            cell = f"**not met**: planned by {planned}" if planned else "**NO TEST**"
        serves = served.get(key, "**no clause named**")
        lines.append(f"| {key} | {title} | {serves} | {cell} |")
    unknown = sorted(set(matrix) - set(REQUIREMENTS))
    if unknown:
        lines += ["", f"Tests name IDs that requirements.md does not define: {', '.join(unknown)}."]
    return "\n".join(lines) + "\n"


def main() -> int:
    MATRIX.write_text(render(collect()), encoding="utf-8")
    print(f"wrote {MATRIX.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

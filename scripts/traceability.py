"""Generate docs/traceability.md (requirement -> tests) from the test suite itself.

A test proves a requirement when its name carries the ID (`test_coi5_...` for COI-5, `test_sec_...`
for the SEC quality bar) or its docstring names it (`COI-5`). tests/test_traceability.py fails
when the committed matrix differs from what this script generates, so it cannot go stale.

    .venv/bin/python scripts/traceability.py          # rewrite docs/traceability.md
"""

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MATRIX = ROOT / "docs" / "traceability.md"

# Requirement IDs of docs/requirements.md with a short title, and the issue that delivers the
# ones not built yet.
REQUIREMENTS: dict[str, tuple[str, str | None]] = {
    "COI-1": ("patient↔COI and biopsy↔DIN created once, never edited; void and redo", None),
    "COI-2": ("everything belongs to one batch/patient, derived on the server", None),
    "COI-3": ("no step across batches/patients", "issue 3"),
    "COI-4": ("every code validated (format, check character) before lookup", None),
    "COI-5": ("scan expectation mismatch refused and audited", None),
    "COI-6": ("bedside: right patient, released, unexpired, once, two people", None),
    "COI-7": ("tracing both ways, and from a material lot", "issue 3"),
    "AUD-1": ("every change, login, failure, print and mismatch audited", None),
    "AUD-2": ("append-only, enforced by database triggers", None),
    "AUD-3": ("hash chain per patient scope; verification names the first broken seq", None),
    "AUD-4": ("event written in the same transaction as its change", None),
    "AUD-5": ("batch/patient trail as timeline and CSV", None),
    "AUD-6": ("chronology: no dated record earlier than what it follows", "issue 11"),
    "AUD-7": ("verification covers the records; chain heads kept; append-only rows", "issue 11"),
    "SIG-1": ("signing re-authenticates", None),
    "SIG-2": ("signature manifestation: name, user, time, meaning", None),
    "SIG-3": ("signature stores the record hash; mismatch shown", None),
    "SIG-4": ("four-eyes", None),
    "SIG-5": ("failed signature attempts audited, lock the account", None),
    "SIG-6": ("meaning bound to the act; acceptance e-signed; changed release blocks", "issue 11"),
    "QC-1": ("default mesoangioblast specification, versioned by QA", None),
    "QC-2": ("results evaluated on entry; fail opens a deviation", None),
    "REL-1": ("release gate", None),
    "REL-2": ("conditional release and late failure alert", None),
    "REL-3": ("release/reject e-signed by QA", None),
    "REL-4": ("releaser did no step/result of the batch", None),
    "REL-5": ("release certificate HTML and PDF", None),
    "REL-6": ("gate needs reviewed critical results and labelled doses", "issue 11"),
    "LBL-1": ("QR label for every vessel", None),
    "LBL-2": ("dose label content and Data Matrix", None),
    "LBL-3": ("SVG, PNG, PDF sheet, ZPL", None),
    "LBL-4": ("print log, reprints, voiding, reconciliation", None),
    "LBL-5": ("GET previews; printing is a logged POST; no label for used-up vessels", "issue 11"),
    "LBL-6": ("dose label content of EU/US/trial rules; ISBT 128 data structures", "issue 13"),
    "CLN-1": ("readiness board", None),
    "CLN-2": ("infusion scheduling", None),
    "CLN-3": ("dispatch and receipt custody with temperature", None),
    "SEC-2": ("separation of duties: admin never with qa or clinician; reasons", "issue 11"),
    "SEC-5": ("qualified people, calibrated equipment, QC-released lots only", "issue 14"),
    "SEC": ("Argon2, idle expiry, revocation, lockout, permission table, no PII in logs", None),
    "REL": ("bad input 4xx and no change; concurrent conflicts have one winner", None),
    "PERF": ("measured by benchmarks in benchmarks/, not by tests", None),
}

_NAME_ID = re.compile(r"(?:^|_)(coi|aud|sig|qc|rel|lbl|cln|sec)(\d+)(?=_|$)")
_NAME_BAR = re.compile(r"(?:^|_)(sec|rel|perf)(?=_)")
_DOC_ID = re.compile(r"\b(COI|AUD|SIG|QC|REL|LBL|CLN|SEC)-(\d+)\b|\b(SEC|REL|PERF)\b(?!-)")


def requirement_ids(name: str, docstring: str | None) -> set[str]:
    """The requirement IDs a test names in its name or docstring."""
    test_name = name.removeprefix("test_")
    found = {f"{kind.upper()}-{number}" for kind, number in _NAME_ID.findall(test_name)}
    found |= {bar.upper() for bar in _NAME_BAR.findall("_" + test_name)}
    for kind, number, bar in _DOC_ID.findall(docstring or ""):
        found.add(f"{kind}-{number}" if kind else bar)
    return found


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


def render(matrix: dict[str, list[str]]) -> str:
    lines = [
        "# Traceability matrix: requirement → tests",
        "",
        "Generated by `scripts/traceability.py` from the tests' names and docstrings "
        "(`test_coi5_…` proves COI-5). `tests/test_traceability.py` fails when this file is "
        "out of date or a listed test is gone. Requirement IDs are those of "
        "[requirements.md](requirements.md).",
        "",
        "| requirement | what | tests |",
        "| --- | --- | --- |",
    ]
    for key, (title, planned) in REQUIREMENTS.items():
        tests = matrix.get(key, [])
        cell = "<br>".join(f"`{test}`" for test in tests)
        if not tests:
            cell = f"not yet: delivered by {planned}" if planned else "**no test yet**"
        lines.append(f"| {key} | {title} | {cell} |")
    unknown = sorted(set(matrix) - set(REQUIREMENTS))
    if unknown:
        lines += ["", f"Tests name IDs that DESIGN.md does not define: {', '.join(unknown)}."]
    return "\n".join(lines) + "\n"


def main() -> int:
    MATRIX.write_text(render(collect()), encoding="utf-8")
    print(f"wrote {MATRIX.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The operational-qualification report: one JSON content, its SHA-256, rendered as HTML and PDF.

The hash QA signs is the SHA-256 of `report.json` exactly as written (canonical JSON: sorted
keys, no spaces, UTF-8), so anyone can recompute it with `sha256sum report.json`; the HTML and the
PDF print it on their first lines and say how it is signed inside Homeward.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.audit.chain import canonical_json
from app.documents import Document
from app.web import templates

STATUS_WORDS = {"pass": "PASS", "fail": "FAIL", "blocked": "NOT DEMONSTRATED"}
SIGNING = (
    "To sign: the site's QA signs in to Homeward and sends POST /api/v1/validation-reports "
    '{"sha256": <the hash above>, "password": <their own password>, "meaning": "approved", '
    '"comment": <optional>}: an e-signature (password re-entered, printed name, time, meaning) '
    "bound to this hash and written to the audit trail. GET /api/v1/validation-reports lists "
    "the signed reports."
)


@dataclass(frozen=True, slots=True)
class Report:
    content: dict[str, Any]
    data: bytes  # report.json: the canonical JSON the hash is taken over
    sha256: str

    @classmethod
    def of(cls, content: dict[str, Any]) -> "Report":
        data = (canonical_json(content) or "").encode()
        return cls(content, data, hashlib.sha256(data).hexdigest())

    def html(self) -> str:
        template = templates.get_template("validation/report.html")
        return template.render(
            r=self.content, sha256=self.sha256, words=STATUS_WORDS, signing=SIGNING
        )

    def pdf(self) -> bytes:
        c = self.content
        document = Document()
        document.title(c["title"])
        if c["verdict"] != "pass":
            document.alarm(f"Verdict: {c['verdict'].upper()}")
        document.table(
            [["SHA-256 of report.json (the hash QA signs)", self.sha256]], [60, 120], header=False
        )
        document.paragraph(SIGNING, small=True)
        document.heading("Run")
        document.table(
            [[key, str(value)] for key, value in _facts(c).items()], [50, 130], header=False
        )
        if c.get("precondition"):
            document.alarm(f"Precondition failed: {c['precondition']}")
        document.heading("Result per requirement")
        rows = [["requirement", "result"]]
        rows += [
            [key, STATUS_WORDS.get(value, value)] for key, value in c["per_requirement"].items()
        ]
        rows += [[item["requirement"], f"not walked: {item['reason']}"] for item in c["not_walked"]]
        document.table(rows, [30, 150])
        for outcome in c["checks"]:
            document.heading(
                f"{outcome['requirement']} {outcome['title']}: "
                f"{STATUS_WORDS.get(outcome['status'], outcome['status'])}"
            )
            if outcome.get("note"):
                document.paragraph(outcome["note"])
            steps = [["action", "expected", "observed", "ok"]]
            steps += [
                [s["action"], s["expected"], s["observed"], "yes" if s["passed"] else "NO"]
                for s in outcome["steps"]
            ]
            document.table(steps, [50, 60, 58, 12])
        return document.render(c["title"])

    def write(self, directory: Path) -> dict[str, Path]:
        """Write report.json, .html, .pdf and SHA256SUMS (sha256sum's format) to `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        files = {
            "report.json": self.data,
            "report.html": self.html().encode(),
            "report.pdf": self.pdf(),
        }
        written = {}
        for name, data in files.items():
            (directory / name).write_bytes(data)
            written[name] = directory / name
        sums = "".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in files.items())
        (directory / "SHA256SUMS").write_text(sums, encoding="utf-8")
        written["SHA256SUMS"] = directory / "SHA256SUMS"
        return written


def _facts(content: dict[str, Any]) -> dict[str, Any]:
    facts = {
        "verdict": content["verdict"].upper(),
        "install": content["target"],
        "run": content["run_id"],
        "started (UTC)": content["started_at"],
        "finished (UTC)": content["finished_at"],
        "summary": ", ".join(f"{n} {k}" for k, n in content["summary"].items()),
    }
    return facts | content["environment"]

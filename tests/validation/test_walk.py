"""`homeward validate` end to end against a live server (VAL-1)."""

import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pypdfium2
import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from app.auth import service as auth
from app.auth.permissions import Role
from app.cli import cli
from app.config import Settings
from app.db import session_factory_for, unit_of_work
from app.patients import service as patients
from app.patients.schemas import PatientCreate
from app.validation import pdftext, scratch
from app.validation.checks import CHECKS, NOT_WALKED
from app.validation.checks.supply import REASON
from app.validation.run import run
from app.validation.walk import API, Blocked, Walk, sign_in
from scripts.traceability import REQUIREMENTS
from tests.server import running_server

ADMIN, ADMIN_PASSWORD = "site-admin", "the site admin's own password"
QA, QA_PASSWORD = "site-qa", "the site QA's own password"
QA2 = "site-qa-2"  # approves what QA authored (four-eyes, QC-3)
TEST_FIELDS = ("test", "name", "method", "unit", "min", "max", "min_inclusive", "max_inclusive")
TEST_FIELDS += ("expected", "answers", "critical")


def put_a_signed_specification_in_force(url: str, password: str = QA_PASSWORD) -> dict:
    """What the site's QA does before the qualification: a specification of their own in force,
    e-signed (and approved, where the install asks for approval)."""
    with httpx.Client(base_url=url, timeout=30) as http:
        qa = sign_in(http, QA, password, "qa")
        shipped = http.get(f"{API}/specifications", headers=qa.headers).json()[0]
        body = {
            "tests": [{key: test[key] for key in TEST_FIELDS} for test in shipped["tests"]],
            "note": "the site's specification",
            "password": qa.password,
        }
        created = http.post(f"{API}/specifications", json=body, headers=qa.headers)
        assert created.status_code == 201, created.text
        spec = created.json()
        if spec.get("status") == "draft":
            approver = sign_in(http, QA2, password, "qa")
            approval = {"password": approver.password, "comment": "site specification"}
            answer = http.post(
                f"{API}/specifications/{spec['id']}/approve",
                json=approval,
                headers=approver.headers,
            )
            assert answer.status_code == 200, answer.text
            spec = answer.json()
        return spec


@pytest.fixture
def install(fresh_engine: Engine, settings: Settings) -> Iterator[str]:
    """A live install as a site has it after `homeward db upgrade` and `homeward users create`
    (nothing approved yet: QC-3; no qualification rule enforced yet: SEC-5)."""
    with unit_of_work(session_factory_for(fresh_engine)) as session:
        auth.create_user(
            session,
            settings,
            actor="cli",
            username=ADMIN,
            full_name="Site Admin",
            password=ADMIN_PASSWORD,
            roles=[Role.ADMIN],
        )
        auth.create_user(
            session,
            settings,
            actor="cli",
            username=QA,
            full_name="Site QA",
            password=QA_PASSWORD,
            roles=[Role.QA],
        )
        auth.create_user(
            session,
            settings,
            actor="cli",
            username=QA2,
            full_name="Site QA Two",
            password=QA_PASSWORD,
            roles=[Role.QA],
        )
        clinician = auth.create_user(
            session,
            settings,
            actor="cli",
            username="site-clinician",
            full_name="Site Clinician",
            password=QA_PASSWORD,
            roles=[Role.CLINICIAN],
        )
        patients.register(
            session,
            settings,
            actor=clinician,
            data=PatientCreate(
                mrn="REAL-1",
                family_name="Real",
                given_name="Patient",
                birth_date="1970-01-01",
                sex="female",
            ),
        )
    with running_server(fresh_engine, settings) as url:
        yield url


def _trail_of_the_real_patient(url: str) -> list[dict]:
    with httpx.Client(base_url=url, timeout=30) as http:
        qa = sign_in(http, QA, QA_PASSWORD, "qa")
        (real,) = [
            p
            for p in http.get(f"{API}/patients", headers=qa.headers).json()
            if p["mrn"] == "REAL-1"
        ]
        return http.get(f"{API}/patients/{real['id']}/audit", headers=qa.headers).json()


def _sign(url: str, body: dict) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=30) as http:
        qa = sign_in(http, QA, QA_PASSWORD, "qa")
        return http.post(f"{API}/validation-reports", json=body, headers=qa.headers)


def test_val1_homeward_validate_walks_a_live_install_and_qa_signs_the_report(
    install: str, tmp_path: Path
):
    """End to end: `homeward validate` against a running server, every requirement walked
    passes, the report's files are written with their hashes, and the site's QA e-signs the
    report's SHA-256 inside Homeward."""
    put_a_signed_specification_in_force(install)
    real_trail = _trail_of_the_real_patient(install)
    out = tmp_path / "oq"
    result = CliRunner().invoke(
        cli,
        ["validate", "--url", install, "--admin", ADMIN, "--out", str(out), "--password-stdin"],
        input=ADMIN_PASSWORD + "\n",
    )
    assert (out / "report.json").exists(), (result.output, result.exception)
    content = json.loads((out / "report.json").read_bytes())
    failed = [o for o in content["checks"] if o["status"] != "pass"]
    assert failed == [], "\n".join(
        f"{o['requirement']} {o['status']} {o['note']}: "
        + "; ".join(
            f"{s['action']} wanted {s['expected']} saw {s['observed']}"
            for s in o["steps"]
            if not s["passed"]
        )
        for o in failed
    )
    assert result.exit_code == 0, result.output
    assert content["verdict"] == "pass" and content["precondition"] is None
    walked = {o["requirement"] for o in content["checks"]}
    assert walked | {n["requirement"] for n in content["not_walked"]} == set(REQUIREMENTS)
    assert all(o["steps"] for o in content["checks"])
    assert content["environment"]["software"] == "Homeward 0.1.0"

    assert _trail_of_the_real_patient(install) == real_trail, "the walk touched a real record"
    with httpx.Client(base_url=install, timeout=30) as http:
        admin = sign_in(http, ADMIN, ADMIN_PASSWORD, "admin")
        users = http.get(f"{API}/users", headers=admin.headers).json()
        scratch_users = [u for u in users if u["username"].startswith(f"oq-{content['run_id']}-")]
        # six actors and the SEC-3 newcomer, every one deactivated at the end
        assert len(scratch_users) == 7, scratch_users
        assert not [u["username"] for u in scratch_users if u["active"]]

    sha256 = hashlib.sha256((out / "report.json").read_bytes()).hexdigest()
    assert f"sha256 (QA signs this in Homeward): {sha256}" in result.output
    html = (out / "report.html").read_text(encoding="utf-8")
    assert f'<td class="hash" id="sha256">{sha256}</td>' in html and "Verdict: PASS" in html
    pdf = (out / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-")
    assert sha256 in _pdf_text(pdf).replace("\n", "")
    sums = dict(
        reversed(line.split("  ")) for line in (out / "SHA256SUMS").read_text().splitlines()
    )
    for name, digest in sums.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest

    wrong = _sign(
        install, {"sha256": sha256, "password": "not the password", "meaning": "approved"}
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_credentials"
    signed = _sign(install, {"sha256": sha256, "password": QA_PASSWORD, "meaning": "approved"})
    assert signed.status_code == 201, signed.text
    signature = signed.json()["signature"]
    assert signature["signed_by"] == "Site QA" and signature["meaning"] == "approved"
    assert signature["matches"] is True
    with httpx.Client(base_url=install, timeout=30) as http:
        qa = sign_in(http, QA, QA_PASSWORD, "qa")
        listed = http.get(
            f"{API}/validation-reports", params={"sha256": sha256}, headers=qa.headers
        )
        assert [r["id"] for r in listed.json()] == [signed.json()["id"]]
        trail = http.get(
            f"{API}/audit",
            params={"entity_type": "validation_report", "entity_id": signed.json()["id"]},
            headers=qa.headers,
        ).json()
        assert [e["action"] for e in trail] == ["validation_report.signed"]
        assert trail[0]["new_values"] == {"sha256": sha256, "meaning": "approved"}
        assert http.get(f"{API}/audit/verify", headers=qa.headers).json()["ok"] is True


def test_val1_a_precondition_that_fails_stops_the_walk_and_the_report_says_why(install: str):
    """A precondition the walk cannot meet without touching a real record (here: refused
    credentials) is stated in the report; nothing is walked and the verdict is not a pass."""
    report = run(install, ADMIN, "not the admin's password")
    assert report.content["verdict"] == "precondition failed"
    assert "site-admin cannot sign in: 401" in report.content["precondition"]
    assert report.content["checks"] == []
    assert "Precondition failed" in report.html()


def test_val1_the_check_table_covers_every_requirement_once_walked_or_explained():
    walked = {check.requirement for check in CHECKS}
    assert not walked & set(NOT_WALKED)
    assert walked | set(NOT_WALKED) == set(REQUIREMENTS)
    assert all(reason for reason in NOT_WALKED.values())


def test_val1_signing_needs_a_hash_a_meaning_of_a_report_and_qa(install: str):
    for body in (
        {"sha256": "abc", "password": QA_PASSWORD},
        {"sha256": "a" * 64, "password": QA_PASSWORD, "meaning": "released"},
        {"sha256": "a" * 64, "password": QA_PASSWORD, "extra": 1},
    ):
        answer = _sign(install, body)
        assert answer.status_code == 422 and answer.json()["error"] == "invalid_request", body
    with httpx.Client(base_url=install, timeout=30) as http:
        admin = sign_in(http, ADMIN, ADMIN_PASSWORD, "admin")
        body = {"sha256": "a" * 64, "password": ADMIN_PASSWORD}
        answer = http.post(f"{API}/validation-reports", json=body, headers=admin.headers)
        assert answer.status_code == 403 and answer.json()["error"] == "forbidden"
        assert http.get(f"{API}/validation-reports", headers=admin.headers).json() == []


def _pdf_text(pdf: bytes) -> str:
    document = pypdfium2.PdfDocument(pdf)
    return "".join(page.get_textpage().get_text_range() for page in document)


class Tampering(httpx.BaseTransport):
    """The install's answers, with the body of those `rewrite` picks changed: what a check sees
    when the install shows a wrong result (the database and the server are real)."""

    def __init__(self, rewrite: Callable[[httpx.Request, bytes], bytes | None]) -> None:
        self.inner = httpx.HTTPTransport()
        self.rewrite = rewrite

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        body = response.read()
        changed = self.rewrite(request, body)
        if changed is None:
            return httpx.Response(response.status_code, headers=response.headers, content=body)
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return httpx.Response(response.status_code, headers=headers, content=changed)

    def close(self) -> None:
        self.inner.close()


def _wrong_documents(request: httpx.Request, body: bytes) -> bytes | None:
    """A batch record with another correction reason (AUD-9), a certificate without the
    authority's reference (REL-7), a dose label whose COI symbol is not the COI's (LBL-6)."""
    path = request.url.path
    if request.method != "GET":
        return None
    if path.endswith("/record"):
        return body.replace(REASON.encode(), b"typo")
    if path.endswith("/certificate") and request.url.params.get("format") != "pdf":
        return body.replace(b"-AUTHORITY", b"-UNKNOWN")
    if path.endswith("/label") and request.url.params.get("format") == "zpl":
        return body.replace(b"^FD&/", b"^FD&?")
    return None


def test_val1_aud9_rel7_lbl6_a_check_records_fail_when_the_install_shows_a_wrong_result(
    install: str,
):
    """The three checks walked last compare what the install shows with what they did: a batch
    record, a certificate or a label that says something else makes the check FAIL, with the
    wrong observation recorded, while the checks that read nothing changed still pass."""
    put_a_signed_specification_in_force(install)
    with httpx.Client(base_url=install, timeout=30, transport=Tampering(_wrong_documents)) as http:
        walk = Walk(http, "tamper")
        scratch.preconditions(walk, ADMIN, ADMIN_PASSWORD)
        try:
            outcomes = {o.requirement: o for o in walk.run(CHECKS)}
        finally:
            scratch.finish(walk)
    for requirement in ("AUD-9", "REL-7", "LBL-6"):
        assert outcomes[requirement].status == "fail", (requirement, outcomes[requirement])
    (record,) = [s for s in outcomes["AUD-9"].steps if not s.passed]
    assert "'reason': 'typo'" in record.observed and "the record marks" in record.expected
    (certificate,) = [s for s in outcomes["REL-7"].steps if not s.passed]
    assert f"OQ-{walk.run_id}-AUTHORITY" in certificate.observed
    (label,) = [s for s in outcomes["LBL-6"].steps if not s.passed]
    assert "'040 COI': False" in label.observed
    assert {outcomes[r].status for r in ("LBL-2", "REL-5", "QC-2", "CLN-3")} == {"pass"}


def test_val1_without_a_pdf_reader_a_documents_words_are_not_demonstrated(monkeypatch):
    """A runner without pypdfium2 (a site's install has only the runtime dependencies) does not
    pass AUD-9, REL-7 or LBL-6 on unread PDFs: the check is not demonstrated, saying which words
    it could not check and how to get a reader."""
    monkeypatch.setitem(sys.modules, "pypdfium2", None)  # `import pypdfium2` raises ImportError
    with pytest.raises(Blocked) as refused:
        pdftext.text(b"%PDF-1.4 ...", "the certificate (PDF)", "'OQ-1-AUTHORITY'")
    said = str(refused.value)
    assert "its text was not read" in said and "pip install pypdfium2" in said
    assert "not checked: 'OQ-1-AUTHORITY'" in said

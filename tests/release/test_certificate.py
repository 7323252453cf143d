"""The release certificate (REL-5; SIG-2, SIG-3 on print; EU GMP Part IV §11.5): one set of facts
as HTML and as PDF, read back as a person would read them (the HTML's tables parsed, the PDF's
text extracted with pdfium)."""

import re
from datetime import datetime
from html.parser import HTMLParser

import pytest
from sqlalchemy import update

from app.auth.permissions import Role
from app.qc.models import QcResult
from tests.helpers import drop_append_only, error, ok
from tests.release.support import (
    PHYSICIAN,
    close_deviations,
    decide_as,
    oos_ready,
    open_deviation,
    pdf_text,
    qa_user,
    squash,
)

THIN = "\u2009"  # large numbers are grouped with thin spaces: 150 000 000
# What the QC analyst enters, and the limit and result the certificate must state for each.
RESULTS = {
    "viability": (87.5, "Viability", "≥ 70 %", "87.5 %"),
    "viable_cells_per_dose": (
        200_000_000,
        "Viable cells per dose",
        f"10{THIN}000{THIN}000 to 500{THIN}000{THIN}000 cells",
        f"200{THIN}000{THIN}000 cells",
    ),
    "sterility": ("no growth", "Sterility", "no growth", "no growth"),
    "mycoplasma": ("not detected", "Mycoplasma", "not detected", "not detected"),
    "endotoxin": (0.125, "Endotoxin", "≤ 0.5 EU/mL", "0.125 EU/mL"),
    "identity": (92, "Identity: ALP-positive cells", "≥ 80 %", "92 %"),
    "mtdna_heteroplasmy": (3.5, "mtDNA m.3243A>G heteroplasmy", "< 10 %", "3.5 %"),
    "karyotype": ("normal", "Karyotype", "normal", "normal"),
}


def spaced(text: str) -> str:
    """Runs of ASCII whitespace as one space (a thin space in a number stays)."""
    return re.sub(r"[ \t\r\n]+", " ", text).strip()


class Tables(HTMLParser):
    """The text of every table cell, row by row, table by table; and the whole page's text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.texts: list[str] = []
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(spaced("".join(self._cell)))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        self.texts.append(data)

    @property
    def text(self) -> str:
        return spaced("".join(self.texts))

    def table(self, first_header: str) -> list[list[str]]:
        (found,) = [t for t in self.tables if t and t[0] and t[0][0] == first_header]
        return found

    def facts(self) -> dict[str, str]:
        (found,) = [t for t in self.tables if t and t[0] and t[0][0] == "Product"]
        return dict(found)


def utc(stamp: str) -> str:
    """An API timestamp as the certificate prints it."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")


def signature_line(decision: dict, state: str = "record unchanged since signing") -> str:
    s = decision["signature"]
    return (
        f"Electronically signed by {s['signed_by']} ({s['username']}, user {s['user_id']}) on "
        f"{utc(s['signed_at'])}; meaning: {s['meaning']}; SHA-256 {s['record_hash']}; {state}."
    )


def certificate(api, batch_id: int, fmt: str = "html", role: Role = Role.QA):
    return api.get(role, f"/batches/{batch_id}/certificate", params={"format": fmt})


@pytest.fixture
def certified(api):
    """A batch with a closed deviation, every test passed with known values, released by a QA
    user with a printed name of their own; with what its certificate must state."""
    patient = api.patient(family_name="Brandão", given_name="Inês")
    batch, codes = api.formulated(patient["id"])
    deviation = open_deviation(api, batch["id"], "Centrifuge alarm during harvest")
    close_deviations(api, batch["id"])
    for test, (value, *_) in RESULTS.items():
        assert ok(api.result(batch["id"], test, value), 201)["outcome"] == "pass"
    api.prepare_release(batch["id"])
    _, headers = qa_user(api, full_name="Quirina Assunta Vega")
    ok(decide_as(api, headers, batch["id"], comment="Released for infusion"))
    shown = ok(api.get(Role.QA, f"/batches/{batch['id']}"))
    (decision,) = ok(api.get(Role.QA, f"/batches/{batch['id']}/releases"))
    doses = [v for v in shown["vessels"] if v["code"] in codes]
    assert len(doses) == 2
    return {
        "batch": shown,
        "patient": patient,
        "doses": doses,
        "deviation": deviation,
        "decision": decision,
    }


def test_rel5_the_html_certificate_states_identity_doses_tests_deviations_and_signature(
    api, certified
):
    batch, decision = certified["batch"], certified["decision"]
    response = certificate(api, batch["id"])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = Tables(response.text)
    assert page.text.startswith(f"Certificate of release {batch['batch_number']}")  # <title>

    facts = page.facts()
    assert facts["Batch"] == batch["batch_number"]
    assert facts["COI"] == batch["coi"] == certified["patient"]["coi"]
    assert facts["DIN"] == batch["din"] + batch["din_check"]  # the check character boxed
    assert f'<span class="check">{batch["din_check"]}</span>' in response.text
    assert facts["Patient"] == "Brandão, Inês"
    assert facts["Status"] == "released"

    doses = page.table("Code")
    assert [row[0] for row in doses[1:]] == [d["code"] for d in certified["doses"]]
    for row, dose in zip(doses[1:], certified["doses"], strict=True):
        assert row[1:4] == [f"150{THIN}000{THIN}000", "50 mL", utc(dose["expires_at"])]

    tests = {row[0]: row for row in page.table("Test")[1:]}
    assert len(tests) == len(RESULTS)
    for _, name, limit, result in RESULTS.values():
        assert tests[name][2:5] == [limit, result, "PASS"], tests[name]

    (deviation,) = page.table("Number")[1:]
    assert deviation[0] == certified["deviation"]["number"]
    assert deviation[2] == "closed" and deviation[3] == "Centrifuge alarm during harvest"

    assert "Chain-of-identity reconciliation: 7 vessels, all accounted for." in page.text
    assert "Comment: Released for infusion" in page.text
    assert signature_line(decision) in page.text
    assert "Electronically signed by Quirina Assunta Vega (" in page.text
    assert "OUT OF SPECIFICATION" not in page.text


def test_rel5_the_pdf_certificate_states_the_same_facts(api, certified):
    batch, decision = certified["batch"], certified["decision"]
    response = certificate(api, batch["id"], "pdf")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert batch["batch_number"] in response.headers["content-disposition"]
    assert response.content.startswith(b"%PDF")
    text = pdf_text(response.content)
    assert text.startswith("Certificate of release")
    flat = squash(text)
    facts = [
        batch["batch_number"],
        batch["coi"],
        batch["din"] + batch["din_check"],
        "Brandão, Inês",
        certified["deviation"]["number"],
        "Centrifuge alarm during harvest",
        "7 vessels, all accounted for",
        signature_line(decision),
    ]
    for dose in certified["doses"]:
        facts += [dose["code"], utc(dose["expires_at"])]
    for _, name, limit, result in RESULTS.values():
        facts.append(f"{name}")
        facts.append(f"{limit}{result}PASS")  # in one row, side by side
    for fact in facts:
        assert squash(fact) in flat, fact
    assert "OUTOFSPECIFICATION" not in flat


@pytest.mark.parametrize("fmt", ["html", "pdf"])
def test_rel5_sig3_the_certificate_says_when_the_signed_record_changed(api, certified, fmt):
    batch_id = certified["batch"]["id"]
    drop_append_only(api.db, "qc_result")
    api.db.execute(
        update(QcResult)
        .where(QcResult.batch_id == batch_id, QcResult.test == "endotoxin")
        .values(value_number=0.25)
    )
    api.db.flush()
    (decision,) = ok(api.get(Role.QA, f"/batches/{batch_id}/releases"))
    assert decision["signature"]["matches"] is False
    response = certificate(api, batch_id, fmt)
    text = Tables(response.text).text if fmt == "html" else pdf_text(response.content)
    expected = signature_line(decision, "RECORD CHANGED SINCE SIGNING")
    assert squash(expected) in squash(text)
    assert "unchanged" not in text


def test_rel5_who_may_read_a_certificate_and_when(api):
    batch, _ = api.formulated()
    for role in (Role.QA, Role.CLINICIAN):
        detail = error(certificate(api, batch["id"], role=role), 409, "not_released")
        assert batch["batch_number"] in detail
    error(certificate(api, 987654), 404, "not_found")
    api.pass_qc(batch["id"])
    ok(api.decide(batch["id"]))
    for role in (Role.TECHNICIAN, Role.ADMIN):
        for fmt in ("html", "pdf"):
            error(certificate(api, batch["id"], fmt, role), 403, "forbidden")
    assert certificate(api, batch["id"], role=Role.CLINICIAN).status_code == 200
    assert certificate(api, batch["id"], "pdf", Role.CLINICIAN).status_code == 200
    for fmt in ("xml", "PDF", ""):
        error(certificate(api, batch["id"], fmt), 422, "invalid_request")
    assert api.get(None, f"/batches/{batch['id']}/certificate").status_code == 401


def test_rel2_a_late_failure_shows_on_the_certificate_as_an_alert_and_a_hold(api):
    """REL-2: after a conditional release, a failing sterility result puts the batch on hold and
    the certificate says so: the alert, the status now beside the decision's, and the late
    result marked as entered after the decision (not covered by its signature)."""
    batch, _ = api.released("conditional_release", pending=("sterility",))
    ok(api.result(batch["id"], "sterility", "growth"), 201)
    page = Tables(certificate(api, batch["id"]).text)
    assert page.facts()["Status"] == "on hold (decision: conditionally released)"
    assert "ALERT" in page.text and "Sterility: growth" in page.text
    tests = {row[0]: row for row in page.table("Test")[1:]}
    assert tests["Sterility"][3:5] == ["growth", "FAIL"]
    assert tests["Sterility"][5].endswith("(after the decision)")
    assert tests["Sterility"][6] == ""
    assert tests["Viability"][6].startswith("Test User ")  # its second-person review (REL-6)
    flat = squash(pdf_text(certificate(api, batch["id"], "pdf").content))
    assert squash("ALERT") in flat and squash("Sterility: growth") in flat


def test_rel5_a_conditional_release_certificate_names_the_pending_tests(api):
    batch, _ = api.released("conditional_release", pending=("sterility",))
    page = Tables(certificate(api, batch["id"]).text)
    assert page.text.startswith("Certificate of conditional release")
    assert page.facts()["Status"] == "conditionally released"
    tests = {row[0]: row for row in page.table("Test")[1:]}
    assert tests["Sterility"][3:5] == ["pending", "PENDING"]
    assert "conditional release (pending: sterility)" in page.text
    flat = squash(pdf_text(certificate(api, batch["id"], "pdf").content))
    assert squash("Certificate of conditional release") in flat
    assert squash("conditional release (pending: sterility).") in flat

    # The later full release reissues it as a certificate of release, both decisions signed.
    api.pass_qc(batch["id"])
    ok(api.decide(batch["id"]))
    decisions = ok(api.get(Role.QA, f"/batches/{batch['id']}/releases"))
    page = Tables(certificate(api, batch["id"]).text)
    assert page.text.startswith("Certificate of release")
    assert page.facts()["Status"] == "released"
    for decision in decisions:
        assert signature_line(decision) in page.text


def test_rel5_a_rejection_is_a_record_of_rejection(api):
    batch, _ = api.formulated()
    ok(api.decide(batch["id"], "reject", comment="Growth stalled"))
    (decision,) = ok(api.get(Role.QA, f"/batches/{batch['id']}/releases"))
    page = Tables(certificate(api, batch["id"]).text)
    assert page.text.startswith("Record of rejection")
    assert page.facts()["Status"] == "rejected"
    assert "meaning: rejected" in signature_line(decision)  # SIG-6
    assert signature_line(decision) in page.text
    flat = squash(pdf_text(certificate(api, batch["id"], "pdf").content))
    assert squash("Record of rejection") in flat and "Certificateofrelease" not in flat


def test_rel5_an_out_of_specification_release_says_so_plainly(api):
    batch, _ = oos_ready(api, "endotoxin")
    ok(api.decide(batch["id"]))
    response = certificate(api, batch["id"])
    page = Tables(response.text)
    assert "OUT OF SPECIFICATION" in page.text and "Part IV §11.5" in page.text
    # The statement comes before the facts of the batch, where no reader can miss it.
    assert page.text.index("OUT OF SPECIFICATION") < page.text.index("Product")
    tests = {row[0]: row for row in page.table("Test")[1:]}
    assert tests["Endotoxin"][4] == "FAIL"
    assert f"Treating physician {PHYSICIAN} accepted on" in page.text
    assert "the out-of-specification results: endotoxin" in page.text
    (deviation,) = page.table("Number")[1:]
    assert deviation[1] == "oos" and deviation[2] == "closed"

    flat = squash(pdf_text(certificate(api, batch["id"], "pdf").content))
    assert squash("OUT OF SPECIFICATION") in flat
    assert squash(f"Treating physician {PHYSICIAN} accepted on") in flat
    assert squash("the out-of-specification results: endotoxin") in flat


def test_rel5_what_people_typed_is_shown_as_text_not_markup(api):
    batch, _ = api.formulated()
    api.pass_qc(batch["id"])
    comment = "<script>alert(1)</script> & <b>bold</b>"
    ok(api.decide(batch["id"], comment=comment))
    html = certificate(api, batch["id"]).text
    assert "<script>" not in html and "<b>bold" not in html
    assert "Comment: " + comment in Tables(html).text
    assert squash(comment) in squash(pdf_text(certificate(api, batch["id"], "pdf").content))

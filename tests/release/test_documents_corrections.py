"""AUD-9: the certificate, the batch record (page, JSON, PDF) and the trace report mark a
corrected value with the original, who corrected it, when and why; identifiers (COI, DIN with its
check character, batch numbers, vessel codes) never break across lines, in HTML or PDF."""

import re

import pytest

from app.auth.permissions import Role
from app.documents import Code, Document
from app.identity.codes import DIN
from tests.helpers import ok
from tests.release.support import pdf_text, row, squash
from tests.test_pages import _page_login

REASON = "Haemocytometer count re-read by a second analyst"


@pytest.fixture
def corrected(api):
    """A batch released after its viability was corrected from 92.4 to 91 %: (batch, doses)."""
    batch, codes = api.formulated()
    ok(api.result(batch["id"], "viability", 92.4), 201)
    api.pass_qc(batch["id"])
    first = row(api, batch["id"], "viability")
    ok(
        api.result(batch["id"], "viability", 91, corrects=first["result_id"], reason=REASON),
        201,
    )
    api.prepare_release(batch["id"])
    ok(api.decide(batch["id"]))
    return batch, codes


def _identifiers(api, batch: dict, codes: list[str]) -> list[str]:
    return [
        batch["coi"],
        batch["batch_number"],
        f"{batch['din']} {DIN(batch['din']).check}",
        *codes,
    ]


def _lines(content: bytes) -> list[str]:
    return [line.replace("\xa0", " ") for line in pdf_text(content).splitlines()]


def _whole(identifiers: list[str], lines: list[str]) -> None:
    for identifier in identifiers:
        assert any(identifier in line for line in lines), f"{identifier} broken or missing"


def test_aud9_the_certificate_marks_a_corrected_value_with_original_who_when_why(api, corrected):
    batch, _ = corrected
    page = api.get(Role.QA, f"/batches/{batch['id']}/certificate").text
    (mark,) = re.findall(r'<span class="corrected">([^<]*)</span>', page)
    assert "92.4 %" in mark and "91" in mark and REASON in mark and " UTC" in mark
    technician = ok(api.get(Role.QA, f"/batches/{batch['id']}/record"))["corrections"][0]["by"]
    assert technician in mark

    text = squash(
        pdf_text(api.get(Role.QA, f"/batches/{batch['id']}/certificate?format=pdf").content)
    )
    assert squash(f"CORRECTED from 92.4 % to 91 % by {technician}") in text
    assert squash(REASON) in text


def test_aud9_the_batch_record_states_each_correction(api, corrected):
    batch, _ = corrected
    record = ok(api.get(Role.QA, f"/batches/{batch['id']}/record"))
    (correction,) = record["corrections"]
    assert (correction["test"], correction["original"], correction["corrected"]) == (
        "viability",
        "92.4 %",
        "91 %",
    )
    assert correction["reason"] == REASON and correction["at"]

    pdf = api.get(Role.QA, f"/batches/{batch['id']}/record.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = squash(pdf_text(pdf.content))
    assert squash("CORRECTED from 92.4 % to 91 %") in text and squash(REASON) in text

    _page_login(api, Role.QA)
    page = api.client.get(f"/batches/{batch['id']}").text
    assert "corrected from 92.4 % to 91 %" in page and REASON in page


def test_aud9_identifiers_never_break_across_lines_in_any_pdf(api, corrected):
    batch, codes = corrected
    identifiers = _identifiers(api, batch, codes)
    certificate = api.get(Role.QA, f"/batches/{batch['id']}/certificate?format=pdf").content
    _whole(identifiers, _lines(certificate))
    record = api.get(Role.QA, f"/batches/{batch['id']}/record.pdf").content
    vessels = [v["code"] for v in ok(api.get(Role.QA, f"/batches/{batch['id']}/record"))["lineage"]]
    _whole(identifiers + vessels, _lines(record))
    trace = api.get(Role.QA, f"/patients/{batch['patient_id']}/trace-report?format=pdf").content
    _whole(identifiers + vessels, _lines(trace))


def test_aud9_identifiers_never_break_across_lines_in_html(api, corrected):
    batch, codes = corrected
    for path in (
        f"/batches/{batch['id']}/certificate",
        f"/patients/{batch['patient_id']}/trace-report",
    ):
        page = api.get(Role.QA, path).text
        (rule,) = re.findall(r"\.code \{[^}]*\}", page)
        assert "white-space:nowrap" in rule and "overflow-wrap:normal" in rule
        cells = " ".join(re.findall(r'<(?:td|span) class="codes?">(.*?)</(?:td|span)>', page))
        for identifier in (batch["coi"], batch["batch_number"], *codes):
            assert identifier in cells, (path, identifier)


def test_aud9_a_code_cell_shrinks_rather_than_breaks_where_plain_text_breaks():
    """The mechanism: in a 20 mm column a 24-character identifier is split as plain text, and
    kept whole (smaller) as a `Code`."""
    identifier = "A9999260000010006R" + "XYZ123"
    for cell, whole in ((identifier, False), (Code(identifier), True)):
        doc = Document()
        doc.table([[cell, "x"]], [20, 20], header=False)
        lines = _lines(doc.render("t"))
        assert any(identifier in line for line in lines) is whole, lines

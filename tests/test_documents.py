"""REL (documents never fail on long text, issue 11 item 9): whatever free text reaches a document
(a deviation's description, root cause and CAPA, comments, notes, names, locations, sites), the
release certificate (HTML and PDF, REL-5), the patient's trace report (COI-7) and the labels (SVG,
PNG, ZPL, PDF; LBL-1, LBL-2) render: long words break, long rows continue on the next page,
labels cut what does not fit and still scan back. Properties over generated text (hypothesis),
and the issue's own case end to end through the API."""

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import escape

from app.auth.permissions import Role
from app.batches.states import BatchStatus
from app.labels import pdf as label_pdf
from app.labels import raster, svg, zpl
from app.labels.layout import MONO_ADVANCE, DoseContent, LabelContent, Text, layout
from app.release import certificate
from app.release.certificate import Certificate
from app.release.schemas import Decision, PhysicianAcceptancePublic, ReleasePublic
from app.signatures.schemas import Meaning, SignaturePublic, SignedRecord
from app.trace import report
from app.trace.report import TraceReport
from tests.helpers import PASSWORD, Api, ok
from tests.labels.support import parse_svg, pdf_pages, png_image, scan, zpl_jobs
from tests.release.support import open_deviation, pdf_text, squash

LONG = 4000  # LongText's bound: the longest free text the API accepts
_CHARACTERS = st.characters(blacklist_categories=("Cs", "Cc"))
# Free text as people (and scanners, and copy-paste) produce it: unbroken runs up to the API's
# bound, words, any script, combining marks, symbols the fonts lack.
FREE = st.one_of(
    st.builds(  # one unbroken run of 2,000 to 4,000 characters: taller than a page in a column
        lambda chunk, times: (chunk * times)[:LONG],
        st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"), min_size=1, max_size=40),
        st.integers(2000, LONG),
    ),
    st.text(_CHARACTERS, min_size=1, max_size=300),
    st.lists(st.text(_CHARACTERS, min_size=1, max_size=60), min_size=1, max_size=80).map(" ".join),
)
NAME = st.one_of(
    st.text(st.sampled_from("WXYZ"), min_size=1, max_size=200),
    st.text(_CHARACTERS, min_size=1, max_size=200),
)
PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WHEN = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def _signature(comment: str) -> SignaturePublic:
    return SignaturePublic(
        id=1,
        signed_by="Quality Person",
        username="qa-1",
        user_id=1,
        signed_at=WHEN,
        meaning=Meaning.RELEASED,
        record_type=SignedRecord.RELEASE,
        record_id=1,
        record_hash="ab" * 32,
        comment=comment,
        matches=True,
    )


@st.composite
def certificates(draw: st.DrawFn) -> Certificate:
    """A certificate whose every free-text field is drawn."""
    text = lambda: draw(FREE)  # noqa: E731
    decision = ReleasePublic(
        id=1,
        batch_id=1,
        batch_number="B-2026-00001",
        decision=Decision.CONDITIONAL_RELEASE,
        status=BatchStatus.CONDITIONALLY_RELEASED,
        pending_tests=[text()],
        result_ids=[],
        out_of_specification=True,
        physician_acceptance_id=1,
        comment=text(),
        decided_by="Quality Person",
        decided_at=WHEN,
        signature=_signature(text()),
    )
    acceptance = PhysicianAcceptancePublic(
        id=1,
        batch_id=1,
        physician_name=draw(NAME),
        accepted_at=WHEN,
        note=text(),
        out_of_specification_tests=[text()],
        recorded_by="clinician-1",
        recorded_at=WHEN,
        signature=_signature(text()),
    )
    return Certificate(
        title="Certificate of conditional release",
        facts={"Batch": "B-2026-00001", "Patient": f"{draw(NAME)}, {draw(NAME)}", "MRN": "M1"},
        doses=[{"code": text(), "cells": "1", "volume": "1 mL", "expires": "", "status": "active"}],
        tests=[
            {
                "test": "Sterility",
                "method": "Ph. Eur. 2.6.27",
                "limit": "no growth",
                "result": text(),
                "outcome": "FAIL",
                "entered": draw(NAME),
                "reviewed": draw(NAME),
            }
        ],
        deviations=[
            {
                "number": "DEV-2026-0001",
                "kind": "process",
                "status": "closed",
                "description": text(),
                "root_cause": text(),
                "capa": text(),
                "closed": draw(NAME),
            }
        ],
        decisions=[decision],
        acceptances=[acceptance],
        out_of_specification=True,
        reconciliation="1 vessels, all accounted for",
        labels="1 of 1 vessels in use labelled",
        alerts=[text()],
        issued_at="2026-12-01 09:30 UTC",
    )


@st.composite
def trace_reports(draw: st.DrawFn) -> TraceReport:
    text = lambda: draw(FREE)  # noqa: E731
    return TraceReport(
        patient={"Patient": f"{draw(NAME)}, {draw(NAME)}", "MRN": "M1", "COI": "C1"},
        biopsies=[{"din": "A999926000001 8", "collected": "", "batch": text()}],
        steps=[{"when": "", "kind": "passage", "who": draw(NAME), "inputs": text(), "outputs": ""}],
        doses=[
            {
                "code": "A9999260000010008N",
                "batch": "B1",
                "expires": "",
                "status": "infused",
                "custody": [f"moved to {text()} by {draw(NAME)}", text()],
                "infusion": f"infused by {draw(NAME)}, witnessed by {draw(NAME)}",
            }
        ],
        decisions=[text()],
        generated_at="2026-12-01 09:30 UTC",
    )


def _readable_pdf(body: bytes) -> int:
    document = pdf_pages(body)
    pages = len(document)
    assert pages >= 1
    for page in document:
        page.get_textpage().get_text_range()
    return pages


@PROPERTY
@given(certificates())
def test_rel_the_release_certificate_renders_any_free_text(found: Certificate) -> None:
    page = certificate.html(found)
    description = found.deviations[0]["description"]
    assert str(escape(description)) in page
    _readable_pdf(certificate.pdf(found))


@PROPERTY
@given(trace_reports())
def test_rel_the_trace_report_renders_any_free_text(found: TraceReport) -> None:
    page = report.html(found)
    assert str(escape(found.doses[0]["custody"][1])) in page
    _readable_pdf(report.pdf(found))


def test_rel_an_unbroken_4000_character_cell_breaks_and_continues_on_the_next_page() -> None:
    """Issue 11: a deviation with a 4,000-character unbroken description made the PDF a 500."""
    body = certificate.pdf(_fixed_certificate("Q" * LONG, "X" * LONG, "Z" * LONG))
    assert _readable_pdf(body) >= 2
    text = squash(pdf_text(body))
    bare = squash(pdf_text(certificate.pdf(_fixed_certificate("-", "-", "-"))))
    for letter in "QXZ":  # every character of the description, root cause and CAPA is drawn
        assert text.count(letter) == bare.count(letter) + LONG


def _fixed_certificate(description: str, root_cause: str, capa: str) -> Certificate:
    """A certificate with one deviation, and barely any other text."""
    return Certificate(
        title="Certificate of release",
        facts={"Batch": "B-2026-00001"},
        doses=[],
        tests=[],
        deviations=[
            {
                "number": "DEV-2026-0001",
                "kind": "process",
                "status": "closed",
                "description": description,
                "root_cause": root_cause,
                "capa": capa,
                "closed": "qa-1",
            }
        ],
        decisions=[],
        acceptances=[],
        out_of_specification=False,
        reconciliation="",
        labels="",
        alerts=[],
        issued_at="2026-12-01 09:30 UTC",
    )


@st.composite
def dose_contents(draw: st.DrawFn) -> LabelContent:
    return LabelContent(
        code="A9999260000010008N",
        din="A999926000001",
        din_check="8",
        kind="bag",
        passage=3,
        made_on=date(2026, 12, 1),
        reprint=draw(st.booleans()),
        dose=DoseContent(
            patient_name=f"{draw(NAME).upper()}, {draw(NAME)}",
            birth_date=date(1987, 2, 3),
            mrn=draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9./-]{0,31}", fullmatch=True)),
            coi="CHA999926000001*",
            expires_at=WHEN + timedelta(days=3),
            cell_count=150_000_000,
            volume_ml=50.0,
        ),
    )


@PROPERTY
@given(dose_contents())
def test_rel_dose_labels_fit_any_name_and_still_scan_back(content: LabelContent) -> None:
    label = layout(content)
    for item in label.items:
        if isinstance(item, Text):
            assert item.x + len(item.text) * MONO_ADVANCE * item.size <= label.width + 0.01, item
    found = scan(png_image(raster.png(content, 203)))
    assert found.qr == [content.code]
    assert sorted(found.datamatrix) == sorted([content.isbt_message, content.isbt_coi])
    drawn = parse_svg(svg.svg(content)).strings()
    assert "FOR AUTOLOGOUS USE ONLY" in drawn
    (job,) = zpl_jobs(zpl.zpl(content, 203))
    assert [data for _, data in job.qr] == [f"MA,{content.code}"]
    _readable_pdf(label_pdf.roll([label]))


# -- end to end: the case through the API -------------------------------------------------


@pytest.fixture
def long_text_batch(api: Api) -> tuple[dict, list[str]]:
    """A released batch whose patient, deviation, closure and decision carry text at the API's
    bounds: unbroken runs of 200 (names) and 4,000 (free text) characters."""
    name = "Ł" + "W" * 199
    patient = api.patient(family_name=name, given_name=name)
    batch, doses = api.formulated(patient["id"])
    for dose in doses:
        assert api.print_label(dose, format="pdf").status_code == 200
    deviation = open_deviation(api, batch["id"], "D" * LONG)
    body = {
        "password": PASSWORD,
        "investigation": "I" * LONG,
        "root_cause": "R" * LONG,
        "capa": "C" * LONG,
        "comment": "Q" * LONG,
    }
    ok(api.post(Role.QA, f"/deviations/{deviation['id']}/close", body))
    api.pass_qc(batch["id"])
    ok(api.decide(batch["id"], comment="K" * LONG))
    return batch | {"patient_id": patient["id"]}, doses


def test_rel_a_certificate_with_4000_character_words_is_a_document_not_a_500(
    api: Api, long_text_batch: tuple[dict, list[str]]
) -> None:
    batch, _ = long_text_batch
    path = f"/batches/{batch['id']}/certificate"
    pdf = api.get(Role.QA, path, params={"format": "pdf"})
    assert pdf.status_code == 200, pdf.text[:200]
    text = squash(pdf_text(pdf.content))
    assert "K" * LONG in text  # the decision's comment, a paragraph
    # the deviation's cells wrap side by side, so their lines interleave in the text
    assert all(text.count(letter) >= LONG for letter in "DRC")
    page = api.get(Role.CLINICIAN, path, params={"format": "html"})
    assert page.status_code == 200 and "D" * LONG in page.text


def test_rel_the_trace_report_and_labels_of_a_200_character_name_render(
    api: Api, long_text_batch: tuple[dict, list[str]]
) -> None:
    batch, doses = long_text_batch
    path = f"/patients/{batch['patient_id']}/trace-report"
    for fmt in ("pdf", "html"):
        response = api.get(Role.QA, path, params={"format": fmt})
        assert response.status_code == 200, response.text[:200]
    assert "W" * 199 in squash(pdf_text(api.get(Role.QA, path, params={"format": "pdf"}).content))
    label = f"/vessels/{doses[0]}/label"
    for fmt in ("svg", "zpl"):
        assert api.get(Role.TECHNICIAN, label, params={"format": fmt}).status_code == 200
    png = api.get(Role.TECHNICIAN, label, params={"format": "png"})
    assert png.status_code == 200 and scan(png_image(png.content)).qr == [doses[0]]

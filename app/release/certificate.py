"""The release certificate (REL-5): one set of facts, rendered as HTML (jinja2) and as PDF
(reportlab, pure Python). Times are UTC: a certificate travels between sites."""

import io
import os
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from xml.sax.saxutils import escape

import reportlab
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from sqlmodel import Session

from app.batches import service as batches
from app.clock import utcnow
from app.config import Settings
from app.deviations import service as deviations
from app.errors import NotReleased
from app.identity.codes import DIN
from app.qc import service as qc
from app.qc.evaluation import value_text
from app.qc.schemas import QcTestPublic
from app.release import service as release
from app.release.gate import reconcile
from app.release.schemas import Decision, PhysicianAcceptancePublic, ReleasePublic
from app.specifications.defaults import PRODUCT
from app.specifications.service import number_text
from app.web import templates

TITLES = {
    Decision.RELEASE: "Certificate of release",
    Decision.CONDITIONAL_RELEASE: "Certificate of conditional release",
    Decision.REJECT: "Record of rejection",
}
OOS_STATEMENT = (
    "OUT OF SPECIFICATION. This batch does not meet its release specification. It is supplied "
    "only at the documented request of the treating physician, under EU GMP Part IV §11.5."
)


def utc(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Certificate:
    title: str
    facts: dict[str, str]
    doses: list[dict[str, str]]
    tests: list[dict[str, str]]
    deviations: list[dict[str, str]]
    decisions: list[ReleasePublic]
    acceptances: list[PhysicianAcceptancePublic]
    out_of_specification: bool
    reconciliation: str
    alerts: list[str]
    issued_at: str

    @property
    def oos_statement(self) -> str | None:
        return OOS_STATEMENT if self.out_of_specification else None


def build(session: Session, settings: Settings, batch_id: int) -> Certificate:
    """Everything the certificate states, from the batch and its latest decision."""
    context = batches.get(session, batch_id)
    decided = release.decisions(session, batch_id)
    if not decided:
        raise NotReleased(
            f"Batch {context.batch.batch_number} has no release decision yet; its certificate "
            "is issued by QA's decision."
        )
    latest = decided[-1]
    signed_results = set(latest.result_ids)
    view = qc.qc_public(session, settings, batch_id)
    reviewed = {r.id: r.reviews for r in view.history}
    tally = reconcile(session, batch_id)
    patient = context.patient
    return Certificate(
        title=TITLES[latest.decision],
        facts={
            "Product": PRODUCT,
            "Batch": context.batch.batch_number,
            "Status": _status(context.batch.status, latest),
            "DIN": f"{context.biopsy.din} {DIN(context.biopsy.din).check}",
            "COI": patient.coi,
            "Patient": f"{patient.family_name}, {patient.given_name}",
            "Born": patient.birth_date.isoformat(),
            "MRN": patient.mrn,
            "Specification": f"version {view.specification_version}",
        },
        doses=[
            {
                "code": d.code,
                "cells": number_text(d.cell_count) if d.cell_count is not None else "",
                "volume": f"{d.volume_ml:g} mL" if d.volume_ml is not None else "",
                "expires": utc(d.expires_at),
                "status": d.status,
            }
            for d in tally.doses
        ],
        tests=[
            {
                "test": t.name,
                "method": t.method,
                "limit": t.limit,
                "result": _result(t),
                "outcome": t.outcome.value.upper(),
                "entered": _entered(t, signed_results),
                "reviewed": ", ".join(
                    f"{s.signed_by} {utc(s.signed_at)}" for s in reviewed.get(t.result_id, [])
                )
                or ("by the decision's signature" if t.result_id in signed_results else ""),
            }
            for t in view.tests
        ],
        deviations=[
            {
                "number": d.number,
                "kind": d.kind.value,
                "status": d.status.value,
                "description": d.description,
                "root_cause": d.root_cause or "",
                "capa": d.capa or "",
                "closed": f"{d.closed_by} {utc(d.closed_at)}" if d.closed_by else "",
            }
            for d in deviations.find(session, batch_id=batch_id)
        ],
        decisions=decided,
        acceptances=release.acceptances(session, batch_id),
        out_of_specification=any(d.out_of_specification for d in decided),
        alerts=[
            f"{utc(a.raised_at)}: {a.message}"
            for a in batches.alerts(session, [batch_id])[batch_id]
        ],
        reconciliation=(
            f"{tally.vessels} vessels, all accounted for"
            if tally.complete
            else f"{tally.vessels} vessels; not accounted for: {', '.join(tally.unaccounted)}"
        ),
        issued_at=utc(utcnow()),
    )


def _status(current: str, latest: ReleasePublic) -> str:
    """The batch's status now, and the decision's when they differ (a hold after release)."""
    now = current.replace("_", " ")
    decided = latest.status.value.replace("_", " ")
    return now if now == decided else f"{now} (decision: {decided})"


def _entered(test: QcTestPublic, signed: set[int]) -> str:
    if not test.entered_by:
        return ""
    late = " (after the decision)" if test.result_id not in signed else ""
    return f"{test.entered_by} {utc(test.entered_at)}{late}"


def _result(test: QcTestPublic) -> str:
    if test.value is None:
        return "pending"
    if isinstance(test.value, str):
        return test.value
    return value_text(test.value, None, test.unit)


def signature_line(decision: ReleasePublic) -> str:
    """The signature manifestation (SIG-2) with the record check (SIG-3)."""
    s = decision.signature
    state = "record unchanged since signing" if s.matches else "RECORD CHANGED SINCE SIGNING"
    return (
        f"Electronically signed by {s.signed_by} ({s.username}, user {s.user_id}) on "
        f"{utc(s.signed_at)}; meaning: {s.meaning.value}; SHA-256 {s.record_hash}; {state}."
    )


def acceptance_line(a: PhysicianAcceptancePublic) -> str:
    """The physician's documented acceptance, as the certificate states it."""
    accepted = (
        f" the out-of-specification results: {', '.join(a.out_of_specification_tests)}"
        if a.out_of_specification_tests
        else ""
    )
    note = f" ({a.note})" if a.note else ""
    return (
        f"Treating physician {a.physician_name} accepted on {utc(a.accepted_at)}{accepted}"
        f"{note}; recorded by {a.recorded_by}."
    )


def html(certificate: Certificate) -> str:
    template = templates.get_template("release/certificate.html")
    return template.render(
        c=certificate, signature_line=signature_line, acceptance_line=acceptance_line
    )


# -- PDF ----------------------------------------------------------------------------------------

_FONT_DIR = os.path.join(os.path.dirname(reportlab.__file__), "fonts")


@lru_cache(maxsize=1)
def _fonts() -> frozenset[int]:
    """Register Bitstream Vera (ships with reportlab; covers Latin scripts and ≥ ≤); return the
    code points it can draw."""
    regular = TTFont("Vera", os.path.join(_FONT_DIR, "Vera.ttf"))
    pdfmetrics.registerFont(regular)
    pdfmetrics.registerFont(TTFont("VeraBd", os.path.join(_FONT_DIR, "VeraBd.ttf")))
    return frozenset(regular.face.charToGlyph)


def _text(value: Any) -> str:
    """Escaped for reportlab's markup, with characters the font lacks shown as '?'."""
    drawable = _fonts()
    text = "".join(
        ch if ord(ch) in drawable or ch == "\n" else (" " if ch.isspace() else "?")
        for ch in str(value)
    )
    return escape(text)


def pdf(certificate: Certificate) -> bytes:
    """The certificate as an A4 PDF."""
    _fonts()
    body = ParagraphStyle("body", fontName="Vera", fontSize=8.5, leading=11)
    small = ParagraphStyle("small", parent=body, fontSize=7.5, leading=9.5)
    heading = ParagraphStyle("heading", parent=body, fontName="VeraBd", fontSize=11, leading=15)
    title = ParagraphStyle("title", parent=body, fontName="VeraBd", fontSize=16, leading=20)
    alarm = ParagraphStyle(
        "alarm", parent=heading, textColor=colors.HexColor("#a4161a"), borderPadding=4
    )

    def table(rows: list[list[str]], widths: list[float], *, header: bool = True) -> Table:
        cells = [[Paragraph(_text(c), small) for c in row] for row in rows]
        t = Table(cells, colWidths=[w * mm for w in widths], repeatRows=1 if header else 0)
        style = [
            ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#9aa5b1")),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ]
        if header:
            style.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8edf3")))
        t.setStyle(TableStyle(style))
        return t

    c = certificate
    story: list[Any] = [Paragraph(_text(c.title), title), Spacer(1, 3 * mm)]
    if c.oos_statement:
        story += [Paragraph(_text(c.oos_statement), alarm), Spacer(1, 2 * mm)]
    story += [Paragraph(_text(f"ALERT {alert}"), alarm) for alert in c.alerts]
    story.append(table([[k, v] for k, v in c.facts.items()], [40, 140], header=False))
    story += [Spacer(1, 4 * mm), Paragraph("Doses", heading)]
    story.append(
        table(
            [["Code", "Viable cells", "Volume", "Expires", "Status"]]
            + [[d["code"], d["cells"], d["volume"], d["expires"], d["status"]] for d in c.doses],
            [42, 32, 22, 42, 42],
        )
    )
    story += [Spacer(1, 4 * mm), Paragraph("Quality control", heading)]
    story.append(
        table(
            [["Test", "Method", "Limit", "Result", "Outcome", "Entered", "Reviewed"]]
            + [
                [
                    t["test"],
                    t["method"],
                    t["limit"],
                    t["result"],
                    t["outcome"],
                    t["entered"],
                    t["reviewed"],
                ]
                for t in c.tests
            ],
            [28, 28, 24, 22, 18, 32, 28],
        )
    )
    story += [Spacer(1, 4 * mm), Paragraph("Deviations", heading)]
    if c.deviations:
        story.append(
            table(
                [["Number", "Kind", "Status", "Description", "Root cause", "CAPA", "Closed"]]
                + [
                    [
                        d["number"],
                        d["kind"],
                        d["status"],
                        d["description"],
                        d["root_cause"],
                        d["capa"],
                        d["closed"],
                    ]
                    for d in c.deviations
                ],
                [22, 14, 16, 40, 30, 30, 28],
            )
        )
    else:
        story.append(Paragraph("None.", body))
    story += [Paragraph(_text(acceptance_line(a)), body) for a in c.acceptances]
    story += [
        Spacer(1, 3 * mm),
        Paragraph(_text(f"Chain-of-identity reconciliation: {c.reconciliation}."), body),
        Spacer(1, 4 * mm),
        Paragraph("Decisions and signatures", heading),
    ]
    for d in c.decisions:
        pending = f" (pending: {', '.join(d.pending_tests)})" if d.pending_tests else ""
        comment = f" Comment: {d.comment}" if d.comment else ""
        story.append(
            Paragraph(_text(f"{d.decision.value.replace('_', ' ')}{pending}.{comment}"), body)
        )
        story.append(Paragraph(_text(signature_line(d)), small))
        story.append(Spacer(1, 2 * mm))
    story.append(Paragraph(_text(f"Issued {c.issued_at} by Homeward."), small))
    buffer = io.BytesIO()
    SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        title=f"{c.title} {c.facts['Batch']}",
        author="Homeward",
    ).build(story)
    return buffer.getvalue()

"""The release certificate (REL-5): one set of facts, rendered as HTML (jinja2) and as PDF
(reportlab, pure Python). Times are UTC: a certificate travels between sites. A corrected
result shows what it replaced, by whom, when and why, and identifiers never break (AUD-9); an
out-of-specification supply shows its justification and notifications (REL-7)."""

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from app.batches import service as batches
from app.clock import utcnow
from app.config import Settings
from app.deviations import service as deviations
from app.documents import Correction, Document, corrections_of, ident
from app.errors import NotReleased
from app.identity.codes import DIN
from app.labels import service as labels
from app.labels.schemas import LabelReconciliation
from app.oos_supply import service as oos_supply
from app.oos_supply.schemas import OosSupplyPublic
from app.qc import service as qc
from app.qc.evaluation import value_text
from app.qc.schemas import QcTestPublic
from app.release import service as release
from app.release.gate import reconcile
from app.release.schemas import Decision, PhysicianAcceptancePublic, ReleasePublic
from app.signatures.schemas import SignaturePublic
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
    labels: str
    alerts: list[str]
    issued_at: str
    oos_supply: OosSupplyPublic | None = None

    @property
    def supply_lines(self) -> list[str]:
        """The OOS supply record as the certificate states it (REL-7)."""
        return supply_lines(self.oos_supply) if self.oos_supply is not None else []

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
            "Batch": ident(context.batch.batch_number),
            "Status": _status(context.batch.status, latest),
            "DIN": ident(context.biopsy.din, DIN(context.biopsy.din).check),
            "COI": ident(patient.coi),
            "Patient": f"{patient.family_name}, {patient.given_name}",
            "Born": patient.birth_date.isoformat(),
            "MRN": ident(patient.mrn),
            "Specification": f"version {view.specification_version}",
        },
        doses=[
            {
                "code": ident(d.code),
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
                "corrections": corrections_of(view.history, t.result_id),
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
                "number": ident(d.number),
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
        labels=_labels(labels.reconciliation(session, batch_id)),
        issued_at=utc(utcnow()),
        oos_supply=oos_supply.public(session, batch_id),
    )


def supply_lines(record: OosSupplyPublic) -> list[str]:
    lines = []
    if record.out_of_specification and record.missing:
        lines.append(f"OOS SUPPLY RECORD INCOMPLETE: missing {', '.join(record.missing)}.")
    for j in record.justifications:
        signed = manifestation(j.signature) if j.signature else "Not electronically signed."
        covers = "" if j.counts else " It does not cover the current failing results."
        lines.append(
            f"Treating physician {j.physician_name} justified the supply on "
            f"{utc(j.justified_at)} ({', '.join(j.out_of_specification_tests)}): immediate "
            f"significant hazard to the patient: {j.hazard}; recorded by {j.recorded_by}. "
            f"{signed}{covers}"
        )
    for n in record.notifications:
        who = "Sponsor" if n.recipient.value == "sponsor" else "Competent authority"
        covers = "" if n.counts else " It does not cover the current failing results."
        lines.append(
            f"{who} notified: {n.party}, on {utc(n.notified_at)}, reference {n.reference} "
            f"({', '.join(n.out_of_specification_tests)}); recorded by {n.recorded_by}.{covers}"
        )
    return lines


def correction_lines(corrections: list[Correction]) -> list[str]:
    return [c.sentence() for c in corrections]


def result_text(test: dict) -> str:
    """A result as the PDF prints it: the value, then every correction that led to it."""
    return "\n".join([test["result"], *correction_lines(test.get("corrections", []))])


def _labels(reconciled: LabelReconciliation) -> str:
    """Labels printed against vessels that exist (LBL-4), as the certificate states it."""
    text = (
        f"{reconciled.labelled} of {reconciled.live_vessels} vessels in use labelled; "
        f"{reconciled.labels_printed} labels printed ({reconciled.reprints} reprints, "
        f"{reconciled.voided} voided)"
    )
    if reconciled.unlabelled:
        text += f"; unlabelled: {', '.join(reconciled.unlabelled)}"
    return text


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
    return manifestation(decision.signature)


def manifestation(s: SignaturePublic) -> str:
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
    signed = manifestation(a.signature) if a.signature else "Not electronically signed."
    return (
        f"Treating physician {a.physician_name} accepted on {utc(a.accepted_at)}{accepted}"
        f"{note}; recorded by {a.recorded_by}. {signed}"
    )


def html(certificate: Certificate) -> str:
    template = templates.get_template("release/certificate.html")
    return template.render(
        c=certificate,
        signature_line=signature_line,
        acceptance_line=acceptance_line,
        correction_lines=correction_lines,
    )


def pdf(certificate: Certificate) -> bytes:
    """The certificate as an A4 PDF: the same facts as the HTML."""
    c = certificate
    doc = Document()
    doc.title(c.title)
    if c.oos_statement:
        doc.alarm(c.oos_statement)
    for alert in c.alerts:
        doc.alarm(f"ALERT {alert}")
    doc.table([[k, v] for k, v in c.facts.items()], [40, 140], header=False)
    doc.heading("Doses")
    doc.table(
        [["Code", "Viable cells", "Volume", "Expires", "Status"]]
        + [[d["code"], d["cells"], d["volume"], d["expires"], d["status"]] for d in c.doses],
        [42, 32, 22, 42, 42],
    )
    doc.heading("Quality control")
    columns = ("test", "method", "limit", "result", "outcome", "entered", "reviewed")
    doc.table(
        [["Test", "Method", "Limit", "Result", "Outcome", "Entered", "Reviewed"]]
        + [[result_text(t) if k == "result" else t[k] for k in columns] for t in c.tests],
        [26, 24, 22, 36, 16, 30, 26],
    )
    doc.heading("Deviations")
    if c.deviations:
        columns = ("number", "kind", "status", "description", "root_cause", "capa", "closed")
        doc.table(
            [["Number", "Kind", "Status", "Description", "Root cause", "CAPA", "Closed"]]
            + [[d[k] for k in columns] for d in c.deviations],
            [22, 14, 16, 40, 30, 30, 28],
        )
    else:
        doc.paragraph("None.")
    for a in c.acceptances:
        doc.paragraph(acceptance_line(a))
    if c.supply_lines:
        doc.heading("Out-of-specification supply (EU GMP Part IV §11.5)")
        for line in c.supply_lines:
            doc.paragraph(line)
    doc.space(3)
    doc.paragraph(f"Chain-of-identity reconciliation: {c.reconciliation}.")
    doc.paragraph(f"Label reconciliation: {c.labels}.")
    doc.heading("Decisions and signatures")
    for d in c.decisions:
        pending = f" (pending: {', '.join(d.pending_tests)})" if d.pending_tests else ""
        comment = f" Comment: {d.comment}" if d.comment else ""
        doc.paragraph(f"{d.decision.value.replace('_', ' ')}{pending}.{comment}")
        doc.paragraph(signature_line(d), small=True)
        doc.space()
    doc.paragraph(f"Issued {c.issued_at} by Homeward.", small=True)
    return doc.render(f"{c.title} {c.facts['Batch']}")

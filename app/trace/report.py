"""The trace report of a patient (COI-7, 21 CFR 1271.290): from each biopsy through every step,
vessel and dose to every infusion, and each dose back to its patient — as HTML and PDF. Its
identifiers (COI, MRN, DIN, batch numbers, vessel codes) never break across lines (AUD-9)."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from app.auth import service as auth
from app.clinic.models import Infusion
from app.clock import utcnow
from app.documents import Document, codes, ident
from app.identity.codes import DIN
from app.patients.models import Patient
from app.release import service as release
from app.steps.models import Step
from app.steps.repository import step_views
from app.storage import service as storage
from app.trace import service as trace
from app.web import templates


def utc(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class TraceReport:
    patient: dict[str, str]
    biopsies: list[dict[str, str]]
    steps: list[dict[str, str]]
    doses: list[dict[str, Any]]
    decisions: list[str]
    generated_at: str


def build(session: Session, patient_id: int) -> TraceReport:
    found = trace.patient_trace(session, patient_id)
    patient = session.get(Patient, patient_id)
    assert patient is not None
    batch_ids = [b["batch"]["id"] for b in found["biopsies"] if b["batch"]]
    steps = step_views(session, col(Step.batch_id).in_(batch_ids)) if batch_ids else []
    dose_ids = [d["id"] for d in found["doses"]]
    custody: dict[str, list[str]] = {d["code"]: [] for d in found["doses"]}
    for event, code, who in storage.history(session, dose_ids):
        temperature = f" at {event.temperature_c:g} °C" if event.temperature_c is not None else ""
        # A late entry says so, with when it was recorded and why (AUD-6).
        late = (
            f" (LATE ENTRY, recorded {utc(event.recorded_at)}: {event.late_reason})"
            if event.late_reason is not None and event.recorded_at is not None
            else ""
        )
        custody[code].append(
            f"{utc(event.occurred_at)} {event.event} to {event.to_location}{temperature} by {who}"
            f"{late}"
        )
    infusions = (
        {
            row.dose_id: row
            for row in session.execute(
                select(Infusion).where(col(Infusion.dose_id).in_(dose_ids))
            ).scalars()
        }
        if dose_ids
        else {}
    )
    people = auth.usernames(
        session, [u for i in infusions.values() for u in (i.administered_by, i.witness_id)]
    )
    decisions = [
        f"{d.batch_number}: {d.decision.value.replace('_', ' ')} by {d.signature.signed_by} "
        f"on {utc(d.signature.signed_at)}"
        + (" (record changed since signing)" if not d.signature.matches else "")
        for batch_id in batch_ids
        for d in release.decisions(session, batch_id)
    ]
    return TraceReport(
        patient={
            "Patient": f"{patient.family_name}, {patient.given_name}",
            "Born": patient.birth_date.isoformat(),
            "MRN": ident(patient.mrn),
            "COI": ident(patient.coi),
        },
        biopsies=[
            {
                "din": ident(b["din"], DIN(b["din"]).check),
                "collected": utc(b["collected_at"]),
                "batch": (
                    codes([b["batch"]["batch_number"], f"({b['batch']['status']})"], " ")
                    if b["batch"]
                    else ""
                ),
            }
            for b in found["biopsies"]
        ],
        steps=[
            {
                "when": utc(s.performed_at),
                "kind": s.kind.value,
                "who": s.performed_by,
                "inputs": codes(s.inputs),
                "outputs": codes([o.code for o in s.outputs]),
            }
            for s in steps
        ],
        doses=[
            {
                "code": ident(d["code"]),
                "batch": ident(d["batch_number"] or ""),
                "expires": utc(d["expires_at"]),
                "status": d["status"],
                "custody": custody[d["code"]],
                "infusion": _infusion_line(infusions.get(d["id"]), people),
            }
            for d in found["doses"]
        ],
        decisions=decisions,
        generated_at=utc(utcnow()),
    )


def _infusion_line(infusion: Infusion | None, people: dict[int, str]) -> str:
    if infusion is None:
        return ""
    return (
        f"infused {utc(infusion.administered_at)} by {people[infusion.administered_by]}, "
        f"witnessed by {people[infusion.witness_id]}"
    )


def html(report: TraceReport) -> str:
    return templates.get_template("trace/report.html").render(r=report)


def pdf(report: TraceReport) -> bytes:
    doc = Document()
    doc.title("Trace report")
    doc.table([[k, v] for k, v in report.patient.items()], [40, 140], header=False)
    doc.heading("Biopsies and batches")
    doc.table(
        [["DIN", "Collected", "Batch"]]
        + [[b["din"], b["collected"], b["batch"]] for b in report.biopsies],
        [50, 50, 80],
    )
    doc.heading("Processing steps")
    doc.table(
        [["When", "Step", "By", "Inputs", "Outputs"]]
        + [[s["when"], s["kind"], s["who"], s["inputs"], s["outputs"]] for s in report.steps],
        [30, 22, 22, 53, 53],
    )
    doc.heading("Doses, custody and infusions")
    doc.table(
        [["Dose", "Batch", "Expires", "Status", "Custody", "Infusion"]]
        + [
            [
                d["code"],
                d["batch"],
                d["expires"],
                d["status"],
                "\n".join(d["custody"]),
                d["infusion"],
            ]
            for d in report.doses
        ],
        [34, 18, 26, 18, 48, 36],
    )
    doc.heading("QA decisions")
    for line in report.decisions or ["None."]:
        doc.paragraph(line)
    doc.space()
    doc.paragraph(f"Generated {report.generated_at} by Homeward.", small=True)
    return doc.render(f"Trace report {report.patient['COI']}")

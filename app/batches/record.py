"""The electronic batch record: everything QA reads before release, in a fixed number of queries,
as JSON, as a page and as a PDF. Corrected values show what they replaced, by whom, when and why,
and identifiers never break across lines (AUD-9)."""

from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlmodel import Session, col

from app.audit import service as audit
from app.audit.actions import EntityType
from app.audit.schemas import AuditEventPublic
from app.batches import service as batches
from app.clock import utcnow
from app.config import Settings
from app.deviations import service as deviations
from app.documents import Correction, Document, codes, corrections_of, ident
from app.identity.codes import DIN
from app.labels import service as labels
from app.oos_supply import service as oos_supply
from app.oos_supply.schemas import OosSupplyPublic
from app.qc import service as qc
from app.release import certificate
from app.release import service as release
from app.signatures.schemas import SignaturePublic
from app.steps.clocks import culture_clock
from app.steps.models import Step
from app.steps.repository import step_views
from app.storage import service as storage
from app.trace import service as trace
from app.vessels.repository import vessels_with_parent_codes

SCAN_ACTIONS = ("scan.ok", "scan.identity_mismatch")


def batch_record(session: Session, settings: Settings, batch_id: int) -> dict[str, Any]:
    """The record of batch `batch_id`: identity, timeline of steps, lineage, custody, scans,
    culture clocks, QC with its history, deviations and QA's decisions."""
    context = batches.get(session, batch_id)
    vessel_rows = vessels_with_parent_codes(session, biopsy_id=context.biopsy.id or 0)
    vessel_ids = [vessel.id or 0 for vessel, _ in vessel_rows]
    scans = [
        AuditEventPublic.from_event(event).model_dump()
        for event in audit.events_of_entities(session, {EntityType.VESSEL: vessel_ids})
        if event.action in SCAN_ACTIONS
    ]
    custody = [
        storage.custody_public(event, code, username).model_dump()
        for event, code, username in storage.history(session, vessel_ids)
    ]
    clock = culture_clock(session, context, now=utcnow())
    quality = qc.qc_public(session, settings, batch_id)
    return {
        "batch": batches.detail(session, context).model_dump(),
        "patient": {
            "id": context.patient.id,
            "coi": context.patient.coi,
            "mrn": context.patient.mrn,
        },
        "biopsy": {
            "id": context.biopsy.id,
            "din": context.biopsy.din,
            "collected_at": context.biopsy.collected_at,
            "received_at": context.biopsy.received_at,
            "receipt_temperature_c": context.biopsy.receipt_temperature_c,
            "receipt_recorded_at": context.biopsy.receipt_recorded_at,
            "receipt_late": context.biopsy.receipt_late_reason is not None,
            "receipt_late_reason": context.biopsy.receipt_late_reason,
        },
        "steps": [s.model_dump() for s in step_views(session, col(Step.batch_id) == batch_id)],
        "lineage": trace.lineage(session, batch_id)["vessels"],
        "custody": custody,
        "scans": scans,
        "culture": clock.as_dict(),
        "qc": quality.model_dump(),
        # Every correction of a result in force: original, new value, who, when, why (AUD-9).
        "corrections": [
            {"test": t.test} | asdict(c)
            for t in quality.tests
            for c in corrections_of(quality.history, t.result_id)
        ],
        "deviations": [d.model_dump() for d in deviations.find(session, batch_id=batch_id)],
        "releases": [r.model_dump() for r in release.decisions(session, batch_id)],
        "physician_acceptances": [a.model_dump() for a in release.acceptances(session, batch_id)],
        "labels": labels.reconciliation(session, batch_id).model_dump(),
        "oos_supply": oos_supply.public(session, batch_id).model_dump(),
    }


def _utc(moment: datetime | None) -> str:
    return certificate.utc(moment)


def _correction(entry: dict[str, Any]) -> str:
    return Correction(**{k: v for k, v in entry.items() if k != "test"}).sentence()


def _value(test: dict[str, Any]) -> str:
    if test["value"] is None:
        return "pending"
    return f"{test['value']} {test['unit'] or ''}".strip()


def pdf(record: dict[str, Any]) -> bytes:
    """The batch record as an A4 PDF: identity, steps, vessels, custody, QC with every
    correction, deviations, decisions and the OOS supply record."""
    batch, patient = record["batch"], record["patient"]
    doc = Document()
    doc.title(f"Batch record {batch['batch_number']}")
    doc.table(
        [
            ["Batch", ident(batch["batch_number"])],
            ["Status", str(batch["status"]).replace("_", " ")],
            ["DIN", ident(batch["din"], DIN(batch["din"]).check)],
            ["COI", ident(patient["coi"])],
            ["MRN", ident(patient["mrn"])],
            ["Specification", f"version {record['qc']['specification_version']}"],
        ],
        [40, 140],
        header=False,
    )
    doc.heading("Processing steps")
    doc.table(
        [["When", "Step", "By", "Inputs", "Outputs"]]
        + [
            [
                _utc(s["performed_at"]) + (" (late entry)" if s["late"] else ""),
                str(s["kind"]),
                s["performed_by"],
                codes(s["inputs"]),
                codes([o["code"] for o in s["outputs"]]),
            ]
            for s in record["steps"]
        ],
        [32, 22, 22, 52, 52],
    )
    doc.heading("Vessels")
    doc.table(
        [["Code", "Kind", "Status", "Passage", "Parent"]]
        + [
            [
                ident(v["code"]),
                str(v["kind"]).replace("_", " "),
                str(v["status"]),
                "" if v["passage"] is None else str(v["passage"]),
                ident(v["parent_code"] or ""),
            ]
            for v in record["lineage"]
        ],
        [46, 30, 26, 18, 46],
    )
    doc.heading("Custody")
    doc.table(
        [["When", "Vessel", "Event", "To", "°C", "By"]]
        + [
            [
                _utc(c["occurred_at"])
                + (f" (LATE, recorded {_utc(c['recorded_at'])}: {c['late_reason']})"
                   if c["late"] else ""),
                ident(c["vessel_code"]),
                str(c["event"]),
                c["to_location"],
                "" if c["temperature_c"] is None else f"{c['temperature_c']:g}",
                c["recorded_by"],
            ]
            for c in record["custody"]
        ],
        [40, 44, 20, 34, 12, 30],
    )  # fmt: skip
    doc.heading("Quality control")
    corrected: dict[str, list[str]] = {}
    for entry in record["corrections"]:
        corrected.setdefault(entry["test"], []).append(_correction(entry))
    doc.table(
        [["Test", "Limit", "Result", "Outcome", "Entered"]]
        + [
            [
                t["name"],
                t["limit"],
                "\n".join([_value(t), *corrected.get(t["test"], [])]),
                str(t["outcome"]).upper(),
                f"{t['entered_by']} {_utc(t['entered_at'])}" if t["entered_by"] else "",
            ]
            for t in record["qc"]["tests"]
        ],
        [30, 30, 62, 18, 40],
    )
    doc.heading("Deviations")
    doc.table(
        [["Number", "Kind", "Status", "Description"]]
        + [
            [ident(d["number"]), str(d["kind"]), str(d["status"]), d["description"]]
            for d in record["deviations"]
        ],
        [30, 22, 22, 106],
    )
    doc.heading("Decisions and signatures")
    for d in record["releases"]:
        doc.paragraph(f"{str(d['decision']).replace('_', ' ')}. {d['comment'] or ''}")
        doc.paragraph(
            certificate.manifestation(SignaturePublic.model_validate(d["signature"])), small=True
        )
    supply = record["oos_supply"]
    if supply["out_of_specification"]:
        doc.heading("Out-of-specification supply (EU GMP Part IV §11.5)")
        for line in certificate.supply_lines(OosSupplyPublic.model_validate(supply)):
            doc.paragraph(line)
    doc.space()
    doc.paragraph(f"Generated {_utc(utcnow())} by Homeward.", small=True)
    return doc.render(f"Batch record {batch['batch_number']}")

"""The batch record page (issue 12 items 1 and 4): status badge and next actions in plain words, the
timeline, lineage tree, QC, deviations, custody, labels (print, reprint, void) and, for QA, the
release gate with its dialog, QA's dispositions (hold, lift the hold, destroy: refused on the
record itself) and the audit trail as a readable table. Every figure comes from
the services the JSON API uses; this module only arranges them for a person."""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from app import pageflow
from app.audit.schemas import AuditEventPublic
from app.auth import service as auth
from app.auth.permissions import Permission
from app.auth.service import People, Person, Principal
from app.batches import dispositions, record, service
from app.batches.dispositions import lift_allowed
from app.batches.service import BatchContext
from app.batches.states import BatchStatus
from app.config import Settings, SettingsDep
from app.deviations import service as deviations
from app.deviations.schemas import DeviationCreate
from app.deviations.states import DeviationKind
from app.errors import HomewardError
from app.labels import service as labels
from app.labels.schemas import BatchPrintRequest, PrintFormat, SheetFormat, VesselPrintRequest
from app.labels.service import Printed
from app.patients.schemas import VoidRequest
from app.pipeline import Router, SessionDep
from app.release import service as release
from app.release.schemas import Decision, ReleaseGatePublic
from app.signatures.schemas import Meaning
from app.types import CodeInput, Id
from app.web import (
    form_model,
    local_time,
    number,
    page_require,
    refusals_shown_on,
    render_refusable,
)

router = Router(include_in_schema=False)

Reader = Annotated[Principal, Depends(page_require(Permission.BATCH_READ))]
Printer = Annotated[
    Principal, Depends(refusals_shown_on("batches/refused.html", Permission.LABEL_PRINT))
]
Voider = Annotated[
    Principal, Depends(refusals_shown_on("batches/refused.html", Permission.LABEL_VOID))
]
Disposer = Annotated[
    Principal, Depends(refusals_shown_on("batches/refused.html", Permission.BATCH_DESTROY))
]
Opener = Annotated[
    Principal, Depends(refusals_shown_on("batches/refused.html", Permission.DEVIATION_OPEN))
]

S = BatchStatus

# The badge of each state: its tone (a colour, always with the words) and what it means.
BADGES: dict[BatchStatus, tuple[str, str]] = {
    S.REGISTERED: ("progress", "Registered — waiting for isolation"),
    S.ISOLATION: ("progress", "In isolation"),
    S.EXPANSION: ("progress", "In expansion"),
    S.HARVESTED: ("progress", "Harvested — waiting for formulation"),
    S.QUARANTINE: ("waiting", "Quarantine — awaiting QA's decision"),
    S.RELEASED: ("good", "Released"),
    S.CONDITIONALLY_RELEASED: ("waiting", "Conditionally released — tests pending"),
    S.ISSUED: ("good", "Issued — doses dispatched"),
    S.COMPLETED: ("ended", "Completed"),
    S.ON_HOLD: ("bad", "On hold — nothing moves until QA decides"),
    S.REJECTED: ("bad", "Rejected — not for infusion"),
    S.DESTROYED: ("ended", "Destroyed"),
}

# What a person does to take the batch into each next state, and who does it.
NEXT_ACTIONS: dict[BatchStatus, str] = {
    S.ISOLATION: "Technician: record the isolation step at the scan station.",
    S.EXPANSION: "Technician: record the first passage.",
    S.HARVESTED: "Technician: record the harvest.",
    S.QUARANTINE: "Technician: record the formulation of the doses; QA then decides.",
    S.RELEASED: "QA: release the batch with an e-signature once every gate condition is met.",
    S.CONDITIONALLY_RELEASED: "QA: release it conditionally, naming the tests still pending.",
    S.REJECTED: "QA: reject the batch (e-signed).",
    S.ISSUED: "Technician: dispatch the first dose to the clinic.",
    S.COMPLETED: "Nothing to do: it completes when every dose is infused or disposed of.",
    S.ON_HOLD: "Anyone: open a deviation if something went wrong (the batch goes on hold).",
    S.DESTROYED: "QA: destroy the batch, with a reason.",
}
LIFT_HOLD = "QA: close the batch's open deviations; closing the last one lifts the hold."


def next_actions(status: BatchStatus, allowed: list[BatchStatus]) -> list[str]:
    """The batch's allowed next states (from its lifecycle) as things a person does."""
    if status is S.ON_HOLD:
        return ([LIFT_HOLD] if lift_allowed(status, allowed) else []) + [
            NEXT_ACTIONS[a] for a in (S.REJECTED, S.DESTROYED) if a in allowed
        ]
    return [NEXT_ACTIONS[a] for a in sorted(allowed, key=list(NEXT_ACTIONS).index)]


@dataclass
class Node:
    vessel: dict[str, Any]
    children: list["Node"] = field(default_factory=list)


def lineage_tree(vessels: list[dict[str, Any]]) -> list[Node]:
    """The batch's vessels as a tree from the biopsy tube, children in the order made."""
    nodes = {v["code"]: Node(v) for v in vessels}
    roots = []
    for vessel in vessels:
        parent = nodes.get(vessel["parent_code"] or "")
        (parent.children if parent else roots).append(nodes[vessel["code"]])
    return roots


@dataclass(frozen=True)
class Change:
    field: str
    before: str | None  # None: the field was not there before
    after: str | None


@dataclass(frozen=True)
class TrailRow:
    seq: int
    occurred_at: datetime
    actor: str
    action: str  # the typed action code, for the auditor
    what: str  # the action in words
    entity: str
    changes: list[Change]
    reason: str | None


_INSTANT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)")


def _shown(value: Any, zone: str) -> str:
    """A recorded value in words: numbers grouped, instants in local time with the zone."""
    if isinstance(value, dict):
        return "; ".join(f"{k.replace('_', ' ')}: {_shown(v, zone)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_shown(v, zone) for v in value) or "none"
    if value is None:
        return "—"
    if isinstance(value, str) and _INSTANT.fullmatch(value):
        return local_time(datetime.fromisoformat(value), zone)
    return number(value)


def audit_rows(events: list[AuditEventPublic], zone: str) -> list[TrailRow]:
    """Audit events as a person reads them: who, when, what, each field from → to, why."""
    rows = []
    for event in events:
        old, new = event.old_values or {}, event.new_values or {}
        changes = [
            Change(
                name.replace("_", " "),
                _shown(old[name], zone) if name in old else None,
                _shown(new[name], zone) if name in new else None,
            )
            for name in dict.fromkeys([*old, *new])
            if old.get(name) != new.get(name) or name not in old
        ]
        rows.append(
            TrailRow(
                seq=event.seq,
                occurred_at=event.occurred_at,
                actor=event.actor,
                action=event.action,
                what=event.action.replace(".", " ").replace("_", " ").capitalize(),
                entity=f"{event.entity_type.replace('_', ' ')} {event.entity_id or ''}".strip(),
                changes=changes,
                reason=event.reason,
            )
        )
    return rows


@dataclass(frozen=True)
class Moment:
    at: datetime
    what: str
    who: Person | None
    note: str = ""  # how `who` took part when it is not the act itself ("recorded by")


def record_people(
    session: Session, context: BatchContext, found: dict[str, Any], *also: str | None
) -> People:
    """Everyone the batch record names as having done something (and the usernames `also`),
    in one query (display only: the record and the trail keep usernames)."""
    usernames = [*also, *(s["performed_by"] for s in found["steps"])]
    usernames += [c["recorded_by"] for c in found["custody"]]
    usernames += [t["entered_by"] for t in found["qc"]["tests"]]
    usernames += [r["entered_by"] for r in found["qc"]["history"]]
    usernames += [c["by"] for c in found["corrections"]]
    biopsy = context.biopsy
    ids = [biopsy.created_by, biopsy.received_by, context.batch.created_by]
    return auth.people(session, ids=ids, usernames=usernames)


def timeline(found: dict[str, Any], context: BatchContext, people: People) -> list[Moment]:
    """The batch's life in time order: biopsy, registration, steps, custody, decisions, each
    with who did it when the record knows."""
    biopsy, batch = found["biopsy"], found["batch"]
    collected = Moment(
        biopsy["collected_at"],
        "Biopsy collected",
        people.of(context.biopsy.created_by),
        "recorded by",
    )
    moments = [collected]
    if biopsy["received_at"]:
        moments.append(
            Moment(
                biopsy["received_at"],
                "Biopsy received in the lab",
                people.of(context.biopsy.received_by),
            )
        )
    moments.append(
        Moment(
            batch["created_at"],
            f"Batch {batch['batch_number']} registered",
            people.of(context.batch.created_by),
        )
    )
    moments += [
        Moment(
            s["performed_at"],
            f"{s['kind'].replace('_', ' ').capitalize()} step",
            people.named(s["performed_by"]),
        )
        for s in found["steps"]
    ]
    moments += [
        Moment(
            c["occurred_at"],
            f"Vessel {c['vessel_code']} {c['event']} to {c['to_location']}",
            people.named(c["recorded_by"]),
        )
        for c in found["custody"]
    ]
    moments += [
        Moment(
            r["signature"]["signed_at"],
            f"QA decision: {r['decision'].replace('_', ' ')}",
            # The name as signed (SIG-2), not as the account reads today.
            Person(r["signature"]["signed_by"], r["signature"]["username"]),
        )
        for r in found["releases"]
    ]
    return sorted(moments, key=lambda m: m.at)


@dataclass(frozen=True)
class ReleaseDialog:
    """What QA sees before signing: each gate (from release.gate, never recomputed here)."""

    release: ReleaseGatePublic
    conditional: ReleaseGatePublic | None  # with every test still without a result pending
    reject: ReleaseGatePublic
    pending: list[str]
    meanings: dict[Decision, Meaning]  # each decision's meaning, fixed by the act (SIG-6)

    @property
    def decidable(self) -> bool:
        """Some decision may be taken from the batch's state (the gate's own status check)."""
        gates = [self.release, self.reject] + ([self.conditional] if self.conditional else [])
        return any(c.check == "status" and c.met for g in gates for c in g.checks)


def release_dialog(
    session: Session, settings: Settings, principal: Principal, found: dict[str, Any]
) -> ReleaseDialog | None:
    if Permission.BATCH_RELEASE not in principal.permissions:
        return None
    batch_id = found["batch"]["id"]
    pending = [t["test"] for t in found["qc"]["tests"] if t["value"] is None]

    def gate(decision: Decision, named: list[str]) -> ReleaseGatePublic:
        return release.checklist(
            session,
            settings,
            actor=principal.user,
            batch_id=batch_id,
            decision=decision,
            pending_tests=named,
        )

    return ReleaseDialog(
        release=gate(Decision.RELEASE, []),
        conditional=gate(Decision.CONDITIONAL_RELEASE, pending) if pending else None,
        reject=gate(Decision.REJECT, []),
        pending=pending,
        meanings=release.MEANINGS,
    )


def record_page(
    request: Request,
    session: Session,
    settings: Settings,
    principal: Principal,
    batch_id: int,
    *,
    refusal: HomewardError | None = None,
) -> HTMLResponse:
    """The record read afresh, with the refusal of what was just asked (kept on the record,
    with its status) when there is one."""
    context = service.get(session, batch_id)
    found = record.batch_record(session, settings, batch_id)
    status = S(found["batch"]["status"])
    allowed = found["batch"]["allowed_next"]
    trail = (
        audit_rows(
            [AuditEventPublic.from_event(e) for e in service.trail(session, context)],
            settings.display_timezone,
        )
        if Permission.PATIENT_AUDIT_READ in principal.permissions
        else None
    )
    vessel_ids = [v["id"] for v in found["lineage"]]
    prints = labels.history(session, vessel_ids=vessel_ids)
    people = record_people(
        session,
        context,
        found,
        *(who for p in prints for who in (p.printed_by, p.voided_by)),
    )
    return render_refusable(
        request,
        "batches/record.html",
        refusal,
        principal=principal,
        record=found,
        patient=context.patient,
        badge=BADGES[status],
        next_actions=next_actions(status, allowed),
        moments=timeline(found, context, people),
        people=people,
        tree=lineage_tree(found["lineage"]),
        prints=prints,
        printers=labels.printers(session),
        print_formats=[f.value for f in PrintFormat],
        sheet_formats=[f.value for f in SheetFormat],
        dialog=release_dialog(session, settings, principal, found),
        trail=trail,
        disposition=dispositions.last_disposition(session, batch_id),
        acts=dispositions.acts(principal, status, allowed),
        deviation_kinds=[k.value for k in DeviationKind],
    )


@router.get("/batches/{batch_id}", response_class=HTMLResponse)
def batch_record(
    request: Request, batch_id: Id, session: SessionDep, settings: SettingsDep, principal: Reader
) -> HTMLResponse:
    """The electronic batch record as a page: what QA reads before release."""
    return record_page(request, session, settings, principal, batch_id)


async def _act_on_record(
    request: Request,
    session: Session,
    settings: Settings,
    principal: object,
    batch_id: int,
    act: Callable[[Principal], object],
    anchor: str,
) -> Response:
    """`act` in its own unit of work, then back to the record at `anchor`; a refusal is shown
    on the record itself, read afresh, with nothing changed (ADR 0026's pageflow)."""
    signed_in = await pageflow.signed_in(session, principal)
    outcome = await pageflow.attempt(session, partial(act, signed_in))
    if not isinstance(outcome, HomewardError):
        return RedirectResponse(f"/batches/{batch_id}#{anchor}", status_code=303)
    # The detached copy refusals_shown_on keeps: the rollback expired the session's user row.
    shown = getattr(request.state, "principal", signed_in)
    page = partial(record_page, request, session, settings, shown, batch_id, refusal=outcome)
    return await pageflow.read(session, page)


DISPOSE: dict[str, Callable[..., object]] = {
    dispositions.HOLD.path: service.hold,
    dispositions.LIFT.path: service.lift_hold,
    dispositions.DESTROY.path: service.destroy,
}


async def _dispose(
    request: Request,
    session: Session,
    settings: Settings,
    principal: object,
    batch_id: int,
    act: dispositions.Act,
    reason: str,
) -> Response:
    """A disposition as the API takes it (VoidRequest: the reason is required)."""

    def dispose(signed_in: Principal) -> object:
        data = form_model(VoidRequest, reason=reason.strip() or None)
        move = DISPOSE[act.path]
        return move(session, actor=signed_in.user, batch_id=batch_id, reason=data.reason)

    return await _act_on_record(
        request, session, settings, principal, batch_id, dispose, "disposition"
    )


def _printed(printed: Printed, batch_id: int) -> Response:
    """A print's answer on a page: the document itself, or back to the record when it went to
    a network printer (the record's label list shows the job)."""
    if printed.job is not None:
        return RedirectResponse(f"/batches/{batch_id}#labels", status_code=303)
    document = printed.document
    return Response(
        document.body,
        media_type=document.media_type,
        headers={"Content-Disposition": f'inline; filename="{document.filename}"'},
    )


PrintRequest = TypeVar("PrintRequest", BatchPrintRequest, VesselPrintRequest)


def _print_request(
    schema: type[PrintRequest], fmt: str, printer_id: str, reason: str
) -> PrintRequest:
    """A print form as the API's request: a chosen network printer takes ZPL, else `fmt`."""
    device = int(printer_id) if printer_id.strip().isdigit() else None
    return form_model(
        schema, format=None if device else fmt, printer_id=device, reason=reason.strip() or None
    )


FormatField = Annotated[str, Form(max_length=8)]
Reason = Annotated[str, Form(max_length=4000)]
PrinterField = Annotated[str, Form(max_length=12)]


@router.post("/batches/{batch_id}/labels/print")
def print_batch(
    batch_id: Id,
    session: SessionDep,
    principal: Printer,
    settings: SettingsDep,
    format: FormatField = "pdf",
    printer_id: PrinterField = "",
    reason: Reason = "",
) -> Response:
    """Every label of the batch's vessels in use, printed and logged (LBL-5)."""
    data = _print_request(BatchPrintRequest, format, printer_id, reason)
    printed = labels.print_batch(
        session, settings, actor=principal.user, batch_id=batch_id, request=data
    )
    return _printed(printed, batch_id)


@router.post("/batches/{batch_id}/vessels/{code}/print")
def print_vessel(
    batch_id: Id,
    code: CodeInput,
    session: SessionDep,
    principal: Printer,
    settings: SettingsDep,
    format: FormatField = "pdf",
    printer_id: PrinterField = "",
    reason: Reason = "",
) -> Response:
    """One vessel's label printed, or reprinted with its reason (LBL-5)."""
    data = _print_request(VesselPrintRequest, format, printer_id, reason)
    printed = labels.print_vessel(session, settings, actor=principal.user, code=code, request=data)
    return _printed(printed, batch_id)


@router.post("/batches/{batch_id}/labels/{label_id}/void")
def void_label(
    batch_id: Id,
    label_id: Id,
    session: SessionDep,
    principal: Voider,
    reason: Reason = "",
) -> RedirectResponse:
    """Void a printed label (misprint, torn, lost) with its reason."""
    data = form_model(VoidRequest, reason=reason.strip() or None)
    labels.void(session, actor=principal.user, label_id=label_id, reason=data.reason)
    return RedirectResponse(f"/batches/{batch_id}#labels", status_code=303)


@router.post("/batches/{batch_id}/hold", response_class=HTMLResponse)
async def hold(
    request: Request,
    batch_id: Id,
    session: SessionDep,
    settings: SettingsDep,
    principal: Disposer,
    reason: Reason = "",
) -> Response:
    """QA puts the batch on hold, with a reason (as POST /api/v1/batches/{id}/hold)."""
    act = dispositions.HOLD
    return await _dispose(request, session, settings, principal, batch_id, act, reason)


@router.post("/batches/{batch_id}/lift-hold", response_class=HTMLResponse)
async def lift_hold(
    request: Request,
    batch_id: Id,
    session: SessionDep,
    settings: SettingsDep,
    principal: Disposer,
    reason: Reason = "",
) -> Response:
    """QA lifts the hold, with a reason; refused while a deviation of the batch is open."""
    act = dispositions.LIFT
    return await _dispose(request, session, settings, principal, batch_id, act, reason)


@router.post("/batches/{batch_id}/destroy", response_class=HTMLResponse)
async def destroy(
    request: Request,
    batch_id: Id,
    session: SessionDep,
    settings: SettingsDep,
    principal: Disposer,
    reason: Reason = "",
) -> Response:
    """QA destroys the batch, with a reason; nothing comes back from it."""
    act = dispositions.DESTROY
    return await _dispose(request, session, settings, principal, batch_id, act, reason)


@router.post("/batches/{batch_id}/deviations", response_class=HTMLResponse)
async def open_deviation(
    request: Request,
    batch_id: Id,
    session: SessionDep,
    settings: SettingsDep,
    principal: Opener,
    kind: Annotated[str, Form(max_length=40)] = DeviationKind.PROCESS.value,
    description: Reason = "",
) -> Response:
    """Anyone on the batch opens a deviation (as POST /api/v1/batches/{id}/deviations); the
    batch goes on hold until QA closes it."""

    def open_it(signed_in: Principal) -> object:
        data = form_model(DeviationCreate, kind=kind, description=description.strip() or None)
        return deviations.create(session, actor=signed_in.user, batch_id=batch_id, data=data)

    return await _act_on_record(
        request, session, settings, principal, batch_id, open_it, "deviations"
    )

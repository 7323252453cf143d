"""Builders shared by the release tests: QA users with a printed name of their own, decisions
taken as a given user, deviations opened and closed, OOS batches, row counts and PDF text."""

import json
import re
from datetime import UTC, datetime
from typing import Any

import pypdfium2 as pdfium
from httpx import Response
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.auth import service as auth
from app.auth.models import User
from app.auth.permissions import Role
from app.batches.models import Batch
from app.release.models import ReleaseDecision
from app.signatures.models import Signature
from tests.helpers import PASSWORD, Api, failing_value, ok, qualify, unique

PHYSICIAN = "Dr. Ada Okonkwo-Lindqvist"

# The phrase each gate problem is stated with (app/release/gate.py), to tell them apart.
GATE_PROBLEMS = {
    "failed": "out of specification:",
    "pending": "no result yet:",
    "deviation": "deviation(s) not closed:",
    "vessels": "vessels not accounted for:",
    "no_dose": "no dose to release",
    "unreviewed": "critical results not reviewed",
    "unlabelled": "doses without a printed label",
}


def qa_user(
    api: Api, *, roles: tuple[Role, ...] = (Role.QA,), full_name: str = "Quirina Assunta Vega"
) -> tuple[User, dict[str, str]]:
    """A new user with `roles` and a printed name unlike their username: (user, headers)."""
    user = auth.create_user(
        api.db,
        api.settings,
        actor="test",
        username=unique("signer-"),
        full_name=full_name,
        password=PASSWORD,
        roles=list(roles),
    )
    qualify(api.db, user)  # SEC-5: the builder qualifies as make_user does
    api.db.commit()
    return user, api.headers_for(user)


def decide_as(
    api: Api,
    headers: dict[str, str],
    batch_id: int,
    decision: str = "release",
    *,
    password: str = PASSWORD,
    **extra: Any,
) -> Response:
    body = {"decision": decision, "password": password} | extra
    return api.client.post(f"/api/v1/batches/{batch_id}/release", headers=headers, json=body)


def gate_problems(detail: str) -> set[str]:
    return {name for name, phrase in GATE_PROBLEMS.items() if phrase in detail}


def status_of(api: Api, batch_id: int) -> str:
    return ok(api.get(Role.QA, f"/batches/{batch_id}"))["status"]


def open_deviation(api: Api, batch_id: int, description: str = "Incubator door left ajar") -> dict:
    """A deviation opened by hand (the batch goes on hold)."""
    return ok(
        api.post(Role.TECHNICIAN, f"/batches/{batch_id}/deviations", {"description": description}),
        201,
    )


def close_deviations(api: Api, batch_id: int) -> list[dict]:
    """QA closes every unresolved deviation of the batch (its hold lifts with the last one)."""
    closed = []
    for deviation in ok(api.get(Role.QA, f"/batches/{batch_id}/deviations")):
        if deviation["status"] == "closed":
            continue
        body = {
            "password": PASSWORD,
            "investigation": "Investigated by QA",
            "root_cause": "Identified",
            "capa": "Retraining",
        }
        closed.append(ok(api.post(Role.QA, f"/deviations/{deviation['id']}/close", body)))
    return closed


def lift_hold(api: Api, batch_id: int) -> dict:
    return ok(api.post(Role.QA, f"/batches/{batch_id}/lift-hold", {"reason": "QA assessed"}))


def row(api: Api, batch_id: int, test: str) -> dict:
    (found,) = [r for r in api.qc(batch_id)["tests"] if r["test"] == test]
    return found


def fail(api: Api, batch_id: int, test: str) -> dict:
    """Enter a failing result for `test` (opening an OOS deviation, holding the batch), reviewed
    by a second person as every critical result must be before release (REL-6)."""
    result = ok(api.result(batch_id, test, failing_value(row(api, batch_id, test))), 201)
    assert result["outcome"] == "fail", result
    ok(api.review(result["id"]))
    return result


def accept(api: Api, batch_id: int, name: str = PHYSICIAN) -> dict:
    body = {
        "physician_name": name,
        "accepted_at": datetime.now(UTC).isoformat(),
        "note": "Patient informed; no alternative",
        "password": PASSWORD,
    }
    return ok(api.post(Role.CLINICIAN, f"/batches/{batch_id}/physician-acceptance", body), 201)


def oos_ready(api: Api, test: str = "endotoxin") -> tuple[dict, list[str]]:
    """A batch in quarantine whose `test` failed (its OOS deviation closed), every other test
    passed, with the physician's acceptance recorded after the failure: (batch, dose codes)."""
    batch, codes = api.formulated()
    api.pass_qc(batch["id"], skip=(test,))
    fail(api, batch["id"], test)
    close_deviations(api, batch["id"])
    assert status_of(api, batch["id"]) == "quarantine"
    accept(api, batch["id"])
    api.prepare_release(batch["id"])
    return batch, codes


def counts(api: Api, batch_id: int) -> dict[str, Any]:
    """What a refused decision must leave as it was (every role's cached user logged in first,
    so that a first login is not counted as a change)."""
    for role in Role:
        api.as_role(role)
    db = api.db

    def count(query: Any) -> int:
        return db.execute(query).scalar_one()

    return {
        "status": db.execute(select(Batch.status).where(Batch.id == batch_id)).scalar_one(),
        "decisions": count(
            select(func.count())
            .select_from(ReleaseDecision)
            .where(ReleaseDecision.batch_id == batch_id)
        ),
        "signatures": count(
            select(func.count()).select_from(Signature).where(Signature.record_type == "release")
        ),
        "audit": count(select(func.count()).select_from(AuditEvent)),
    }


def new_values(event: AuditEvent) -> dict[str, Any]:
    return json.loads(event.new_values or "{}")


def pdf_text(content: bytes) -> str:
    pdf = pdfium.PdfDocument(content)
    try:
        return "".join(page.get_textpage().get_text_range() for page in pdf)
    finally:
        pdf.close()


def squash(text: str) -> str:
    """Without any whitespace: a PDF wraps table cells wherever the column ends."""
    return re.sub(r"\s+", "", text)

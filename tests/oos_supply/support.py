"""Builders of the OOS supply record (REL-7) through the public API."""

from datetime import UTC, datetime
from typing import Any

from app.auth.permissions import Role
from tests.helpers import PASSWORD, Api, ok

DISPATCH = {"event": "dispatched", "location": "Courier", "temperature_c": 4.5}
HAZARD = "Rapidly progressing weakness; no alternative treatment; not infusing is the greater risk"


def justify(api: Api, batch_id: int, **extra: Any) -> Any:
    body = {
        "physician_name": "Dr. Ada Okonkwo-Lindqvist",
        "hazard": HAZARD,
        "justified_at": datetime.now(UTC).isoformat(),
        "password": PASSWORD,
    } | extra
    return api.post(Role.CLINICIAN, f"/batches/{batch_id}/oos-supply/justification", body)


def notify(api: Api, batch_id: int, recipient: str, **extra: Any) -> Any:
    body = {
        "recipient": recipient,
        "party": "Sponsor: Homeward Trials NV" if recipient == "sponsor" else "FAMHP",
        "notified_at": datetime.now(UTC).isoformat(),
        "reference": f"{recipient.upper()}-2026-0042",
    } | extra
    return api.post(Role.QA, f"/batches/{batch_id}/oos-supply/notifications", body)


def record_oos_supply(api: Api, batch_id: int) -> dict:
    """The whole OOS supply record: justification, sponsor and authority notifications."""
    ok(justify(api, batch_id), 201)
    ok(notify(api, batch_id, "sponsor"), 201)
    return ok(notify(api, batch_id, "authority"), 201)


def dispatch(api: Api, code: str) -> Any:
    return api.post(Role.TECHNICIAN, f"/vessels/{code}/custody", DISPATCH)

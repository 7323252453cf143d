"""The walk's scratch records: its own users and patients, recognisable and never real (ADR 0025).

Every patient the walk registers has an MRN beginning with `OQ-VAL-` and the family name
`OQ VALIDATION`; every user it creates is named `oq-<run>-<role>` and is deactivated when the walk
ends. The walk writes only to records it created itself, and reads lists only to find them.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from app.validation.walk import API, PreconditionFailed, Walk, new_password, sign_in

MRN_PREFIX = "OQ-VAL-"
FAMILY_NAME = "OQ VALIDATION"

# key -> roles of the scratch users the walk creates (the admin signs in with the site's account).
USERS: dict[str, list[str]] = {
    "tech": ["technician"],
    "techqa": ["technician", "qa"],  # enters a result, then may not release (REL-4)
    "qa": ["qa"],  # releases
    "reviewer": ["qa"],  # the second person who reviews results (REL-6)
    "clinician": ["clinician"],
    "witness": ["clinician"],
}


def now(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def full_name(walk: Walk, key: str) -> str:
    """The printed name of the scratch user `key` (what its signatures show)."""
    return f"OQ {walk.run_id} {key}"


def preconditions(walk: Walk, admin_username: str, admin_password: str) -> dict[str, Any]:
    """Check the install can be walked and create the scratch users; what the report states as
    the environment. Raises PreconditionFailed with a sentence for the site's QA."""
    health = walk.http.get(f"{API}/health")
    if health.status_code != 200 or health.json().get("database") != "ok":
        raise PreconditionFailed(f"GET {API}/health answered {health.status_code}: {health.text}")
    walk.actors["admin"] = sign_in(walk.http, admin_username, admin_password, "admin")
    me = walk.http.get(f"{API}/auth/me", headers=walk.actors["admin"].headers).json()
    if "admin" not in me.get("roles", []):
        raise PreconditionFailed(f"{admin_username} does not hold the admin role")
    created = {}
    for key, roles in USERS.items():
        username, password = f"oq-{walk.run_id}-{key}".lower(), new_password()
        answer = walk.http.post(
            f"{API}/users",
            json={
                "username": username,
                "full_name": full_name(walk, key),
                "password": password,
                "roles": roles,
            },
            headers=walk.actors["admin"].headers,
        )
        if answer.status_code != 201:
            raise PreconditionFailed(f"the admin cannot create {username}: {answer.text[:200]}")
        created[key] = answer.json()["id"]
        walk.actors[key] = sign_in(walk.http, username, password, "+".join(roles))
    walk.state["user_ids"] = created
    specification = _approved_specification(walk)
    openapi = walk.http.get("/openapi.json")
    info = openapi.json().get("info", {}) if openapi.status_code == 200 else {}
    return {
        "software": f"{info.get('title', 'Homeward')} {info.get('version', 'unknown')}",
        "specification": f"version {specification['version']} (id {specification['id']})",
        "admin": admin_username,
        "scratch users": ", ".join(f"oq-{walk.run_id}-{key}".lower() for key in USERS),
        "scratch patients": f"MRN {MRN_PREFIX}{walk.run_id}-…, family name {FAMILY_NAME}",
    }


def _approved_specification(walk: Walk) -> dict[str, Any]:
    """The specification in force, which must be approved: the walk never approves one itself
    (that would be a real record), so without one it stops and says what QA must do."""
    answer = walk.http.get(f"{API}/specifications", headers=walk.actors["qa"].headers)
    if answer.status_code != 200:
        raise PreconditionFailed(f"GET {API}/specifications answered {answer.status_code}")
    for specification in answer.json():
        approved = specification.get("status", "approved") == "approved"
        if specification.get("in_force", specification.get("status") == "approved") and approved:
            return specification
    raise PreconditionFailed(
        "No approved specification is in force, so no batch can be registered. The site's QA "
        f"approves one (POST {API}/specifications/{{id}}/approve, e-signed) before the "
        "operational qualification; the walk never approves a record itself."
    )


def finish(walk: Walk) -> None:
    """Deactivate the scratch users, so that none of them can sign in after the walk."""
    admin = walk.actors.get("admin")
    if admin is None:
        return
    for user_id in walk.state.get("user_ids", {}).values():
        walk.http.post(f"{API}/users/{user_id}/deactivate", headers=admin.headers)


def patient(walk: Walk, suffix: str) -> dict[str, Any]:
    response = walk.call(
        "clinician",
        "POST",
        "/patients",
        status=201,
        why="a scratch patient is registered with a reserved validation MRN",
        json={
            "mrn": f"{MRN_PREFIX}{walk.run_id}{suffix}",
            "family_name": FAMILY_NAME,
            "given_name": f"Run {walk.run_id} {suffix}",
            "birth_date": "1980-02-29",
            "sex": "unknown",
        },
    )
    return walk.json(response, "the scratch patient's registration")


def biopsy(walk: Walk, patient_id: int) -> dict[str, Any]:
    response = walk.call(
        "clinician",
        "POST",
        "/biopsies",
        status=201,
        why="the biopsy gets a DIN and a labelled tube",
        json={
            "patient_id": patient_id,
            "collected_at": now(hours=-2),
            "site": "OQ validation (no tissue)",
            "mass_mg": 100,
        },
    )
    return walk.json(response, "the scratch biopsy's registration")


def receive(walk: Walk, biopsy: dict[str, Any], scanned: str, **expect: Any) -> httpx.Response:
    return walk.call(
        "tech",
        "POST",
        f"/biopsies/{biopsy['id']}/receipt",
        json={"scanned_code": scanned, "received_at": now(), "temperature_c": 4, "accepted": True},
        **({"status": 200, "why": "receipt by scanning the biopsy's own tube"} | expect),
    )


def step(walk: Walk, batch_id: int, kind: str, inputs: list[str], outputs: list[Any], **expect):
    body = {"kind": kind, "inputs": inputs, "outputs": outputs}
    return walk.call(
        "tech",
        "POST",
        f"/batches/{batch_id}/steps",
        json=body,
        **({"status": 201, "why": f"a {kind} step is recorded"} | expect),
    )


def dose() -> dict[str, Any]:
    return {"kind": "bag", "cell_count": 150_000_000, "volume_ml": 50.0, "expires_at": now(days=3)}


def passing_value(row: dict[str, Any]) -> Any:
    """A value inside a test's limits (GET /batches/{id}/qc), or its expected answer."""
    if row.get("expected") is not None:
        return row["expected"]
    low, high = row.get("min"), row.get("max")
    if low is not None and high is not None:
        return (low + high) / 2
    return low + 1 if low is not None else high / 2


def other_passing_value(row: dict[str, Any]) -> float:
    """A second value inside a numeric test's limits, other than `passing_value` (a correction)."""
    low, high = row.get("min"), row.get("max")
    if low is not None and high is not None:
        return low + (high - low) / 4
    return low + 2 if low is not None else high / 4


def failing_value(row: dict[str, Any]) -> Any:
    """A value outside a test's limits, or an answer that fails."""
    if row.get("expected") is not None:
        failing = [answer for answer, passes in (row.get("answers") or {}).items() if not passes]
        return failing[0] if failing else f"not {row['expected']}"
    return row["max"] * 2 if row.get("max") is not None else row["min"] / 2


def formulated_batch(walk: Walk, suffix: str) -> tuple[dict[str, Any], list[str]]:
    """A further scratch patient's batch taken to quarantine: (batch, dose codes)."""
    biopsy_ = biopsy(walk, patient(walk, suffix)["id"])
    walk.json(receive(walk, biopsy_, biopsy_["tube_code"]), "the biopsy's receipt")
    made = walk.call(
        "tech", "POST", "/batches", status=201, why="a batch", json={"biopsy_id": biopsy_["id"]}
    )
    batch = walk.json(made, "the batch")
    code = biopsy_["tube_code"]
    for kind, outputs in (
        ("isolation", [{"kind": "flask"}]),
        ("passage", [{"kind": "flask"}]),
        ("harvest", [{"kind": "tube"}]),
        ("formulation", [dose(), dose()]),
    ):
        made = walk.json(step(walk, batch["id"], kind, [code], outputs), kind)
        code = made["outputs"][0]["code"]
    return batch, [output["code"] for output in made["outputs"]]

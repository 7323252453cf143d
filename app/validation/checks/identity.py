"""Operational-qualification checks: security, separation of duties, chain of identity."""

from app.identity import mod37
from app.validation import scratch
from app.validation.scratch import dose, step
from app.validation.walk import Actor, Walk, new_password, sign_in


def _corrupt(code: str) -> str:
    """The code with its check character replaced by another one: a mistyped scan."""
    wrong = "0" if code[-1] != "0" else "1"
    return code[:-1] + wrong


def _events(walk: Walk, patient_id: int) -> list[dict]:
    response = walk.call(
        "qa", "GET", f"/patients/{patient_id}/audit", status=200, why="the patient's trail"
    )
    body = walk.json(response, "the patient's trail")
    return body if isinstance(body, list) else body.get("events", [])


def sec(walk: Walk) -> None:
    walk.call(None, "GET", "/batches", status=401, error="not_authenticated", why="no token")
    wrong = walk.http.post(
        "/api/v1/auth/token",
        data={"username": walk.actors["witness"].username, "password": new_password()},
    )
    walk.verify("401: a wrong password gets no token", wrong.status_code, wrong.status_code == 401)
    walk.call("admin", "GET", "/patients", status=403, why="admin sees no patient data by role")
    walk.call("tech", "GET", "/users", status=403, why="only an admin manages accounts")
    second = sign_in(
        walk.http, walk.actors["reviewer"].username, walk.actors["reviewer"].password, "qa"
    )
    walk.actors["revoked"] = second
    walk.call("revoked", "POST", "/auth/logout", status=204, why="signing out revokes the token")
    walk.call("revoked", "GET", "/auth/me", status=401, why="a revoked token is refused")


def sec2(walk: Walk) -> None:
    walk.call(
        "admin",
        "POST",
        "/users",
        status=422,
        error="incompatible_roles",
        why="admin is never held together with qa",
        json={
            "username": f"oq-{walk.run_id}-forbidden".lower(),
            "full_name": "Never created",
            "password": new_password(),
            "roles": ["admin", "qa"],
        },
    )
    me = walk.json(walk.call("admin", "GET", "/auth/me", status=200, why="who am I"), "me")
    walk.call(
        "admin",
        "PUT",
        f"/users/{me['id']}/roles",
        status=403,
        error="forbidden",
        why="nobody changes their own roles",
        json={"roles": ["admin", "technician"], "reason": "OQ: must be refused"},
    )


def coi1(walk: Walk) -> None:
    patient = scratch.patient(walk, "A")
    walk.state["patient_a"] = patient
    walk.verify(
        "the COI is assigned with a valid Mod 37-2 check",
        patient["coi"],
        mod37.is_valid(patient["coi"]),
    )
    walk.state["patient_b"] = scratch.patient(walk, "B")
    walk.call(
        "clinician",
        "POST",
        "/patients",
        status=409,
        why="a second registration of the same MRN is refused",
        json={
            "mrn": patient["mrn"].lower(),
            "family_name": scratch.FAMILY_NAME,
            "given_name": "Duplicate",
            "birth_date": "1980-02-29",
            "sex": "unknown",
        },
    )
    for method in ("PATCH", "PUT"):
        walk.call(
            "clinician",
            method,
            f"/patients/{patient['id']}",
            status=405,
            why="the patient ↔ COI link cannot be edited through the API",
            json={"coi": "CHX"},
        )
    biopsy = scratch.biopsy(walk, patient["id"])
    walk.state["biopsy_a"] = biopsy
    din = biopsy["din"] + biopsy["din_check"]
    walk.verify(
        "the DIN has 13 characters and a valid check",
        din,
        len(biopsy["din"]) == 13 and mod37.is_valid(din),
    )
    walk.state["biopsy_b"] = scratch.biopsy(walk, walk.state["patient_b"]["id"])


def coi4(walk: Walk) -> None:
    tube = walk.need("biopsy_a")["tube_code"]
    for code in (_corrupt(tube), tube[:-3], "NOT-A-CODE"):
        walk.call(
            "tech",
            "POST",
            "/scan",
            status=422,
            error="invalid_code",
            why="a mistyped code is invalid, never a near match",
            json={"code": code},
        )


def coi5(walk: Walk) -> None:
    biopsy_a, biopsy_b = walk.need("biopsy_a"), walk.need("biopsy_b")
    scratch.receive(
        walk,
        biopsy_a,
        biopsy_b["tube_code"],
        status=409,
        error="identity_mismatch",
        why="receiving biopsy A by scanning patient B's tube is refused",
    )
    walk.json(scratch.receive(walk, biopsy_a, biopsy_a["tube_code"]), "biopsy A's receipt")
    walk.json(scratch.receive(walk, biopsy_b, biopsy_b["tube_code"]), "biopsy B's receipt")
    walk.state["received"] = True
    patient_b = walk.need("patient_b")
    walk.call(
        "tech",
        "POST",
        "/scan",
        status=409,
        error="identity_mismatch",
        why="a scan expecting another patient is refused",
        json={"code": biopsy_a["tube_code"], "expect": {"patient_id": patient_b["id"]}},
    )
    answer = walk.call(
        "tech",
        "POST",
        "/scan",
        status=200,
        why="a scan whose expectation holds confirms the identity",
        json={"code": biopsy_a["tube_code"], "expect": {"din": biopsy_a["din"]}},
    )
    walk.verify(
        "the scan names patient A's COI",
        answer.json().get("coi"),
        answer.json().get("coi") == walk.need("patient_a")["coi"],
    )
    actions = [event["action"] for event in _events(walk, walk.need("patient_a")["id"])]
    walk.verify(
        "the mismatches are in patient A's audit trail",
        actions,
        "scan.identity_mismatch" in actions and "biopsy.receipt_identity_mismatch" in actions,
    )


def coi2(walk: Walk) -> None:
    walk.need("received")
    biopsy, patient = walk.need("biopsy_a"), walk.need("patient_a")
    walk.call(
        "tech",
        "POST",
        "/batches",
        status=422,
        why="the client cannot supply identity (COI) fields",
        json={"biopsy_id": biopsy["id"], "coi": walk.need("patient_b")["coi"]},
    )
    batch = walk.json(
        walk.call(
            "tech",
            "POST",
            "/batches",
            status=201,
            why="the batch is registered",
            json={"biopsy_id": biopsy["id"]},
        ),
        "batch A's registration",
    )
    walk.state["batch_a"] = batch
    walk.verify(
        "the batch's DIN and COI are derived from the biopsy and patient",
        (batch["din"], batch["coi"]),
        (batch["din"], batch["coi"]) == (biopsy["din"], patient["coi"]),
    )
    isolation = walk.json(
        step(walk, batch["id"], "isolation", [biopsy["tube_code"]], [{"kind": "flask"}]),
        "isolation",
    )
    flask = isolation["outputs"][0]["code"]
    walk.state["flask_a"] = flask
    passage = walk.json(
        step(walk, batch["id"], "passage", [flask], [{"kind": "flask"}, {"kind": "flask"}]),
        "passage",
    )
    flasks = [output["code"] for output in passage["outputs"]]
    walk.verify(
        "every output's code carries the batch's DIN",
        flasks,
        all(code.startswith(batch["din"]) for code in flasks),
    )
    walk.state["flasks_a"] = flasks


def coi3(walk: Walk) -> None:
    batch, flasks = walk.need("batch_a"), walk.need("flasks_a")
    biopsy_b = walk.need("biopsy_b")
    batch_b = walk.json(
        walk.call(
            "tech",
            "POST",
            "/batches",
            status=201,
            why="patient B's batch is registered",
            json={"biopsy_id": biopsy_b["id"]},
        ),
        "batch B's registration",
    )
    walk.state["batch_b"] = batch_b
    step(
        walk,
        batch["id"],
        "harvest",
        [flasks[0], biopsy_b["tube_code"]],
        [{"kind": "tube"}],
        status=409,
        error="identity_mismatch",
        why="no step pools two patients' vessels",
    )
    step(
        walk,
        batch_b["id"],
        "isolation",
        [flasks[0]],
        [{"kind": "flask"}],
        status=409,
        error="identity_mismatch",
        why="a vessel of another batch is refused",
    )
    harvest = walk.json(step(walk, batch["id"], "harvest", flasks, [{"kind": "tube"}]), "harvest")
    formulation = walk.json(
        step(walk, batch["id"], "formulation", [harvest["outputs"][0]["code"]], [dose(), dose()]),
        "formulation",
    )
    walk.state["doses"] = [output["code"] for output in formulation["outputs"]]
    detail = walk.json(
        walk.call(
            "tech", "GET", f"/batches/{batch['id']}", status=200, why="the batch after formulation"
        ),
        "batch A",
    )
    walk.verify(
        "formulation moved the batch to quarantine",
        detail["status"],
        detail["status"] == "quarantine",
    )


def sec3(walk: Walk) -> None:
    """A new account may only change its password first; a weak new password is refused."""
    username = f"oq-{walk.run_id}-newcomer".lower()
    first = new_password()
    created = walk.call(
        "admin",
        "POST",
        "/users",
        status=201,
        why="an admin creates an account with a first password",
        json={
            "username": username,
            "full_name": "OQ Newcomer",
            "password": first,
            "roles": ["technician"],
        },
    )
    user = walk.json(created, "the new account")
    token = walk.http.post("/api/v1/auth/token", data={"username": username, "password": first})
    walk.verify("200: the first password signs in", token.status_code, token.status_code == 200)
    walk.actors["newcomer"] = Actor(walk.http, username, first, "technician")
    walk.actors["newcomer"].token = token.json().get("access_token")
    newcomer = "newcomer"
    walk.call(
        newcomer,
        "GET",
        "/batches",
        status=403,
        error="password_change_required",
        why="every other call waits for the first change",
    )
    walk.call(
        newcomer,
        "POST",
        "/auth/password",
        status=422,
        error="weak_password",
        why="the strength check refuses 'password'",
        json={"current_password": first, "new_password": "password"},
    )
    walk.call(
        newcomer,
        "POST",
        "/auth/password",
        status=204,
        why="the change with the current password succeeds",
        json={"current_password": first, "new_password": new_password()},
    )
    walk.call(newcomer, "GET", "/batches", status=200, why="after the change the account works")
    walk.call(
        "admin",
        "POST",
        f"/users/{user['id']}/deactivate",
        status=200,
        why="the scratch account is deactivated again",
    )


def sec4(walk: Walk) -> None:
    """Failed sign-ins are reported to QA (the SEC check made one)."""
    report = walk.json(
        walk.call("qa", "GET", "/auth/sign-in-report", status=200, why="QA reads the report"),
        "the sign-in report",
    )
    walk.verify("the report is a record of sign-in events", type(report).__name__, bool(report))
    walk.call("tech", "GET", "/auth/sign-in-report", status=403, why="a technician may not read it")


STEP_DUTIES = [
    "isolation",
    "passage",
    "harvest",
    "cryopreservation",
    "thaw",
    "formulation",
    "qc_sampling",
    "discard",
]
# What each scratch user is qualified for by QA before the lab checks run (SEC-5): on a site that
# enforces qualifications the walk's steps, reviews and witnessing need them.
SCRATCH_DUTIES = {
    "tech": [*STEP_DUTIES, "qc_review"],
    "techqa": [*STEP_DUTIES, "qc_review"],
    "reviewer": ["qc_review"],
    "qa": ["qc_review"],
    "witness": ["bedside_witness"],
    "clinician": ["bedside_witness"],
}


def sec5(walk: Walk) -> None:
    """QA qualifies the scratch users, with a reason and an expiry; nobody else may, nor QA
    themselves."""
    user_ids = walk.need("user_ids")
    grant = {"expires_at": scratch.now(days=1), "reason": "operational qualification run"}
    refusals = (  # (who grants, to whom, duty, status, why)
        ("tech", "witness", "bedside_witness", 403, "only QA qualifies people"),
        ("qa", "qa", "qc_review", 403, "nobody qualifies themselves"),
        ("qa", "witness", "isolation", 422, "a duty none of the person's roles can use"),
    )
    for granter, grantee, duty, status, why in refusals:
        walk.call(
            granter,
            "POST",
            f"/users/{user_ids[grantee]}/qualifications",
            status=status,
            why=why,
            json=grant | {"duties": [duty]},
        )
    for key, duties in SCRATCH_DUTIES.items():
        granter = "reviewer" if key == "qa" else "qa"
        walk.call(
            granter,
            "POST",
            f"/users/{user_ids[key]}/qualifications",
            status=201,
            why=f"QA qualifies the scratch {key} for {', '.join(duties)}",
            json=grant | {"duties": duties},
        )
    listed = walk.json(
        walk.call("qa", "GET", f"/qualifications?user_id={user_ids['tech']}", status=200,
                  why="the qualifications are listed"),
        "the qualifications",
    )  # fmt: skip
    walk.verify(
        "every step duty of the scratch technician is listed",
        sorted({q["duty"] for q in listed}),
        set(SCRATCH_DUTIES["tech"]) <= {q["duty"] for q in listed},
    )

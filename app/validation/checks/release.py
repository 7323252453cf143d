"""Operational-qualification checks: QC, review, the release gate and the e-signed release."""

from app.validation import scratch
from app.validation.walk import Blocked, Walk, new_password


def qc1(walk: Walk) -> None:
    batch = walk.need("batch_a")
    qc = walk.json(
        walk.call(
            "tech",
            "GET",
            f"/batches/{batch['id']}/qc",
            status=200,
            why="the batch's tests with limits",
        ),
        "QC",
    )
    walk.state["qc_rows"] = qc["tests"]
    tests = {row["test"] for row in qc["tests"]}
    walk.verify(
        "the batch is pinned to a specification version with the QC-1 tests",
        sorted(tests),
        qc["specification_version"] is not None and "viability" in tests and "sterility" in tests,
    )
    specifications = walk.json(
        walk.call("qa", "GET", "/specifications", status=200, why="the specifications"),
        "specifications",
    )
    pinned = [s for s in specifications if s["version"] == qc["specification_version"]]
    walk.verify(
        "the pinned version carries a QA signature",
        [s.get("signatures") for s in pinned],
        bool(pinned and pinned[0].get("signatures")),
    )


def qc2(walk: Walk) -> None:
    batch_b = walk.need("batch_b")
    rows = walk.json(
        walk.call("tech", "GET", f"/batches/{batch_b['id']}/qc", status=200, why="batch B's tests"),
        "QC",
    )["tests"]
    numeric = next(row for row in rows if row.get("min") is not None or row.get("max") is not None)
    result = walk.json(
        walk.call(
            "tech",
            "POST",
            f"/batches/{batch_b['id']}/qc-results",
            status=201,
            why="an out-of-specification result is evaluated on entry",
            json={"test": numeric["test"], "value": scratch.failing_value(numeric)},
        ),
        "the OOS result",
    )
    walk.verify("the result is evaluated as a fail", result["outcome"], result["outcome"] == "fail")
    deviations = walk.json(
        walk.call(
            "qa",
            "GET",
            f"/batches/{batch_b['id']}/deviations",
            status=200,
            why="the batch's deviations",
        ),
        "deviations",
    )
    walk.verify("a deviation was opened automatically", len(deviations), len(deviations) >= 1)
    walk.call(
        "tech",
        "POST",
        f"/batches/{batch_b['id']}/qc-results",
        status=422,
        error="unknown_test",
        why="an unknown test is refused",
        json={"test": "no_such_test", "value": 1},
    )


def rel1(walk: Walk) -> None:
    batch = walk.need("batch_a")
    gate = walk.json(
        walk.call(
            "qa",
            "GET",
            f"/batches/{batch['id']}/release-gate",
            status=200,
            why="the gate before any result",
        ),
        "gate",
    )
    walk.verify(
        "the gate is not met and says why",
        [c["check"] for c in gate["checks"] if not c["met"]],
        gate["ready"] is False,
    )
    walk.call(
        "qa",
        "POST",
        f"/batches/{batch['id']}/release",
        status=409,
        why="no release before every test passed",
        json={
            "decision": "release",
            "password": walk.actors["qa"].password,
            "meaning": "released",
            "comment": "OQ: must be refused",
        },
    )


def rel4(walk: Walk) -> None:
    batch, rows = walk.need("batch_a"), walk.need("qc_rows")
    first, *others = [row for row in rows if row["outcome"] == "pending"]
    walk.call(
        "techqa",
        "POST",
        f"/batches/{batch['id']}/qc-results",
        status=201,
        why="a result entered by a technician who also holds qa",
        json={"test": first["test"], "value": scratch.passing_value(first)},
    )
    for row in others:
        walk.call(
            "tech",
            "POST",
            f"/batches/{batch['id']}/qc-results",
            status=201,
            why=f"a passing {row['test']} result",
            json={"test": row["test"], "value": scratch.passing_value(row)},
        )
    walk.state["results_entered"] = True
    walk.call(
        "techqa",
        "POST",
        f"/batches/{batch['id']}/release",
        status=403,
        why="whoever entered a result of the batch cannot release it",
        json={
            "decision": "release",
            "password": walk.actors["techqa"].password,
            "meaning": "released",
            "comment": "OQ: must be refused",
        },
    )


def sig4(walk: Walk) -> None:
    batch = walk.need("batch_a")
    walk.need("results_entered")
    rows = walk.json(
        walk.call(
            "tech", "GET", f"/batches/{batch['id']}/qc", status=200, why="the results to review"
        ),
        "QC",
    )["tests"]
    authored_by_tech = [
        row
        for row in rows
        if row.get("critical") and row.get("result_id") and not row.get("reviewed")
    ]
    if not authored_by_tech:
        raise Blocked("no critical result awaits review")
    own = authored_by_tech[-1]
    walk.call(
        "tech",
        "POST",
        f"/qc-results/{own['result_id']}/review",
        status=403,
        why="the author cannot review their own result",
        json={"password": walk.actors["tech"].password},
    )
    for row in authored_by_tech:
        walk.call(
            "reviewer",
            "POST",
            f"/qc-results/{row['result_id']}/review",
            status=200,
            why="a second person reviews the result",
            json={"password": walk.actors["reviewer"].password, "comment": "OQ review"},
        )
    walk.state["reviewed"] = True


def rel6(walk: Walk) -> None:
    batch = walk.need("batch_a")
    walk.need("reviewed"), walk.need("labelled")
    gate = walk.json(
        walk.call(
            "qa",
            "GET",
            f"/batches/{batch['id']}/release-gate",
            status=200,
            why="the gate once results are reviewed and doses labelled",
        ),
        "gate",
    )
    walk.verify(
        "every condition of the gate is met",
        [c["check"] for c in gate["checks"] if not c["met"]],
        gate["ready"] is True,
    )


def sig1(walk: Walk) -> None:
    batch = walk.need("batch_a")
    body = {"decision": "release", "meaning": "released", "comment": "OQ"}
    walk.call(
        "qa",
        "POST",
        f"/batches/{batch['id']}/release",
        status=401,
        error="invalid_credentials",
        why="signing re-authenticates: a wrong password signs nothing",
        json=body | {"password": new_password()},
    )
    walk.call(
        "tech",
        "POST",
        f"/batches/{batch['id']}/release",
        status=403,
        why="only qa releases",
        json=body | {"password": walk.actors["tech"].password},
    )


def sig5(walk: Walk) -> None:
    user_id = walk.need("user_ids")["qa"]
    events = walk.json(
        walk.call(
            "qa",
            "GET",
            "/audit",
            status=200,
            why="the signer's trail",
            params={"entity_type": "user", "entity_id": user_id},
        ),
        "trail",
    )
    actions = [event["action"] for event in events]
    walk.verify(
        "the failed signature is in the signer's trail", actions, "signature.failed" in actions
    )


def sig6(walk: Walk) -> None:
    batch = walk.need("batch_a")
    walk.call(
        "qa",
        "POST",
        f"/batches/{batch['id']}/release",
        status=422,
        why="a release cannot be signed with another meaning",
        json={
            "decision": "release",
            "meaning": "reviewed",
            "password": walk.actors["qa"].password,
            "comment": "OQ: wrong meaning",
        },
    )


def rel3(walk: Walk) -> None:
    batch = walk.need("batch_a")
    decided = walk.json(
        walk.call(
            "qa",
            "POST",
            f"/batches/{batch['id']}/release",
            status=200,
            why="QA releases with an e-signature",
            json={
                "decision": "release",
                "meaning": "released",
                "password": walk.actors["qa"].password,
                "comment": "OQ release of scratch batch",
            },
        ),
        "the release",
    )
    walk.state["released"] = decided
    walk.verify("the batch is released", decided["status"], decided["status"] == "released")


def sig2(walk: Walk) -> None:
    signature = walk.need("released")["signature"]
    walk.verify(
        "the signature shows the signer's printed name, the time and the meaning",
        signature,
        signature["signed_by"] == scratch.full_name(walk, "qa")
        and bool(signature["signed_at"])
        and signature["meaning"] == "released",
    )


def sig3(walk: Walk) -> None:
    signature = walk.need("released")["signature"]
    walk.verify(
        "the signature stores a SHA-256 of the record",
        signature["record_hash"],
        len(signature["record_hash"]) == 64,
    )
    releases = walk.json(
        walk.call(
            "qa",
            "GET",
            f"/batches/{walk.need('batch_a')['id']}/releases",
            status=200,
            why="the release as it is now",
        ),
        "releases",
    )
    releases = releases if isinstance(releases, list) else [releases]
    shown = [(r["signature"]["record_hash"], r["signature"]["matches"]) for r in releases]
    walk.verify(
        "the release as read now shows the signed hash and that it still matches",
        shown,
        (signature["record_hash"], True) in shown,
    )


def rel5(walk: Walk) -> None:
    batch, patient = walk.need("batch_a"), walk.need("patient_a")
    walk.need("released")
    html = walk.call(
        "qa",
        "GET",
        f"/batches/{batch['id']}/certificate",
        status=200,
        why="the release certificate",
        params={"format": "html"},
    )
    shown = {
        "COI": patient["coi"] in html.text,
        "DIN": batch["din"] in html.text,
        "signer": scratch.full_name(walk, "qa") in html.text,
    }
    walk.verify("the certificate names the COI, the DIN and the signer", shown, all(shown.values()))
    pdf = walk.call(
        "clinician",
        "GET",
        f"/batches/{batch['id']}/certificate",
        status=200,
        why="the certificate as PDF",
        params={"format": "pdf"},
    )
    walk.verify("a PDF", pdf.content[:5], pdf.content[:5] == b"%PDF-")


def rel2(walk: Walk) -> None:
    batch, doses = scratch.formulated_batch(walk, "C")
    path = f"/batches/{batch['id']}"
    rows = walk.json(walk.call("tech", "GET", f"{path}/qc", status=200, why="its tests"), "QC")
    pending = next(row for row in rows["tests"] if row.get("expected") is not None)
    for row in rows["tests"]:
        if row["test"] != pending["test"]:
            value = scratch.passing_value(row)
            walk.json(_result(walk, path, row["test"], value, "a passing result"), "a result")
    rows = walk.json(walk.call("tech", "GET", f"{path}/qc", status=200, why="to review"), "QC")
    for row in rows["tests"]:
        if row.get("critical") and row.get("result_id") and not row.get("reviewed"):
            walk.call(
                "reviewer",
                "POST",
                f"/qc-results/{row['result_id']}/review",
                status=200,
                why="the second person's review",
                json={"password": walk.actors["reviewer"].password},
            )
    for code in doses:
        walk.call("tech", "POST", f"/vessels/{code}/print", status=200, why="dose label", json={})
    decided = walk.call(
        "qa",
        "POST",
        f"{path}/release",
        status=200,
        why=f"a conditional release naming {pending['test']} as pending",
        json={
            "decision": "conditional_release",
            "pending_tests": [pending["test"]],
            "meaning": "released",
            "password": walk.actors["qa"].password,
            "comment": "OQ conditional release of a scratch batch",
        },
    )
    walk.json(decided, "the conditional release")
    late = scratch.failing_value(pending)
    failed = walk.json(_result(walk, path, pending["test"], late, "the late result"), "result")
    walk.verify("the late result fails", failed["outcome"], failed["outcome"] == "fail")
    held = walk.json(walk.call("qa", "GET", path, status=200, why="the batch after it"), "batch")
    walk.verify(
        "the late failure raised an alert and put the batch on hold",
        (held["status"], [alert["kind"] for alert in held.get("alerts", [])]),
        held["status"] == "on_hold" and bool(held.get("alerts")),
    )
    # The conditionally released batch with a failing result in force: AUD-9 and REL-7 use it.
    walk.state["batch_oos"] = {"batch": batch, "doses": doses, "failing_test": pending["test"]}


def _result(walk: Walk, path: str, test: str, value: object, why: str):
    return walk.call(
        "tech",
        "POST",
        f"{path}/qc-results",
        status=201,
        why=why,
        json={"test": test, "value": value},
    )


def qc3(walk: Walk) -> None:
    """One specification version in force, approved; an approved version cannot be approved
    again; every GMP settings group has a version (read only: approving is the site's act)."""
    versions = walk.json(
        walk.call("qa", "GET", "/specifications", status=200, why="the specification versions"),
        "the specifications",
    )
    approved = [v for v in versions if v.get("status") == "approved"]
    walk.verify("exactly one approved version", len(approved), len(approved) == 1)
    if approved:
        walk.call(
            "reviewer",
            "POST",
            f"/specifications/{approved[0]['id']}/approve",
            status=409,
            error="not_draft",
            why="only a draft is approved",
            json={"password": walk.actors["reviewer"].password},
        )
    settings = walk.json(
        walk.call("qa", "GET", "/gmp-settings", status=200, why="the GMP settings versions"),
        "the GMP settings",
    )
    walk.verify(
        "every GMP settings group has a version on record",
        sorted({s["group"] for s in settings}),
        len({s["group"] for s in settings}) >= 6,
    )

"""Operational-qualification checks: the audit trail and the quality bars."""

import statistics
import time
from datetime import UTC, datetime

from app.validation.scratch import now, step
from app.validation.walk import Walk


def aud1(walk: Walk) -> None:
    batch = walk.need("batch_a")
    events = walk.json(
        walk.call(
            "qa", "GET", f"/batches/{batch['id']}/audit", status=200, why="the batch's trail"
        ),
        "trail",
    )
    events = events if isinstance(events, list) else events.get("events", [])
    actions = {event["action"] for event in events}
    wanted = {"batch.registered", "vessel.created", "label.printed", "vessel.custody"}
    walk.verify(
        f"the trail holds {', '.join(sorted(wanted))}, each with actor and UTC time",
        sorted(actions),
        wanted <= actions and all(e.get("actor") and e.get("occurred_at") for e in events),
    )


def aud5(walk: Walk) -> None:
    batch, patient = walk.need("batch_a"), walk.need("patient_a")
    csv = walk.call(
        "qa", "GET", f"/batches/{batch['id']}/audit.csv", status=200, why="the batch's trail as CSV"
    )
    walk.verify(
        "a CSV with a header row",
        csv.headers.get("content-type"),
        csv.headers.get("content-type", "").startswith("text/csv") and csv.text.count("\n") > 2,
    )
    walk.call(
        "qa",
        "GET",
        f"/patients/{patient['id']}/audit.csv",
        status=200,
        why="the patient's trail as CSV",
    )


def aud6(walk: Walk) -> None:
    code = walk.need("doses")[1]
    walk.call(
        "tech",
        "POST",
        f"/vessels/{code}/custody",
        status=409,
        error="out_of_order",
        why="a custody event dated before the vessel existed is refused",
        json={
            "event": "moved",
            "location": "OQ bench",
            "occurred_at": now(days=-30),
            "late_reason": "OQ: must be refused",
        },
    )
    walk.call(
        "tech",
        "POST",
        f"/vessels/{code}/custody",
        status=422,
        why="a time in the future is refused",
        json={"event": "moved", "location": "OQ bench", "occurred_at": now(days=1)},
    )


def aud3(walk: Walk) -> None:
    result = walk.json(
        walk.call("qa", "GET", "/audit/verify", status=200, why="the hash chains re-verified"),
        "verification",
    )
    walk.verify(
        "the chains verify with no broken event",
        result,
        result.get("ok") is True and result.get("first_bad_seq") is None,
    )
    walk.state["verified"] = result


def aud7(walk: Walk) -> None:
    result = walk.need("verified")
    walk.verify(
        "verification covered the records, not only the events",
        result,
        result.get("ok") is True and any("record" in key for key in result),
    )


def aud2(walk: Walk) -> None:
    for method in ("DELETE", "PUT", "PATCH"):
        walk.call(
            "admin",
            method,
            "/audit",
            status=405,
            why="no API route changes or deletes an audit event",
        )


def aud4(walk: Walk) -> None:
    batch = walk.need("batch_a")
    before = walk.json(
        walk.call(
            "qa",
            "GET",
            f"/batches/{batch['id']}/audit",
            status=200,
            why="the trail before a refused step",
        ),
        "trail",
    )
    step(
        walk,
        batch["id"],
        "passage",
        [walk.need("flask_a")],
        [{"kind": "flask"}],
        status=409,
        why="a step on a consumed vessel is refused",
    )
    after = walk.json(
        walk.call(
            "qa", "GET", f"/batches/{batch['id']}/audit", status=200, why="the trail after it"
        ),
        "trail",
    )
    recorded = [e for e in after if e["action"] == "step.recorded"]
    walk.verify(
        "the refused step wrote no step event (no event without its change)",
        len(recorded),
        len(recorded) == len([e for e in before if e["action"] == "step.recorded"]),
    )


def rel(walk: Walk) -> None:
    for body in ({"mrn": ""}, {"mrn": ["x"], "birth_date": "yesterday"}, [1, 2]):
        walk.call(
            "clinician",
            "POST",
            "/patients",
            status=422,
            error="invalid_request",
            why="bad input is a 4xx JSON error",
            json=body,
        )
    answer = walk.http.post(
        "/api/v1/patients",
        content=b"{not json",
        headers={**walk.actors["clinician"].headers, "content-type": "application/json"},
    )
    walk.verify("malformed JSON is a 4xx", answer.status_code, 400 <= answer.status_code < 500)


def perf(walk: Walk) -> None:
    code = walk.need("biopsy_b")["tube_code"]
    times = []
    for _ in range(20):
        began = time.perf_counter()
        walk.http.post("/api/v1/scan", json={"code": code}, headers=walk.actors["tech"].headers)
        times.append((time.perf_counter() - began) * 1000)
    p95 = statistics.quantiles(times, n=20)[-1]
    walk.verify(
        "20 scans in a row, each answered within 1 s (indicative: `homeward bench` measures "
        "the PERF bars)",
        f"p95 {p95:.1f} ms, median {statistics.median(times):.1f} ms, slowest {max(times):.1f} ms",
        max(times) < 1000,
    )


def aud8(walk: Walk) -> None:
    """QA reads the trail of this run's window exceptions first, with the walk's own refusals
    among them; nothing is signed (a review of a real period is the site's own act)."""
    walk.call("qa", "GET", "/audit-reviews/pending", status=200, why="unreviewed periods listed")
    window = {"from": walk.started.isoformat(), "to": datetime.now(UTC).isoformat()}
    page = walk.json(
        walk.call("qa", "GET", "/audit-reviews/events", status=200, why="the run's window",
                  params=window | {"exceptions_only": "true", "limit": 500}),
        "the review page",
    )  # fmt: skip
    actions = {event["action"] for event in page.get("events", [])}
    walk.verify(
        "the walk's identity mismatches are among the exceptions",
        sorted(actions)[:10],
        any("mismatch" in action for action in actions),
    )
    walk.call("tech", "GET", "/audit-reviews/pending", status=403, why="only QA reviews the trail")

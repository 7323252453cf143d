"""Operational-qualification checks on the walk's out-of-specification batch (REL-2 made it: a
conditional release, then a failing result in force): a corrected result shown with its
original, who, when and why (AUD-9), and the supply record its dispatch waits for (REL-7)."""

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from app.validation import pdftext, scratch
from app.validation.walk import Blocked, Walk

REASON = "OQ scratch correction: value re-read from the instrument printout"
DISPATCH = {"event": "dispatched", "location": "OQ courier", "temperature_c": 4}
LEEWAY = timedelta(minutes=5)  # between the runner's clock and the install's


def _in_run(walk: Walk, moment: str | None) -> bool:
    """Whether an ISO time the install answered falls within this run."""
    if not moment:
        return False
    at = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return walk.started - LEEWAY <= at <= datetime.now(UTC) + LEEWAY


def _corrected_row(walk: Walk, path: str, failing_test: str) -> dict[str, Any]:
    rows = walk.json(walk.call("tech", "GET", f"{path}/qc", status=200, why="its tests"), "QC")
    for row in rows["tests"]:
        numeric = row.get("min") is not None or row.get("max") is not None
        if numeric and row["test"] != failing_test and row.get("outcome") == "pass":
            return row
    raise Blocked("the out-of-specification batch has no passing numeric result to correct")


def aud9(walk: Walk) -> None:
    """A result in force corrected with a reason; the batch record (JSON, PDF) and the release
    certificate (HTML, PDF) mark the new value with the original, who, when and why."""
    oos = walk.need("batch_oos")
    path = f"/batches/{oos['batch']['id']}"
    row = _corrected_row(walk, path, oos["failing_test"])
    value = scratch.other_passing_value(row)
    corrected = walk.json(
        walk.call(
            "tech",
            "POST",
            f"{path}/qc-results",
            status=201,
            why=f"the {row['test']} result {row['value']:g} corrected to {value:g}, with a reason",
            json={
                "test": row["test"],
                "value": value,
                "corrects": row["result_id"],
                "reason": REASON,
            },
        ),
        "the correction",
    )
    walk.verify("the correction passes too", corrected["outcome"], corrected["outcome"] == "pass")
    record = walk.json(
        walk.call("qa", "GET", f"{path}/record", status=200, why="the batch record (JSON)"),
        "the batch record",
    )
    marks = [c for c in record.get("corrections", []) if c.get("test") == row["test"]]
    by = walk.actors["tech"].username
    mark = marks[-1] if marks else {}
    walk.verify(
        f"the record marks {row['test']}: original {row['value']:g}, new {value:g}, by {by}, "
        f"at a time of this run, because {REASON!r}",
        mark or record.get("corrections"),
        str(mark.get("original", "")).startswith(f"{row['value']:g}")
        and str(mark.get("corrected", "")).startswith(f"{value:g}")
        and mark.get("by") == by
        and mark.get("reason") == REASON
        and _in_run(walk, mark.get("at")),
    )
    if not mark:
        return
    html = walk.call(
        "qa", "GET", f"{path}/certificate", status=200, why="the certificate (HTML)"
    ).text
    shown = [s for s in re.findall(r'<span class="corrected">([^<]*)</span>', html) if by in s]
    wanted = (mark["original"], mark["corrected"], by, REASON, " UTC")
    walk.verify(
        "the certificate marks the corrected value with the original, who, when and why",
        shown,
        any(all(part in s for part in wanted) for s in shown),
    )
    sentence = f"CORRECTED from {mark['original']} to {mark['corrected']} by {by}"
    for what, call in (
        ("the certificate (PDF)", (f"{path}/certificate", {"format": "pdf"})),
        ("the batch record (PDF)", (f"{path}/record.pdf", {})),
    ):
        pdf = walk.call("qa", "GET", call[0], status=200, why=what, params=call[1])
        words = pdftext.squash(pdftext.text(pdf.content, what, f"{sentence!r} in {what}"))
        walk.verify(
            f"{what} says {sentence!r} and why",
            "both present"
            if pdftext.squash(sentence) in words and pdftext.squash(REASON) in words
            else f"missing in: {words[:200]!r}",
            pdftext.squash(sentence) in words and pdftext.squash(REASON) in words,
        )


def _dispatch(walk: Walk, code: str, *, refused: bool, why: str) -> dict[str, Any]:
    answer = walk.call(
        "tech",
        "POST",
        f"/vessels/{code}/custody",
        status=409 if refused else 201,
        error="oos_supply_not_recorded" if refused else None,
        why=why,
        json=DISPATCH,
    )
    return answer.json() if answer.content else {}


def _notify(walk: Walk, path: str, recipient: str, party: str) -> dict[str, Any]:
    return walk.json(
        walk.call(
            "qa",
            "POST",
            f"{path}/oos-supply/notifications",
            status=201,
            why=f"the {recipient}'s notification: who, when, reference",
            json={
                "recipient": recipient,
                "party": party,
                "notified_at": scratch.now(),
                "reference": f"OQ-{walk.run_id}-{recipient.upper()}",
            },
        ),
        f"the {recipient}'s notification",
    )


def _close_deviations(walk: Walk, path: str) -> None:
    """QA closes the deviation the late failure opened, so the hold lifts (the walk's own
    scratch deviation; e-signed like any closure)."""
    found = walk.json(
        walk.call("qa", "GET", f"{path}/deviations", status=200, why="its deviations"),
        "the deviations",
    )
    for deviation in found:
        if deviation["status"] != "closed":
            walk.call(
                "qa",
                "POST",
                f"/deviations/{deviation['id']}/close",
                status=200,
                why="QA closes the scratch deviation (the hold lifts with the last one)",
                json={
                    "password": walk.actors["qa"].password,
                    "investigation": "OQ scratch batch: the failing result was entered on purpose",
                    "root_cause": "Operational qualification",
                    "capa": "None: no product exists",
                },
            )


def rel7(walk: Walk) -> None:
    """A dose of the batch with a failing result in force is refused dispatch until the
    physician's e-signed justification and the sponsor's and the authority's notifications are
    recorded, then dispatched; the certificate and the batch record show them."""
    oos = walk.need("batch_oos")
    path, code = f"/batches/{oos['batch']['id']}", oos["doses"][-1]
    _close_deviations(walk, path)
    batch = walk.json(walk.call("qa", "GET", path, status=200, why="the batch now"), "batch")
    walk.verify(
        "the batch is dispatchable but for its failing result (released, not on hold)",
        batch["status"],
        batch["status"] in ("released", "conditionally_released"),
    )
    state = walk.json(
        walk.call("qa", "GET", f"{path}/oos-supply", status=200, why="its OOS supply record"),
        "the OOS supply record",
    )
    walk.verify(
        f"out of specification ({oos['failing_test']}), three records missing",
        (state["failing_tests"], state["missing"]),
        state["out_of_specification"] and len(state["missing"]) == 3,
    )
    _dispatch(walk, code, refused=True, why="no dispatch with nothing recorded")
    physician = f"OQ {walk.run_id} treating physician"
    walk.call(
        "clinician",
        "POST",
        f"{path}/oos-supply/justification",
        status=201,
        why="the physician's justification, e-signed by the clinician",
        json={
            "physician_name": physician,
            "hazard": "OQ scratch: no patient; the justification's path is qualified",
            "justified_at": scratch.now(),
            "password": walk.actors["clinician"].password,
        },
    )
    _notify(walk, path, "sponsor", f"OQ {walk.run_id} sponsor")
    refused = _dispatch(walk, code, refused=True, why="no dispatch before the authority knows")
    detail = str(refused.get("detail", ""))
    walk.verify(
        "the refusal names the authority's notification, no longer the others",
        detail,
        "authority" in detail and "sponsor" not in detail and "justification" not in detail,
    )
    state = _notify(walk, path, "authority", f"OQ {walk.run_id} authority")
    (justified, *_) = state["justifications"] or [{}]
    walk.verify(
        "the record is complete, the justification signed `approved` and unchanged",
        (state["complete"], justified.get("signature")),
        state["complete"]
        and (justified.get("signature") or {}).get("meaning") == "approved"
        and (justified.get("signature") or {}).get("matches") is True,
    )
    _dispatch(walk, code, refused=False, why="dispatched once the record is complete")
    references = [f"OQ-{walk.run_id}-SPONSOR", f"OQ-{walk.run_id}-AUTHORITY", physician]
    record = walk.json(
        walk.call("qa", "GET", f"{path}/record", status=200, why="the batch record (JSON)"),
        "the batch record",
    )
    walk.verify(
        "the batch record holds the complete supply record",
        record.get("oos_supply", {}).get("complete"),
        record.get("oos_supply", {}).get("complete") is True
        and all(r in str(record["oos_supply"]) for r in references),
    )
    html = walk.call("qa", "GET", f"{path}/certificate", status=200, why="the certificate").text
    walk.verify(
        "the certificate names the physician and both references",
        [r for r in references if r not in html] or "all present",
        all(r in html for r in references),
    )
    pdf = walk.call(
        "qa", "GET", f"{path}/certificate", status=200, why="its PDF", params={"format": "pdf"}
    )
    words = pdftext.squash(pdftext.text(pdf.content, "the certificate (PDF)", str(references)))
    walk.verify(
        "the certificate PDF names both references",
        [r for r in references[:2] if pdftext.squash(r) not in words] or "all present",
        all(pdftext.squash(r) in words for r in references[:2]),
    )

"""`homeward validate`: run the operational qualification against a live install (VAL-1)."""

import contextlib
import platform
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata

import httpx

from app.validation import scratch
from app.validation.checks import CHECKS, NOT_WALKED
from app.validation.report import Report
from app.validation.walk import Check, Outcome, PreconditionFailed, Walk


def _kit_version() -> str:
    try:
        return metadata.version("homeward")
    except metadata.PackageNotFoundError:
        return "unknown"


def run(
    url: str,
    admin_username: str,
    admin_password: str,
    *,
    checks: tuple[Check, ...] = CHECKS,
    timeout: float = 30.0,
    progress: Callable[[str], None] = lambda _: None,
) -> Report:
    """Walk `checks` against the install at `url` on scratch records and return the report.

    Never raises for what the install answers: an unreachable install, refused credentials or a
    missing approved specification is a precondition failure stated in the report.
    """
    run_id = datetime.now(UTC).strftime("%y%m%d%H%M%S")
    environment = {
        "validation kit": f"homeward {_kit_version()}",
        "runner": f"{socket.gethostname()}, Python {sys.version.split()[0]}, {platform.platform()}",
    }
    outcomes: list[Outcome] = []
    precondition = None
    with httpx.Client(base_url=url.rstrip("/"), timeout=timeout) as http:
        walk = Walk(http, run_id)
        try:
            progress("preconditions")
            environment |= scratch.preconditions(walk, admin_username, admin_password)
            progress(f"walking {len(checks)} checks")
            outcomes = walk.run(checks)
        except PreconditionFailed as exc:
            precondition = str(exc)
        except httpx.HTTPError as exc:
            precondition = f"the install at {url} cannot be reached: {exc}"
        finally:
            with contextlib.suppress(httpx.HTTPError):
                scratch.finish(walk)
    return Report.of(_content(url, walk, environment, outcomes, precondition))


def _content(
    url: str,
    walk: Walk,
    environment: dict[str, str],
    outcomes: list[Outcome],
    precondition: str | None,
) -> dict:
    per_requirement: dict[str, str] = {}
    for outcome in outcomes:
        previous = per_requirement.get(outcome.requirement, "pass")
        per_requirement[outcome.requirement] = outcome.status if previous == "pass" else previous
    summary = {
        "pass": sum(1 for s in per_requirement.values() if s == "pass"),
        "fail": sum(1 for s in per_requirement.values() if s == "fail"),
        "not demonstrated": sum(1 for s in per_requirement.values() if s == "blocked"),
        "not walked": len(NOT_WALKED),
    }
    passed = precondition is None and outcomes and all(o.status == "pass" for o in outcomes)
    return {
        "title": "Homeward operational qualification",
        "run_id": walk.run_id,
        "target": url,
        "started_at": walk.started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "environment": environment,
        "precondition": precondition,
        "verdict": "pass" if passed else ("precondition failed" if precondition else "fail"),
        "summary": summary,
        "per_requirement": per_requirement,
        "not_walked": [
            {"requirement": key, "reason": reason} for key, reason in NOT_WALKED.items()
        ],
        "checks": [
            {
                "requirement": o.requirement,
                "title": o.title,
                "status": o.status,
                "note": o.note,
                "seconds": o.seconds,
                "steps": [
                    {
                        "action": s.action,
                        "expected": s.expected,
                        "observed": s.observed,
                        "passed": s.passed,
                    }
                    for s in o.steps
                ],
            }
            for o in outcomes
        ],
    }

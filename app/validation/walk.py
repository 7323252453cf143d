"""The operational-qualification walk: a table of requirement → check, each check a series of
steps through the public HTTP API whose expected and observed results are recorded (VAL-1).

A check is a function of a `Walk`. It calls the API through `walk.call(...)` (which records the
request, what was expected and what was observed) and `walk.verify(...)` (a recorded assertion on
what came back). Checks run in the table's order and share the scratch records of the run
(`walk.state`): one that needs a record an earlier check failed to make raises `Blocked`, so the
requirement is reported as not demonstrated, and the walk goes on.
"""

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

API = "/api/v1"


class Blocked(Exception):
    """A check cannot run: something it needs (a record, a precondition) is missing."""


class PreconditionFailed(Exception):
    """The install is not ready for the walk (unreachable, bad credentials, no approved
    specification in force); nothing else is run and the report says why."""


@dataclass(frozen=True, slots=True)
class Step:
    action: str
    expected: str
    observed: str
    passed: bool


@dataclass(slots=True)
class Outcome:
    """What one check showed for its requirement."""

    requirement: str
    title: str
    steps: list[Step] = field(default_factory=list)
    status: str = "pass"  # pass | fail | blocked
    note: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Check:
    requirement: str
    title: str
    run: Callable[["Walk"], None]


def _short(response: httpx.Response) -> str:
    """The status and, for an error, its machine code: what a tester writes as observed."""
    observed = str(response.status_code)
    body = _error_body(response)
    if body:
        observed += f" {body['error']}: {str(body.get('detail', ''))[:160]}"
    return observed


def _error_body(response: httpx.Response) -> dict[str, Any] | None:
    """The {"error", "detail"} body of a refusal, or None."""
    if response.status_code < 400 or not response.content:
        return None
    if not response.headers.get("content-type", "").startswith("application/json"):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) and "error" in body else None


class Actor:
    """A signed-in user of the install: every request carries their bearer token."""

    def __init__(self, http: httpx.Client, username: str, password: str, role: str) -> None:
        self.http = http
        self.username = username
        self.password = password
        self.role = role
        self.token: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def new_password() -> str:
    """A password no strength check refuses: 32 random URL-safe characters."""
    return secrets.token_urlsafe(24)


def sign_in(http: httpx.Client, username: str, password: str, role: str) -> Actor:
    """Sign in; if the install asks for a first password change (403 password_change_required),
    change it to a new random one and sign in again. Raises PreconditionFailed when refused."""
    actor = Actor(http, username, password, role)
    for _attempt in range(2):
        answer = http.post(
            f"{API}/auth/token", data={"username": actor.username, "password": actor.password}
        )
        if answer.status_code != 200:
            raise PreconditionFailed(f"{username} cannot sign in: {_short(answer)}")
        actor.token = answer.json()["access_token"]
        me = http.get(f"{API}/auth/me", headers=actor.headers)
        if me.status_code == 200:
            return actor
        if me.status_code == 403 and me.json().get("error") == "password_change_required":
            replacement = new_password()
            changed = http.post(
                f"{API}/auth/password",
                json={"current_password": actor.password, "new_password": replacement},
                headers=actor.headers,
            )
            if changed.status_code not in (200, 204):
                raise PreconditionFailed(f"{username} cannot change password: {_short(changed)}")
            actor.password = replacement
            continue
        raise PreconditionFailed(f"{username} is signed in but refused: {_short(me)}")
    raise PreconditionFailed(f"{username} still has to change their password")


class Walk:
    """One run: the HTTP client, the actors, the scratch records, and the outcome being written."""

    def __init__(self, http: httpx.Client, run_id: str) -> None:
        self.http = http
        self.run_id = run_id
        self.actors: dict[str, Actor] = {}
        self.state: dict[str, Any] = {}
        self.outcome: Outcome | None = None
        self.started = datetime.now(UTC)

    # -- recording ---------------------------------------------------------------------------

    def _record(self, step: Step) -> None:
        assert self.outcome is not None
        self.outcome.steps.append(step)
        if not step.passed:
            self.outcome.status = "fail"

    def verify(self, expected: str, observed: Any, passed: bool, action: str = "inspect") -> bool:
        """Record an assertion on something the install answered."""
        self._record(Step(action, expected, str(observed)[:300], bool(passed)))
        return bool(passed)

    def call(
        self,
        who: str | None,
        method: str,
        path: str,
        *,
        status: int | tuple[int, ...],
        error: str | None = None,
        why: str,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one request as `who` (an actor's key; None: anonymous) and record it as a step
        expecting `status` (and the error code `error`)."""
        actor = self.actors[who] if who else None
        headers = actor.headers if actor else {}
        response = self.http.request(method, f"{API}{path}", headers=headers, **kwargs)
        statuses = status if isinstance(status, tuple) else (status,)
        passed = response.status_code in statuses
        if passed and error is not None:
            passed = (_error_body(response) or {}).get("error") == error
        wanted = "/".join(str(s) for s in statuses) + (f" {error}" if error else "")
        self._record(
            Step(
                f"{method} {API}{path} as {actor.role if actor else 'anonymous'}",
                f"{wanted}: {why}",
                _short(response),
                passed,
            )
        )
        return response

    def json(self, response: httpx.Response, what: str) -> Any:
        """The JSON of an answer a later step needs; Blocked when the call did not succeed."""
        if response.status_code >= 300:
            raise Blocked(f"{what} was refused ({_short(response)})")
        return response.json()

    def need(self, key: str) -> Any:
        """A scratch record an earlier check made; Blocked when it could not."""
        if key not in self.state:
            raise Blocked(f"needs the {key.replace('_', ' ')} an earlier check could not make")
        return self.state[key]

    # -- running -----------------------------------------------------------------------------

    def run(self, checks: tuple[Check, ...]) -> list[Outcome]:
        outcomes = []
        for check in checks:
            self.outcome = Outcome(check.requirement, check.title)
            began = time.monotonic()
            try:
                check.run(self)
            except Blocked as exc:
                self.outcome.status, self.outcome.note = "blocked", str(exc)
            except (httpx.HTTPError, KeyError, TypeError, ValueError, IndexError) as exc:
                # An answer of an unexpected shape is a failure of the install, never of the walk.
                self.outcome.status = "fail"
                self.outcome.note = f"unexpected answer: {type(exc).__name__}: {exc}"[:300]
            self.outcome.seconds = round(time.monotonic() - began, 3)
            outcomes.append(self.outcome)
        self.outcome = None
        return outcomes

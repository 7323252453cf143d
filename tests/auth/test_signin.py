"""SEC-4 (21 CFR 11.300(d)): the lockout cannot be turned by an anonymous caller against someone
else (the lock ends by itself, leaves open sessions alone, and a source that keeps failing is
throttled), unknown, wrong and locked answers cost the same work, and QA and admins get a report of
failed sign-ins and locks."""

import json
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlmodel import col

from app.audit.actions import AuditAction
from app.auth.models import SignInFailure, User
from app.auth.permissions import Role
from app.clock import utcnow
from app.main import create_app
from tests.helpers import PASSWORD, Api, audit_events, error, make_user, ok, unique
from tests.test_pages import submit

WRONG = "not-the-password-42"


def _fresh(db, user: User) -> User:
    fresh = db.get(User, user.id, populate_existing=True)
    assert fresh is not None
    return fresh


@contextmanager
def _api_with(
    db, settings, session_factory, source: str = "testclient", **changes: Any
) -> Iterator[Api]:
    """The API driver on an app with changed settings, its calls coming from `source`."""
    changed = settings.model_copy(update=changes)
    app = create_app(changed, session_factory)
    with TestClient(app, client=(source, 50000)) as client:
        yield Api(client, db, changed)


def _lock(api, user: User) -> None:
    for _ in range(api.settings.lockout_threshold):
        api.login(user.username, WRONG)
    assert _fresh(api.db, user).locked


def _expire_lock(db, user: User) -> None:
    db.execute(
        update(User)
        .where(col(User.id) == user.id)
        .values(locked_until=utcnow() - timedelta(seconds=1))
    )
    db.commit()


# -- the lock ends by itself --------------------------------------------------------------------


def test_sec4_a_lock_ends_by_itself_after_the_configured_minutes(api, db):
    user = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    before = utcnow()
    _lock(api, user)
    fresh = _fresh(db, user)
    minutes = api.settings.lockout_minutes
    assert minutes > 0 and fresh.locked_until is not None
    assert before + timedelta(minutes=minutes) <= fresh.locked_until
    assert fresh.locked_until <= utcnow() + timedelta(minutes=minutes)
    (locked,) = audit_events(db, AuditAction.USER_LOCKED)
    assert json.loads(locked.new_values or "{}")["locked_until"]
    error(api.login(user.username), 401, "account_locked")
    _expire_lock(db, user)
    assert api.login(user.username).status_code == 200
    fresh = _fresh(db, user)
    assert not fresh.locked and fresh.failed_logins == 0 and fresh.locked_until is None


def test_sec4_after_a_lock_ends_the_next_wrong_password_locks_again_at_once(api, db):
    """Past the threshold each wrong guess costs a whole lock period: guessing stays slow."""
    user = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    _lock(api, user)
    _expire_lock(db, user)
    error(api.login(user.username, WRONG), 401, "invalid_credentials")
    assert _fresh(db, user).locked
    assert len(audit_events(db, AuditAction.USER_LOCKED)) == 2
    error(api.login(user.username), 401, "account_locked")


def test_sec4_with_no_lock_minutes_only_an_admin_lifts_the_lock(db, settings, session_factory):
    with _api_with(db, settings, session_factory, lockout_minutes=0) as api:
        user = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
        _lock(api, user)
        assert _fresh(db, user).locked_until is None
        error(api.login(user.username), 401, "account_locked")
        ok(api.post(Role.ADMIN, f"/users/{user.id}/unlock"))
        assert api.login(user.username).status_code == 200


def test_sec4_a_locked_account_answers_the_same_to_right_and_wrong_passwords(api, db):
    user = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    _lock(api, user)
    right, wrong = api.login(user.username), api.login(user.username, WRONG)
    assert right.status_code == wrong.status_code == 401
    assert right.json() == wrong.json()
    # Attempts on a locked account do not extend the count that locked it.
    assert _fresh(db, user).failed_logins == api.settings.lockout_threshold


# -- per-source throttling ----------------------------------------------------------------------


def test_sec4_a_source_that_keeps_failing_is_throttled_and_others_are_not(
    db, settings, session_factory
):
    limit = 4
    victim = make_user(db, settings, roles=[Role.QA])
    with _api_with(db, settings, session_factory, "10.0.0.66", signin_source_limit=limit) as bad:
        # Guesses spread over many accounts, none reaching its own lock threshold.
        for _ in range(limit):
            error(bad.login(unique("guess-"), WRONG), 401, "invalid_credentials")
        refused = bad.login(victim.username, PASSWORD)
        error(refused, 429, "too_many_attempts")
        assert int(refused.headers["retry-after"]) > 0
    (throttled,) = audit_events(db, AuditAction.LOGIN_THROTTLED)
    assert json.loads(throttled.new_values or "{}")["source"] == "10.0.0.66"
    # The account's owner, elsewhere, signs in; the victim was never locked.
    with _api_with(db, settings, session_factory, "10.0.0.7", signin_source_limit=limit) as good:
        assert good.login(victim.username).status_code == 200
    assert not _fresh(db, victim).locked


def test_sec4_throttling_counts_only_the_window(db, settings, session_factory):
    with _api_with(db, settings, session_factory, "10.0.0.9", signin_source_limit=2) as api:
        user = make_user(db, api.settings, roles=[Role.TECHNICIAN])
        api.login(unique("guess-"), WRONG)
        api.login(unique("guess-"), WRONG)
        error(api.login(user.username), 429, "too_many_attempts")
        window = timedelta(minutes=api.settings.signin_source_window_minutes, seconds=1)
        db.execute(update(SignInFailure).values(at=utcnow() - window))
        db.commit()
        assert api.login(user.username).status_code == 200
        # Failures the window no longer counts are pruned at the next failure.
        api.login(unique("guess-"), WRONG)
        rows = db.execute(select(func.count()).select_from(SignInFailure)).scalar_one()
        assert rows == 1


# -- constant-time answers ----------------------------------------------------------------------


def _median_seconds(call, tries: int) -> float:
    times = []
    for _ in range(tries):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def test_sec4_unknown_wrong_and_locked_answers_take_the_same_time(db, settings, session_factory):
    """A locked account or an unknown name must not answer measurably faster than a wrong
    password (that would reveal which accounts exist or are locked). Argon2 here costs what a
    deployment pays, so the hash, not the test database, dominates; ratios of medians over
    interleaved tries hold on a noisy machine, absolute times do not."""
    costly = {"argon2_time_cost": 2, "argon2_memory_kib": 32_768, "lockout_threshold": 100}
    with _api_with(db, settings, session_factory, signin_source_limit=1000, **costly) as api:
        wrong_user = make_user(db, api.settings, roles=[Role.TECHNICIAN])
        locked_user = make_user(db, api.settings, roles=[Role.TECHNICIAN])
        db.execute(
            update(User)
            .where(col(User.id) == locked_user.id)
            .values(locked=True, locked_until=utcnow() + timedelta(hours=1))
        )
        db.commit()
        calls = {
            "wrong": lambda: error(
                api.login(wrong_user.username, WRONG), 401, "invalid_credentials"
            ),
            "locked": lambda: error(api.login(locked_user.username, WRONG), 401, "account_locked"),
            "unknown": lambda: error(
                api.login(unique("ghost-"), WRONG), 401, "invalid_credentials"
            ),
        }
        for call in calls.values():
            call()  # warm caches (the dummy hash, the hasher)
        medians = {name: [] for name in calls}
        for _ in range(3):
            for name, call in calls.items():
                medians[name].append(_median_seconds(call, tries=3))
        typical = {name: statistics.median(values) for name, values in medians.items()}
    assert typical["locked"] / typical["wrong"] > 0.6, typical
    assert typical["unknown"] / typical["wrong"] > 0.6, typical


# -- the report ---------------------------------------------------------------------------------


def test_sec4_qa_and_admin_read_the_report_of_failed_sign_ins_and_locks(api, db):
    since = utcnow() - timedelta(seconds=1)
    user = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    ghost = unique("ghost-")
    api.login(ghost, WRONG)
    _lock(api, user)
    api.login(user.username)  # refused: locked
    for role in (Role.QA, Role.ADMIN):
        report = ok(api.get(role, "/auth/sign-in-report", params={"since": since.isoformat()}))
        assert report["locks"] == 1
        assert report["failed"] == 1 + api.settings.lockout_threshold + 1
        actions = [row["action"] for row in report["events"]]
        assert actions[0] == "auth.login_failed"  # newest first: the refusal while locked
        assert "user.locked" in actions
        (lock,) = [row for row in report["events"] if row["action"] == "user.locked"]
        assert lock["username"] == user.username and lock["locked_until"]
        (unknown,) = [row for row in report["events"] if row["username"] == ghost]
        assert unknown["user_id"] is None and unknown["source"] == "testclient"
        assert WRONG not in json.dumps(report) and PASSWORD not in json.dumps(report)
    later = ok(api.get(Role.QA, "/auth/sign-in-report", params={"since": utcnow().isoformat()}))
    assert later["events"] == [] and later["failed"] == 0
    for role in (Role.TECHNICIAN, Role.CLINICIAN):
        error(
            api.get(role, "/auth/sign-in-report", params={"since": since.isoformat()}),
            403,
            "forbidden",
        )
    week = ok(api.get(Role.QA, "/auth/sign-in-report"))  # by default, the last seven days
    assert week["locks"] == 1 and week["since"] < since.isoformat()
    error(
        api.get(Role.QA, "/auth/sign-in-report", params={"since": "yesterday"}),
        422,
        "invalid_request",
    )


def test_sec4_the_report_page_lists_the_locks(api, db):
    user = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    _lock(api, user)
    qa = make_user(api.db, api.settings, roles=[Role.QA])
    login = submit(
        api, "/login", data={"username": qa.username, "password": PASSWORD}, follow_redirects=False
    )
    assert login.status_code == 303
    page = api.client.get("/sign-in-report")
    assert page.status_code == 200
    assert user.username in page.text and "user.locked" in page.text
    assert "account locks" in page.text

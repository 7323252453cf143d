"""Separation of duties (SEC-2, DESIGN §1): admin is never held with qa or clinician, nobody
changes their own roles, every role change says why, and releasing, signing, infusing and
witnessing refuse anyone holding admin — even an account older than the rule."""

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from app.audit.actions import AuditAction
from app.auth import service as auth
from app.auth.models import User
from app.auth.permissions import Role, incompatible
from app.cli import cli
from app.config import get_settings
from app.db import unit_of_work
from app.demo import DEMO_USERS
from app.errors import IncompatibleRoles
from tests.clinic.test_bedside import check, infuse, ready
from tests.helpers import PASSWORD, audit_events, error, make_legacy_user, make_user, ok, unique
from tests.races import Contender, committed_api, wait_for_lock_waiters
from tests.release.support import counts, decide_as, oos_ready

FORBIDDEN_SETS = (["admin", "qa"], ["admin", "clinician"], ["admin", "qa", "clinician"])


def _put_roles(api, headers, user_id: int, roles: list[str], reason: str | None = "Duty change"):
    body: dict = {"roles": roles} | ({"reason": reason} if reason is not None else {})
    return api.client.put(f"/api/v1/users/{user_id}/roles", json=body, headers=headers)


def _roles(api, user: User) -> list[str]:
    return sorted(auth.roles_of(api.db, user.id or 0))


def _role_events(api, user: User) -> list:
    return [e for e in audit_events(api.db, AuditAction.USER_ROLES_SET) if e.entity_id == user.id]


def test_sec2_an_admin_cannot_make_itself_qa_or_clinician(api):
    """Finding 3: `PUT /users/{own id}/roles` added qa to the admin itself."""
    admin = make_user(api.db, api.settings, roles=[Role.ADMIN])
    headers = api.headers_for(admin)
    for roles in (["admin", "qa"], ["admin", "clinician"], ["qa"], ["admin", "technician"]):
        detail = error(_put_roles(api, headers, admin.id, roles), 403, "forbidden")
        assert "your own roles" in detail
    assert _roles(api, admin) == ["admin"] and _role_events(api, admin) == []


@pytest.mark.parametrize("roles", FORBIDDEN_SETS)
def test_sec2_admin_is_never_given_together_with_qa_or_clinician(api, roles):
    admin = make_user(api.db, api.settings, roles=[Role.ADMIN])
    headers = api.headers_for(admin)
    other = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    detail = error(_put_roles(api, headers, other.id, roles), 422, "incompatible_roles")
    assert "admin" in detail and "SEC-2" in detail
    assert _roles(api, other) == ["technician"] and _role_events(api, other) == []
    users = api.db.execute(select(func.count()).select_from(User)).scalar_one()
    body = {"username": unique("new-"), "full_name": "New Person", "password": PASSWORD}
    created = api.client.post("/api/v1/users", json=body | {"roles": roles}, headers=headers)
    error(created, 422, "incompatible_roles")
    assert api.db.execute(select(func.count()).select_from(User)).scalar_one() == users
    # Admin with technician breaks no rule; neither does qa with clinician.
    assert ok(_put_roles(api, headers, other.id, ["admin", "technician"]))["roles"] == [
        "admin",
        "technician",
    ]
    assert ok(_put_roles(api, headers, other.id, ["clinician", "qa"]))["roles"] == [
        "clinician",
        "qa",
    ]


def test_sec2_every_role_change_carries_a_reason_which_is_audited(api):
    admin = make_user(api.db, api.settings, roles=[Role.ADMIN])
    headers = api.headers_for(admin)
    other = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    for reason in (None, "", "   "):
        error(_put_roles(api, headers, other.id, ["qa"], reason), 422, "invalid_request")
    assert _role_events(api, other) == []
    ok(_put_roles(api, headers, other.id, ["qa"], "Joined QA after training"))
    (event,) = _role_events(api, other)
    assert event.reason == "Joined QA after training" and event.actor_id == admin.id
    assert json.loads(event.new_values or "{}") == {"roles": ["qa"]}


def test_sec2_the_cli_and_the_demo_obey_the_same_rule(tmp_path, monkeypatch):
    monkeypatch.setenv("HOMEWARD_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("HOMEWARD_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("HOMEWARD_ARGON2_MEMORY_KIB", "1024")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
        args = ["users", "create", "root.qa", "--role", "admin", "--role", "qa",
                "--full-name", "Root QA", "--password-stdin"]  # fmt: skip
        result = runner.invoke(cli, args, input="long-enough-pw\n")
        assert result.exit_code == 1 and "SEC-2" in result.output
    finally:
        get_settings.cache_clear()
    assert all(not incompatible(user.roles) for user in DEMO_USERS)
    with pytest.raises(IncompatibleRoles):
        auth.check_separation([Role.CLINICIAN, Role.ADMIN])


def test_sec2_an_admin_qa_account_from_before_the_rule_cannot_release_or_sign(api):
    """Existing databases may hold such accounts: they sign in, but every signed act refuses
    them once the password is checked, and nothing is written."""
    batch, _ = api.formulated()
    api.pass_qc(batch["id"], prepare=False)
    legacy = make_legacy_user(api.db, api.settings, roles=[Role.ADMIN, Role.QA])
    headers = api.headers_for(legacy)
    before = counts(api, batch["id"])
    for decision in ("release", "reject"):
        detail = error(decide_as(api, headers, batch["id"], decision), 403, "forbidden")
        assert "admin" in detail
    result_id = api.qc(batch["id"])["tests"][0]["result_id"]
    error(api.review(result_id, headers), 403, "forbidden")
    assert counts(api, batch["id"]) == before
    # A wrong password is still a wrong password first (nothing learnt of the rules).
    error(
        decide_as(api, headers, batch["id"], password="not-it-at-all"), 401, "invalid_credentials"
    )


def test_sec2_an_admin_clinician_cannot_infuse_witness_or_accept(api):
    _, codes, who = ready(api)
    legacy = make_legacy_user(api.db, api.settings, roles=[Role.ADMIN, Role.CLINICIAN])
    headers = api.headers_for(legacy)
    witness = make_user(api.db, api.settings, roles=[Role.CLINICIAN])
    detail = error(infuse(api, check(who, codes[0]), witness, headers=headers), 403, "forbidden")
    assert "cannot infuse" in detail
    detail = error(infuse(api, check(who, codes[0]), legacy), 403, "forbidden")
    assert "witness" in detail
    oos, _ = oos_ready(api)
    acceptance = {
        "physician_name": "Dr Legacy",
        "accepted_at": datetime.now(UTC).isoformat(),
        "password": PASSWORD,
    }
    path = f"/api/v1/batches/{oos['id']}/physician-acceptance"
    error(api.client.post(path, json=acceptance, headers=headers), 403, "forbidden")
    # The dose is still there to be infused properly.
    ok(infuse(api, check(who, codes[0]), witness), 201)


@pytest.mark.postgres_only
def test_sec2_two_concurrent_role_changes_of_one_user_never_combine(committed_engine, settings):
    """One admin's change holds the user's row, uncommitted; another admin's change of the same
    user is seen waiting; the first commits. Without the lock the second would delete only the
    rows it saw and add its own: admin+qa, a set nobody asked for and SEC-2 forbids."""
    with committed_api(committed_engine, settings) as (api, factory):
        first = make_user(api.db, settings, roles=[Role.ADMIN])
        second = api.headers_for(make_user(api.db, settings, roles=[Role.ADMIN]))
        target = make_user(api.db, settings, roles=[Role.TECHNICIAN])
        with unit_of_work(factory) as session:
            actor = session.get(User, first.id)
            assert actor is not None
            auth.set_roles(
                session, actor=actor, user_id=target.id or 0, roles=[Role.ADMIN], reason="IT"
            )
            late = Contender(lambda: _put_roles(api, second, target.id or 0, ["qa"], "QA"))
            wait_for_lock_waiters(committed_engine, 1)
        assert ok(late.response())["roles"] == ["qa"]
        with factory() as session:
            assert sorted(auth.roles_of(session, target.id or 0)) == ["qa"]
            events = [
                json.loads(e.old_values or "{}")
                for e in audit_events(session, AuditAction.USER_ROLES_SET)
                if e.entity_id == target.id
            ]
        # The second change saw the first one's result as its old roles.
        assert events == [{"roles": ["technician"]}, {"roles": ["admin"]}]

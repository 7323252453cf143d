"""Authentication and user management through the HTTP API: login, failed login and lockout
(SEC, AUD-1), token idle expiry and logout (SEC), deactivation, and the admin's user management
(DESIGN §1, §11 contract `POST /api/v1/users`)."""

import json
from datetime import timedelta

from sqlalchemy import select, update
from sqlmodel import col

from app.audit.actions import AuditAction, EntityType
from app.auth import security
from app.auth.models import AuthToken, User
from app.auth.permissions import Role
from app.clock import as_utc, utcnow
from tests.helpers import PASSWORD, audit_events, make_user, unique

WRONG = "not-the-password-42"


def _user(api, roles=(Role.TECHNICIAN,), **kwargs) -> User:
    return make_user(api.db, api.settings, roles=list(roles), **kwargs)


def _fresh(db, user: User) -> User:
    """The user row as it is now in the database (the API changed it in other sessions)."""
    fresh = db.get(User, user.id, populate_existing=True)
    assert fresh is not None
    return fresh


def _token(api, user: User, password: str = PASSWORD) -> str:
    response = api.login(user.username, password)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _me(api, token: str):
    return api.client.get("/api/v1/auth/me", headers=_bearer(token))


def _token_row(api, token: str) -> AuthToken:
    digest = security.token_digest(api.settings, token)
    row = api.db.get(AuthToken, digest, populate_existing=True)
    assert row is not None
    return row


def _set_last_used(api, token: str, minutes_ago: float) -> None:
    digest = security.token_digest(api.settings, token)
    api.db.execute(
        update(AuthToken)
        .where(col(AuthToken.digest) == digest)
        .values(last_used_at=utcnow() - timedelta(minutes=minutes_ago))
    )
    api.db.commit()


def _events_for(db, action: AuditAction, user_id: int | None):
    return [event for event in audit_events(db, action) if event.entity_id == user_id]


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def _everything_audited(db) -> str:
    """Every audit event as one text, to search it for things it must never contain."""
    return "\n".join(
        json.dumps(
            [e.actor, e.action, e.old_values, e.new_values, e.reason, e.entity_type],
            ensure_ascii=False,
        )
        for e in audit_events(db)
    )


# -- login --------------------------------------------------------------------------------------


def test_sec_login_returns_a_bearer_token_and_aud1_audits_the_login(api, db):
    user = _user(api)
    response = api.login(user.username)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert isinstance(body["access_token"], str) and len(body["access_token"]) >= 32
    (event,) = _events_for(db, AuditAction.LOGIN, user.id)
    assert event.actor_id == user.id and event.actor == user.username
    assert event.entity_type == EntityType.USER.value
    # The token is usable straight away, and only its digest is stored (never the token).
    assert _me(api, body["access_token"]).json()["username"] == user.username
    stored = db.execute(select(AuthToken.digest).where(AuthToken.user_id == user.id)).scalars()
    assert body["access_token"] not in list(stored)


def test_sec_each_login_issues_a_distinct_token(api):
    user = _user(api)
    first, second = _token(api, user), _token(api, user)
    assert first != second
    assert _me(api, first).status_code == 200 and _me(api, second).status_code == 200


def test_sec_wrong_password_is_401_invalid_credentials_and_aud1_audited(api, db):
    user = _user(api)
    response = api.login(user.username, WRONG)
    _error(response, 401, "invalid_credentials")
    assert "access_token" not in response.json()
    (event,) = _events_for(db, AuditAction.LOGIN_FAILED, user.id)
    assert event.entity_type == EntityType.USER.value
    assert json.loads(event.new_values or "{}")["failed_attempts"] == 1
    assert _fresh(db, user).failed_logins == 1
    assert _events_for(db, AuditAction.LOGIN, user.id) == []


def test_sec_unknown_user_gets_the_same_401_as_a_wrong_password_no_enumeration(api, db):
    user = _user(api)
    wrong_password = api.login(user.username, WRONG)
    unknown_user = api.login(unique("nobody-"), WRONG)
    _error(unknown_user, 401, "invalid_credentials")
    assert unknown_user.json() == wrong_password.json()
    assert unknown_user.status_code == wrong_password.status_code


def test_aud1_failed_login_of_an_unknown_user_is_audited_anonymously(api, db):
    name = unique("ghost-")
    assert api.login(name, WRONG).status_code == 401
    (event,) = audit_events(db, AuditAction.LOGIN_FAILED)
    assert event.actor == "anonymous" and event.actor_id is None and event.entity_id is None
    assert json.loads(event.new_values or "{}")["username"] == name
    # A name no account could have is not copied verbatim into the trail.
    assert api.login("bad name\x00<script>", WRONG).status_code == 401
    last = audit_events(db, AuditAction.LOGIN_FAILED)[-1]
    assert "<script>" not in (last.new_values or "")


def test_aud1_failed_login_event_survives_the_rollback_of_the_refused_request(api, db):
    """The refusal rolls its transaction back; the audit event of the refusal is written after
    the rollback in its own transaction (app.db.unit_of_work's aftermath) and stays."""
    user = _user(api)
    before = len(audit_events(db))
    assert api.login(user.username, WRONG).status_code == 401
    assert api.login(user.username, WRONG).status_code == 401
    events = audit_events(db)[before:]
    assert [event.action for event in events] == [AuditAction.LOGIN_FAILED.value] * 2
    assert [json.loads(event.new_values or "{}")["failed_attempts"] for event in events] == [1, 2]
    assert _fresh(db, user).failed_logins == 2
    # The chain the aftermath extended still verifies.
    admin = _user(api, roles=[Role.ADMIN])
    verdict = api.client.get("/api/v1/audit/verify", headers=api.headers_for(admin))
    assert verdict.status_code == 200 and verdict.json()["ok"] is True


def test_sec_aud1_the_wrong_password_is_never_written_to_the_audit_trail(api, db):
    user = _user(api)
    secret = "Wr0ng-but-s3cret-" + unique("x")
    api.login(user.username, secret)
    api.login(unique("nobody-"), secret)
    assert secret not in _everything_audited(db)


# -- lockout ------------------------------------------------------------------------------------


def test_sec_failed_logins_lock_the_account_at_the_threshold_aud1_audited(api, db):
    threshold = api.settings.lockout_threshold
    assert threshold == 5  # the DESIGN's number (SEC); the test settings keep the default
    user = _user(api)
    for attempt in range(1, threshold):
        _error(api.login(user.username, WRONG), 401, "invalid_credentials")
        assert not _fresh(db, user).locked, f"locked after only {attempt} failures"
    assert _events_for(db, AuditAction.USER_LOCKED, user.id) == []
    # The threshold-th failure is still an invalid-credentials answer, and locks the account.
    _error(api.login(user.username, WRONG), 401, "invalid_credentials")
    fresh = _fresh(db, user)
    assert fresh.locked and fresh.failed_logins == threshold
    (locked,) = _events_for(db, AuditAction.USER_LOCKED, user.id)
    assert json.loads(locked.new_values or "{}")["locked"] is True
    assert locked.reason
    # Even the right password is refused now, with a distinct code, and that is audited too.
    failed_before = len(_events_for(db, AuditAction.LOGIN_FAILED, user.id))
    _error(api.login(user.username), 401, "account_locked")
    assert len(_events_for(db, AuditAction.LOGIN_FAILED, user.id)) == failed_before + 1
    assert _events_for(db, AuditAction.LOGIN, user.id) == []


def test_sec4_a_lock_from_anonymous_sign_ins_leaves_the_users_open_sessions_alone(api, db):
    """Anyone can type wrong passwords for a known username: that must not throw the account's
    owner out of the session in which they already proved their password (SEC-4)."""
    user = _user(api)
    token = _token(api, user)
    for _ in range(api.settings.lockout_threshold):
        api.login(user.username, WRONG)
    assert _fresh(db, user).locked
    assert _me(api, token).status_code == 200
    _error(api.login(user.username), 401, "account_locked")


def test_sec_an_admin_unlocks_a_locked_account_and_login_works_again(api, db):
    user = _user(api)
    admin = _user(api, roles=[Role.ADMIN])
    for _ in range(api.settings.lockout_threshold):
        api.login(user.username, WRONG)
    assert _fresh(db, user).locked
    response = api.client.post(f"/api/v1/users/{user.id}/unlock", headers=api.headers_for(admin))
    assert response.status_code == 200, response.text
    assert response.json()["locked"] is False and response.json()["id"] == user.id
    fresh = _fresh(db, user)
    assert not fresh.locked and fresh.failed_logins == 0
    (event,) = _events_for(db, AuditAction.USER_UNLOCKED, user.id)
    assert event.actor_id == admin.id
    assert json.loads(event.old_values or "{}")["locked"] is True
    assert _me(api, _token(api, user)).status_code == 200
    # The count starts again from zero: one more failure does not re-lock.
    api.login(user.username, WRONG)
    assert not _fresh(db, user).locked


def test_sec_only_an_admin_can_unlock(api, db):
    user = _user(api)
    for _ in range(api.settings.lockout_threshold):
        api.login(user.username, WRONG)
    for role in (Role.TECHNICIAN, Role.QA, Role.CLINICIAN):
        _error(api.post(role, f"/users/{user.id}/unlock"), 403, "forbidden")
    assert _fresh(db, user).locked


def test_sec_a_successful_login_resets_the_failure_count(api, db):
    user = _user(api)
    threshold = api.settings.lockout_threshold
    for _ in range(threshold - 1):
        api.login(user.username, WRONG)
    assert _fresh(db, user).failed_logins == threshold - 1
    assert api.login(user.username).status_code == 200
    assert _fresh(db, user).failed_logins == 0
    for _ in range(threshold - 1):
        api.login(user.username, WRONG)
    assert not _fresh(db, user).locked
    assert api.login(user.username).status_code == 200


# -- tokens -------------------------------------------------------------------------------------


def test_sec_me_answers_with_the_token_and_401_without_it(api):
    user = _user(api, roles=[Role.QA, Role.CLINICIAN])
    response = _me(api, _token(api, user))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == user.id and body["username"] == user.username
    assert sorted(body["roles"]) == ["clinician", "qa"]
    assert "password" not in response.text and "password_hash" not in body
    _error(api.client.get("/api/v1/auth/me"), 401, "not_authenticated")


def test_sec_logout_revokes_the_token_aud1_audited(api, db):
    user = _user(api)
    token, other = _token(api, user), _token(api, user)
    response = api.client.post("/api/v1/auth/logout", headers=_bearer(token))
    assert response.status_code == 204 and response.content == b""
    _error(_me(api, token), 401, "not_authenticated")
    _error(api.client.post("/api/v1/auth/logout", headers=_bearer(token)), 401, "not_authenticated")
    assert _token_row(api, token).revoked_at is not None
    (event,) = _events_for(db, AuditAction.LOGOUT, user.id)
    assert event.actor_id == user.id
    # Logout ends that session only.
    assert _me(api, other).status_code == 200


def test_sec_an_idle_token_expires(api):
    user = _user(api)
    token = _token(api, user)
    assert _me(api, token).status_code == 200
    _set_last_used(api, token, minutes_ago=api.settings.token_idle_minutes + 1)
    _error(_me(api, token), 401, "not_authenticated")
    # And it stays expired: the refused call did not refresh it.
    _error(_me(api, token), 401, "not_authenticated")


def test_sec_a_token_used_within_the_idle_window_stays_valid_and_slides(api):
    user = _user(api)
    token = _token(api, user)
    idle = api.settings.token_idle_minutes
    # Created long ago, but used recently: idle expiry, not absolute expiry.
    digest = security.token_digest(api.settings, token)
    api.db.execute(
        update(AuthToken)
        .where(col(AuthToken.digest) == digest)
        .values(created_at=utcnow() - timedelta(hours=3))
    )
    _set_last_used(api, token, minutes_ago=idle - 1)
    assert _me(api, token).status_code == 200
    # The use was recorded, so the window starts again from now.
    assert utcnow() - as_utc(_token_row(api, token).last_used_at) < timedelta(minutes=1)
    assert _me(api, token).status_code == 200


def test_sec_a_garbage_or_malformed_token_is_401(api):
    _user(api)
    for headers in (
        _bearer("garbage"),
        _bearer("x" * 5000),
        _bearer(security.new_token()),
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
    ):
        _error(api.client.get("/api/v1/auth/me", headers=headers), 401, "not_authenticated")


def test_sec_a_deactivated_users_tokens_stop_working_and_they_cannot_log_in(api, db):
    user = _user(api)
    admin = _user(api, roles=[Role.ADMIN])
    admin_headers = api.headers_for(admin)
    token = _token(api, user)
    response = api.client.post(f"/api/v1/users/{user.id}/deactivate", headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.json()["active"] is False
    _error(_me(api, token), 401, "not_authenticated")
    refused = api.login(user.username)
    _error(refused, 401, "invalid_credentials")
    # Same answer as for an unknown user: an inactive account is not revealed either.
    assert refused.json() == api.login(unique("nobody-"), PASSWORD).json()
    (event,) = _events_for(db, AuditAction.USER_DEACTIVATED, user.id)
    assert event.actor_id == admin.id

    response = api.client.post(f"/api/v1/users/{user.id}/reactivate", headers=admin_headers)
    assert response.status_code == 200 and response.json()["active"] is True
    (event,) = _events_for(db, AuditAction.USER_REACTIVATED, user.id)
    assert event.actor_id == admin.id
    new_token = _token(api, user)
    assert _me(api, new_token).status_code == 200
    # The tokens revoked by the deactivation stay revoked.
    _error(_me(api, token), 401, "not_authenticated")


# -- user management ----------------------------------------------------------------------------


def _create(api, admin_headers, **overrides):
    body = {
        "username": unique("new.user-"),
        "full_name": "Maria Bianchi",
        "password": "a-long-enough-password",
        "roles": ["technician"],
    } | overrides
    return body, api.client.post("/api/v1/users", json=body, headers=admin_headers)


def test_sec_admin_creates_a_user_per_contract_aud1_audited(api, db):
    admin = _user(api, roles=[Role.ADMIN])
    headers = api.headers_for(admin)
    body, response = _create(api, headers, roles=["qa", "clinician", "qa"])
    assert response.status_code == 201, response.text
    data = response.json()
    assert isinstance(data["id"], int)
    assert data["username"] == body["username"]
    assert sorted(data["roles"]) == ["clinician", "qa"]
    (event,) = _events_for(db, AuditAction.USER_CREATED, data["id"])
    assert event.actor_id == admin.id
    assert json.loads(event.new_values or "{}")["username"] == body["username"]
    # The new user can log in with the given password, must choose their own (SEC-3), and then
    # holds the given roles.
    login = api.login(body["username"], body["password"])
    assert login.status_code == 200
    assert login.json()["credential_change_required"] is True
    _error(_me(api, login.json()["access_token"]), 403, "password_change_required")
    me = api.client.get(
        "/api/v1/auth/me", headers=api.first_sign_in(body["username"], body["password"])
    )
    assert sorted(me.json()["roles"]) == ["clinician", "qa"]


def test_sec_passwords_are_stored_as_argon2id_and_never_shown_or_audited(api, db):
    admin = _user(api, roles=[Role.ADMIN])
    headers = api.headers_for(admin)
    password = "Very-Secret-" + unique("pw")
    body, response = _create(api, headers, password=password)
    assert response.status_code == 201
    row = db.execute(select(User).where(User.username == body["username"])).scalar_one()
    assert row.password_hash.startswith("$argon2id$")
    assert password not in row.password_hash
    assert security.password_matches(api.settings, row.password_hash, password)
    listing = api.client.get("/api/v1/users", headers=headers)
    for text in (response.text, listing.text, _me(api, _token(api, row, password)).text):
        assert password not in text and "$argon2" not in text
    audited = _everything_audited(db)
    assert password not in audited and "$argon2" not in audited


def test_sec_duplicate_username_is_409_and_changes_nothing(api, db):
    admin = _user(api, roles=[Role.ADMIN])
    headers = api.headers_for(admin)
    body, first = _create(api, headers)
    assert first.status_code == 201
    users_before = len(db.execute(select(User.id)).all())
    events_before = len(audit_events(db))
    _, again = _create(api, headers, username=body["username"], full_name="Someone Else")
    _error(again, 409, "duplicate_username")
    assert len(db.execute(select(User.id)).all()) == users_before
    assert len(audit_events(db)) == events_before


def test_sec_user_creation_validates_its_fields(api, db):
    admin = _user(api, roles=[Role.ADMIN])
    headers = api.headers_for(admin)
    users_before = len(db.execute(select(User.id)).all())
    for overrides in (
        {"password": "short"},
        {"username": "has space"},
        {"username": ""},
        {"roles": []},
        {"roles": ["superuser"]},
        {"full_name": "A\x00B"},
        {"is_admin": True},
    ):
        _, response = _create(api, headers, **overrides)
        _error(response, 422, "invalid_request")
    assert len(db.execute(select(User.id)).all()) == users_before


def test_sec_admin_sets_roles_which_take_effect_on_open_sessions_aud1_audited(api, db):
    admin = _user(api, roles=[Role.ADMIN])
    headers = api.headers_for(admin)
    user = _user(api, roles=[Role.TECHNICIAN])
    user_token = _token(api, user)
    _error(api.client.get("/api/v1/audit/verify", headers=_bearer(user_token)), 403, "forbidden")
    response = api.client.put(
        f"/api/v1/users/{user.id}/roles",
        json={"roles": ["qa"], "reason": "Moved to quality assurance"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["roles"] == ["qa"]
    assert api.client.get("/api/v1/audit/verify", headers=_bearer(user_token)).status_code == 200
    assert _me(api, user_token).json()["roles"] == ["qa"]
    (event,) = _events_for(db, AuditAction.USER_ROLES_SET, user.id)
    assert json.loads(event.old_values or "{}") == {"roles": ["technician"]}
    assert json.loads(event.new_values or "{}") == {"roles": ["qa"]}
    assert event.actor_id == admin.id and event.reason == "Moved to quality assurance"
    _error(
        api.client.put(
            "/api/v1/users/2147483647/roles",
            json={"roles": ["qa"], "reason": "No such user"},
            headers=headers,
        ),
        404,
        "not_found",
    )


def test_sec_admin_lists_users_with_their_roles(api):
    admin = _user(api, roles=[Role.ADMIN])
    tech = _user(api, roles=[Role.TECHNICIAN, Role.QA])
    response = api.client.get("/api/v1/users", headers=api.headers_for(admin))
    assert response.status_code == 200
    by_name = {row["username"]: row for row in response.json()}
    assert sorted(by_name[tech.username]["roles"]) == ["qa", "technician"]
    assert by_name[admin.username]["roles"] == ["admin"]
    assert by_name[tech.username]["active"] is True and by_name[tech.username]["locked"] is False


def test_sec2_admin_cannot_deactivate_themselves_nor_change_their_own_roles(api, db):
    admin = _user(api, roles=[Role.ADMIN])
    headers = api.headers_for(admin)
    _error(
        api.client.post(f"/api/v1/users/{admin.id}/deactivate", headers=headers), 409, "conflict"
    )
    for roles in (["qa"], ["admin", "technician"]):
        _error(
            api.client.put(
                f"/api/v1/users/{admin.id}/roles",
                json={"roles": roles, "reason": "Covering for a colleague"},
                headers=headers,
            ),
            403,
            "forbidden",
        )
    fresh = _fresh(db, admin)
    assert fresh.active
    assert _me(api, _token(api, admin)).json()["roles"] == ["admin"]
    assert _events_for(db, AuditAction.USER_DEACTIVATED, admin.id) == []
    assert _events_for(db, AuditAction.USER_ROLES_SET, admin.id) == []


def test_sec_another_admin_can_remove_an_admin_role(api):
    first = _user(api, roles=[Role.ADMIN])
    second = _user(api, roles=[Role.ADMIN])
    response = api.client.put(
        f"/api/v1/users/{second.id}/roles",
        json={"roles": ["technician"], "reason": "Back to the bench"},
        headers=api.headers_for(first),
    )
    assert response.status_code == 200 and response.json()["roles"] == ["technician"]

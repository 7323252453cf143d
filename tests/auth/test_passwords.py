"""SEC-3 (21 CFR 11.300(b)): a password is changed only with the current one (audited; a wrong
one counts towards the lockout), a user an admin created or reset must change theirs before any
other call (API and pages), passwords age and recent ones cannot come back, and a strength check
refuses `password`, blanks and the username."""

import itertools
import json
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import col

from app import demo
from app.audit.actions import AuditAction
from app.auth import security
from app.auth.models import User
from app.auth.permissions import Role
from app.clock import utcnow
from tests.clinic.test_bedside import check, clinician, infuse, patient, to_clinic
from tests.helpers import NEW_PASSWORD, PASSWORD, audit_events, error, make_user, ok, unique
from tests.test_pages import submit

CHANGE = "/api/v1/auth/password"
OTHER = "river-pelican-abacus"


def _fresh(db, user_id: int) -> User:
    user = db.get(User, user_id, populate_existing=True)
    assert user is not None
    return user


def _bearer(api, username: str, password: str = PASSWORD) -> dict[str, str]:
    response = api.login(username, password)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _change(api, headers, current: str, new: str):
    body = {"current_password": current, "new_password": new}
    return api.client.post(CHANGE, json=body, headers=headers)


def _created_by_admin(api, password: str = "plum-harbour-violin", roles=("technician",)):
    """A user created through POST /users by an admin: (username, password, id)."""
    username = unique("new.user-")
    body = {"username": username, "full_name": "Maria Bianchi", "password": password,
            "roles": list(roles)}  # fmt: skip
    created = ok(api.post(Role.ADMIN, "/users", body), 201)
    return username, password, created["id"]


# -- change -------------------------------------------------------------------------------------


def test_sec3_a_user_changes_their_password_with_the_current_one_audited(api, db):
    user = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    headers = _bearer(api, user.username)
    before = _fresh(db, user.id).password_changed_at
    response = _change(api, headers, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 204 and response.content == b"", response.text
    fresh = _fresh(db, user.id)
    assert security.password_matches(api.settings, fresh.password_hash, NEW_PASSWORD)
    assert fresh.password_changed_at > before
    (event,) = [e for e in audit_events(db, AuditAction.PASSWORD_CHANGED) if e.entity_id == user.id]
    assert event.actor_id == user.id
    assert NEW_PASSWORD not in (event.new_values or "") and PASSWORD not in (event.new_values or "")
    # The session that changed it goes on; the old password no longer signs in, the new one does.
    assert api.client.get("/api/v1/auth/me", headers=headers).status_code == 200
    error(api.login(user.username, PASSWORD), 401, "invalid_credentials")
    assert api.login(user.username, NEW_PASSWORD).status_code == 200


def test_sec3_changing_the_password_ends_the_users_other_sessions(api):
    user = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    here, elsewhere = _bearer(api, user.username), _bearer(api, user.username)
    assert _change(api, here, PASSWORD, NEW_PASSWORD).status_code == 204
    error(api.client.get("/api/v1/auth/me", headers=elsewhere), 401, "not_authenticated")
    assert api.client.get("/api/v1/auth/me", headers=here).status_code == 200


def test_sec3_sec4_a_wrong_current_password_is_401_changes_nothing_and_counts_as_a_failure(api, db):
    user = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    headers = _bearer(api, user.username)
    error(_change(api, headers, "not-my-password-9", NEW_PASSWORD), 401, "invalid_credentials")
    fresh = _fresh(db, user.id)
    assert security.password_matches(api.settings, fresh.password_hash, PASSWORD)
    assert fresh.failed_logins == 1
    (event,) = audit_events(db, AuditAction.PASSWORD_CHANGE_FAILED)
    assert event.entity_id == user.id and json.loads(event.new_values or "{}")["failed_attempts"]
    assert audit_events(db, AuditAction.PASSWORD_CHANGED) == []
    # Guessing the current password inside a session locks the account and ends the session.
    for _ in range(api.settings.lockout_threshold - 1):
        _change(api, headers, "not-my-password-9", NEW_PASSWORD)
    assert _fresh(db, user.id).locked
    error(api.client.get("/api/v1/auth/me", headers=headers), 401, "not_authenticated")


def test_sec3_the_strength_check_refuses_password_blanks_and_the_username_with_a_clear_422(api):
    user = make_user(api.db, api.settings, roles=[Role.TECHNICIAN], username=unique("marco.r"))
    headers = _bearer(api, user.username)
    for weak in ("password", " " * 8, user.username, user.username.upper(), "12345678", "aaaaaaaa"):
        detail = error(_change(api, headers, PASSWORD, weak), 422, "weak_password")
        assert "password" in detail.lower() or "guess" in detail.lower(), detail
    too_common = error(_change(api, headers, PASSWORD, "password"), 422, "weak_password")
    assert "guess" in too_common and "common" in too_common, too_common
    # Nothing changed: the account still signs in with its password.
    assert api.login(user.username, PASSWORD).status_code == 200


def test_sec3_admin_creation_refuses_a_weak_password(api):
    for weak in ("password", " " * 8):
        body = {"username": unique("weak-"), "full_name": "W", "password": weak,
                "roles": ["technician"]}  # fmt: skip
        error(api.post(Role.ADMIN, "/users", body), 422, "weak_password")
    named = unique("paolo.v")
    body = {"username": named, "full_name": "Paolo V", "password": named, "roles": ["qa"]}
    error(api.post(Role.ADMIN, "/users", body), 422, "weak_password")


def test_sec3_the_last_passwords_cannot_be_chosen_again(api):
    history = api.settings.password_history
    assert history >= 2
    user = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    headers = _bearer(api, user.username)
    error(_change(api, headers, PASSWORD, PASSWORD), 422, "weak_password")
    chosen = [PASSWORD] + [f"juniper-otter-{n}-quartz" for n in range(history)]
    for current, new in itertools.pairwise(chosen):
        assert _change(api, headers, current, new).status_code == 204
    # The newest `history` passwords (current included) are refused; the one before is free.
    for recent in chosen[-history:]:
        error(_change(api, headers, chosen[-1], recent), 422, "weak_password")
    assert _change(api, headers, chosen[-1], chosen[0]).status_code == 204


# -- forced change ------------------------------------------------------------------------------


def test_sec3_a_user_created_by_an_admin_must_change_the_password_before_any_other_call(api, db):
    username, password, user_id = _created_by_admin(api)
    login = api.login(username, password)
    assert login.status_code == 200 and login.json()["credential_change_required"] is True
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    for method, path in (("GET", "/auth/me"), ("GET", "/batches"), ("POST", "/scan")):
        response = api.client.request(method, f"/api/v1{path}", headers=headers, json={})
        detail = error(response, 403, "password_change_required")
        assert "/auth/password" in detail
    assert _change(api, headers, password, NEW_PASSWORD).status_code == 204
    assert api.client.get("/api/v1/batches", headers=headers).status_code == 200
    assert _fresh(db, user_id).password_change_required is False
    (event,) = [e for e in audit_events(db, AuditAction.PASSWORD_CHANGED) if e.entity_id == user_id]
    assert json.loads(event.new_values or "{}")["forced"] is True
    # The next sign-in is an ordinary one.
    assert api.login(username, NEW_PASSWORD).json()["credential_change_required"] is False


def test_sec3_the_forced_user_may_still_log_out(api):
    username, password, _ = _created_by_admin(api)
    headers = _bearer(api, username, password)
    assert api.client.post("/api/v1/auth/logout", headers=headers).status_code == 204


def test_sec3_an_admin_reset_sets_a_temporary_password_audited_and_forces_a_change(api, db):
    user = make_user(api.db, api.settings, roles=[Role.CLINICIAN])
    old_session = _bearer(api, user.username)
    for _ in range(api.settings.lockout_threshold):
        api.login(user.username, "not-the-password-1")
    assert _fresh(db, user.id).locked
    body = {"new_password": "temporary-walnut-99", "reason": "Forgot the password (ticket 41)"}
    reset = ok(api.post(Role.ADMIN, f"/users/{user.id}/reset-password", body))
    assert reset["credential_change_required"] is True and reset["locked"] is False
    assert "temporary-walnut-99" not in json.dumps(reset)
    (event,) = audit_events(db, AuditAction.PASSWORD_RESET)
    assert event.entity_id == user.id and event.reason == body["reason"]
    assert "temporary-walnut-99" not in (event.new_values or "") + (event.old_values or "")
    # The reset ended the open sessions; the temporary password signs in, for the change only.
    error(api.client.get("/api/v1/auth/me", headers=old_session), 401, "not_authenticated")
    headers = _bearer(api, user.username, "temporary-walnut-99")
    readiness = api.client.get("/api/v1/clinic/readiness", headers=headers)
    error(readiness, 403, "password_change_required")
    # The change may not keep the temporary password.
    error(_change(api, headers, "temporary-walnut-99", "temporary-walnut-99"), 422, "weak_password")
    assert _change(api, headers, "temporary-walnut-99", NEW_PASSWORD).status_code == 204
    assert api.client.get("/api/v1/clinic/readiness", headers=headers).status_code == 200


def test_sec3_reset_is_for_admins_only_needs_a_reason_and_not_for_oneself(api, db):
    user = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    body = {"new_password": "temporary-walnut-99", "reason": "Forgot it"}
    for role in (Role.TECHNICIAN, Role.QA, Role.CLINICIAN):
        error(api.post(role, f"/users/{user.id}/reset-password", body), 403, "forbidden")
    error(
        api.post(Role.ADMIN, f"/users/{user.id}/reset-password", {"new_password": "x" * 12}),
        422,
        "invalid_request",
    )
    admin = make_user(api.db, api.settings, roles=[Role.ADMIN])
    error(
        api.client.post(
            f"/api/v1/users/{admin.id}/reset-password", json=body, headers=api.headers_for(admin)
        ),
        403,
        "forbidden",
    )
    error(api.post(Role.ADMIN, "/users/2147483647/reset-password", body), 404, "not_found")
    assert audit_events(db, AuditAction.PASSWORD_RESET) == []


def test_sec3_an_aged_password_must_be_changed(api, db):
    user = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    days = api.settings.password_max_age_days
    assert days > 0
    db.execute(
        update(User)
        .where(col(User.id) == user.id)
        .values(password_changed_at=utcnow() - timedelta(days=days, minutes=1))
    )
    db.commit()
    login = api.login(user.username)
    assert login.json()["credential_change_required"] is True
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    refused = api.client.get("/api/v1/batches", headers=headers)
    detail = error(refused, 403, "password_change_required")
    assert f"{days} days" in detail
    assert _change(api, headers, PASSWORD, NEW_PASSWORD).status_code == 204
    assert api.client.get("/api/v1/batches", headers=headers).status_code == 200


def test_sec3_a_password_just_short_of_its_age_still_works(api, db):
    user = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    days = api.settings.password_max_age_days
    db.execute(
        update(User)
        .where(col(User.id) == user.id)
        .values(password_changed_at=utcnow() - timedelta(days=days) + timedelta(hours=1))
    )
    db.commit()
    headers = _bearer(api, user.username)
    assert api.client.get("/api/v1/batches", headers=headers).status_code == 200


def test_sec3_a_witness_whose_password_an_admin_set_cannot_witness(api, db):
    """The admin knows a temporary password: until its owner changes it, it proves nothing."""
    batch, codes = api.released(doses=1)
    to_clinic(api, codes[0])
    who = patient(api, batch)
    (nurse, headers), (witness, _) = clinician(api), clinician(api)
    body = {"new_password": "temporary-walnut-99", "reason": "Forgot it"}
    ok(api.post(Role.ADMIN, f"/users/{witness.id}/reset-password", body))
    response = infuse(
        api, check(who, codes[0]), witness, headers=headers, password="temporary-walnut-99"
    )
    error(response, 401, "invalid_credentials")
    assert nurse.id != witness.id


# -- pages --------------------------------------------------------------------------------------


def _page_login(api, username: str, password: str):
    return submit(
        api, "/login", data={"username": username, "password": password}, follow_redirects=False
    )


def test_sec3_pages_send_a_user_who_must_change_the_password_to_the_change_page(api, db):
    username, password, user_id = _created_by_admin(api)
    login = _page_login(api, username, password)
    assert login.status_code == 303 and login.headers["location"] == "/password"
    for path in ("/", "/scan"):
        response = api.client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/password"
    page = api.client.get("/password")
    assert page.status_code == 200 and "set by an administrator" in page.text
    form = {"current_password": password, "new_password": NEW_PASSWORD}
    # Two different new passwords, then a weak one: the form again, saying what to fix.
    mismatch = submit(api, "/password", data=form | {"repeat_password": OTHER})
    assert mismatch.status_code == 422 and "differ" in mismatch.text and "<form" in mismatch.text
    weak = {"current_password": password, "new_password": "password", "repeat_password": "password"}
    refused = submit(api, "/password", data=weak)
    assert refused.status_code == 422 and "guess" in refused.text and "<form" in refused.text
    assert _fresh(db, user_id).password_change_required is True
    changed = submit(
        api, "/password", data=form | {"repeat_password": NEW_PASSWORD}, follow_redirects=False
    )
    assert changed.status_code == 303 and changed.headers["location"] == "/"
    assert api.client.get("/", follow_redirects=False).status_code == 200
    assert _fresh(db, user_id).password_change_required is False


def test_sec3_sec4_a_wrong_current_password_on_the_page_shows_the_form_and_is_counted(api, db):
    user = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    assert _page_login(api, user.username, PASSWORD).status_code == 303
    form = {"current_password": "wrong-wrong-1", "new_password": NEW_PASSWORD,
            "repeat_password": NEW_PASSWORD}  # fmt: skip
    refused = submit(api, "/password", data=form)
    assert refused.status_code == 401 and "current password is wrong" in refused.text
    assert _fresh(db, user.id).failed_logins == 1
    assert len(audit_events(db, AuditAction.PASSWORD_CHANGE_FAILED)) == 1


def test_sec3_demo_accounts_sign_in_without_a_forced_change(api, db, settings, session_factory):
    """`homeward demo` prints passwords that work straight away (the two-command start)."""
    users = demo.seed(session_factory, settings)
    for demo_user in users[:2]:
        login = api.login(demo_user.username, demo_user.password)
        assert login.status_code == 200, login.text
        assert login.json()["credential_change_required"] is False

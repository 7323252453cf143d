"""The administrator's user pages (issue 12 item 7): they call the services the JSON API calls,
with its schemas, so they are refused alike; a refusal stays on the page that asked and changes
nothing; only `users.manage` opens them; every form needs its CSRF token."""

import json

from sqlalchemy import func, select

from app.audit.actions import AuditAction
from app.audit.models import AuditEvent
from app.auth import service as auth
from app.auth.models import User
from app.auth.permissions import Role
from tests.helpers import NEW_PASSWORD, PASSWORD, Api, audit_events, make_user, ok
from tests.test_pages import _page_login, submit

TEMPORARY = "violet-harbour-compass"


def _user(api: Api, user_id: int) -> dict:
    users = ok(api.get(Role.ADMIN, "/users"))
    return next(u for u in users if u["id"] == user_id)


def _new(event: AuditEvent) -> dict:
    return json.loads(event.new_values or "{}")


def _old(event: AuditEvent) -> dict:
    return json.loads(event.old_values or "{}")


def _trail(api: Api) -> int:
    return api.db.execute(select(func.count()).select_from(AuditEvent)).scalar_one()


def _locked(api: Api, user: User) -> None:
    """`user` locked until an administrator lifts it (as with HOMEWARD_LOCKOUT_MINUTES=0)."""
    row = api.db.get(User, user.id, populate_existing=True)
    assert row is not None
    row.locked, row.locked_until, row.failed_logins = True, None, 5
    api.db.add(row)
    api.db.commit()


def test_sec_the_users_page_lists_roles_state_in_words_and_last_sign_in(api):
    admin = _page_login(api, Role.ADMIN)
    never = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    _locked(api, never)
    page = api.client.get("/admin/users")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert 'href="/admin/users"' in page.text  # the "Administration" link of the header
    assert never.username in page.text and admin.username in page.text
    assert "Locked until an administrator unlocks it" in page.text
    assert "Never signed in" in page.text  # `never` has not; the admin just did
    assert page.text.count("Never signed in") < page.text.count('<tr id="user-')
    assert "Create user" in page.text and 'id="full_name"' in page.text


def test_sec3_an_account_created_on_the_page_must_change_its_password_at_first_sign_in(api):
    _page_login(api, Role.ADMIN)
    form = {
        "username": "new.tech",
        "full_name": "New Technician",
        "roles": ["technician"],
        "password": TEMPORARY,
    }
    created = submit(api, "/admin/users", data=form, follow_redirects=False)
    assert created.status_code == 303
    shown = api.client.get(created.headers["location"])
    assert "Account created" in shown.text and "Must choose a new password" in shown.text
    signed_in = ok(api.login("new.tech", TEMPORARY))
    assert signed_in["credential_change_required"] is True
    (event,) = audit_events(api.db, AuditAction.USER_CREATED)[-1:]
    assert _new(event)["username"] == "new.tech"
    assert _new(event)["password_change_required"] is True
    assert TEMPORARY not in str(event.new_values)


def test_sec2_a_role_change_on_the_page_carries_its_reason_into_the_trail(api):
    _page_login(api, Role.ADMIN)
    person = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    form = {"roles": ["technician", "qa"], "reason": "Moved to QA, change request CR-12"}
    changed = submit(api, f"/admin/users/{person.id}/roles", data=form, follow_redirects=False)
    assert changed.status_code == 303
    assert _user(api, person.id)["roles"] == ["qa", "technician"]
    (event,) = audit_events(api.db, AuditAction.USER_ROLES_SET)
    assert event.reason == "Moved to QA, change request CR-12"
    assert _old(event) == {"roles": ["technician"]}
    assert "Roles changed" in api.client.get(changed.headers["location"]).text


def test_sec2_a_role_change_without_a_reason_or_against_separation_is_refused_on_the_page(api):
    _page_login(api, Role.ADMIN)
    person = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    before = _trail(api)
    path = f"/admin/users/{person.id}/roles"
    no_reason = submit(api, path, data={"roles": ["qa"], "reason": ""})
    assert no_reason.status_code == 422
    assert "Please check what you typed" in no_reason.text and "reason" in no_reason.text
    assert "Change roles" in no_reason.text and person.username in no_reason.text
    both = submit(api, path, data={"roles": ["admin", "qa"], "reason": "cover for holidays"})
    assert both.status_code == 422
    assert "One person cannot hold" in both.text and "Change roles" in both.text
    none = submit(api, path, data={"reason": "no role at all"})
    assert none.status_code == 422
    assert _trail(api) == before  # nothing changed, nothing recorded
    assert _user(api, person.id)["roles"] == ["technician"]


def test_sec2_an_admin_cannot_lock_themselves_out_the_refusal_stays_on_their_page(api):
    admin = _page_login(api, Role.ADMIN)
    own = f"/admin/users/{admin.id}"
    before = _trail(api)
    deactivated = submit(api, f"{own}/deactivate")
    assert deactivated.status_code == 409
    assert "You cannot deactivate your own account" in deactivated.text
    assert "Not possible for this account" in deactivated.text  # not "Already done"
    assert "Change roles" in deactivated.text  # the user's page, read afresh
    demoted = submit(api, f"{own}/roles", data={"roles": ["technician"], "reason": "oops"})
    assert demoted.status_code == 403 and "your own roles" in demoted.text
    reset = submit(api, f"{own}/reset-password", data={"new_password": TEMPORARY, "reason": "x"})
    assert reset.status_code == 403 and "your own password" in reset.text
    assert _trail(api) == before
    assert api.client.get("/admin/users").status_code == 200  # still signed in, still admin


def test_sec4_an_admin_unlocks_a_locked_account_on_the_page(api):
    _page_login(api, Role.ADMIN)
    person = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    _locked(api, person)
    assert api.login(person.username).status_code == 401
    page = api.client.get(f"/admin/users/{person.id}")
    assert "Locked until an administrator unlocks it" in page.text and ">Unlock<" in page.text
    unlocked = submit(api, f"/admin/users/{person.id}/unlock", follow_redirects=False)
    assert unlocked.status_code == 303
    assert "Account unlocked" in api.client.get(unlocked.headers["location"]).text
    assert api.login(person.username).status_code == 200
    (event,) = audit_events(api.db, AuditAction.USER_UNLOCKED)
    assert _old(event) == {"locked": True, "failed_logins": 5}


def test_sec3_a_password_reset_on_the_page_makes_the_user_choose_their_own(api):
    _page_login(api, Role.ADMIN)
    person = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    path = f"/admin/users/{person.id}/reset-password"
    weak = submit(api, path, data={"new_password": "password", "reason": "forgot it"})
    assert weak.status_code == 422 and "Reset password" in weak.text
    assert not audit_events(api.db, AuditAction.PASSWORD_RESET)
    form = {"new_password": TEMPORARY, "reason": "Forgot it; identity checked in person"}
    reset = submit(api, path, data=form, follow_redirects=False)
    assert reset.status_code == 303
    assert api.login(person.username, PASSWORD).status_code == 401
    assert ok(api.login(person.username, TEMPORARY))["credential_change_required"] is True
    api.first_sign_in(person.username, TEMPORARY, NEW_PASSWORD)
    (event,) = audit_events(api.db, AuditAction.PASSWORD_RESET)
    assert event.reason == "Forgot it; identity checked in person"


def test_sec_deactivate_and_reactivate_on_the_page(api):
    _page_login(api, Role.ADMIN)
    person = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    gone = submit(api, f"/admin/users/{person.id}/deactivate", follow_redirects=False)
    assert gone.status_code == 303
    page = api.client.get(gone.headers["location"])
    assert "Deactivated: cannot sign in" in page.text and ">Reactivate<" in page.text
    assert api.login(person.username).status_code == 401
    back = submit(api, f"/admin/users/{person.id}/reactivate", follow_redirects=False)
    assert back.status_code == 303
    assert api.login(person.username).status_code == 200
    actions = [e.action for e in audit_events(api.db) if e.entity_id == person.id]
    assert AuditAction.USER_DEACTIVATED in actions and AuditAction.USER_REACTIVATED in actions


def test_sec_a_taken_username_is_refused_on_the_page_with_what_was_typed_kept(api):
    admin = _page_login(api, Role.ADMIN)
    users = len(auth.list_users(api.db))
    form = {
        "username": admin.username,
        "full_name": "Second Of That Name",
        "roles": ["clinician"],
        "password": TEMPORARY,
    }
    taken = submit(api, "/admin/users", data=form)
    assert taken.status_code == 409
    assert "already taken" in taken.text and "Second Of That Name" in taken.text
    assert TEMPORARY not in taken.text  # a password is never sent back
    assert 'value="clinician" checked' in taken.text
    assert len(auth.list_users(api.db)) == users


def test_sec_only_an_administrator_opens_the_user_pages(api):
    person = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    for role in (Role.TECHNICIAN, Role.QA, Role.CLINICIAN):
        api.client.cookies.clear()
        _page_login(api, role)
        page = api.client.get("/admin/users")
        assert page.status_code == 403
        assert "<header>" in page.text and "You may not do this" in page.text  # the site's frame
        assert 'href="/admin/users"' not in page.text.split("</header>")[0]
        assert api.client.get(f"/admin/users/{person.id}").status_code == 403
        refused = submit(api, f"/admin/users/{person.id}/deactivate")
        assert refused.status_code == 403
    assert _user(api, person.id)["active"] is True


def test_sec_user_forms_need_their_csrf_token(api):
    _page_login(api, Role.ADMIN)
    users = len(auth.list_users(api.db))
    form = {"username": "no.token", "full_name": "No Token", "roles": ["technician"]}
    refused = api.client.post("/admin/users", data=form | {"password": TEMPORARY})
    assert refused.status_code == 403 and "csrf" in refused.text.lower()
    assert len(auth.list_users(api.db)) == users


def test_sec_an_unknown_user_or_a_malformed_id_is_a_plain_page_not_a_500(api):
    _page_login(api, Role.ADMIN)
    missing = api.client.get("/admin/users/999999")
    assert missing.status_code == 404 and "No user has id 999999" in missing.text
    assert "Back to the users" in missing.text
    assert api.client.get("/admin/users/abc").status_code == 422
    gone = submit(api, "/admin/users/999999/unlock")
    assert gone.status_code == 404

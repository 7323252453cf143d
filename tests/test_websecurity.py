"""What every answer tells the browser, and CSRF on page forms (issue 12 item 8, ADR 0019)."""

import re

import pytest
from fastapi.testclient import TestClient

from app.audit.actions import AuditAction
from app.auth.permissions import Role
from app.main import create_app
from app.websecurity import CSRF_COOKIE, CSRF_FIELD
from tests.helpers import PASSWORD, audit_events, make_user


def _directives(policy: str) -> dict[str, str]:
    parts = (p.strip().split(" ", 1) for p in policy.split(";") if p.strip())
    return {p[0]: p[1] if len(p) > 1 else "" for p in parts}


def _assert_hardened(response) -> None:
    headers = response.headers
    policy = _directives(headers["content-security-policy"])
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in policy.get("script-src", policy.get("default-src", ""))
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-store"


def test_sec_pages_json_and_errors_carry_the_security_headers_and_are_never_cached(api):
    """Back after logout must not show patient data from the browser's cache; no page may be
    framed; no inline script may run."""
    batch = api.batch()
    answers = [
        api.client.get("/login"),
        api.get(Role.QA, f"/batches/{batch['id']}"),
        api.client.get("/api/v1/batches/1"),  # 401
        api.client.get("/no-such-page", headers={"accept": "text/html"}),
    ]
    for response in answers:
        _assert_hardened(response)
    assert "strict-transport-security" not in answers[0].headers


def test_sec_hsts_only_over_tls(settings, session_factory):
    with TestClient(create_app(settings, session_factory), base_url="https://h") as tls:
        assert "max-age" in tls.get("/login").headers["strict-transport-security"]


def test_sec_pages_carry_no_inline_script_or_style(api):
    page = api.client.get("/login").text
    assert "<script>" not in page and "<style" not in page and " style=" not in page
    stylesheet = re.search(r'href="(/static/[^"]+\.css)"', page)
    assert stylesheet is not None
    css = api.client.get(stylesheet.group(1))
    assert css.status_code == 200 and "--accent" in css.text
    assert "no-store" not in css.headers.get("cache-control", "")


def _login_form(api, user, **extra):
    return api.client.post(
        "/login",
        data={"username": user.username, "password": PASSWORD} | extra,
        follow_redirects=False,
    )


def test_sec_a_page_form_without_its_csrf_token_is_refused_and_changes_nothing(api, db):
    user = make_user(db, api.settings, roles=[Role.TECHNICIAN])
    page = api.client.get("/login")
    token = api.client.cookies[CSRF_COOKIE]
    assert f'name="{CSRF_FIELD}" value="{token}"' in page.text
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    for extra in ({}, {CSRF_FIELD: "x" * 43}, {CSRF_FIELD: ""}):
        refused = _login_form(api, user, **extra)
        assert refused.status_code == 403, extra
        assert "<html" in refused.text and "CSRF FAILED" in refused.text
        assert "homeward_token" not in refused.headers.get("set-cookie", "")
    assert audit_events(db, AuditAction.LOGIN) == []
    assert _login_form(api, user, **{CSRF_FIELD: token}).status_code == 303
    assert len(audit_events(db, AuditAction.LOGIN)) == 1


def test_sec_a_page_form_from_a_foreign_origin_is_refused_even_with_the_token(api, db):
    user = make_user(db, api.settings, roles=[Role.TECHNICIAN])
    api.client.get("/login")
    token = api.client.cookies[CSRF_COOKIE]
    foreign = api.client.post(
        "/login",
        data={"username": user.username, "password": PASSWORD, CSRF_FIELD: token},
        headers={"origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert foreign.status_code == 403 and "another site" in foreign.text
    assert audit_events(db, AuditAction.LOGIN) == []
    same = api.client.post(
        "/login",
        data={"username": user.username, "password": PASSWORD, CSRF_FIELD: token},
        headers={"origin": "http://testserver"},
        follow_redirects=False,
    )
    assert same.status_code == 303


def test_sec_the_json_api_needs_no_csrf_token(api):
    """Bearer tokens are not sent by a browser on its own, so a foreign page cannot use them."""
    response = api.post(Role.CLINICIAN, "/patients", api_patient())
    assert response.status_code == 201
    assert CSRF_COOKIE not in response.headers.get("set-cookie", "")


def api_patient() -> dict[str, str]:
    return {
        "mrn": "WS-1",
        "family_name": "Neri",
        "given_name": "Ada",
        "birth_date": "1980-02-02",
        "sex": "female",
    }


@pytest.mark.parametrize("accept", ["text/html,application/xhtml+xml", "application/json"])
def test_sec_an_unknown_address_is_a_page_for_a_browser_and_json_for_a_program(api, accept):
    response = api.client.get("/nowhere/at/all", headers={"accept": accept})
    assert response.status_code == 404
    if accept.startswith("text/html"):
        assert "<html" in response.text and "NOT FOUND" in response.text
    else:
        assert response.json()["error"] == "not_found"
    api_miss = api.client.get("/api/v1/nowhere", headers={"accept": accept})
    assert api_miss.status_code == 404 and api_miss.json()["error"] == "not_found"


def test_api_docs_work_offline_from_assets_homeward_serves(api):
    page = api.client.get("/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/static/") for s in sources), sources
    for source in sources:
        asset = api.client.get(source)
        assert asset.status_code == 200 and len(asset.content) > 100, source
    assert "<script>" not in page.text  # the start-up script is a file: the CSP holds
    assert api.client.get("/openapi.json").json()["info"]["title"] == "Homeward"

"""SEC: every endpoint's role rule is in one permission table and tested for every role.

The walk below reads the permission each route declares (the `.permission` of the `require()`
dependency, app/auth/deps.py) straight from FastAPI's dependency tree, so a route added without a
permission, or with two, fails here; then every route is called through HTTP as a user of each
single role, and without a token.
"""

import re
from collections.abc import Iterator

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from app.auth.permissions import ROLE_PERMISSIONS, Permission, Role, permissions_of
from app.main import API_PREFIX, API_ROUTERS, create_app
from app.storage.service import EVENT_PERMISSION
from tests.helpers import make_user

PUBLIC = {("POST", "/auth/token")}
# Routes any authenticated user may call, whatever their roles: they concern only the caller.
ANY_AUTHENTICATED = {("GET", "/auth/me"), ("POST", "/auth/logout"), ("POST", "/auth/password")}
PATIENT_DATA = {Permission.PATIENT_READ, Permission.BATCH_READ, Permission.SCAN}


def _routes() -> list[APIRoute]:
    routes = []
    for router in API_ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute), f"{route!r} in an API router is not an APIRoute"
            routes.append(route)
    return routes


def _endpoints() -> list[tuple[str, str, APIRoute]]:
    return [(method, route.path, route) for route in _routes() for method in sorted(route.methods)]


def _declared(dependant) -> Iterator[Permission]:
    for dependency in dependant.dependencies:
        permission = getattr(dependency.call, "permission", None)
        if permission is not None:
            yield permission
        yield from _declared(dependency)


def declared_permissions(route: APIRoute) -> set[Permission]:
    return set(_declared(route.dependant))


ENDPOINTS = _endpoints()
PROTECTED = [(m, p, r) for m, p, r in ENDPOINTS if (m, p) not in PUBLIC]
PROTECTED_IDS = [f"{method} {path}" for method, path, _ in PROTECTED]


def _url(path: str) -> str:
    return API_PREFIX + re.sub(r"\{[^}]+\}", "1", path)


def _call(client: TestClient, method: str, path: str, headers: dict[str, str]):
    body = {"json": {}} if method in {"POST", "PUT", "PATCH"} else {}
    return client.request(method, _url(path), headers=headers, **body)


def _is_error_shape(response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return (
        isinstance(body, dict)
        and isinstance(body.get("error"), str)
        and isinstance(body.get("detail"), str)
        and bool(body["detail"])
    )


# -- the table and the declarations -------------------------------------------------------------


def test_sec_every_route_declares_exactly_one_permission_or_is_listed_as_open():
    undeclared, ambiguous = [], []
    for method, path, route in ENDPOINTS:
        permissions = declared_permissions(route)
        if (method, path) in PUBLIC | ANY_AUTHENTICATED:
            assert not permissions, f"{method} {path} is listed as open but requires {permissions}"
        elif not permissions:
            undeclared.append(f"{method} {path}")
        elif len(permissions) > 1:
            ambiguous.append(f"{method} {path}: {sorted(permissions)}")
    assert not undeclared, f"routes without a permission (add require(...)): {undeclared}"
    assert not ambiguous, f"routes with more than one permission: {ambiguous}"
    listed = {(method, path) for method, path, _ in ENDPOINTS}
    assert listed >= PUBLIC | ANY_AUTHENTICATED, "an open route listed here no longer exists"


def _mounted(routes, prefix: str = "", router=None) -> Iterator[tuple[object, str, str]]:
    """(router it came from, full path, method) of every API route an application serves."""
    for route in routes:
        original = getattr(route, "original_router", None)  # FastAPI >= 0.16x includes lazily
        if original is not None:
            yield from _mounted(original.routes, prefix + route.include_context.prefix, original)
        elif isinstance(route, APIRoute):
            for method in route.methods:
                yield router, prefix + route.path, method


def test_sec_the_walk_sees_every_api_route_of_the_application(settings, session_factory):
    """A JSON route mounted outside API_ROUTERS would escape every check in this file."""
    app = create_app(settings, session_factory)
    mounted = list(_mounted(app.routes))
    outside = {
        (method, path)
        for router, path, method in mounted
        if path.startswith(API_PREFIX) and not any(router is r for r in API_ROUTERS)
    }
    assert outside == {("GET", f"{API_PREFIX}/health")}
    served = {(method, path) for _, path, method in mounted}
    walked = {(method, API_PREFIX + path) for method, path, _ in ENDPOINTS}
    assert walked <= served, f"walked routes the application does not serve: {walked - served}"


def test_sec_the_permission_table_covers_every_role_and_every_permission_is_used():
    assert set(ROLE_PERMISSIONS) == set(Role)
    used = {p for _, _, route in ENDPOINTS for p in declared_permissions(route)}
    # Custody routes need CUSTODY_RECORD; the event then needs one of these (storage service).
    used |= set(EVENT_PERMISSION.values())
    granted = permissions_of(list(Role))
    assert used <= granted, f"permissions no role holds (unreachable routes): {used - granted}"
    assert set(Permission) == used, f"permissions no route requires: {set(Permission) - used}"


def test_sec_admin_grants_no_patient_data_by_itself():
    """DESIGN §11: `admin` grants no access to patient data by itself; admin cannot register,
    release, sign or infuse (§1)."""
    admin = ROLE_PERMISSIONS[Role.ADMIN]
    assert not admin & PATIENT_DATA
    assert not admin & {Permission.PATIENT_REGISTER, Permission.BIOPSY_REGISTER}
    assert Permission.USERS_MANAGE in admin
    for role in (Role.TECHNICIAN, Role.QA, Role.CLINICIAN):
        assert Permission.USERS_MANAGE not in ROLE_PERMISSIONS[role]


@pytest.mark.parametrize("role", [Role.TECHNICIAN, Role.QA, Role.CLINICIAN])
def test_sec_batches_and_scan_are_open_to_the_lab_and_clinic_roles(role):
    """DESIGN §11 read access: batches and scan are open to technician, qa and clinician."""
    assert ROLE_PERMISSIONS[role] >= PATIENT_DATA


def test_sec_admin_is_refused_patient_data_through_the_api(api):
    for method, path in (
        ("GET", "/patients"),
        ("GET", "/patients/1"),
        ("GET", "/batches"),
        ("GET", "/batches/1"),
        ("GET", "/biopsies/1"),
        ("POST", "/scan"),
        ("POST", "/patients"),
    ):
        response = _call(api.client, method, path, api.as_role(Role.ADMIN))
        assert response.status_code == 403, f"{method} {path}: {response.status_code}"
        assert response.json()["error"] == "forbidden"


# -- every route, every role, through HTTP ------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "route"), PROTECTED, ids=PROTECTED_IDS)
def test_sec_every_route_checks_its_permission_for_every_role(api, method, path, route):
    (permission,) = declared_permissions(route) or {None}
    wrong = []
    for role in Role:
        # A fresh user and token per call: a call may log out or deactivate its caller.
        user = make_user(api.db, api.settings, roles=[role])
        response = _call(api.client, method, path, api.headers_for(user))
        forbidden = response.status_code == 403
        should_be_forbidden = permission is not None and permission not in ROLE_PERMISSIONS[role]
        if forbidden != should_be_forbidden:
            wrong.append(f"{role}: {response.status_code} {response.text[:200]}")
        elif forbidden and response.json().get("error") != "forbidden":
            wrong.append(f"{role}: 403 without the forbidden code: {response.text[:200]}")
        elif response.status_code in (401, 500) or response.status_code > 500:
            wrong.append(f"{role}: {response.status_code} {response.text[:200]}")
        elif response.status_code >= 400 and not _is_error_shape(response):
            wrong.append(f"{role}: {response.status_code} not the error shape: {response.text}")
    assert not wrong, f"{method} {path} needs {permission}; wrong answers: {wrong}"


@pytest.mark.parametrize(("method", "path", "route"), PROTECTED, ids=PROTECTED_IDS)
def test_sec_every_protected_route_is_401_without_a_valid_token(api, method, path, route):
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        response = _call(api.client, method, path, headers)
        assert response.status_code == 401, f"{headers}: {response.status_code} {response.text}"
        assert response.json()["error"] == "not_authenticated"
        assert _is_error_shape(response)


def test_sec_login_is_public(api):
    response = api.client.post("/api/v1/auth/token", data={"username": "x", "password": "y"})
    assert response.status_code == 401 and response.json()["error"] == "invalid_credentials"

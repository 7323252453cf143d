"""The error contract (DESIGN §11, REL): every failure is JSON `{"error": code, "detail": sentence}`
with the right 4xx status, bad input of any shape is never a 500, and a refused request changes
nothing (no row in any table, no audit event).
"""

import json
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from schemathesis import GenerationMode
from sqlalchemy import func, select
from sqlmodel import Session

from app.audit.actions import AuditAction
from app.auth.permissions import Role
from app.main import API_PREFIX, API_ROUTERS, create_app
from app.models import metadata
from app.types import MAX_ID
from tests.helpers import ago, audit_events, make_legacy_user, unique

HUGE = 10**30
CONTROL = ["\x00", "\x01", "\x07", "\x1b", "\x7f"]


@pytest.fixture
def http(app_for, settings, session_factory) -> Iterator[TestClient]:
    """A client that answers a server error with its 500 response instead of raising, so a test
    can report which input produced it."""
    with TestClient(app_for(settings, session_factory), raise_server_exceptions=False) as c:
        yield c


def row_counts(db: Session) -> dict[str, int]:
    """Rows in every application table (audit_event included)."""
    db.expire_all()
    return {
        table.name: db.execute(select(func.count()).select_from(table)).scalar_one()
        for table in metadata.sorted_tables
    }


def assert_error(response, status: int | None = None, code: str | None = None) -> dict[str, Any]:
    """A 4xx answer in the one error shape (REL, §11)."""
    assert response.status_code < 500, f"{response.status_code}: {response.text[:500]}"
    assert 400 <= response.status_code < 500, response.text[:500]
    if status is not None:
        assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("detail"), str) and len(body["detail"]) > 5, body
    if code is not None:
        assert body["error"] == code, body
    return body


def _patient_body(**overrides: Any) -> dict[str, Any]:
    return {
        "mrn": unique("MRN"),
        "family_name": "Rossi",
        "given_name": "Anna",
        "birth_date": "1990-05-17",
        "sex": "female",
    } | overrides


def _biopsy_body(patient_id: int, **overrides: Any) -> dict[str, Any]:
    return {
        "patient_id": patient_id,
        "collected_at": ago(hours=3),
        "site": "vastus lateralis",
        "mass_mg": 150.5,
    } | overrides


def _receipt_body(code: str, **overrides: Any) -> dict[str, Any]:
    return {
        "scanned_code": code,
        "received_at": ago(hours=1),
        "temperature_c": 4.5,
        "accepted": True,
    } | overrides


# -- shape of routing and parsing errors --------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/nothing-here", "/api/v1/batches/1/nothing", "/api/v2"])
def test_rel_unknown_route_is_404_not_found_json(http, path):
    assert_error(http.get(path), 404, "not_found")
    assert_error(http.post(path, json={}), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/api/v1/patients"),
        ("PUT", "/api/v1/patients/1"),
        ("PATCH", "/api/v1/batches/1"),
        ("GET", "/api/v1/scan"),
        ("GET", "/api/v1/auth/token"),
    ],
)
def test_rel_wrong_method_is_405_json(http, method, path):
    assert_error(http.request(method, path), 405, "method_not_allowed")


def test_rel_malformed_json_is_422_invalid_request_and_writes_nothing(api, http, db):
    headers = api.as_role(Role.CLINICIAN)
    before = row_counts(db)
    for raw in (b'{"mrn": "X1", ', b"not json at all", b"{'single': 'quotes'}", b'{"a": 1,}'):
        response = http.post(
            "/api/v1/patients",
            content=raw,
            headers=headers | {"Content-Type": "application/json"},
        )
        assert_error(response, 422, "invalid_request")
    assert row_counts(db) == before


@pytest.mark.parametrize("missing", ["mrn", "family_name", "given_name", "birth_date", "sex"])
def test_rel_missing_field_is_422_naming_the_field(api, http, db, missing):
    headers = api.as_role(Role.CLINICIAN)
    body = _patient_body()
    del body[missing]
    before = row_counts(db)
    error = assert_error(http.post("/api/v1/patients", json=body, headers=headers), 422)
    assert error["error"] == "invalid_request"
    assert missing in error["detail"]
    assert row_counts(db) == before


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"null",
        b"[]",
        b'"a string"',
        b"42",
        b"[" * 20_000 + b"]" * 20_000,
        b'{"mrn": "\xff\xfe"}',
        b"\xef\xbb\xbf{}",
    ],
    ids=["empty", "null", "array", "string", "number", "deeply-nested", "not-utf8", "bom"],
)
def test_rel_a_body_that_is_not_an_object_is_4xx_json(api, http, db, raw):
    headers = api.as_role(Role.CLINICIAN) | {"Content-Type": "application/json"}
    before = row_counts(db)
    assert_error(http.post("/api/v1/patients", content=raw, headers=headers))
    assert row_counts(db) == before


def test_rel_a_non_json_content_type_is_4xx_json(api, http, db):
    headers = api.as_role(Role.CLINICIAN)
    before = row_counts(db)
    body = json.dumps(_patient_body())
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        response = http.post(
            "/api/v1/patients", content=body, headers=headers | {"Content-Type": content_type}
        )
        assert_error(response)
    assert row_counts(db) == before


# -- body size ----------------------------------------------------------------------------------


def test_rel_a_declared_body_over_the_limit_is_413(api, http, db):
    limit = api.settings.max_body_bytes
    assert limit == 65_536
    headers = api.as_role(Role.CLINICIAN)
    before = row_counts(db)
    body = json.dumps(_patient_body(family_name="x" * limit)).encode()
    assert len(body) > limit
    response = http.post(
        "/api/v1/patients", content=body, headers=headers | {"Content-Type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")
    # Refused before authentication too: a stranger cannot make the server read a huge body.
    anonymous = http.post(
        "/api/v1/patients", content=body, headers={"Content-Type": "application/json"}
    )
    assert_error(anonymous, 413, "payload_too_large")
    assert row_counts(db) == before


def test_rel_a_streamed_body_over_the_limit_is_413(api, http, db):
    """Chunked transfer, no Content-Length: the limit is enforced on the bytes received."""
    limit = api.settings.max_body_bytes
    headers = api.as_role(Role.CLINICIAN) | {"Content-Type": "application/json"}
    before = row_counts(db)
    prefix = b'{"mrn": "MRN-STREAM", "family_name": "'

    def chunks() -> Iterator[bytes]:
        yield prefix
        for _ in range(limit // 4096 + 2):
            yield b"x" * 4096
        yield b'", "given_name": "A", "birth_date": "1990-01-01", "sex": "female"}'

    response = http.post("/api/v1/patients", content=chunks(), headers=headers)
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert_error(response, 413, "payload_too_large")
    assert row_counts(db) == before


def test_rel_a_streamed_body_under_the_limit_is_read(api, http, db):
    """The streamed limit is not a blanket refusal of chunked bodies."""
    headers = api.as_role(Role.CLINICIAN) | {"Content-Type": "application/json"}
    body = json.dumps(_patient_body()).encode()

    def chunks() -> Iterator[bytes]:
        yield body[:10]
        yield body[10:]

    response = http.post("/api/v1/patients", content=chunks(), headers=headers)
    assert response.status_code == 201, response.text


def test_rel_a_body_just_under_the_limit_reaches_validation(api, http, db):
    headers = api.as_role(Role.CLINICIAN)
    before = row_counts(db)
    body = _patient_body(family_name="x" * (api.settings.max_body_bytes - 1000))
    assert_error(http.post("/api/v1/patients", json=body, headers=headers), 422, "invalid_request")
    assert row_counts(db) == before


# -- hostile values in fields -------------------------------------------------------------------


@pytest.mark.parametrize("field", ["mrn", "family_name", "given_name", "sex", "birth_date"])
def test_rel_control_characters_in_patient_fields_are_422_and_write_nothing(api, http, db, field):
    headers = api.as_role(Role.CLINICIAN)
    before = row_counts(db)
    for char in CONTROL:
        body = _patient_body()
        body[field] = f"{body[field][:3]}{char}{body[field][3:]}"
        response = http.post("/api/v1/patients", json=body, headers=headers)
        assert_error(response, 422, "invalid_request")
    assert row_counts(db) == before


@pytest.mark.parametrize("char", CONTROL, ids=[f"U+{ord(c):04X}" for c in CONTROL])
def test_rel_control_characters_elsewhere_are_4xx_and_write_nothing(api, http, db, char):
    patient = api.patient()
    biopsy = api.biopsy(patient["id"])
    clinician, qa = api.as_role(Role.CLINICIAN), api.as_role(Role.QA)
    technician, admin = api.as_role(Role.TECHNICIAN), api.as_role(Role.ADMIN)
    before = row_counts(db)
    calls = [
        ("POST", "/biopsies", clinician, _biopsy_body(patient["id"], site=f"vastus{char}")),
        ("POST", f"/patients/{patient['id']}/void", qa, {"reason": f"wrong{char}entry"}),
        ("POST", f"/biopsies/{biopsy['id']}/void", qa, {"reason": f"wrong{char}entry"}),
        (
            "POST",
            f"/biopsies/{biopsy['id']}/receipt",
            technician,
            _receipt_body(biopsy["tube_code"], note=f"cold{char}box"),
        ),
        (
            "POST",
            "/users",
            admin,
            {
                "username": f"ab{char}c",
                "full_name": "X Y",
                "password": "long-enough-password",
                "roles": ["qa"],
            },
        ),
        (
            "POST",
            "/users",
            admin,
            {
                "username": unique("ctl-"),
                "full_name": f"X{char}Y",
                "password": "long-enough-password",
                "roles": ["qa"],
            },
        ),
    ]
    for method, path, headers, body in calls:
        response = http.request(method, f"/api/v1{path}", json=body, headers=headers)
        assert_error(response, 422, "invalid_request")
    response = http.get("/api/v1/patients", params={"mrn": f"MRN{char}1"}, headers=clinician)
    assert_error(response, 422, "invalid_request")
    assert row_counts(db) == before


@pytest.mark.parametrize("char", CONTROL, ids=[f"U+{ord(c):04X}" for c in CONTROL])
def test_coi4_rel_control_characters_in_scanned_codes_are_refused_without_a_500(
    api, http, db, char
):
    """A scanned code is checked by the identity parser (COI-4); a refused scan writes only the
    audit event of the refusal (AUD-1), no other row."""
    batch = api.batch()
    technician = api.as_role(Role.TECHNICIAN)
    tube = batch["tube_code"]
    corrupted = tube[:5] + char + tube[6:]  # one character replaced: never a match
    before = row_counts(db)
    for body in (
        {"code": corrupted},
        {"code": char * 18},
        {"code": tube, "expect": {"din": batch["din"][:4] + char + batch["din"][5:]}},
    ):
        response = http.post("/api/v1/scan", json=body, headers=technician)
        assert_error(response)
    after = row_counts(db)
    assert {k: v for k, v in after.items() if k != "audit_event"} == {
        k: v for k, v in before.items() if k != "audit_event"
    }
    refusals = audit_events(db)[before["audit_event"] :]
    assert all(event.action != AuditAction.SCAN_OK for event in refusals)
    assert all("\x00" not in (event.new_values or "") for event in refusals)


def test_rel_control_characters_in_a_scanned_receipt_code_are_refused_without_a_500(api, http, db):
    biopsy = api.biopsy()
    technician = api.as_role(Role.TECHNICIAN)
    before = row_counts(db)
    for code in ("\x00" * 18, biopsy["tube_code"][:-1] + "\x00"):
        response = http.post(
            f"/api/v1/biopsies/{biopsy['id']}/receipt",
            json=_receipt_body(code),
            headers=technician,
        )
        assert_error(response)
    after = row_counts(db)
    assert after["biopsy"] == before["biopsy"] and after["vessel"] == before["vessel"]


@pytest.mark.parametrize(
    "value", [HUGE, 2**63, MAX_ID + 1, 0, -1, 1.5, "abc", [], {}, None], ids=repr
)
def test_rel_out_of_range_ids_in_bodies_are_422(api, http, db, value):
    """Ids are 32-bit positive integers (app.types.Id): a larger one is a 422, never a
    database overflow (PostgreSQL's INTEGER would raise NumericValueOutOfRange)."""
    clinician, technician = api.as_role(Role.CLINICIAN), api.as_role(Role.TECHNICIAN)
    before = row_counts(db)
    calls = [
        ("/biopsies", clinician, _biopsy_body(value)),
        ("/batches", technician, {"biopsy_id": value}),
    ]
    if value is not None:  # an expectation's batch_id is optional: null means "no expectation"
        scan = {"code": "A99992600000100015", "expect": {"batch_id": value}}
        calls.append(("/scan", technician, scan))
    for path, headers, body in calls:
        response = http.post(f"/api/v1{path}", json=body, headers=headers)
        assert_error(response, 422, "invalid_request")
    assert row_counts(db) == before


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [
        ("GET", "/batches/{n}", Role.TECHNICIAN),
        ("GET", "/patients/{n}", Role.CLINICIAN),
        ("GET", "/biopsies/{n}", Role.TECHNICIAN),
        ("GET", "/batches/{n}/audit", Role.QA),
        ("GET", "/patients/{n}/audit.csv", Role.QA),
        ("POST", "/patients/{n}/void", Role.QA),
        ("POST", "/biopsies/{n}/receipt", Role.TECHNICIAN),
        ("PUT", "/users/{n}/roles", Role.ADMIN),
        ("POST", "/users/{n}/unlock", Role.ADMIN),
        ("GET", "/batches?patient_id={n}", Role.TECHNICIAN),
        ("GET", "/audit?entity_id={n}", Role.QA),
        ("GET", "/audit?limit={n}", Role.QA),
        ("GET", "/audit?offset={n}", Role.QA),
    ],
)
def test_rel_out_of_range_ids_in_paths_and_queries_are_422(api, http, db, method, path, role):
    headers = api.as_role(role)
    before = row_counts(db)
    body = {"reason": "x"} if "void" in path else {"roles": ["qa"]} if "roles" in path else None
    if "receipt" in path:
        body = _receipt_body("A9999260000010001X")
    for n in ("99999999999999999999", str(2**63), str(MAX_ID + 1), "0", "-1", "abc", "1.5"):
        if n == "0" and "offset" in path:
            continue  # offset 0 is the first page
        url = "/api/v1" + path.format(n=n)
        response = http.request(method, url, json=body, headers=headers)
        assert_error(response, 422, "invalid_request")
    assert row_counts(db) == before


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_rel_non_finite_numbers_are_422_and_write_nothing(api, http, db, literal):
    biopsy = api.biopsy()
    clinician, technician = api.as_role(Role.CLINICIAN), api.as_role(Role.TECHNICIAN)
    before = row_counts(db)
    biopsy_raw = json.dumps(_biopsy_body(biopsy["patient_id"], mass_mg="@@")).replace(
        '"@@"', literal
    )
    receipt_raw = json.dumps(_receipt_body(biopsy["tube_code"], temperature_c="@@")).replace(
        '"@@"', literal
    )
    for path, headers, raw in (
        ("/biopsies", clinician, biopsy_raw),
        (f"/biopsies/{biopsy['id']}/receipt", technician, receipt_raw),
    ):
        response = http.post(
            f"/api/v1{path}",
            content=raw.encode(),
            headers=headers | {"Content-Type": "application/json"},
        )
        assert_error(response, 422, "invalid_request")
    assert row_counts(db) == before


@pytest.mark.parametrize(
    "moment",
    [
        "2024-01-01T10:00:00",
        "2024-01-01 10:00",
        "2024-01-01",
        "not a date",
        "9999-99-99T99:99:99Z",
        "9999-12-31T23:59:59-01:00",
        "",
        10**20,
    ],
)
def test_rel_naive_or_invalid_timestamps_are_422_and_write_nothing(api, http, db, moment):
    biopsy = api.biopsy()
    clinician, technician = api.as_role(Role.CLINICIAN), api.as_role(Role.TECHNICIAN)
    before = row_counts(db)
    for path, headers, body in (
        ("/biopsies", clinician, _biopsy_body(biopsy["patient_id"], collected_at=moment)),
        (
            f"/biopsies/{biopsy['id']}/receipt",
            technician,
            _receipt_body(biopsy["tube_code"], received_at=moment),
        ),
    ):
        response = http.post(f"/api/v1{path}", json=body, headers=headers)
        assert_error(response, 422, "invalid_request")
    assert row_counts(db) == before


def test_rel_a_timestamp_that_overflows_when_converted_to_utc_is_422_not_500(api, http, db):
    """BUG (found by this suite): `0001-01-01T00:00:00+01:00` is an aware datetime the schema
    accepts, but its UTC instant lies in year 0; `app.clock.as_utc` (called by
    `app.db.UTCDateTime.process_bind_param` when the biopsy is flushed) raises OverflowError and
    the request answers 500. Bad input must be a 422 (REL)."""
    patient = api.patient()
    clinician = api.as_role(Role.CLINICIAN)
    before = row_counts(db)
    for moment in ("0001-01-01T00:00:00+01:00", "0001-01-01T05:00:00+05:01"):
        body = _biopsy_body(patient["id"], collected_at=moment)
        response = http.post("/api/v1/biopsies", json=body, headers=clinician)
        assert_error(response, 422, "invalid_request")
    assert row_counts(db) == before


def test_rel_lone_surrogates_in_strings_are_422(api, http, db):
    """JSON may escape a lone UTF-16 surrogate, which no database can store."""
    headers = api.as_role(Role.CLINICIAN) | {"Content-Type": "application/json"}
    technician = api.as_role(Role.TECHNICIAN) | {"Content-Type": "application/json"}
    before = row_counts(db)
    raw = json.dumps(_patient_body(family_name="@@")).replace("@@", "\\ud800")
    response = http.post("/api/v1/patients", content=raw.encode(), headers=headers)
    assert_error(response, 422, "invalid_request")
    for raw_scan in (b'{"code": "\\udfff"}', b'{"code": "A1", "expect": {"din": "\\ud800"}}'):
        response = http.post("/api/v1/scan", content=raw_scan, headers=technician)
        assert_error(response, 422, "invalid_request")
    assert row_counts(db) == before


@pytest.mark.parametrize("literal", ['"NaN"', '"inf"', '"-Infinity"', '"1e400"'])
def test_rel_non_finite_numbers_written_as_strings_are_422(api, http, db, literal):
    patient = api.patient()
    headers = api.as_role(Role.CLINICIAN) | {"Content-Type": "application/json"}
    before = row_counts(db)
    raw = json.dumps(_biopsy_body(patient["id"], mass_mg="@@")).replace('"@@"', literal)
    response = http.post("/api/v1/biopsies", content=raw.encode(), headers=headers)
    assert_error(response, 422, "invalid_request")
    assert row_counts(db) == before


@pytest.mark.parametrize("char", ["é", "😀", "中"])
def test_rel_names_at_their_maximum_length_are_stored_exactly_one_more_is_422(api, http, db, char):
    """The schema's limits match the columns' on this database, also for multi-byte text."""
    headers = api.as_role(Role.CLINICIAN)
    longest = char * 200
    response = http.post(
        "/api/v1/patients", json=_patient_body(family_name=longest), headers=headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["family_name"] == longest
    stored = http.get(f"/api/v1/patients/{response.json()['id']}", headers=headers)
    assert stored.json()["family_name"] == longest
    before = row_counts(db)
    too_long = _patient_body(family_name=longest + char)
    assert_error(http.post("/api/v1/patients", json=too_long, headers=headers), 422)
    assert row_counts(db) == before


@pytest.mark.parametrize(
    ("content_type", "raw"),
    [
        ("application/x-www-form-urlencoded", b"username=%ff&password=%ff"),
        ("application/x-www-form-urlencoded", b"username=%ED%A0%80&password=%ED%A0%80"),
        ("application/x-www-form-urlencoded", b"username=a%00&password=%00"),
        ("application/x-www-form-urlencoded", b"username=&password="),
        ("application/x-www-form-urlencoded", b"\xff\xfe"),
        ("application/x-www-form-urlencoded", b"grant_type=client&username=a&password=b"),
        ("multipart/form-data; boundary=xyz", b"garbage"),
        ("multipart/form-data", b"--xyz--"),
        ("application/json", b'{"username": "a", "password": "b"}'),
    ],
)
def test_rel_hostile_login_forms_are_4xx_json(api, http, db, content_type, raw):
    response = http.post("/api/v1/auth/token", content=raw, headers={"Content-Type": content_type})
    assert_error(response)
    assert "access_token" not in response.text


@pytest.mark.parametrize("size", [60_000, 100_000])
def test_rel_very_long_strings_are_4xx_and_write_nothing(api, http, db, size):
    """60k characters fit in the body limit and are refused by the field's length; 100k do not
    fit and are refused by the body limit. Either way a JSON 4xx and no write."""
    patient = api.patient()
    clinician, technician = api.as_role(Role.CLINICIAN), api.as_role(Role.TECHNICIAN)
    admin, qa = api.as_role(Role.ADMIN), api.as_role(Role.QA)
    long = "x" * size
    before = row_counts(db)
    for path, headers, body in (
        ("/patients", clinician, _patient_body(family_name=long)),
        ("/patients", clinician, _patient_body(mrn=long)),
        ("/biopsies", clinician, _biopsy_body(patient["id"], site=long)),
        ("/scan", technician, {"code": long}),
        ("/scan", technician, {"code": "A", "expect": {"din": long}}),
        (f"/patients/{patient['id']}/void", qa, {"reason": long}),
        (
            "/users",
            admin,
            {"username": "u" + unique(""), "full_name": "N", "password": long, "roles": ["qa"]},
        ),
    ):
        response = http.post(f"/api/v1{path}", json=body, headers=headers)
        assert_error(response, 413 if size > api.settings.max_body_bytes else 422)
    assert row_counts(db) == before


def test_rel_long_and_hostile_login_input_is_401_or_422_never_500(api, http, db):
    for username, password in (
        ("x" * 60_000, "y"),
        ("a\x00b", "p\x00w"),
        ("admin' OR '1'='1", "' OR 1=1 --"),
        ("", ""),
    ):
        response = http.post(
            "/api/v1/auth/token", data={"username": username, "password": password}
        )
        assert_error(response)
        assert response.status_code in (401, 422)


def test_rel_unknown_and_extra_fields_are_refused(api, http, db):
    """Extra keys are refused, not ignored: a client cannot smuggle `coi`, `id` or `status`."""
    headers = api.as_role(Role.CLINICIAN)
    before = row_counts(db)
    for extra in ({"coi": "CHA9999260000017"}, {"id": 5}, {"voided": True}, {"": 1}):
        response = http.post("/api/v1/patients", json=_patient_body() | extra, headers=headers)
        assert_error(response, 422, "invalid_request")
    assert row_counts(db) == before


# -- fuzzing the OpenAPI schema (schemathesis) --------------------------------------------------

# Per operation and generation mode, new examples on every run (no example database): at 15 the
# fuzz was a fifth of the suite (110 s of test time per database on a 2-core machine); at 8 it
# is ~60 s, and every run still sends ~1,800 generated requests.
FUZZ_EXAMPLES = 8
FUZZ_OPERATIONS = [("GET", "/health")] + [
    (method, route.path)
    for router in API_ROUTERS
    for route in router.routes
    if isinstance(route, APIRoute)
    for method in sorted(route.methods)
]


def _no_database() -> Session:
    raise AssertionError("only the OpenAPI document is read from this application")


@pytest.fixture(scope="module")
def fuzz_schema(settings) -> schemathesis.BaseSchema:
    """The OpenAPI schema as the application serves it, loaded once for the module."""
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(settings, _no_database))


def _fuzz(operation, mode: GenerationMode, app, headers, seen: dict[int, int]) -> None:
    """Send up to FUZZ_EXAMPLES generated requests for `operation` and check every answer."""

    @hypothesis.settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate, hypothesis.Phase.shrink],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(mode))
    def check(case: schemathesis.Case) -> None:
        response = case.call(app=app, headers=headers())
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        where = f"{mode.value} {case.method} {case.formatted_path} body={case.body!r:.300}"
        assert response.status_code < 500, f"{where} -> {response.status_code} {response.text}"
        if response.status_code >= 400:
            body = response.json()
            assert isinstance(body, dict), f"{where} -> {response.text}"
            assert isinstance(body.get("error"), str), f"{where} -> {response.text}"
            assert isinstance(body.get("detail"), str), f"{where} -> {response.text}"

    check()


@pytest.mark.parametrize(
    ("method", "path"), FUZZ_OPERATIONS, ids=[f"{m} {p}" for m, p in FUZZ_OPERATIONS]
)
def test_rel_fuzzed_requests_never_get_a_5xx_and_every_4xx_is_the_error_shape(
    api, app_for, fuzz_schema, settings, session_factory, db, method, path
):
    """Schemathesis generates requests from the OpenAPI schema, both valid (positive) and
    invalid (negative), and sends them to the ASGI app on the real test database as a user
    holding all four roles. No answer may be a 5xx; every 4xx is `{"error", "detail"}` (REL)."""
    api.batch()  # something for valid ids to find (on SQLite the first ids are 1)
    # On the test database, rolled back after. Generated signatures carry random passwords: a
    # high lockout threshold keeps the fuzzing user from locking itself out (SEC is tested apart).
    fuzz_settings = settings.model_copy(update={"lockout_threshold": 100})
    app = app_for(fuzz_settings, session_factory)
    operation = fuzz_schema[API_PREFIX + path][method]
    user = make_legacy_user(db, settings, roles=list(Role))
    spec = fuzz_schema.raw_schema["paths"][API_PREFIX + path][method.lower()]
    # Negative data needs something to corrupt: parameters or a body.
    modes = [GenerationMode.POSITIVE]
    if spec.get("parameters") or spec.get("requestBody"):
        modes.append(GenerationMode.NEGATIVE)
    seen: dict[int, int] = {}
    for mode in modes:
        # A fresh token per request: the fuzz may log out or lock its own session.
        _fuzz(operation, mode, app, lambda: api.headers_for(user), seen)
    assert sum(seen.values()) > 0

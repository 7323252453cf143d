"""The scan is served by a route whose arguments are resolved by hand (app/pipeline.py
`DirectRoute`, ADR 0033), not by FastAPI's dependency solver. It must keep the contract every
other route has: who is calling before what they sent (401/403 before 422), the usual 422 for a
body that is not a valid scan, the declared response, and a slot given back by every request."""

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from app.auth.permissions import Role
from app.scan.api import router
from app.scan.schemas import ScanResult
from tests.helpers import audit_events

NOT_A_SCAN = {"code": 42, "expect": {"batch_id": "seven"}, "patient": "x"}


def test_coi5_a_direct_scan_answers_the_declared_result(api, db):
    batch = api.batch()
    response = api.post(Role.TECHNICIAN, "/scan", {"code": batch["tube_code"]})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    result = ScanResult.model_validate_json(response.content)
    assert response.json() == result.model_dump(mode="json")
    assert result.vessel.code == batch["tube_code"] and result.coi == batch["coi"]
    assert len(audit_events(db, "scan.ok")) == 1


def test_sec_a_scan_without_a_token_is_401_whatever_its_body(api):
    response = api.client.post("/api/v1/scan", json=NOT_A_SCAN)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "not_authenticated"


def test_sec_a_scan_by_a_role_without_the_permission_is_403_before_its_body_is_judged(api, db):
    response = api.post(Role.ADMIN, "/scan", NOT_A_SCAN)
    assert response.status_code == 403, response.text
    assert audit_events(db, "scan.ok") == []


@pytest.mark.parametrize(
    ("content", "content_type", "field"),
    [
        (b'{"code": 42}', "application/json", "code"),
        (b'{"code": "A1", "patient_id": 3}', "application/json", "patient_id"),
        (b'{"code": ', "application/json", "body"),
        (b"", "application/json", "body"),
        (b'{"code": "A99992600000100015"}', "text/plain", "body"),
    ],
)
def test_rel_a_body_that_is_not_a_scan_is_the_usual_422_and_records_nothing(
    api, db, content, content_type, field
):
    headers = api.as_role(Role.TECHNICIAN) | {"Content-Type": content_type}
    response = api.client.post("/api/v1/scan", content=content, headers=headers)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_request", body
    assert field in {f["field"].split(".")[0] for f in body["fields"]}, body
    assert audit_events(db, "scan.ok") == [] and audit_events(db, "scan.mismatch") == []


def test_perf_refused_scans_give_their_slot_back(app_for, settings, session_factory, api):
    """One slot: refused scans (401, 403, 422, 404) each release it, so the next scan is
    answered, not 503 busy."""
    one_slot = app_for(settings.model_copy(update={"threadpool_size": 1}), session_factory)
    batch = api.batch()
    technician = api.as_role(Role.TECHNICIAN)
    with TestClient(one_slot) as client:
        refused = [
            client.post("/api/v1/scan", json=NOT_A_SCAN).status_code,
            client.post("/api/v1/scan", json=NOT_A_SCAN, headers=api.as_role(Role.ADMIN)),
            client.post("/api/v1/scan", json=NOT_A_SCAN, headers=technician).status_code,
            client.post("/api/v1/scan", json={"code": "A99992600099900012"}, headers=technician),
        ]
        answer = client.post("/api/v1/scan", json={"code": batch["tube_code"]}, headers=technician)
    statuses = [r if isinstance(r, int) else r.status_code for r in refused]
    assert statuses[:3] == [401, 403, 422] and statuses[3] in (404, 422), statuses
    assert answer.status_code == 200, answer.text


def test_the_scan_router_refuses_dependencies_it_would_skip():
    """A router-level dependency (a CSRF check) would not run on a direct route: refused loudly."""

    async def check() -> None:
        raise AssertionError("never runs")

    app = FastAPI()
    app.include_router(router, dependencies=[Depends(check)])
    with pytest.raises(RuntimeError, match="cannot take dependencies"):
        TestClient(app).post("/scan", json={"code": "A1"})


def test_coi5_the_openapi_still_declares_the_scans_body_and_result(api):
    operation = api.client.app.openapi()["paths"]["/api/v1/scan"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/ScanRequest")
    result = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert result["$ref"].endswith("/ScanResult")

"""`homeward validate` end to end against a live server (VAL-1)."""

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from app.auth import service as auth
from app.auth.permissions import Role
from app.config import Settings
from app.db import session_factory_for, unit_of_work
from app.validation.run import run
from app.validation.walk import API, sign_in
from tests.server import running_server

ADMIN, ADMIN_PASSWORD = "site-admin", "the site admin's own password"
QA, QA_PASSWORD = "site-qa", "the site QA's own password"
TEST_FIELDS = ("test", "name", "method", "unit", "min", "max", "min_inclusive", "max_inclusive")
TEST_FIELDS += ("expected", "answers", "critical")


def put_a_signed_specification_in_force(url: str, password: str = QA_PASSWORD) -> dict:
    """What the site's QA does before the qualification: a specification of their own in force,
    e-signed (and approved, where the install asks for approval)."""
    with httpx.Client(base_url=url) as http:
        qa = sign_in(http, QA, password, "qa")
        shipped = http.get(f"{API}/specifications", headers=qa.headers).json()[0]
        body = {
            "tests": [{key: test[key] for key in TEST_FIELDS} for test in shipped["tests"]],
            "note": "the site's specification",
            "password": qa.password,
        }
        created = http.post(f"{API}/specifications", json=body, headers=qa.headers)
        assert created.status_code == 201, created.text
        spec = created.json()
        if spec.get("status") == "draft":
            approval = {"password": qa.password, "comment": "site specification"}
            answer = http.post(
                f"{API}/specifications/{spec['id']}/approve", json=approval, headers=qa.headers
            )
            assert answer.status_code == 200, answer.text
            spec = answer.json()
        return spec


@pytest.fixture
def install(committed_engine: Engine, settings: Settings) -> Iterator[str]:
    """A live install as a site has it after `homeward db upgrade` and `homeward users create`."""
    with unit_of_work(session_factory_for(committed_engine)) as session:
        auth.create_user(
            session,
            settings,
            actor="cli",
            username=ADMIN,
            full_name="Site Admin",
            password=ADMIN_PASSWORD,
            roles=[Role.ADMIN],
        )
        auth.create_user(
            session,
            settings,
            actor="cli",
            username=QA,
            full_name="Site QA",
            password=QA_PASSWORD,
            roles=[Role.QA],
        )
    with running_server(committed_engine, settings) as url:
        yield url


def test_val1_the_walk_passes_every_requirement_on_a_live_install(install: str, tmp_path: Path):
    put_a_signed_specification_in_force(install)
    report = run(install, ADMIN, ADMIN_PASSWORD)
    failed = [o for o in report.content["checks"] if o["status"] != "pass"]
    assert report.content["precondition"] is None, report.content["precondition"]
    assert failed == [], "\n".join(
        f"{o['requirement']} {o['status']} {o['note']}: "
        + "; ".join(
            f"{s['action']} wanted {s['expected']} saw {s['observed']}"
            for s in o["steps"]
            if not s["passed"]
        )
        for o in failed
    )
    files = report.write(tmp_path)
    assert hashlib.sha256(files["report.json"].read_bytes()).hexdigest() == report.sha256

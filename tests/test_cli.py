"""The operators' CLI on a database of its own: upgrade, users, demo, audit verify (AUD-3)."""

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.audit import service as audit
from app.auth import service as auth
from app.batches import service as batches
from app.cli import cli
from app.config import get_settings
from app.db import make_engine, session_factory_for

runner = CliRunner()


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "cli.db"
    monkeypatch.setenv("HOMEWARD_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("HOMEWARD_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("HOMEWARD_ARGON2_MEMORY_KIB", "1024")
    get_settings.cache_clear()
    result = runner.invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    yield path
    get_settings.cache_clear()


def _session(path: Path):
    return session_factory_for(make_engine(f"sqlite:///{path}"))()


def test_db_upgrade_brings_an_empty_database_to_head_and_is_repeatable(cli_db):
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    tables = {
        row[0]
        for row in sqlite3.connect(cli_db).execute(
            "SELECT name FROM sqlite_master WHERE type='table'"
        )
    }
    assert {"audit_event", "app_user", "patient", "biopsy", "batch", "vessel"} <= tables


def test_users_create_reads_the_password_from_stdin(cli_db):
    result = runner.invoke(
        cli,
        ["users", "create", "qa.lead", "--role", "qa", "--role", "technician",
         "--full-name", "Quality Lead", "--password-stdin"],
        input="a-long-password\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "a-long-password" not in result.output
    with _session(cli_db) as session:
        user = auth.user_by_username(session, "qa.lead")
        assert user is not None and user.full_name == "Quality Lead"
        assert {r.value for r in auth.roles_of(session, user.id)} == {"qa", "technician"}
        assert user.password_hash.startswith("$argon2id$")


def test_users_create_refuses_bad_roles_and_duplicates(cli_db):
    args = ["users", "create", "sam", "--role", "qa", "--full-name", "Sam", "--password-stdin"]
    assert runner.invoke(cli, args, input="long-enough-pw\n").exit_code == 0
    assert runner.invoke(cli, args, input="long-enough-pw\n").exit_code == 1
    bad_role = ["users", "create", "kim", "--role", "boss", "--full-name", "K", "--password-stdin"]
    assert runner.invoke(cli, bad_role, input="long-enough-pw\n").exit_code == 2


def test_demo_is_idempotent_and_prints_logins(cli_db):
    first = runner.invoke(cli, ["demo"])
    assert first.exit_code == 0, first.output
    for username in ("tech", "qa", "clinician", "admin"):
        assert username in first.output
    with _session(cli_db) as session:
        events_after_first = audit.verify_chain(session).events_checked
    assert runner.invoke(cli, ["demo"]).exit_code == 0
    with _session(cli_db) as session:
        assert audit.verify_chain(session).events_checked == events_after_first
        assert len(auth.list_users(session)) == 7
        statuses = {context.batch.status for context in batches.find(session)}
    # Patients at every stage the product supports, QA decisions included.
    assert statuses >= {
        "registered",
        "expansion",
        "quarantine",
        "issued",  # released, its first dose dispatched to the clinic
        "conditionally_released",
        "on_hold",
    }


def test_aud3_audit_verify_passes_then_names_the_tampered_event(cli_db):
    assert runner.invoke(cli, ["demo"]).exit_code == 0
    ok = runner.invoke(cli, ["audit", "verify"])
    assert ok.exit_code == 0 and "intact" in ok.output
    connection = sqlite3.connect(cli_db)
    connection.execute("DROP TRIGGER audit_event_no_update")
    connection.execute("UPDATE audit_event SET actor = 'mallory' WHERE seq = 5")
    connection.commit()
    broken = runner.invoke(cli, ["audit", "verify"])
    assert broken.exit_code == 1
    assert "seq 5" in broken.output

"""The operators' CLI on a database of its own: upgrade, users, demo, audit verify (AUD-3, AUD-7)
and signed audit checkpoints (AUD-7)."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app import serving
from app.audit import service as audit
from app.auth import service as auth
from app.auth.permissions import Role
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


def test_sec3_users_create_forces_a_change_at_first_sign_in_unless_told_not_to(cli_db):
    """The operator typed the password, so by default it must be changed (ADR 0021)."""
    base = ["users", "create", "--role", "technician", "--full-name", "T", "--password-stdin"]
    assert (
        runner.invoke(cli, [*base[:2], "ana", *base[2:]], input="plum-harbour-violin\n").exit_code
        == 0
    )
    kept = [*base[:2], "svc", *base[2:], "--no-force-change"]
    assert runner.invoke(cli, kept, input="plum-harbour-violin\n").exit_code == 0
    weak = runner.invoke(cli, [*base[:2], "bob", *base[2:]], input="password\n")
    assert weak.exit_code == 1 and "guess" in weak.output
    with _session(cli_db) as session:
        forced, free = auth.user_by_username(session, "ana"), auth.user_by_username(session, "svc")
        assert forced is not None and forced.password_change_required
        assert free is not None and not free.password_change_required
        assert auth.user_by_username(session, "bob") is None


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


def _tamper(path: Path, *statements: str) -> None:
    """SQL run straight on the database file, triggers dropped: what the application never does."""
    connection = sqlite3.connect(path)
    for statement in statements:
        connection.execute(statement)
    connection.commit()
    connection.close()


def test_aud7_audit_verify_names_the_record_changed_in_sql(cli_db):
    assert runner.invoke(cli, ["demo"]).exit_code == 0
    _tamper(cli_db, "UPDATE patient SET mrn = 'MRN-FORGED' WHERE id = 2")
    broken = runner.invoke(cli, ["audit", "verify"])
    assert broken.exit_code == 1
    assert "patient 2: mrn is not what its audit trail last recorded" in broken.output


def _last_event_of_a_patient(path: Path) -> tuple[str, int]:
    connection = sqlite3.connect(path)
    scope, seq = connection.execute(
        "SELECT scope, max(seq) FROM audit_event WHERE scope != 'global' GROUP BY scope LIMIT 1"
    ).fetchone()
    connection.close()
    return scope, seq


def _drop_last_event(path: Path, *, hide: bool) -> str:
    scope, seq = _last_event_of_a_patient(path)
    statements = [
        "DROP TRIGGER audit_event_no_delete",
        f"DELETE FROM audit_event WHERE seq = {seq}",
    ]
    _tamper(path, *statements, *([audit.REBUILD_HEADS] if hide else []))
    return scope


def test_aud7_audit_verify_reports_a_chain_that_lost_its_last_event(cli_db):
    assert runner.invoke(cli, ["demo"]).exit_code == 0
    scope = _drop_last_event(cli_db, hide=False)
    broken = runner.invoke(cli, ["audit", "verify"])
    assert broken.exit_code == 1
    assert f"Chain {scope} ends early" in broken.output


@pytest.fixture
def checkpoint_key(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOMEWARD_CHECKPOINT_KEY", "an auditor's key, kept by QA")
    get_settings.cache_clear()


def test_aud7_a_signed_checkpoint_holds_then_catches_a_changed_file_and_a_truncated_chain(
    cli_db, checkpoint_key, tmp_path
):
    """The round trip: a checkpoint holds while the trail only grows; a file edited after
    signing is refused; a chain truncated and its head rebuilt to hide it passes `verify` alone
    (heads live in the database) but not against the checkpoint the auditor kept."""
    assert runner.invoke(cli, ["demo"]).exit_code == 0
    kept = tmp_path / "checkpoint.json"
    made = runner.invoke(cli, ["audit", "checkpoint", "--out", str(kept)])
    assert made.exit_code == 0, made.output
    document = json.loads(kept.read_text())
    assert document["scopes"] and len(document["signature"]) == 64
    with _session(cli_db) as session:
        auth.create_user(
            session,
            get_settings(),
            actor="cli",
            username="later",
            full_name="Later User",
            password="a long password 1",
            roles=[Role.QA],
        )
        session.commit()
    held = runner.invoke(cli, ["audit", "verify", "--checkpoint", str(kept)])
    assert held.exit_code == 0 and "held" in held.output

    forged = tmp_path / "forged.json"
    scope = next(iter(document["scopes"]))
    document["scopes"][scope]["count"] -= 1
    forged.write_text(json.dumps(document))
    refused = runner.invoke(cli, ["audit", "verify", "--checkpoint", str(forged)])
    assert refused.exit_code == 2 and "signature does not hold" in refused.output

    truncated = _drop_last_event(cli_db, hide=True)
    assert runner.invoke(cli, ["audit", "verify"]).exit_code == 0
    caught = runner.invoke(cli, ["audit", "verify", "--checkpoint", str(kept)])
    assert caught.exit_code == 1
    assert f"Chain {truncated}" in caught.output and "removed" in caught.output


def test_aud7_no_checkpoint_without_a_key_and_no_traceback_for_a_bad_file(cli_db, tmp_path):
    refused = runner.invoke(cli, ["audit", "checkpoint"])
    assert refused.exit_code == 2 and "HOMEWARD_CHECKPOINT_KEY" in refused.output
    junk = tmp_path / "junk.json"
    junk.write_text("not json")
    unreadable = runner.invoke(cli, ["audit", "verify", "--checkpoint", str(junk)])
    assert unreadable.exit_code == 2 and "cannot read the checkpoint" in unreadable.output


def test_served_workers_start_with_their_heap_out_of_the_collectors_reach(cli_db, monkeypatch):
    """`homeward serve` builds each worker's application with its heap frozen (gc.freeze): a full
    collection then walks what requests made, not the objects of every module, route and model,
    which stalled a worker's requests for 120-300 ms at a time (docs/performance.md, stop 24)."""
    served: dict = {}

    class Supervisor:
        def __init__(self, config, target=None, sockets=()):
            served.update(config=config, sockets=sockets)

        def run(self):
            for sock in served["sockets"]:
                sock.close()

    monkeypatch.setattr(serving, "Multiprocess", Supervisor)
    result = runner.invoke(cli, ["serve", "--workers", "2", "--port", "0"])
    assert result.exit_code == 0, result.output
    config = served["config"]
    assert config.factory and config.workers == 2
    probe = (
        "import gc; from uvicorn.importer import import_from_string; "
        f"before = gc.get_freeze_count(); import_from_string({config.app!r})(); "
        "print(before, gc.get_freeze_count())"
    )
    worker = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=os.environ, check=True
    )
    before, frozen = map(int, worker.stdout.split())
    assert before == 0 and frozen > 100_000

"""The database layer: aware UTC timestamps, SQLite pragmas, one transaction per unit of work."""

from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.exc import StatementError

from app.audit.actions import AuditAction, EntityType
from app.audit.service import record
from app.config import Settings
from app.db import DEFAULT_LIMITS, LazyDescriptionCursor, unit_of_work
from app.errors import Conflict
from app.patients.models import Patient
from tests.helpers import audit_events


def test_timestamps_come_back_aware_in_utc(db):
    event = record(
        db,
        actor="test",
        action=AuditAction.USER_CREATED,
        entity_type=EntityType.USER,
        entity_id=None,
        coi=None,
    )
    db.commit()
    db.expire_all()
    stored = audit_events(db)[-1]
    assert stored.seq == event.seq
    assert stored.occurred_at.tzinfo is not None
    assert stored.occurred_at.utcoffset() == timedelta(0)


def test_naive_timestamps_are_refused(db):
    db.add(
        Patient(
            mrn="NAIVE",
            family_name="A",
            given_name="B",
            birth_date=datetime(1990, 1, 1).date(),
            sex="male",
            coi="CHA999926000777X",
            created_by=1,
            created_at=datetime(2026, 1, 1, 12, 0),  # no tzinfo
        )
    )
    with pytest.raises(StatementError, match="naive datetime refused"):
        db.flush()


def test_other_offsets_are_stored_as_the_same_instant(db, api):
    patient = api.patient()
    row = db.get(Patient, patient["id"])
    plus_two = datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    row.voided_at = plus_two
    db.flush()
    db.expire_all()
    assert db.get(Patient, patient["id"]).voided_at == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_sqlite_runs_with_wal_foreign_keys_and_busy_timeout(db, dialect):
    if dialect != "sqlite":
        pytest.skip("SQLite pragmas")
    assert db.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    assert db.execute(text("PRAGMA foreign_keys")).scalar() == 1
    # The busy timeout is the bound on a wait for the write lock (DESIGN §12: a few seconds).
    assert db.execute(text("PRAGMA busy_timeout")).scalar() == DEFAULT_LIMITS.busy_timeout_s * 1000


def test_aud4_unit_of_work_rolls_back_the_change_but_keeps_the_aftermath(session_factory, db):
    before = len(audit_events(db))  # the installation's approvals (QC-3) are there before

    def aftermath(session):
        record(
            session,
            actor="test",
            action=AuditAction.LOGIN_FAILED,
            entity_type=EntityType.USER,
            entity_id=None,
            coi=None,
        )

    with pytest.raises(Conflict), unit_of_work(session_factory) as session:
        record(
            session,
            actor="test",
            action=AuditAction.USER_CREATED,
            entity_type=EntityType.USER,
            entity_id=None,
            coi=None,
        )
        raise Conflict("refused", aftermath=aftermath)
    actions = [event.action for event in audit_events(db)[before:]]
    assert actions == [AuditAction.LOGIN_FAILED.value]


def test_production_refuses_the_default_secret():
    with pytest.raises(ValidationError, match="HOMEWARD_SECRET_KEY"):
        Settings(environment="production")
    Settings(environment="production", secret_key="x" * 40)
    with pytest.raises(ValidationError):
        Settings(facility_id="O1234")  # ISBT facility ids never start with O


def test_sec_production_refuses_unsigned_webhooks():
    """Receivers verify webhook bodies with the shared secret: production needs a real one."""
    key = "x" * 40
    with pytest.raises(ValidationError):
        Settings(environment="production", secret_key=key, webhook_urls=["https://clinic/hook"])
    Settings(
        environment="production",
        secret_key=key,
        webhook_urls=["https://clinic/hook"],
        webhook_secret="s" * 16,
    )


@pytest.mark.postgres_only
def test_postgresql_descriptions_read_on_demand_are_the_drivers_own(engine):
    """The engine's cursors build a description's columns when read (LazyDescriptionCursor):
    what they describe is what psycopg's own cursor describes, and a description handed out
    keeps describing its own result after the cursor runs the next statement."""
    raw = engine.raw_connection()
    try:
        connection = raw.driver_connection
        query = "SELECT 1 AS one, 'two'::text AS two, now() AS three, NULL::numeric(5, 2) AS four"
        cursor, plain = connection.cursor(), psycopg.Cursor(connection)
        assert type(cursor) is LazyDescriptionCursor
        cursor.execute(query)
        plain.execute(query)
        lazy, eager = cursor.description, plain.description
        assert [tuple(column) for column in lazy] == [tuple(column) for column in eager]
        assert [column.name for column in lazy[1:3]] == ["two", "three"]
        assert lazy[-1].name == "four" and lazy[-1].precision == 5
        with pytest.raises(IndexError):
            lazy[4]
        cursor.execute("SELECT 1 AS other")
        assert [column.name for column in lazy] == ["one", "two", "three", "four"]
        assert [column.name for column in cursor.description] == ["other"]
        cursor.execute("SET LOCAL lock_timeout = 1000")  # no rows: no description
        assert cursor.description is None and plain.description is not None
        cursor.execute("SELECT")  # rows of no columns: an empty description, not None
        assert cursor.description is not None and len(cursor.description) == 0
    finally:
        raw.close()

"""AUD-1..4 against the real database: append-only triggers, tamper detection, scoped chains,
and appends from concurrent transactions."""

import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.audit.chain import GENESIS, GLOBAL_SCOPE
from app.auth.permissions import Role
from app.db import session_factory_for, unit_of_work
from tests.helpers import audit_events


def _record(session, *, coi=None, entity_id=1, **extra):
    return audit.record(
        session,
        actor="test",
        action=AuditAction.PATIENT_REGISTERED,
        entity_type=EntityType.PATIENT,
        entity_id=entity_id,
        coi=coi,
        **extra,
    )


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_event SET actor = 'mallory'", "DELETE FROM audit_event"],
)
def test_aud2_the_database_refuses_update_and_delete_of_audit_events(db, statement):
    before = len(audit_events(db))  # the installation's approvals (QC-3) are there before
    _record(db)
    db.commit()  # events are appended at commit (the chain lock is held only then)
    with pytest.raises(DBAPIError, match="append-only"), db.begin_nested():
        db.execute(text(statement))
    assert len(audit_events(db)) == before + 1


def test_aud3_events_chain_within_their_scope(db):
    # The installation's approvals (QC-3) are in the global chain before the test.
    earlier = [e.hash for e in audit_events(db) if e.scope == GLOBAL_SCOPE]
    first_a = _record(db, coi="CHA999926000001X")
    global_event = _record(db)
    second_a = _record(db, coi="CHA999926000001X", entity_id=2)
    db.commit()
    assert first_a.prev_hash == GENESIS
    assert global_event.scope == GLOBAL_SCOPE
    assert global_event.prev_hash == (earlier[-1] if earlier else GENESIS)
    assert second_a.prev_hash == first_a.hash
    assert audit.verify_chain(db).ok


def test_aud3_one_patients_trail_verifies_on_its_own(db, dialect):
    for index in range(5):
        _record(db, coi="CHA999926000001X", entity_id=index)
        _record(db, coi="CHA999926000002Y", entity_id=index)
    db.commit()
    result = audit.verify_chain(db, scope="CHA999926000002Y")
    assert result.ok and result.events_checked == 5
    _disable_append_only(db, dialect)
    db.execute(text("UPDATE audit_event SET reason = 'x' WHERE scope = 'CHA999926000001X'"))
    assert audit.verify_chain(db, scope="CHA999926000002Y").ok
    assert not audit.verify_chain(db, scope="CHA999926000001X").ok


def _disable_append_only(session, dialect: str) -> None:
    """What an attacker with database access does; DDL is transactional, so the test rollback
    restores the triggers."""
    if dialect == "sqlite":
        session.execute(text("DROP TRIGGER audit_event_no_update"))
        session.execute(text("DROP TRIGGER audit_event_no_delete"))
    else:
        session.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))


def test_aud3_verification_names_the_first_tampered_event(db, dialect):
    events = [_record(db, entity_id=index) for index in range(10)]
    db.commit()
    _disable_append_only(db, dialect)
    db.execute(
        text("UPDATE audit_event SET new_values = :v WHERE seq = :seq"),
        {"v": '{"mrn":"forged"}', "seq": events[3].seq},
    )
    result = audit.verify_chain(db)
    assert not result.ok
    assert result.first_bad_seq == events[3].seq


def test_aud3_verification_detects_a_deleted_event(db, dialect):
    events = [_record(db, entity_id=index) for index in range(6)]
    db.commit()
    _disable_append_only(db, dialect)
    db.execute(text("DELETE FROM audit_event WHERE seq = :seq"), {"seq": events[2].seq})
    result = audit.verify_chain(db)
    assert not result.ok and result.first_bad_seq == events[3].seq


def test_aud3_concurrent_writers_keep_each_chain_linear(committed_engine):
    """On PostgreSQL the lock on each chain's head row, on SQLite BEGIN IMMEDIATE, serialize
    appends."""
    factory = session_factory_for(committed_engine)
    with factory() as session:
        # The installation's approvals (QC-3) are in the trail before the test.
        before = audit.verify_chain(session).events_checked
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def writer(index: int) -> None:
        try:
            start.wait()
            for step in range(15):
                with unit_of_work(factory) as session:
                    _record(session, coi="CHA999926000009Z", entity_id=index * 100 + step)
                    _record(session, entity_id=index * 100 + step)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with factory() as session:
        result = audit.verify_chain(session)
    assert result.ok and result.events_checked == before + 4 * 15 * 2


def test_aud4_a_refused_request_leaves_no_event_and_a_done_one_leaves_one(api, db):
    patient = api.patient()
    before = len(audit_events(db, AuditAction.PATIENT_REGISTERED))
    duplicate = api.post(
        Role.CLINICIAN,
        "/patients",
        {
            "mrn": patient["mrn"],
            "family_name": "Other",
            "given_name": "Person",
            "birth_date": "1970-01-01",
            "sex": "male",
        },
    )
    assert duplicate.status_code == 409
    assert len(audit_events(db, AuditAction.PATIENT_REGISTERED)) == before
    api.patient()
    assert len(audit_events(db, AuditAction.PATIENT_REGISTERED)) == before + 1


def test_sec_admin_reads_the_global_trail_but_no_patients_trail(api):
    """DESIGN §11: admin grants no access to patient data, not even through the audit trail."""
    batch = api.batch()
    admin_view = api.get(Role.ADMIN, "/audit").json()
    assert admin_view and {event["scope"] for event in admin_view} == {"global"}
    qa_scopes = {event["scope"] for event in api.get(Role.QA, "/audit").json()}
    assert batch["coi"] in qa_scopes
    assert batch["coi"] not in api.get(Role.ADMIN, "/audit/export.csv").text
    assert api.get(Role.ADMIN, f"/batches/{batch['id']}/audit").status_code == 403
    assert api.get(Role.ADMIN, f"/patients/{batch['patient_id']}/audit").status_code == 403
    assert api.get(Role.ADMIN, "/audit/verify").json()["ok"] is True

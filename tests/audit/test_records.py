"""AUD-7 against the real database: every GMP-critical record is verified against the state its
trail last recorded, chain heads catch a trail that lost its last events, and the append-only
tables refuse UPDATE and DELETE. Tampering is done behind the application (Core statements and
raw SQL, with the triggers dropped where they would refuse), as someone with database rights
would; DDL is transactional, so each test's rollback restores the triggers."""

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.audit.chain import GLOBAL_SCOPE
from app.audit.models import AuditEvent
from app.audit.records import PARENTS, TRACKED
from app.auth.permissions import Role
from app.batches.models import Batch
from app.biopsies.models import Biopsy
from app.clinic.models import Infusion
from app.db import session_factory_for, unit_of_work
from app.gmp_settings.models import GmpSetting
from app.patients.models import Patient
from app.qc.models import QcResult
from app.release.models import PhysicianAcceptance
from app.specifications.models import Specification, SpecificationTest
from app.storage.models import CustodyEvent
from app.vessels.models import Vessel
from tests.helpers import Api, drop_append_only, ok

VERIFY = "/audit/verify"


@pytest.fixture
def recorded(api: Api) -> dict[str, Any]:
    """A released batch whose first dose was moved: patient, biopsy, batch, vessels, QC results,
    custody, a release decision, all written through the application."""
    batch, codes = api.released()
    ok(
        api.post(
            Role.TECHNICIAN,
            f"/vessels/{codes[0]}/custody",
            {"event": "moved", "location": "Freezer A", "temperature_c": -180.0},
        ),
        201,
    )
    dose = api.db.execute(select(Vessel).where(Vessel.code == codes[0])).scalar_one()
    batch_row = api.db.get(Batch, batch["id"])
    patient = api.db.execute(
        select(Patient)
        .join(Biopsy, Biopsy.patient_id == Patient.id)
        .where(Biopsy.id == dose.biopsy_id)
    ).scalar_one()
    return {
        "batch": batch,
        "dose": dose,
        "patient": patient,
        "result": api.db.execute(
            select(QcResult).where(QcResult.batch_id == batch["id"]).order_by(QcResult.id)
        )
        .scalars()
        .first(),
        "custody": api.db.execute(select(CustodyEvent).where(CustodyEvent.vessel_id == dose.id))
        .scalars()
        .all()[-1],
        # The change-controlled records the batch was made under (QC-3).
        "specification": api.db.get(Specification, batch_row.specification_id),
        "limit": api.db.execute(
            select(SpecificationTest)
            .where(SpecificationTest.specification_id == batch_row.specification_id)
            .where(SpecificationTest.test == "viability")
        ).scalar_one(),
        "setting": api.db.execute(
            select(GmpSetting).where(GmpSetting.group_name == "label_product")
        ).scalar_one(),
    }


def _record(session, coi: str | None, entity_id: int = 1) -> AuditEvent:
    return audit.record(
        session,
        actor="test",
        action=AuditAction.PATIENT_REGISTERED,
        entity_type=EntityType.PATIENT,
        entity_id=entity_id,
        coi=coi,
    )


def _verify(api: Api) -> dict[str, Any]:
    return ok(api.get(Role.QA, VERIFY))


# Finding 5 of issue 11: each of these, done in SQL, used to leave the trail "intact".
# name: (model, the fixture's row, the column changed and its forged value)
TAMPERINGS = {
    "patient mrn": (Patient, "patient", "mrn", "MRN-FORGED"),
    "patient name": (Patient, "patient", "family_name", "Forged"),
    "qc value": (QcResult, "result", "value_number", 1.0),
    "custody location": (CustodyEvent, "custody", "to_location", "Somewhere else"),
    "dose expiry": (Vessel, "dose", "expires_at", datetime.now(UTC) + timedelta(days=30)),
    # QC-3: a limit loosened, a version put in force, a label's wording changed, all in SQL.
    "specification limit": (SpecificationTest, "limit", "minimum", 10.0),
    "specification status": (Specification, "specification", "status", "superseded"),
    "gmp setting content": (GmpSetting, "setting", "content", '{"product_name":"Forged"}'),
}


@pytest.mark.parametrize("tampering", TAMPERINGS)
def test_aud7_a_record_changed_behind_the_application_is_named_by_verify(api, recorded, tampering):
    """AUD-7: GET /audit/verify answers not ok and names the row and field that differ from
    what the trail last recorded, while the events themselves still verify."""
    before = _verify(api)
    assert before["ok"] is True and before["records_checked"] >= 10
    assert before["first_bad_record"] is None and before["bad_scope"] is None
    model, row, field, forged = TAMPERINGS[tampering]
    table, row_id = model.__tablename__, recorded[row].id
    drop_append_only(api.db, table)
    api.db.execute(update(model).where(model.id == row_id).values({field: forged}))
    after = _verify(api)
    assert after["ok"] is False
    assert after["first_bad_seq"] is None  # every event is intact: the record is not
    assert after["first_bad_record"]["table"] == table
    assert after["first_bad_record"]["id"] == row_id
    assert after["first_bad_record"]["field"] == field
    assert after["records_differing"] == 1
    assert f"{table} {row_id}" in after["detail"]


def test_aud7_a_row_inserted_behind_the_application_has_no_recorded_state(api, recorded):
    patient = recorded["patient"]
    row = {c: getattr(patient, c) for c in ("family_name", "given_name", "birth_date", "sex")}
    new_id = api.db.execute(
        insert(Patient).values(
            **row, mrn="MRN-GHOST", mrn_key="MRN-GHOST", coi="CHA999926999999X",
            created_by=patient.created_by, created_at=datetime.now(UTC),
        ).returning(Patient.id)
    ).scalar_one()  # fmt: skip
    result = _verify(api)
    assert result["ok"] is False
    assert result["first_bad_record"]["table"] == "patient"
    assert result["first_bad_record"]["id"] == new_id
    assert "no recorded state" in result["first_bad_record"]["detail"]


def test_aud7_a_recorded_row_deleted_behind_the_application_is_named(api, recorded):
    drop_append_only(api.db, "custody_event")
    custody = recorded["custody"]
    api.db.execute(delete(CustodyEvent).where(CustodyEvent.id == custody.id))
    result = _verify(api)
    assert result["ok"] is False
    assert result["first_bad_record"]["table"] == "custody_event"
    assert result["first_bad_record"]["id"] == custody.id
    assert "no longer in the database" in result["first_bad_record"]["detail"]


def test_aud7_snapshots_stay_out_of_every_entitys_own_timeline(api, recorded):
    """The snapshot events are entity_type `record`: a vessel's or patient's trail keeps its
    shape, and the snapshot of a patient's rows is in the patient's chain, not the global one."""
    dose = recorded["dose"]
    trail = ok(api.get(Role.QA, "/audit", params={"entity_type": "vessel", "entity_id": dose.id}))
    assert trail and all(event["entity_type"] == "vessel" for event in trail)
    snapshots = api.db.execute(
        select(AuditEvent).where(AuditEvent.action == AuditAction.RECORDS_WRITTEN.value)
    ).scalars().all()  # fmt: skip
    tables = {
        (row["table"], row["id"]): event.scope
        for event in snapshots
        for row in json.loads(event.new_values)["rows"]
    }
    coi = recorded["patient"].coi
    assert tables[("patient", recorded["patient"].id)] == coi
    assert tables[("vessel", dose.id)] == coi
    assert tables[("custody_event", recorded["custody"].id)] == coi
    # A row that reaches a patient is in the patient's chain; the change-controlled records
    # (specifications, GMP settings) reach none and are in the global one.
    global_tables = set(TRACKED) - set(PARENTS) - {"patient"}
    assert global_tables == {"specification", "specification_test", "gmp_setting"}
    for (table, _), scope in tables.items():
        assert (scope == GLOBAL_SCOPE) == (table in global_tables), table


def test_aud7_a_rolled_back_write_leaves_no_snapshot(api, recorded):
    """The snapshots of a rolled-back transaction are dropped with it: the next commit records
    only what it wrote, so the dose is still verified against what was really committed."""
    dose = recorded["dose"]
    dose.volume_ml = 1.0
    api.db.flush()
    api.db.rollback()
    _record(api.db, None)
    api.db.commit()
    assert _verify(api)["ok"] is True


# -- chain heads -----------------------------------------------------------------------------


def _drop_audit_triggers(db, dialect: str) -> None:
    if dialect == "sqlite":
        db.execute(text("DROP TRIGGER audit_event_no_update"))
        db.execute(text("DROP TRIGGER audit_event_no_delete"))
    else:
        db.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))


def test_aud7_a_chain_that_lost_its_last_events_is_reported(api, recorded, dialect):
    """Deleting a chain's last events leaves every remaining link valid: only its head shows it."""
    coi = recorded["patient"].coi
    _drop_audit_triggers(api.db, dialect)
    last = (
        api.db.execute(
            select(AuditEvent.seq).where(AuditEvent.scope == coi).order_by(AuditEvent.seq.desc())
        )
        .scalars()
        .first()
    )
    api.db.execute(delete(AuditEvent).where(AuditEvent.seq == last))
    result = _verify(api)
    assert result["ok"] is False and result["first_bad_seq"] is None
    assert result["bad_scope"] == coi
    assert "ends early" in result["detail"] and "removed" in result["detail"]


def test_aud7_a_head_whose_chain_vanished_is_reported(api, recorded, dialect):
    coi = recorded["patient"].coi
    _drop_audit_triggers(api.db, dialect)
    api.db.execute(delete(AuditEvent).where(AuditEvent.scope == coi))
    result = _verify(api)
    assert result["ok"] is False and result["bad_scope"] == coi
    assert "0 events" in result["detail"]


def test_aud7_the_heads_are_moved_by_each_append_in_its_transaction(db):
    _record(db, "CHA999926000077X")
    assert "CHA999926000077X" not in audit.heads(db)  # nothing until the commit
    db.commit()
    second = _record(db, "CHA999926000077X")
    db.commit()
    head = audit.heads(db)["CHA999926000077X"]
    assert (head.count, head.last_seq, head.last_hash) == (2, second.seq, second.hash)


def _append_concurrently(factory, scopes: list[str], writers: int) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def writer(index: int) -> None:
        try:
            start.wait()
            with unit_of_work(factory) as session:
                _record(session, scopes[index % len(scopes)], index)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(index,)) for index in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []


@pytest.mark.postgres_only
@pytest.mark.parametrize(
    "scopes", [["CHA999926000011X"], ["CHA999926000011X", "CHA999926000012Y", GLOBAL_SCOPE]]
)
def test_aud7_64_concurrent_appends_leave_every_head_at_the_end_of_its_chain(fresh_engine, scopes):
    """AUD-7 on PostgreSQL, real commits: the head row's lock serializes appends to one chain,
    so 64 transactions racing into one scope (or three) leave heads == chains, and the first
    appends to a new scope do not fork it. (A database as installed: an empty trail.)"""
    factory = session_factory_for(fresh_engine)
    _append_concurrently(factory, scopes, 64)
    with factory() as session:
        result = audit.verify_chain(session)
        kept = audit.heads(session)
    assert result.ok, result.detail
    assert result.events_checked == 64
    assert kept == result.tails
    assert sum(head.count for head in kept.values()) == 64


# -- append-only tables ----------------------------------------------------------------------


def _add_infusion_and_acceptance(api: Api, recorded: dict[str, Any]) -> None:
    dose, patient = recorded["dose"], recorded["patient"]
    now = datetime.now(UTC)
    api.db.execute(
        insert(Infusion).values(
            dose_id=dose.id, batch_id=dose.batch_id, patient_id=patient.id, administered_at=now,
            administered_by=patient.created_by, witness_id=patient.created_by, recorded_at=now,
        )
    )  # fmt: skip
    api.db.execute(
        insert(PhysicianAcceptance).values(
            batch_id=dose.batch_id, physician_name="Dr Test", accepted_at=now,
            out_of_specification_tests="[]", recorded_by=patient.created_by, recorded_at=now,
        )
    )  # fmt: skip


APPEND_ONLY = {
    "custody_event": "to_location",
    "infusion": "observations",
    "qc_result": "value_number",
    "release_decision": "comment",
    "physician_acceptance": "note",
    "signature": "comment",
    "audit_event": "reason",
}


@pytest.mark.parametrize("verb", ["UPDATE", "DELETE"])
@pytest.mark.parametrize("table", APPEND_ONLY)
def test_aud7_the_database_refuses_to_change_an_append_only_row(api, recorded, table, verb):
    _add_infusion_and_acceptance(api, recorded)
    count = api.db.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
    assert count >= 1
    column = APPEND_ONLY[table]
    statement = (
        f"UPDATE {table} SET {column} = {column}" if verb == "UPDATE" else f"DELETE FROM {table}"
    )
    with pytest.raises(DBAPIError, match="append-only"), api.db.begin_nested():
        api.db.execute(text(statement))
    assert api.db.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == count

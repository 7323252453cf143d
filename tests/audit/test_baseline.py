"""AUD-7 on a database that had records before snapshots existed: migration 0011 fills the chain
heads from the events already there and writes a `records.baseline` snapshot of every tracked
row into its patient's chain, so verification holds at once and catches later tampering."""

import json
from pathlib import Path

from sqlalchemy import insert, text

from app.audit import service as audit
from app.audit.chain import GLOBAL_SCOPE
from app.audit.models import AuditEvent
from app.bench.data import chained_events
from app.db import make_engine, session_factory_for
from app.migrate import upgrade

COI = "CHA999926000005U"
ROWS = (
    "INSERT INTO app_user (id, username, full_name, password_hash, active, locked, failed_logins,"
    " created_at) VALUES (1, 'old', 'Old User', 'x', 1, 0, 0, '2026-11-01 09:00:00.000000')",
    "INSERT INTO patient (id, mrn, family_name, given_name, birth_date, sex, coi, created_at,"
    f" created_by) VALUES (1, 'MRN-1', 'Rossi', 'Anna', '1970-01-02', 'female', '{COI}',"
    " '2026-11-01 09:00:00.000000', 1)",
    "INSERT INTO biopsy (id, patient_id, din, collected_at, site, mass_mg, created_at,"
    " created_by) VALUES (1, 1, 'A999926000001', '2026-11-01 08:00:00.000000', 'thigh', 12.5,"
    " '2026-11-01 09:00:00.000000', 1)",
)


def test_aud7_migration_0011_baselines_the_records_and_heads_of_an_existing_database(
    tmp_path: Path,
):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0007")
    engine = make_engine(url)
    with engine.begin() as connection:
        for statement in ROWS:
            connection.execute(text(statement))
        connection.execute(insert(AuditEvent.__table__), list(chained_events(7, scopes=2)))
    upgrade(url)
    with session_factory_for(engine)() as session:
        result = audit.verify_trail(session)
        assert result.ok, result.detail
        assert result.chain.events_checked == 7 + 2  # the old events, a baseline per table
        assert result.records is not None and result.records.records_checked == 2
        assert audit.heads(session) == result.chain.tails
        baselines = session.execute(
            text("SELECT scope, new_values FROM audit_event WHERE action = 'records.baseline'")
        ).all()
    assert {scope for scope, _ in baselines} == {COI}  # the patient's chain, not the global one
    rows = {(r["table"], r["id"]): r["state"] for _, v in baselines for r in json.loads(v)["rows"]}
    assert rows.keys() == {("patient", 1), ("biopsy", 1)}
    assert rows[("biopsy", 1)]["din"] == "A999926000001"

    with engine.begin() as connection:
        connection.execute(text("UPDATE biopsy SET din = 'A999926000002' WHERE id = 1"))
    with session_factory_for(engine)() as session:
        tampered = audit.verify_trail(session)
    engine.dispose()
    assert not tampered.ok
    assert tampered.records is not None and tampered.records.first_bad_record is not None
    bad = tampered.records.first_bad_record
    assert (bad.table, bad.id, bad.field) == ("biopsy", 1, "din")


CHANGE_CONTROLLED = (
    "INSERT INTO specification (id, product, version, status, note, created_at) VALUES"
    " (1, 'autologous mesoangioblasts', 1, 'approved', NULL, '2026-11-01 09:00:00.000000')",
    "INSERT INTO specification_test (id, specification_id, position, test, name, method, unit,"
    " minimum, maximum, minimum_inclusive, maximum_inclusive, expected, answers, critical)"
    " VALUES (1, 1, 0, 'viability', 'Viability', 'Trypan blue', '%', 70, NULL, 1, 1, NULL, NULL,"
    " 1)",
    "INSERT INTO gmp_setting (id, group_name, version, status, content, reason, created_at)"
    " VALUES (1, 'label_product', 1, 'draft', '{}', 'shipped', '2026-11-01 09:00:00.000000')",
)


def test_aud7_qc3_migration_0022_baselines_the_change_controlled_records_of_an_existing_database(
    tmp_path: Path,
):
    """Specifications and GMP settings written before they were tracked get a baseline in the
    global chain (they belong to no patient); a limit changed in SQL afterwards is named."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0017")
    engine = make_engine(url)
    with engine.begin() as connection:
        for statement in CHANGE_CONTROLLED:
            connection.execute(text(statement))
    upgrade(url)
    with session_factory_for(engine)() as session:
        result = audit.verify_trail(session)
        assert result.ok, result.detail
        assert result.records is not None and result.records.records_checked == 3
        baselines = session.execute(
            text("SELECT scope, new_values FROM audit_event WHERE action = 'records.baseline'")
        ).all()
    assert {scope for scope, _ in baselines} == {GLOBAL_SCOPE}
    rows = {(r["table"], r["id"]) for _, v in baselines for r in json.loads(v)["rows"]}
    assert rows == {("specification", 1), ("specification_test", 1), ("gmp_setting", 1)}

    with engine.begin() as connection:
        connection.execute(text("UPDATE specification_test SET minimum = 10 WHERE id = 1"))
    with session_factory_for(engine)() as session:
        tampered = audit.verify_trail(session)
    engine.dispose()
    assert not tampered.ok and tampered.records is not None
    bad = tampered.records.first_bad_record
    assert bad is not None and (bad.table, bad.id, bad.field) == (
        "specification_test",
        1,
        "minimum",
    )

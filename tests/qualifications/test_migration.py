"""SEC-5 transition (migration 0016, ADR 0024): lots received before QC release status existed
count as released; equipment gets no due date, so it is refused until QA records one (new lots
start in quarantine: tests/materials/test_release_status.py)."""

from pathlib import Path

from sqlalchemy import text

from app.db import make_engine
from app.migrate import upgrade

ROWS = (
    "INSERT INTO material (id, code, name, category, created_at) VALUES"
    " (1, 'MED', 'Medium', 'medium', '2026-11-01 09:00:00.000000')",
    "INSERT INTO material_lot (id, material_id, lot_number, supplier, expires_at, created_at)"
    " VALUES (1, 1, 'L1', 'Acme', '2027-11-01 09:00:00.000000', '2026-11-01 09:00:00.000000')",
    "INSERT INTO equipment (id, code, name, kind, in_service, created_at) VALUES"
    " (1, 'INC', 'Incubator', 'incubator', 1, '2026-11-01 09:00:00.000000')",
)


def test_sec5_migration_0016_releases_existing_lots_and_leaves_equipment_unqualified(
    tmp_path: Path,
):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0011")
    engine = make_engine(url)
    with engine.begin() as connection:
        for statement in ROWS:
            connection.execute(text(statement))
    upgrade(url)
    with engine.begin() as connection:
        assert connection.execute(text("SELECT status FROM material_lot")).scalar_one() == (
            "released"
        )
        due = connection.execute(
            text("SELECT calibration_due_at, qualification_due_at FROM equipment")
        ).one()
        assert tuple(due) == (None, None)
        assert connection.execute(text("SELECT count(*) FROM qualification")).scalar_one() == 0
    engine.dispose()

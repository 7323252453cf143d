"""PERF: `homeward bench` runs end to end and reports every figure, and the data it measures
against is valid (identities, counters, an audit chain that verifies)."""

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg.rows import dict_row
from sqlalchemy import func, select
from sqlmodel import Session

from app.audit.service import verify_chain
from app.auth import service as auth
from app.batches.models import Batch
from app.bench.data import Clones, fill_audit_chain
from app.bench.database import libpq
from app.bench.run import QUICK
from app.biopsies.models import Biopsy
from app.clinic import board
from app.demo import seed
from app.identity.codes import parse_coi, parse_din, parse_vessel_code
from app.patients import service as patients
from app.patients.models import Patient
from app.patients.schemas import PatientCreate, Sex
from app.scan import service as scan
from app.scan.schemas import ScanExpectation
from app.vessels.models import Vessel

PG_ENV = "HOMEWARD_TEST_DATABASE_URL"
HISTORY_ENDED = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
on_postgresql = pytest.mark.skipif(
    not os.environ.get(PG_ENV), reason="needs PostgreSQL (HOMEWARD_TEST_DATABASE_URL)"
)

FIGURES = (
    "scan_c4_p99_ms",
    "scan_c32_rps",
    "scan_c32_p99_ms",
    "scan_c256_errors",
    "scan_c256_max_wait_ms",
    "ceiling_rps",
    "scan_ratio_to_ceiling",
    "audit_cost_ratio",
    "label_png_per_s",
    "label_pdf_200_s",
    "audit_verify_per_s",
    "audit_records_per_s",
    "readiness_ms_100",
    "readiness_ms_10000",
    "lineage_ms_100",
    "lineage_ms_10000",
    "scan_c32_server_cpu_ms",
    "scan_c32_database_cpu_ms",
)
BENCH_TIMEOUT_S = 600  # ~1 min on an idle 2-core machine; a bound, so CI never hangs on it


@pytest.mark.long
@pytest.mark.postgres_only
@on_postgresql
def test_perf_bench_quick_runs_and_reports_every_figure():
    homeward = [sys.executable, "-c", "from app.cli import main; main()"]
    done = subprocess.run(
        [*homeward, "bench", "--quick", "--json", "--server", os.environ[PG_ENV]],
        capture_output=True,
        text=True,
        timeout=BENCH_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout)
    for key in FIGURES:
        assert isinstance(figures[key], int | float) and not isinstance(figures[key], bool), key
    assert figures["sizes"]["batches_at_100"] == 100
    assert figures["sizes"]["batches_at_10000"] == figures["sizes"]["batches_large"] == 1000
    assert figures["audit_verify_events"] >= QUICK.audit_events
    # The CPU meter saw the server and its database work: every answered scan costs both.
    assert figures["scan_c32_server_cpu_ms"] > 0 and figures["scan_c32_database_cpu_ms"] > 0
    assert all(isinstance(met, bool | None) for met in figures["bars"].values())


@pytest.mark.postgres_only
@on_postgresql
def test_perf_cloned_batches_have_valid_identities_and_the_demo_mix(committed_engine, settings):
    factory = lambda: Session(committed_engine, expire_on_commit=False)  # noqa: E731
    seed(factory, settings)
    with factory() as session:
        demo_states = Counter(session.execute(select(Batch.status)).scalars())
    url = committed_engine.url.render_as_string(hide_password=False)
    with psycopg.connect(libpq(url), row_factory=dict_row) as connection:
        clones = Clones(connection)
        assert clones.grow_to(30) == 30
        assert clones.grow_to(44) == 44  # growing again continues the copies
        with factory() as session:
            in_treatment = session.execute(select(func.count()).select_from(Patient)).scalar_one()
            before = session.execute(select(func.max(Batch.id))).scalar_one()
            assert set(session.execute(select(Batch.status)).scalars()) == set(demo_states)
        # The lab's history: copies whose batches ended long ago keep no patient on the board.
        assert clones.grow_to(60, ended_at=HISTORY_ENDED) == 60

    with factory() as session:
        assert session.execute(select(func.count()).select_from(Batch)).scalar_one() == 60
        history = select(Batch.status, Batch.status_changed_at).where(Batch.id > before)
        assert set(session.execute(history).all()) == {("completed", HISTORY_ENDED)}
        cois = list(session.execute(select(Patient.coi)).scalars())
        assert len(set(cois)) == len(cois) and all(parse_coi(coi) == coi for coi in cois)
        rows = session.execute(select(Vessel, Biopsy).join(Biopsy, Biopsy.id == Vessel.biopsy_id))
        for vessel, biopsy in rows:
            parse_din(biopsy.din)
            assert parse_vessel_code(vessel.code).din.value == biopsy.din
        # A cloned vessel scans as its own patient's, and its batch is the one expected.
        batch = session.execute(select(Batch).order_by(Batch.id.desc())).scalars().first()
        of_batch = select(Vessel).where(Vessel.batch_id == batch.id)
        vessel = session.execute(of_batch).scalars().first()
        tech = auth.user_by_username(session, "tech")
        found = scan.scan(
            session, actor=tech, code=vessel.code, expect=ScanExpectation(batch_id=batch.id)
        )
        assert found.batch.id == batch.id and found.coi == batch_coi(session, batch)
        session.rollback()
        # The counters are past every clone: the next registration gets a new COI.
        clinician = auth.user_by_username(session, "clinician")
        patient = patients.register(
            session,
            settings,
            actor=clinician,
            data=PatientCreate(
                mrn="MRN-NEW-1",
                family_name="Nuovo",
                given_name="Nino",
                birth_date="1990-01-01",
                sex=Sex.MALE,
            ),
        )
        assert patient.coi not in cois
        # Every patient but the history's is in treatment; one with no biopsy yet is not (ADR
        # 0013).
        assert len(cois) > in_treatment
        assert board.readiness(session, settings, limit=200).total == in_treatment
        session.rollback()


def batch_coi(session: Session, batch: Batch) -> str:
    biopsy = session.get(Biopsy, batch.biopsy_id)
    return session.get(Patient, biopsy.patient_id).coi


def test_perf_generated_audit_chain_verifies(committed_engine):
    with Session(committed_engine) as session:
        before = verify_chain(session).events_checked
    fill_audit_chain(committed_engine, 5_000)
    with Session(committed_engine) as session:
        result = verify_chain(session)
    assert result.ok and result.events_checked == before + 5_000

"""Idempotent demo data: one login per role and patients at each stage the product supports."""

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select
from sqlmodel import Session, col

from app.auth import service as auth
from app.auth.models import User
from app.auth.permissions import Role
from app.batches import service as batches
from app.biopsies import service as biopsies
from app.biopsies.schemas import BiopsyCreate, BiopsyReceipt
from app.clock import utcnow
from app.config import Settings
from app.db import SessionFactory, unit_of_work
from app.patients import service as patients
from app.patients.models import Patient
from app.patients.schemas import PatientCreate, Sex


@dataclass(frozen=True)
class DemoUser:
    username: str
    full_name: str
    roles: tuple[Role, ...]
    password: str


DEMO_USERS = (
    DemoUser("admin", "Ada Admin", (Role.ADMIN,), "admin-demo-2026"),
    DemoUser("tech", "Tomas Technician", (Role.TECHNICIAN,), "tech-demo-2026"),
    DemoUser("tech2", "Tina Technician", (Role.TECHNICIAN,), "tech2-demo-2026"),
    DemoUser("qa", "Quinn QA", (Role.QA,), "qa-demo-2026"),
    DemoUser("qa2", "Quentin QA", (Role.QA,), "qa2-demo-2026"),
    DemoUser("clinician", "Dr Clara Clinician", (Role.CLINICIAN,), "clinician-demo-2026"),
    DemoUser("nurse", "Nadia Nurse", (Role.CLINICIAN,), "nurse-demo-2026"),
)

# (MRN, family, given, birth date, sex, how far along)
DEMO_PATIENTS = (
    ("MRN-100001", "Rossi", "Marco", date(1991, 3, 14), Sex.MALE, "collected"),
    ("MRN-100002", "Bianchi", "Giulia", date(1987, 11, 2), Sex.FEMALE, "received"),
    ("MRN-100003", "Ferrari", "Luca", date(2003, 6, 30), Sex.MALE, "batch"),
    ("MRN-100004", "Romano", "Sofia", date(1979, 1, 8), Sex.FEMALE, "batch"),
)


def _user(session: Session, username: str) -> User:
    user = auth.user_by_username(session, username)
    assert user is not None
    return user


def seed(factory: SessionFactory, settings: Settings) -> list[DemoUser]:
    """Create whatever demo data is missing; running it twice changes nothing the second time."""
    with unit_of_work(factory) as session:
        for demo in DEMO_USERS:
            if auth.user_by_username(session, demo.username) is None:
                auth.create_user(
                    session,
                    settings,
                    actor="demo",
                    username=demo.username,
                    full_name=demo.full_name,
                    password=demo.password,
                    roles=list(demo.roles),
                )
    for mrn, family, given, born, sex, stage in DEMO_PATIENTS:
        with unit_of_work(factory) as session:
            exists = select(Patient.id).where(Patient.mrn == mrn, col(Patient.voided_at).is_(None))
            if session.execute(exists).first() is not None:
                continue
            _patient_at_stage(session, settings, mrn, family, given, born, sex, stage)
    return list(DEMO_USERS)


def _patient_at_stage(
    session: Session,
    settings: Settings,
    mrn: str,
    family: str,
    given: str,
    born: date,
    sex: Sex,
    stage: str,
) -> None:
    clinician, tech = _user(session, "clinician"), _user(session, "tech")
    patient = patients.register(
        session,
        settings,
        actor=clinician,
        data=PatientCreate(mrn=mrn, family_name=family, given_name=given, birth_date=born, sex=sex),
    )
    now = utcnow()
    biopsy, tube = biopsies.register(
        session,
        settings,
        actor=clinician,
        data=BiopsyCreate(
            patient_id=patient.id or 0,
            collected_at=now - timedelta(hours=6),
            site="vastus lateralis",
            mass_mg=180.0,
        ),
    )
    if stage == "collected":
        return
    biopsies.receive(
        session,
        actor=tech,
        biopsy_id=biopsy.id or 0,
        data=BiopsyReceipt(
            scanned_code=tube.code, received_at=now - timedelta(hours=2), temperature_c=4.0,
            accepted=True,
        ),
    )  # fmt: skip
    if stage == "received":
        return
    batches.register(session, settings, actor=tech, biopsy_id=biopsy.id or 0)

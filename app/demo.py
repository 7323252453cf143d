"""Idempotent demo data: one login per role and patients at each stage the product supports."""

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select
from sqlmodel import Session, col

from app.auth import service as auth
from app.auth.models import User
from app.auth.permissions import Role
from app.auth.service import Principal
from app.batches import service as batches
from app.biopsies import service as biopsies
from app.biopsies.schemas import BiopsyCreate, BiopsyReceipt
from app.clinic import service as clinic
from app.clinic.schemas import PlanCreate
from app.clock import utcnow
from app.config import Settings
from app.db import SessionFactory, unit_of_work
from app.gmp_settings import service as gmp_settings
from app.gmp_settings.schemas import GmpSettingApprove
from app.labels import service as labels
from app.labels.gate import unlabelled_doses
from app.labels.schemas import PrintFormat, VesselPrintRequest
from app.materials import service as materials
from app.materials.schemas import (
    EquipmentCreate,
    EquipmentDueDates,
    EquipmentKind,
    LotCreate,
    LotStatusSet,
    MaterialCategory,
    MaterialCreate,
)
from app.materials.states import LotStatus
from app.patients import service as patients
from app.patients.models import Patient
from app.patients.schemas import PatientCreate, Sex
from app.qc import service as qc
from app.qc.schemas import QcResultCreate
from app.qualifications import service as qualifications
from app.qualifications.schemas import QualificationGrant
from app.release import service as release
from app.release.schemas import Decision, ReleaseCreate
from app.signatures import service as signatures
from app.signatures.schemas import SignatureInput, SignedRecord
from app.specifications import service as specifications
from app.steps import service as steps
from app.steps.schemas import OutputSpec, StepCreate
from app.storage import service as storage
from app.storage.schemas import CustodyCreate, CustodyKind, LocationCreate, LocationKind
from app.vessels.models import Vessel


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
    ("MRN-100005", "Colombo", "Paolo", date(1995, 9, 21), Sex.MALE, "expansion"),
    ("MRN-100006", "Ricci", "Elena", date(1984, 4, 3), Sex.FEMALE, "quarantine"),
    ("MRN-100007", "Greco", "Chiara", date(1999, 2, 11), Sex.FEMALE, "released"),
    ("MRN-100008", "Bruno", "Matteo", date(1976, 7, 25), Sex.MALE, "conditional"),
    ("MRN-100009", "Gallo", "Sara", date(1968, 12, 5), Sex.FEMALE, "out_of_specification"),
)

# QC results a lab would see for a good batch, by test of the default specification.
DEMO_RESULTS: dict[str, float | str] = {
    "viability": 92.4,
    "viable_cells_per_dose": 150_000_000,
    "sterility": "no growth",
    "mycoplasma": "not detected",
    "endotoxin": 0.12,
    "identity": 91.0,
    "mtdna_heteroplasmy": 2.1,
    "karyotype": "normal",
}

DEMO_MATERIALS = (
    ("MED-DMEM", "DMEM high glucose medium", MaterialCategory.MEDIUM, "DM2611", "Gibco"),
    (
        "HPL-01",
        "Human platelet lysate",
        MaterialCategory.PLATELET_LYSATE,
        "PL2609",
        "PL BioScience",
    ),
    ("ENZ-TRYPLE", "TrypLE Select enzyme", MaterialCategory.ENZYME, "TL2602", "Gibco"),
)
DEMO_EQUIPMENT = (
    ("INC-01", "CO2 incubator 1", EquipmentKind.INCUBATOR),
    ("BSC-01", "Biosafety cabinet 1", EquipmentKind.BIOSAFETY_CABINET),
    ("LN2-01", "Liquid nitrogen freezer 1", EquipmentKind.FREEZER),
)
# (code, name, kind, parent code)
DEMO_LOCATIONS = (
    ("SITE", "Cell lab", LocationKind.SITE, None),
    ("R-101", "Clean room 101", LocationKind.ROOM, "SITE"),
    ("LN2-01", "LN2 freezer 1", LocationKind.FREEZER, "R-101"),
    ("LN2-01-R1", "Rack 1", LocationKind.RACK, "LN2-01"),
    ("LN2-01-R1-B1", "Box 1", LocationKind.BOX, "LN2-01-R1"),
    *(
        (f"LN2-01-R1-B1-A{n}", f"Position A{n}", LocationKind.POSITION, "LN2-01-R1-B1")
        for n in range(1, 10)
    ),
)


def _catalogue(session: Session, admin: User) -> None:
    """Materials, lots, equipment and storage locations, each created once."""
    known = {m.code for m in materials.list_materials(session)}
    for code, name, category, lot_number, supplier in DEMO_MATERIALS:
        if code in known:
            continue
        material = materials.create_material(
            session, actor=admin, data=MaterialCreate(code=code, name=name, category=category)
        )
        materials.create_lot(
            session,
            actor=admin,
            data=LotCreate(
                material_id=material.id or 0,
                lot_number=lot_number,
                supplier=supplier,
                expires_at=utcnow() + timedelta(days=365),
            ),
        )
    known = {e.code for e in materials.list_equipment(session)}
    for code, name, kind in DEMO_EQUIPMENT:
        if code not in known:
            materials.create_equipment(
                session, actor=admin, data=EquipmentCreate(code=code, name=name, kind=kind)
            )
    ids = {location.code: location.id for location, _ in storage.list_locations(session)}
    for code, name, kind, parent in DEMO_LOCATIONS:
        if code not in ids:
            location = storage.create_location(
                session,
                actor=admin,
                data=LocationCreate(
                    code=code, name=name, kind=kind, parent_id=ids[parent] if parent else None
                ),
            )
            ids[code] = location.id


def _quality(session: Session) -> None:
    """QA's part of the demo (SEC-5): every demo user qualified for what their roles do (qa
    qualifies the others, qa2 qualifies qa), the demo lots released, the demo equipment
    calibrated and qualified; only what is missing or overdue, so a second run changes nothing."""
    qa, qa2 = _user(session, "qa"), _user(session, "qa2")
    now = utcnow()
    for demo in DEMO_USERS:
        user = _user(session, demo.username)
        held = {q.duty for q in qualifications.listing(session, user_id=user.id) if q.current}
        missing = qualifications.duties_for(demo.roles) - held
        if missing:
            qualifications.grant(
                session,
                actor=qa2 if user.id == qa.id else qa,
                user_id=user.id or 0,
                data=QualificationGrant(
                    duties=sorted(missing),
                    expires_at=now + timedelta(days=365),
                    reason="Demo: training records on file.",
                ),
            )
    lot_numbers = {lot_number for *_, lot_number, _ in DEMO_MATERIALS}
    for lot, _ in materials.list_lots(session):
        if lot.lot_number in lot_numbers and lot.status == LotStatus.QUARANTINE:
            materials.set_lot_status(
                session,
                actor=qa,
                lot_id=lot.id or 0,
                data=LotStatusSet(status=LotStatus.RELEASED, reason="Demo: certificate checked."),
            )
    codes = {code for code, *_ in DEMO_EQUIPMENT}
    for equipment in materials.list_equipment(session):
        if equipment.code in codes and materials.equipment_public(equipment, now).overdue:
            materials.set_due_dates(
                session,
                actor=qa,
                equipment_id=equipment.id or 0,
                data=EquipmentDueDates(
                    calibration_due_at=now + timedelta(days=180),
                    qualification_due_at=now + timedelta(days=365),
                    reason="Demo: calibration and qualification reports on file.",
                ),
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
    with unit_of_work(factory) as session:
        qa_user = _user(session, "qa")
        approve_installed(session, settings, approver=qa_user, password=_password("qa"))
    with unit_of_work(factory) as session:
        _catalogue(session, _user(session, "admin"))
        _quality(session)
    for mrn, family, given, born, sex, stage in DEMO_PATIENTS:
        with unit_of_work(factory) as session:
            exists = select(Patient.id).where(
                Patient.mrn_key == patients.mrn_key(mrn), col(Patient.voided_at).is_(None)
            )
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
        settings,
        actor=tech,
        biopsy_id=biopsy.id or 0,
        data=BiopsyReceipt(
            scanned_code=tube.code,
            received_at=now,
            temperature_c=4.0,
            accepted=True,
        ),
    )
    if stage == "received":
        return
    context = batches.register(session, settings, actor=tech, biopsy_id=biopsy.id or 0)
    if stage == "batch":
        return
    lot_ids = [
        lot.id or 0 for lot, _ in materials.list_lots(session) if lot.status == LotStatus.RELEASED
    ]
    usable = [
        e
        for e in materials.list_equipment(session)
        if e.in_service and not materials.equipment_public(e).overdue
    ]
    equipment = [e.id or 0 for e in usable][:2]

    def step(kind: str, inputs: list[str], outputs: list[OutputSpec], **extra) -> list[str]:
        data = StepCreate(
            kind=kind,
            inputs=inputs,
            outputs=outputs,
            materials=lot_ids,
            equipment=equipment,
            **extra,
        )
        done = steps.record(
            session, settings, actor=tech, batch_id=context.batch.id or 0, data=data
        )
        return [vessel.code for vessel in done.outputs]

    flasks = step(
        "isolation",
        [tube.code],
        [OutputSpec(kind="flask", seeded_cells=200_000)] * 2,
        measurements={"method": "enzymatic"},
    )
    flasks = step(
        "passage",
        flasks,
        [OutputSpec(kind="flask", seeded_cells=1_000_000)] * 3,
        measurements={"viable_cells": 3_200_000, "viability_pct": 94.5},
    )
    if stage == "expansion":
        return
    (harvest,) = step(
        "harvest",
        flasks,
        [OutputSpec(kind="tube")],
        measurements={"total_cells": 480e6, "viable_cells": 455e6},
    )
    dose = OutputSpec(
        kind="bag", cell_count=150_000_000, volume_ml=50.0, expires_at=now + timedelta(days=3)
    )
    step("formulation", [harvest], [dose, dose, dose])
    if stage == "quarantine":
        return
    _tested_and_decided(session, settings, context.batch.id or 0, stage)


def _tested_and_decided(session: Session, settings: Settings, batch_id: int, stage: str) -> None:
    """QC entered by a second technician, then QA's e-signed decision (the releaser did no step
    and entered no result: REL-4)."""
    analyst, qa = _user(session, "tech2"), _user(session, "qa")
    results = dict(DEMO_RESULTS)
    if stage == "conditional":
        del results["sterility"]  # 14-day culture still running
    if stage == "out_of_specification":
        results["mtdna_heteroplasmy"] = 14.8
    for test, value in results.items():
        qc.enter(
            session,
            settings,
            actor=analyst,
            batch_id=batch_id,
            data=QcResultCreate(test=test, value=value),
        )
    if stage == "out_of_specification":
        return  # the OOS deviation holds the batch until QA closes it
    _reviewed_and_labelled(session, settings, batch_id)
    qa_password = _password("qa")
    conditional = stage == "conditional"
    decided = release.decide(
        session,
        settings,
        actor=qa,
        batch_id=batch_id,
        data=ReleaseCreate(
            decision=Decision.CONDITIONAL_RELEASE if conditional else Decision.RELEASE,
            password=qa_password,
            comment="Batch record and QC reviewed." if not conditional else "Sterility pending.",
            pending_tests=["sterility"] if conditional else [],
        ),
    )
    if not conditional:
        _at_the_clinic(session, settings, decided.batch_id)


def _password(username: str) -> str:
    return next(u.password for u in DEMO_USERS if u.username == username)


def _reviewed_and_labelled(session: Session, settings: Settings, batch_id: int) -> None:
    reviewer, tech = _user(session, "qa2"), _user(session, "tech")
    prepare_release(
        session, settings, batch_id, reviewer=reviewer, password=_password("qa2"), labeller=tech
    )


def approve_installed(
    session: Session, settings: Settings, *, approver: User, password: str
) -> None:
    """QA's approval (QC-3), e-signed by `approver` with `password`, of the shipped default
    specification and GMP settings, where nothing is in force yet. The demo's way to a working
    install, and the tests' for every test database."""
    versions = gmp_settings.list_public(session)  # installs the shipped drafts
    in_force = {version.group for version in versions if version.in_force}
    for version in versions:
        if version.group not in in_force and version.version == 1:
            gmp_settings.approve(
                session,
                settings,
                actor=approver,
                setting_id=version.id,
                data=GmpSettingApprove(password=password, reason="Shipped default accepted."),
            )
    specifications.install_default(session)
    if specifications.current(session) is None:
        (first,) = [s for s in specifications.list_public(session) if s.version == 1]
        specifications.approve(
            session,
            settings,
            actor=approver,
            specification_id=first.id,
            data=SignatureInput(password=password, comment="Shipped default accepted."),
        )


def prepare_release(
    session: Session,
    settings: Settings,
    batch_id: int,
    *,
    reviewer: User,
    password: str,
    labeller: User,
) -> None:
    """What the gate asks beyond results (REL-6): a second person (`reviewer`, signing with
    `password`) reviews each critical result in force, `labeller` prints every dose's label.
    The demo's way to a releasable batch, and the tests' for batches committed for real."""
    context = batches.get(session, batch_id)
    _, tests = qc.specification_of(session, settings, context.batch)
    current = qc.current(qc.history(session, batch_id))
    review = SignatureInput(password=password, comment="Second-person review.")
    critical = [current[t.test].id or 0 for t in tests if t.critical and t.test in current]
    reviewed = signatures.of_records(session, SignedRecord.QC_RESULT, critical)
    for result_id in critical:
        if not reviewed[result_id]:
            qc.review(session, settings, actor=reviewer, result_id=result_id, data=review)
    for code in unlabelled_doses(session, batch_id):
        labels.print_vessel(
            session,
            settings,
            actor=labeller,
            code=code,
            request=VesselPrintRequest(format=PrintFormat.ZPL),
        )


def _at_the_clinic(session: Session, settings: Settings, batch_id: int) -> None:
    """The first dose dispatched and received at the clinic, the protocol planned: the board
    shows the patient ready."""
    tech, clinician = _user(session, "tech"), _user(session, "clinician")
    first = (
        session.execute(
            select(Vessel.code)
            .where(Vessel.batch_id == batch_id, col(Vessel.is_dose).is_(True))
            .order_by(col(Vessel.sequence))
        )
        .scalars()
        .first()
    )
    assert first is not None
    for who, event, where, temperature in (
        (tech, CustodyKind.DISPATCHED, "Courier box 3", 5.0),
        (clinician, CustodyKind.RECEIVED, "Infusion suite, ward 4", 6.0),
    ):
        storage.record_custody(
            session,
            settings,
            principal=Principal(user=who, roles=auth.roles_of(session, who.id or 0)),
            code=first,
            data=CustodyCreate(event=event, location=where, temperature_c=temperature),
        )
    clinic.plan(
        session,
        settings,
        actor=clinician,
        batch_id=batch_id,
        data=PlanCreate(first_infusion_at=utcnow() + timedelta(days=1)),
    )

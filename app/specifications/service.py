"""Specification versions (QC-1): the shipped default, QA's e-signed new versions, and the
version each batch is pinned to."""

import json
from contextlib import suppress
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from app import approval
from app.approval import VersionStatus
from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.auth import service as auth
from app.auth.models import User
from app.batches.models import Batch
from app.config import Settings
from app.db import add_unique
from app.errors import Conflict, NoApprovedSpecification, NotFound
from app.gmp_settings import service as gmp_settings
from app.gmp_settings.groups import Group
from app.signatures import service as signatures
from app.signatures.schemas import Meaning, SignatureInput, SignedRecord
from app.specifications.defaults import PRODUCT, default_tests
from app.specifications.models import Specification, SpecificationTest
from app.specifications.schemas import (
    SpecificationCreate,
    SpecificationPublic,
    SpecificationTestIn,
    SpecificationTestPublic,
)


def number_text(value: float) -> str:
    """A limit or result as a person reads it: 70, 0.5, 10 000 000."""
    if value == int(value) and abs(value) >= 10_000:
        return f"{int(value):,}".replace(",", "\u2009")
    return f"{value:g}"


def limit_text(test: SpecificationTest) -> str:
    """The acceptance criterion of `test`: "≥ 70 %", "< 10 %", "no growth", "1e7 to 5e8 cells"."""
    if test.expected is not None:
        return test.expected
    unit = f" {test.unit}" if test.unit else ""
    low, high = test.minimum, test.maximum
    if low is not None and high is not None:
        return f"{number_text(low)} to {number_text(high)}{unit}"
    if low is not None:
        return f"{'≥' if test.minimum_inclusive else '>'} {number_text(low)}{unit}"
    assert high is not None
    return f"{'≤' if test.maximum_inclusive else '<'} {number_text(high)}{unit}"


def answers_of(test: SpecificationTest) -> dict[str, bool] | None:
    return None if test.answers is None else json.loads(test.answers)


def _insert(
    session: Session,
    *,
    actor: User | str,
    version: int,
    tests: list[SpecificationTestIn],
    note: str | None,
) -> tuple[Specification, list[SpecificationTest]]:
    spec = Specification(
        product=PRODUCT,
        version=version,
        note=note,
        created_by=actor.id if isinstance(actor, User) else None,
    )
    add_unique(
        session,
        spec,
        Conflict(f"Specification version {version} was just created by someone else; reload."),
    )
    assert spec.id is not None
    rows = [
        SpecificationTest(
            specification_id=spec.id,
            position=position,
            test=t.test,
            name=t.name,
            method=t.method,
            unit=t.unit,
            minimum=t.min,
            maximum=t.max,
            minimum_inclusive=t.min_inclusive,
            maximum_inclusive=t.max_inclusive,
            expected=t.expected,
            answers=None if t.answers is None else json.dumps(t.answers, sort_keys=True),
            critical=t.critical,
        )
        for position, t in enumerate(tests, start=1)
    ]
    session.add_all(rows)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.SPECIFICATION_CREATED,
        entity_type=EntityType.SPECIFICATION,
        entity_id=spec.id,
        new=content(spec, rows),
        coi=None,
    )
    return spec, rows


def _latest(session: Session) -> Specification | None:
    return session.execute(
        select(Specification)
        .where(Specification.product == PRODUCT)
        .order_by(col(Specification.version).desc())
        .limit(1)
    ).scalar_one_or_none()


def install_default(session: Session) -> None:
    """On a new database, the shipped default becomes version 1, a draft QA approves before
    first use (QC-3; audited as created by the system), with the dose range of the GMP settings
    in force (or their shipped default)."""
    if _latest(session) is not None:
        return
    dose = gmp_settings.current(session, Group.DOSE_RANGE)
    # Another transaction creating version 1 at the same moment wins: theirs stands.
    with suppress(Conflict):
        _insert(session, actor="system", version=1, tests=default_tests(dose), note=None)


def current(session: Session) -> Specification | None:
    """The version QA approved and has not superseded, if any."""
    return session.execute(
        select(Specification).where(
            Specification.product == PRODUCT,
            Specification.status == VersionStatus.APPROVED.value,
        )
    ).scalar_one_or_none()


def current_id(session: Session) -> int:
    """The id of the version in force, 0 while none is approved (for legacy batches pinned to
    no version)."""
    spec = current(session)
    return 0 if spec is None else spec.id or 0


def in_force(session: Session) -> Specification:
    """The approved version new batches are pinned to; 409 while QA has approved none (QC-3)."""
    spec = current(session)
    if spec is None:
        raise NoApprovedSpecification(
            "No specification version is approved yet: QA approves the draft (e-signed) before "
            "the first batch can be registered and tested against it."
        )
    return spec


def create(
    session: Session, settings: Settings, *, actor: User, data: SpecificationCreate
) -> Specification:
    """A new version, a draft e-signed by its QA author (`performed`); in force for batches
    registered once another QA user approves it (QC-3)."""
    install_default(session)
    latest = _latest(session)
    assert latest is not None
    signer = signatures.authenticate(
        session,
        settings,
        user=actor,
        password=data.password,
        meaning=Meaning.PERFORMED,
        comment=data.comment,
        record_type=SignedRecord.SPECIFICATION,
        record_id=None,
    )
    spec, rows = _insert(
        session, actor=actor, version=latest.version + 1, tests=data.tests, note=data.note
    )
    assert spec.id is not None
    signatures.apply(
        session,
        signer,
        record_type=SignedRecord.SPECIFICATION,
        record_id=spec.id,
        content=content(spec, rows),
        coi=None,
    )
    return spec


def approve(
    session: Session,
    settings: Settings,
    *,
    actor: User,
    specification_id: int,
    data: SignatureInput,
) -> Specification:
    """Put a draft version in force, e-signed `approved` by a QA user who did not author it
    (SIG-4); the version it replaces is superseded; batches registered before keep theirs."""
    return approval.approve(
        session,
        settings,
        model=Specification,
        family=Specification.product == PRODUCT,  # type: ignore[arg-type]
        record_id=specification_id,
        actor=actor,
        password=data.password,
        comment=data.comment,
        record_type=SignedRecord.SPECIFICATION,
        entity_type=EntityType.SPECIFICATION,
        approved=AuditAction.SPECIFICATION_APPROVED,
        superseded=AuditAction.SPECIFICATION_SUPERSEDED,
        label="specification",
        content=lambda spec: content(spec, tests_of(session, [spec.id or 0])[spec.id or 0]),
    )


def get(session: Session, specification_id: int) -> Specification:
    spec = session.get(Specification, specification_id)
    if spec is None:
        raise NotFound(f"No specification has id {specification_id}.")
    return spec


def tests_of(session: Session, specification_ids: list[int]) -> dict[int, list[SpecificationTest]]:
    """The tests of each specification, in order, in one query."""
    found: dict[int, list[SpecificationTest]] = {spec_id: [] for spec_id in specification_ids}
    rows = session.execute(
        select(SpecificationTest)
        .where(col(SpecificationTest.specification_id).in_(specification_ids))
        .order_by(col(SpecificationTest.specification_id), col(SpecificationTest.position))
    ).scalars()
    for test in rows:
        found[test.specification_id].append(test)
    return found


def pinned(session: Session, batch: Batch, *, actor: User, coi: str) -> Specification:
    """The version `batch` is tested against: pinned at registration; a batch registered before
    specifications existed is pinned to the version in force now (audited in the trail of its
    patient, `coi`)."""
    if batch.specification_id is not None:
        return get(session, batch.specification_id)
    spec = in_force(session)
    batch.specification_id = spec.id
    session.add(batch)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.SPECIFICATION_PINNED,
        entity_type=EntityType.BATCH,
        entity_id=batch.id,
        old={"specification_id": None},
        new={"specification_id": spec.id, "version": spec.version},
        coi=coi,
    )
    return spec


def test_content(test: SpecificationTest) -> dict[str, Any]:
    return {
        "test": test.test,
        "name": test.name,
        "method": test.method,
        "unit": test.unit,
        "min": test.minimum,
        "max": test.maximum,
        "min_inclusive": test.minimum_inclusive,
        "max_inclusive": test.maximum_inclusive,
        "expected": test.expected,
        "answers": answers_of(test),
        "critical": test.critical,
    }


def content(spec: Specification, tests: list[SpecificationTest]) -> dict[str, Any]:
    """The canonical content of a version: what its signature covers (SIG-3)."""
    return {
        "record": "specification",
        "id": spec.id,
        "product": spec.product,
        "version": spec.version,
        "note": spec.note,
        "tests": [test_content(test) for test in tests],
    }


def test_public(test: SpecificationTest) -> SpecificationTestPublic:
    return SpecificationTestPublic(**test_content(test), limit=limit_text(test))


def list_public(session: Session, *, only: int | None = None) -> list[SpecificationPublic]:
    """Every version (or the one with id `only`), newest first, in a fixed number of queries.
    The shipped default is installed (as a draft) on first read."""
    install_default(session)
    query = select(Specification).order_by(col(Specification.version).desc())
    if only is not None:
        query = query.where(Specification.id == only)
    specs = list(session.execute(query).scalars())
    if only is not None and not specs:
        raise NotFound(f"No specification has id {only}.")
    ids = [spec.id or 0 for spec in specs]
    tests = tests_of(session, ids)
    signed = signatures.of_records(session, SignedRecord.SPECIFICATION, ids)
    authors = auth.usernames(session, [spec.created_by for spec in specs])
    result = []
    for spec in specs:
        spec_tests = tests[spec.id or 0]
        signed_content = content(spec, spec_tests)
        result.append(
            SpecificationPublic(
                id=spec.id or 0,
                product=spec.product,
                version=spec.version,
                note=spec.note,
                created_at=spec.created_at,
                created_by=authors.get(spec.created_by or 0, "system (shipped default)"),
                status=VersionStatus(spec.status),
                in_force=spec.status == VersionStatus.APPROVED,
                tests=[test_public(test) for test in spec_tests],
                signatures=[signatures.public(s, signed_content) for s in signed[spec.id or 0]],
            )
        )
    return result

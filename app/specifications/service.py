"""Specification versions (QC-1): the shipped default, QA's e-signed new versions, and the
version each batch is pinned to."""

import json
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.auth import service as auth
from app.auth.models import User
from app.batches.models import Batch
from app.config import Settings
from app.db import add_unique
from app.errors import Conflict, NotFound
from app.signatures import service as signatures
from app.signatures.schemas import SignedRecord
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


def in_force(session: Session, settings: Settings) -> Specification:
    """The newest version; on a new database, the shipped default becomes version 1 (audited as
    created by the system)."""
    spec = _latest(session)
    if spec is not None:
        return spec
    try:
        spec, _ = _insert(
            session, actor="system", version=1, tests=default_tests(settings), note=None
        )
    except Conflict:
        # Another transaction created version 1 at the same moment; use theirs.
        spec = _latest(session)
        assert spec is not None
    return spec


def create(
    session: Session, settings: Settings, *, actor: User, data: SpecificationCreate
) -> Specification:
    """A new version, in force for batches registered from now on, e-signed by its author."""
    current = in_force(session, settings)
    signer = signatures.authenticate(
        session,
        settings,
        user=actor,
        password=data.password,
        meaning=data.meaning,
        comment=data.comment,
        record_type=SignedRecord.SPECIFICATION,
        record_id=None,
    )
    spec, rows = _insert(
        session, actor=actor, version=current.version + 1, tests=data.tests, note=data.note
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


def pinned(
    session: Session, settings: Settings, batch: Batch, *, actor: User, coi: str
) -> Specification:
    """The version `batch` is tested against: pinned at registration; a batch registered before
    specifications existed is pinned to the version in force now (audited in the trail of its
    patient, `coi`)."""
    if batch.specification_id is not None:
        return get(session, batch.specification_id)
    spec = in_force(session, settings)
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


def list_public(
    session: Session, settings: Settings, *, only: int | None = None
) -> list[SpecificationPublic]:
    """Every version (or the one with id `only`), newest first, in a fixed number of queries."""
    current = in_force(session, settings)
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
                in_force=spec.id == current.id,
                tests=[test_public(test) for test in spec_tests],
                signatures=[signatures.public(s, signed_content) for s in signed[spec.id or 0]],
            )
        )
    return result

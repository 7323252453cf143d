"""E-signatures against the real database (DESIGN §7): re-authentication (SIG-1), the stored
manifestation (SIG-2), the content hash and append-only storage (SIG-3), and the audited failures
that lock the account (SIG-5)."""

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import object_session
from sqlmodel import Session

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.auth.models import User
from app.auth.permissions import Role
from app.db import session_factory_for, unit_of_work
from app.errors import AccountLocked, InvalidCredentials
from app.signatures import service as signatures
from app.signatures.models import Signature
from app.signatures.schemas import Meaning, SignedRecord
from tests.helpers import PASSWORD, audit_events, make_user

WRONG = "not-the-password-42"
CONTENT = {
    "record": "deviation",
    "id": 7,
    "number": "DEV26-00007",
    "description": "Incubator 3 above 38.5 C overnight.",
    "opened_at": datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=UTC),
    "capa": None,
}


def _authenticate(settings, user: User, password: str = PASSWORD, **extra):
    session = object_session(user)
    assert isinstance(session, Session)
    return signatures.authenticate(
        session,
        settings,
        user=user,
        password=password,
        meaning=extra.pop("meaning", Meaning.APPROVED),
        record_type=SignedRecord.DEVIATION,
        record_id=extra.pop("record_id", 7),
        **extra,
    )


def _sign(session: Session, settings, user: User, **content) -> Signature:
    signer = _authenticate(settings, user, comment="Closed after review.")
    return signatures.apply(
        session,
        signer,
        record_type=SignedRecord.DEVIATION,
        record_id=7,
        content=CONTENT | content,
        coi=None,
    )


def _fresh(db: Session, user: User) -> User:
    fresh = db.get(User, user.id, populate_existing=True)
    assert fresh is not None
    return fresh


def _failures(db: Session, user: User) -> list[dict]:
    return [
        json.loads(e.new_values or "{}")
        for e in audit_events(db, AuditAction.SIGNATURE_FAILED)
        if e.entity_id == user.id
    ]


# -- record_hash: the canonical form (SIG-3) -------------------------------------------------------


def test_sig3_record_hash_is_sha256_of_the_sorted_compact_json():
    """The form is pinned: sorted keys, no spaces, UTF-8 kept, instants as UTC with a Z."""
    content = {"b": "é", "a": 1, "t": datetime(2026, 3, 1, 8, 30, tzinfo=UTC), "n": None}
    expected = '{"a":1,"b":"é","n":null,"t":"2026-03-01T08:30:00.000000Z"}'
    assert signatures.record_hash(content) == hashlib.sha256(expected.encode()).hexdigest()


def test_sig3_key_order_does_not_change_the_hash():
    reordered = dict(reversed(list(CONTENT.items())))
    assert list(reordered) != list(CONTENT)
    assert signatures.record_hash(reordered) == signatures.record_hash(CONTENT)


def test_sig3_the_same_instant_in_another_time_zone_hashes_the_same():
    """What PostgreSQL returns (UTC) and what was signed (UTC) agree whatever the zone."""
    cest = timezone(timedelta(hours=2))
    moved = CONTENT | {"opened_at": CONTENT["opened_at"].astimezone(cest)}
    assert signatures.record_hash(moved) == signatures.record_hash(CONTENT)


@pytest.mark.parametrize(
    "change",
    [
        {"description": "Incubator 3 above 38.5 C overnight"},  # one character
        {"id": 8},
        {"id": "7"},  # same digits, another type
        {"capa": ""},  # empty is not absent
        {"opened_at": CONTENT["opened_at"] + timedelta(microseconds=1)},
        {"root_cause": None},  # a key added, even a null one
    ],
)
def test_sig3_any_change_of_a_value_changes_the_hash(change):
    digest = signatures.record_hash(CONTENT | change)
    assert digest != signatures.record_hash(CONTENT)
    assert len(digest) == 64 and int(digest, 16) >= 0


def test_sig3_public_says_whether_the_content_still_matches(db, settings):
    qa = make_user(db, settings, roles=[Role.QA])
    signature = _sign(db, settings, qa)
    assert signatures.public(signature, CONTENT).matches is True
    assert signatures.public(signature, CONTENT | {"capa": "added later"}).matches is False


# -- authenticate and apply (SIG-1, SIG-2) ---------------------------------------------------------


def test_sig2_a_signature_stores_printed_name_user_utc_time_meaning_and_hash(db, settings):
    qa = make_user(db, settings, roles=[Role.QA])
    before = datetime.now(UTC)
    signature = _sign(db, settings, qa)
    db.commit()
    stored = db.execute(
        select(Signature)
        .where(Signature.id == signature.id)
        .execution_options(populate_existing=True)
    ).scalar_one()
    assert stored.printed_name == qa.full_name == "Test User"
    assert stored.username == qa.username and stored.user_id == qa.id
    assert stored.meaning == "approved" and stored.comment == "Closed after review."
    assert stored.record_type == "deviation" and stored.record_id == 7
    assert stored.record_hash == signatures.record_hash(CONTENT)
    assert stored.signed_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= stored.signed_at <= datetime.now(UTC)
    (applied,) = [
        e for e in audit_events(db, AuditAction.SIGNATURE_APPLIED) if e.entity_id == signature.id
    ]
    assert applied.actor_id == qa.id and applied.entity_type == EntityType.SIGNATURE
    assert json.loads(applied.new_values or "{}") == {
        "record_type": "deviation",
        "record_id": 7,
        "meaning": "approved",
        "printed_name": "Test User",
        "record_hash": stored.record_hash,
        "comment": "Closed after review.",
    }


def test_sig1_authenticate_refuses_a_wrong_password(db, settings):
    qa = make_user(db, settings, roles=[Role.QA])
    with pytest.raises(InvalidCredentials) as refused:
        _authenticate(settings, qa, WRONG)
    assert refused.value.status == 401 and refused.value.aftermath is not None
    signer = _authenticate(settings, qa, meaning=Meaning.REVIEWED)
    assert signer.user is qa and signer.meaning is Meaning.REVIEWED


def test_sig5_a_failed_signature_is_audited_after_its_transaction_is_rolled_back(
    db, settings, session_factory
):
    """ADR 0004: the work of the refused transaction is undone; the failure is kept and counted."""
    qa = make_user(db, settings, roles=[Role.QA])
    with pytest.raises(InvalidCredentials), unit_of_work(session_factory) as session:
        user = session.get(User, qa.id)
        assert user is not None
        audit.record(
            session,
            actor=user,
            action=AuditAction.DEVIATION_UPDATED,
            entity_type=EntityType.DEVIATION,
            entity_id=7,
            new={"capa": "written before the signature failed"},
            coi=None,
        )
        _authenticate(settings, user, WRONG, record_id=7, meaning=Meaning.RELEASED)
    assert audit_events(db, AuditAction.DEVIATION_UPDATED) == []
    assert _failures(db, qa) == [
        {"failed_attempts": 1, "record_type": "deviation", "record_id": 7, "meaning": "released"}
    ]
    assert _fresh(db, qa).failed_logins == 1 and not _fresh(db, qa).locked


def test_sig5_the_threshold_of_failed_signatures_locks_the_account_and_it_cannot_sign(
    db, settings, session_factory
):
    qa = make_user(db, settings, roles=[Role.QA])
    for attempt in range(1, settings.lockout_threshold + 1):
        with pytest.raises(InvalidCredentials), unit_of_work(session_factory) as session:
            user = session.get(User, qa.id)
            assert user is not None
            _authenticate(settings, user, WRONG)
        assert _fresh(db, qa).locked == (attempt == settings.lockout_threshold)
    assert [f["failed_attempts"] for f in _failures(db, qa)] == list(
        range(1, settings.lockout_threshold + 1)
    )
    (locked,) = [e for e in audit_events(db, AuditAction.USER_LOCKED) if e.entity_id == qa.id]
    assert locked.actor == "system" and locked.reason
    # Locked: even the right password does not sign, and trying is not another failure.
    with pytest.raises(AccountLocked):
        _authenticate(settings, _fresh(db, qa))
    assert len(_failures(db, qa)) == settings.lockout_threshold


def test_sig5_an_inactive_account_cannot_sign(db, settings):
    qa = make_user(db, settings, roles=[Role.QA])
    qa.active = False
    with pytest.raises(AccountLocked):
        _authenticate(settings, qa)


# -- append-only (SIG-3) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE signature SET record_hash = '" + "0" * 64 + "'",
        "UPDATE signature SET printed_name = 'Mallory', meaning = 'released'",
        "DELETE FROM signature",
    ],
)
def test_sig3_signatures_are_append_only_the_database_refuses_change(db, settings, statement):
    qa = make_user(db, settings, roles=[Role.QA])
    signature = _sign(db, settings, qa)
    db.flush()
    with pytest.raises(DBAPIError, match="append-only"), db.begin_nested():
        db.execute(text(statement))
    row = db.execute(
        text("SELECT printed_name, meaning, record_hash FROM signature WHERE id = :id"),
        {"id": signature.id},
    ).one()
    assert tuple(row) == ("Test User", "approved", signatures.record_hash(CONTENT))


def test_sig3_signatures_are_append_only_through_the_orm_too(db, settings):
    # The installation's approvals (QC-3) are signed before the test.
    before = db.execute(text("SELECT count(*) FROM signature")).scalar_one()
    qa = make_user(db, settings, roles=[Role.QA])
    signature = _sign(db, settings, qa)
    db.flush()
    with pytest.raises(DBAPIError, match="append-only"), db.begin_nested():
        signature.meaning = Meaning.RELEASED.value
        db.flush()
    with pytest.raises(DBAPIError, match="append-only"), db.begin_nested():
        db.delete(signature)
        db.flush()
    assert db.execute(text("SELECT count(*) FROM signature")).scalar_one() == before + 1


def test_sig3_signatures_are_append_only_after_commit(committed_engine, settings, dialect):
    """With real commits: the refusal is the database's, whoever connects."""
    factory = session_factory_for(committed_engine)
    with unit_of_work(factory) as session:
        qa = make_user(session, settings, roles=[Role.QA])
        signature_id = _sign(session, settings, qa).id
    statements = ["UPDATE signature SET comment = 'edited'", "DELETE FROM signature"]
    if dialect == "postgresql":
        statements.append("TRUNCATE signature")
    for statement in statements:
        with committed_engine.connect() as connection:
            with pytest.raises(DBAPIError, match="append-only"):
                connection.execute(text(statement))
            connection.rollback()
    with committed_engine.connect() as connection:
        row = connection.execute(
            text("SELECT id, comment FROM signature WHERE id = :id"), {"id": signature_id}
        ).one()
    assert tuple(row) == (signature_id, "Closed after review.")

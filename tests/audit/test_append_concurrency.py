"""AUD-3 on PostgreSQL with real commits: appends to one chain from many transactions at once,
some with one event (locked, appended and the head moved in one statement, ADR 0034) and some
with several (head locked, events inserted, head moved), leave one unbroken chain that ends at
its head, with every committed event in it once and nothing of a rolled-back one."""

import threading

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from app.audit.actions import AuditAction, EntityType
from app.audit.models import AuditEvent, AuditHead
from app.audit.service import record, verify_chain
from app.db import session_factory_for, unit_of_work

pytestmark = pytest.mark.postgres_only

SCOPE = "COI-RACE-0001"
WRITERS = 12
ROUNDS = 8


def _append(factory, writer: int, round_: int, events: int) -> None:
    with unit_of_work(factory) as session:
        for n in range(events):
            record(
                session,
                actor="system",
                action=AuditAction.SCAN_OK,
                entity_type=EntityType.VESSEL,
                entity_id=writer * 1000 + round_ * 10 + n,
                coi=SCOPE,
                new={"writer": writer, "round": round_, "n": n, "text": 'é"\\'},
            )


def _rolled_back(factory) -> None:
    try:
        with unit_of_work(factory) as session:
            record(session, actor="system", action=AuditAction.SCAN_OK,
                   entity_type=EntityType.VESSEL, entity_id=-1, coi=SCOPE)  # fmt: skip
            session.flush()
            raise RuntimeError("refused after recording")
    except RuntimeError:
        pass


def test_aud3_concurrent_single_and_multi_event_appends_keep_one_chain(committed_engine):
    factory = session_factory_for(committed_engine)
    _append(factory, writer=0, round_=0, events=1)  # the chain's head exists: the rest race on it
    failures: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def writer(number: int) -> None:
        try:
            start.wait(timeout=30)
            for round_ in range(ROUNDS):
                _append(factory, number, round_, events=1 + (number + round_) % 3)
                if round_ == ROUNDS // 2:
                    _rolled_back(factory)
        except BaseException as exc:  # reported below, with the chain's state
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(n + 1,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "an append hung"
    assert failures == []
    expected = 1 + sum(1 + (n + r) % 3 for n in range(1, WRITERS + 1) for r in range(ROUNDS))
    with factory() as session:
        count = session.execute(
            select(func.count()).where(col(AuditEvent.scope) == SCOPE)
        ).scalar_one()
        head = session.get(AuditHead, SCOPE)
        rolled_back = session.execute(
            select(func.count()).where(col(AuditEvent.entity_id) == -1)
        ).scalar_one()
        result = verify_chain(session, scope=SCOPE)
    assert result.ok, result
    assert (count, head.count, rolled_back) == (expected, expected, 0)

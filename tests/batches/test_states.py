"""Batch and vessel lifecycles are tables (DESIGN §4); illegal moves are refused, not skipped."""

from itertools import pairwise

import pytest

from app.batches.states import BATCH_LIFECYCLE, FINAL, HOLDABLE, RETURNS, TRANSITIONS, BatchStatus
from app.errors import InvalidState
from app.vessels.states import TRANSITIONS as VESSEL_TRANSITIONS
from app.vessels.states import VesselStatus

S = BatchStatus
MAIN_LINE = [S.REGISTERED, S.ISOLATION, S.EXPANSION, S.HARVESTED, S.QUARANTINE]


def test_the_main_line_of_the_batch_lifecycle_is_allowed():
    for current, following in pairwise(MAIN_LINE):
        assert following in TRANSITIONS[current]
    for decision in (S.RELEASED, S.CONDITIONALLY_RELEASED, S.REJECTED):
        assert decision in TRANSITIONS[S.QUARANTINE]
    assert S.ISSUED in TRANSITIONS[S.RELEASED]
    assert S.ISSUED in TRANSITIONS[S.CONDITIONALLY_RELEASED]
    assert S.COMPLETED in TRANSITIONS[S.ISSUED]


@pytest.mark.parametrize("state", sorted(set(S) - FINAL - {S.ON_HOLD}))
def test_any_non_final_state_can_be_held_destroyed_and_returned_to(state):
    assert state in HOLDABLE
    assert S.ON_HOLD in TRANSITIONS[state]
    assert S.DESTROYED in TRANSITIONS[state]
    assert state in RETURNS[S.ON_HOLD]


def test_on_hold_is_left_only_by_lifting_the_hold_or_by_a_qa_decision():
    """A dispatch or a completion never moves a held batch: only the return to where it was
    held from (lifting the hold), a rejection or a destruction."""
    assert TRANSITIONS[S.ON_HOLD] == frozenset({S.REJECTED, S.DESTROYED})
    for plain in HOLDABLE:
        with pytest.raises(InvalidState) as refused:
            BATCH_LIFECYCLE.check(S.ON_HOLD, plain, label="Batch B26-00001")
        assert "back to the state it came from" in refused.value.detail
        BATCH_LIFECYCLE.check(S.ON_HOLD, plain, label="Batch B26-00001", returning=True)
    with pytest.raises(InvalidState):
        BATCH_LIFECYCLE.check(S.RELEASED, S.QUARANTINE, label="Batch B26-00001", returning=True)


def test_final_states_go_nowhere_but_destroyed():
    assert TRANSITIONS[S.COMPLETED] == frozenset()
    assert TRANSITIONS[S.DESTROYED] == frozenset()
    assert TRANSITIONS[S.REJECTED] == frozenset({S.DESTROYED})


def test_release_is_impossible_outside_quarantine():
    for state in set(S) - {S.QUARANTINE, S.CONDITIONALLY_RELEASED}:
        assert S.RELEASED not in TRANSITIONS[state]


def test_an_illegal_move_names_the_current_and_allowed_states():
    with pytest.raises(InvalidState) as refused:
        BATCH_LIFECYCLE.check(S.REGISTERED, S.RELEASED, label="Batch B26-00001")
    detail = refused.value.detail
    assert "registered" in detail and "released" in detail and "isolation" in detail
    assert refused.value.status == 409 and refused.value.code == "invalid_state"


def test_every_state_has_a_row():
    assert set(TRANSITIONS) == set(S)
    assert set(VESSEL_TRANSITIONS) == set(VesselStatus)


def test_vessel_lifecycle_matches_design():
    V = VesselStatus
    assert VESSEL_TRANSITIONS[V.ACTIVE] >= {V.CONSUMED, V.DISCARDED, V.FROZEN}
    assert V.THAWED in VESSEL_TRANSITIONS[V.FROZEN]
    assert V.CONSUMED in VESSEL_TRANSITIONS[V.THAWED]
    assert VESSEL_TRANSITIONS[V.DISPATCHED] >= {V.RECEIVED}
    assert V.INFUSED in VESSEL_TRANSITIONS[V.RECEIVED]
    for final in (V.CONSUMED, V.DISCARDED, V.INFUSED):
        assert VESSEL_TRANSITIONS[final] == frozenset()

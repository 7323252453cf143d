"""AUD-3: the canonical form and the chain verification, without a database."""

import hashlib
import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from app.audit.chain import (
    GENESIS,
    ROW_COLUMNS,
    canonical_json,
    content_around_prev_hash,
    event_hash,
    timestamp,
    verify,
)

VECTOR_FIELDS = {
    "scope": "CHA999926000001*",
    "prev_hash": GENESIS,
    "occurred_at": datetime(2026, 11, 24, 9, 30, 0, 123456, tzinfo=UTC),
    "actor_id": 7,
    "actor": "tech",
    "action": "scan.ok",
    "entity_type": "vessel",
    "entity_id": 42,
    "old_values": None,
    "new_values": '{"code":"A99992600000100010","expected":{"batch_id":3},"note":"Müller"}',
    "reason": None,
}
VECTOR_CANONICAL = (
    '["homeward.audit.v1","CHA999926000001*","' + "0" * 64 + '","2026-11-24T09:30:00.123456Z",'
    '7,"tech","scan.ok","vessel",42,null,'
    '"{\\"code\\":\\"A99992600000100010\\",\\"expected\\":{\\"batch_id\\":3},\\"note\\":\\"Müller\\"}",'
    "null]"
)
# Pinned: changing the canonical form breaks every stored chain, so it must never change silently.
VECTOR_HASH = "d3fda086eae99302e078032727ec931c0d1aff68706ca6a2bba35d4281dd2809"


def test_aud3_canonical_form_is_pinned_by_a_test_vector():
    assert hashlib.sha256(VECTOR_CANONICAL.encode()).hexdigest() == VECTOR_HASH
    assert event_hash(**VECTOR_FIELDS) == VECTOR_HASH


def test_aud3_canonical_json_of_values_is_key_order_independent_and_compact():
    one = canonical_json({"b": 1, "a": {"y": [1, 2], "x": "é"}})
    two = canonical_json({"a": {"x": "é", "y": [1, 2]}, "b": 1})
    assert one == two == '{"a":{"x":"é","y":[1,2]},"b":1}'
    assert json.loads(one) == {"a": {"x": "é", "y": [1, 2]}, "b": 1}


def _chain(length: int, scopes: tuple[str, ...] = ("global",)) -> list[tuple]:
    rows, last = [], {}
    for seq in range(1, length + 1):
        scope = scopes[seq % len(scopes)]
        fields = VECTOR_FIELDS | {
            "scope": scope,
            "prev_hash": last.get(scope, GENESIS),
            "entity_id": seq,
        }
        digest = event_hash(**fields)
        last[scope] = digest
        row = fields | {"seq": seq, "hash": digest, "occurred_at": timestamp(fields["occurred_at"])}
        rows.append(tuple(row[column] for column in ROW_COLUMNS))
    return rows


def _replace(row: tuple, **changes) -> tuple:
    values = dict(zip(ROW_COLUMNS, row, strict=True)) | changes
    return tuple(values[column] for column in ROW_COLUMNS)


def test_aud3_an_intact_chain_verifies():
    result = verify(_chain(50, scopes=("CHA", "CHB", "global")))
    assert (result.ok, result.events_checked, result.first_bad_seq) == (True, 50, None)


def test_aud3_changed_content_is_named_by_seq():
    rows = _chain(20)
    rows[6] = _replace(rows[6], actor="somebody-else")
    result = verify(rows)
    assert not result.ok and result.first_bad_seq == 7


def test_aud3_a_deleted_event_breaks_the_next_event_of_its_scope():
    rows = _chain(12, scopes=("CHA", "CHB"))
    del rows[4]  # seq 5, scope CHB (odd seqs are CHB)
    result = verify(rows)
    assert not result.ok and result.first_bad_seq == 7


def test_aud3_a_rehashed_forgery_still_breaks_the_link_to_the_next_event():
    rows = _chain(10)
    forged = _replace(rows[3], reason="rewritten")
    values = dict(zip(ROW_COLUMNS, forged, strict=True))
    fields = {k: v for k, v in values.items() if k not in ("seq", "hash")}
    fields["occurred_at"] = VECTOR_FIELDS["occurred_at"]
    rows[3] = _replace(forged, hash=event_hash(**fields))
    result = verify(rows)
    assert not result.ok and result.first_bad_seq == 5


_TEXT = st.text(max_size=40)
_OPTIONAL_TEXT = st.none() | _TEXT
_ID = st.none() | st.integers(min_value=-(2**31), max_value=2**31 - 1)


@settings(max_examples=200, deadline=None)
@given(
    prev_hash=st.just(GENESIS) | st.binary(min_size=32, max_size=32).map(bytes.hex),
    scope=_TEXT,
    occurred_at=st.datetimes(timezones=st.just(UTC)),
    actor_id=_ID,
    actor=_TEXT,
    action=_TEXT,
    entity_type=_TEXT,
    entity_id=_ID,
    old_values=_OPTIONAL_TEXT,
    new_values=_OPTIONAL_TEXT,
    reason=_OPTIONAL_TEXT,
)
def test_aud3_the_content_either_side_of_prev_hash_hashes_as_the_event(prev_hash, **fields):
    """What PostgreSQL hashes in the one-statement append (ADR 0034), the two parts joined around
    the head's last hash, is exactly the canonical content `event_hash` hashes."""
    before, after = content_around_prev_hash(**fields)
    joined = hashlib.sha256((before + prev_hash + after).encode()).hexdigest()
    assert joined == event_hash(prev_hash=prev_hash, **fields)

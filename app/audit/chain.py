"""The hash chain: canonical content, event hashes and verification (AUD-3).

The canonical content of an event is the compact JSON array

    ["homeward.audit.v1", scope, prev_hash, occurred_at, actor_id, actor, action,
     entity_type, entity_id, old_values, new_values, reason]

(UTF-8, no spaces; `occurred_at` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC; `old_values` and
`new_values` are the canonical JSON texts stored in the row). Its SHA-256 in hex is the event's
hash. Chains are per scope (a patient's COI, or GLOBAL_SCOPE); the first event of a scope has
GENESIS as prev_hash. The form is pinned by a test vector in tests/audit/test_chain.py.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from hashlib import sha256
from typing import Any

CANONICAL_VERSION = "homeward.audit.v1"
GENESIS = "0" * 64
GLOBAL_SCOPE = "global"
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(item) for item in value)
    raise TypeError(f"cannot put {type(value).__name__} in an audit event")


def canonical_json(values: dict[str, Any] | None) -> str | None:
    """Deterministic JSON for old/new values: sorted keys, no spaces, UTF-8 kept as is."""
    if values is None:
        return None
    return json.dumps(
        values, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain
    )


def timestamp(moment: datetime) -> str:
    """The canonical form of an instant: UTC with microseconds and a Z."""
    if moment.tzinfo is not None and moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # isoformat is implemented in C; strftime costs several times more on the verify hot path.
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _content(
    scope: str,
    prev_hash: str,
    occurred_at: str,
    actor_id: int | None,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: int | None,
    old_values: str | None,
    new_values: str | None,
    reason: str | None,
) -> str:
    return _ENCODER.encode(
        [CANONICAL_VERSION, scope, prev_hash, occurred_at, actor_id, actor, action,
         entity_type, entity_id, old_values, new_values, reason]
    )  # fmt: skip


def _digest(*content: Any) -> str:
    return sha256(_content(*content).encode()).hexdigest()


def event_hash(
    *,
    scope: str,
    prev_hash: str,
    occurred_at: datetime,
    actor_id: int | None,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: int | None,
    old_values: str | None,
    new_values: str | None,
    reason: str | None,
) -> str:
    """SHA-256 (hex) of the event's canonical content."""
    return _digest(
        scope, prev_hash, timestamp(occurred_at), actor_id, actor, action, entity_type,
        entity_id, old_values, new_values, reason,
    )  # fmt: skip


def content_around_prev_hash(
    *,
    scope: str,
    occurred_at: datetime,
    actor_id: int | None,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: int | None,
    old_values: str | None,
    new_values: str | None,
    reason: str | None,
) -> tuple[str, str]:
    """The event's canonical content either side of its prev_hash, `(before, after)`: for a hex
    digest `h` (which JSON leaves unescaped), `event_hash(prev_hash=h, ...)` is the SHA-256 of
    `before + h + after`. PostgreSQL joins them around its chain head's last hash inside the
    statement that locks the head and appends (ADR 0034)."""
    whole = _content(
        scope, "", timestamp(occurred_at), actor_id, actor, action, entity_type, entity_id,
        old_values, new_values, reason,
    )  # fmt: skip
    before = _ENCODER.encode([CANONICAL_VERSION, scope, ""])[: -len('"]')]
    return before, whole[len(before) :]


@dataclass(frozen=True, slots=True)
class Tail:
    """Where a scope's chain ends, as recomputed from its events (or as kept in its head)."""

    count: int
    last_seq: int
    last_hash: str


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    events_checked: int
    first_bad_seq: int | None
    # Each scope's recomputed end, when every event was checked (compared with the heads).
    tails: dict[str, Tail] = field(default_factory=dict)
    # A chain that does not end where its head (or a checkpoint) says: its scope, and why.
    bad_scope: str | None = None
    detail: str | None = None


# Row layout consumed by verify(): seq and stored hash, then the hashed fields in canonical order,
# with occurred_at already in its canonical text form.
ROW_COLUMNS = (
    "seq",
    "hash",
    "scope",
    "prev_hash",
    "occurred_at",
    "actor_id",
    "actor",
    "action",
    "entity_type",
    "entity_id",
    "old_values",
    "new_values",
    "reason",
)


def verify(rows: Iterable[tuple[Any, ...]]) -> Verification:
    """Check rows (ordered by seq, laid out as ROW_COLUMNS); name the first broken event.

    An event is broken if its stored hash is not the hash of its content, or if its prev_hash is
    not the hash of the previous event of its scope (a deleted, inserted or reordered event).
    """
    last_hash: dict[str, str] = {}
    last_seq: dict[str, int] = {}
    counts: dict[str, int] = {}
    checked = 0
    for row in rows:
        checked += 1
        seq, stored, scope, prev_hash = row[0], row[1], row[2], row[3]
        if prev_hash != last_hash.get(scope, GENESIS) or _digest(*row[2:]) != stored:
            return Verification(ok=False, events_checked=checked, first_bad_seq=seq)
        last_hash[scope] = stored
        last_seq[scope] = seq
        counts[scope] = counts.get(scope, 0) + 1
    tails = {scope: Tail(counts[scope], last_seq[scope], last_hash[scope]) for scope in counts}
    return Verification(ok=True, events_checked=checked, first_bad_seq=None, tails=tails)

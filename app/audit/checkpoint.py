"""Signed checkpoints of the chain heads (AUD-7, ADR 0018): an auditor keeps one outside the
database and later checks that every chain still contains what it held then.

The document is `{"format", "made_at", "scopes": {scope: {"count", "last_seq", "last_hash"}},
"signature"}`; the signature is HMAC-SHA256 (hex) with HOMEWARD_CHECKPOINT_KEY over the canonical
JSON of everything but itself. Whoever holds the key can make a checkpoint, so the key belongs
with the auditors; the server needs it only to make them.
"""

import hmac
from dataclasses import replace
from hashlib import sha256
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlmodel import Session

from app.audit.chain import Tail, Verification, canonical_json, timestamp
from app.audit.models import AuditEvent
from app.audit.service import verify_chain
from app.clock import utcnow

FORMAT = "homeward.audit.checkpoint.v1"


class CheckpointError(ValueError):
    """The checkpoint cannot be made or read (no key, not a checkpoint, a bad signature)."""


class _Head(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int = Field(ge=1)
    last_seq: int = Field(ge=1)
    last_hash: str = Field(pattern=r"^[0-9a-f]{64}$")


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str
    made_at: str
    scopes: dict[str, _Head]
    signature: str


def _signature(body: dict[str, Any], key: str) -> str:
    return hmac.new(key.encode(), canonical_json(body).encode(), sha256).hexdigest()


def _key(key: str) -> str:
    if len(key) < 16:
        raise CheckpointError(
            "Set HOMEWARD_CHECKPOINT_KEY (at least 16 characters) to make or check checkpoints."
        )
    return key


def make(session: Session, key: str) -> tuple[Verification, dict[str, Any] | None]:
    """Verify the chains and their heads; if they hold, the signed checkpoint of their ends."""
    key = _key(key)
    result = verify_chain(session)
    if not result.ok:
        return result, None
    body = {
        "format": FORMAT,
        "made_at": timestamp(utcnow()),
        "scopes": {
            scope: {"count": t.count, "last_seq": t.last_seq, "last_hash": t.last_hash}
            for scope, t in sorted(result.tails.items())
        },
    }
    return result, body | {"signature": _signature(body, key)}


def check(session: Session, document: Any, key: str) -> Verification:
    """Verify the chains, then that each still contains the checkpoint's prefix: at least as
    many events, and the event at its last seq is the one it names (so, by the chain, every
    event before it too). Raises CheckpointError for a file that is not a valid, signed
    checkpoint."""
    key = _key(key)
    try:
        parsed = _Document.model_validate(document)
    except ValidationError as exc:
        raise CheckpointError(
            f"Not a Homeward audit checkpoint: {exc.errors()[0]['msg']}."
        ) from exc
    body = parsed.model_dump(exclude={"signature"})
    if parsed.format != FORMAT or not hmac.compare_digest(parsed.signature, _signature(body, key)):
        raise CheckpointError(
            "The checkpoint's signature does not hold: the file was changed, or signed with "
            "another key."
        )
    result = verify_chain(session)
    if not result.ok:
        return result
    for scope, head in sorted(parsed.scopes.items()):
        detail = _lost(session, scope, Tail(head.count, head.last_seq, head.last_hash), result)
        if detail is not None:
            return replace(result, ok=False, bad_scope=scope, detail=detail)
    return result


def _lost(session: Session, scope: str, kept: Tail, result: Verification) -> str | None:
    """Why the chain of `scope` no longer holds the checkpointed prefix `kept`, or None."""
    tail = result.tails.get(scope)
    if tail is None or tail.count < kept.count:
        return (
            f"Chain {scope} has {tail.count if tail else 0} events; the checkpoint holds "
            f"{kept.count}, ending at seq {kept.last_seq}: events were removed."
        )
    found = session.execute(
        select(AuditEvent.scope, AuditEvent.hash).where(AuditEvent.seq == kept.last_seq)
    ).first()
    if found is None or tuple(found) != (scope, kept.last_hash):
        return (
            f"Chain {scope} no longer holds the event seq {kept.last_seq} its checkpoint names: "
            "the trail was rewritten since."
        )
    return None

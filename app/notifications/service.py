"""Outbound notifications to the clinic's systems (issue 6 §7): webhooks written to an outbox in
the transaction of the event they announce, then delivered by a worker, HMAC-signed, retried with
exponential back-off, every attempt logged.

Delivery never holds a transaction open during the HTTP call (app/notifications/outbox.py): a
worker first claims due deliveries (a lease: their next attempt is pushed past the call's timeout,
`SKIP LOCKED` on PostgreSQL), commits, posts, then records the outcome in a second transaction.
"""

import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlmodel import Session, col

from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.audit.chain import canonical_json
from app.clock import utcnow
from app.config import Settings
from app.db import SessionFactory, unit_of_work
from app.notifications import outbox
from app.notifications.models import WebhookAttempt, WebhookDelivery
from app.notifications.outbox import Retry, claim

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
TIMEOUT_S = 5.0
LEASE = timedelta(seconds=60)
SIGNATURE_HEADER = "X-Homeward-Signature"


def sign(secret: str, body: str) -> str:
    """`sha256=<hex>` of the body under the shared secret, as the receiver recomputes it."""
    digest = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def enqueue(
    session: Session,
    settings: Settings,
    *,
    event: str,
    payload: dict[str, Any],
    coi: str | None,
    batch_id: int | None,
) -> list[WebhookDelivery]:
    """One delivery per configured URL, in the current transaction (no event, no delivery)."""
    if not settings.webhook_urls:
        return []
    body = canonical_json({"event": event, "sent_for": utcnow(), **payload}) or "{}"
    deliveries = [
        WebhookDelivery(
            event=event,
            url=url,
            body=body,
            signature=sign(settings.webhook_secret, body),
            status=PENDING,
        )
        for url in settings.webhook_urls
    ]
    session.add_all(deliveries)
    session.flush()
    audit.record(
        session,
        actor="system",
        action=AuditAction.WEBHOOK_QUEUED,
        entity_type=EntityType.BATCH,
        entity_id=batch_id,
        coi=coi,
        new={"event": event, "deliveries": [d.id for d in deliveries]},
    )
    return deliveries


def _post(client: httpx.Client, delivery: WebhookDelivery) -> tuple[int | None, str | None]:
    try:
        response = client.post(
            delivery.url,
            content=delivery.body.encode(),
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: delivery.signature,
                "X-Homeward-Event": delivery.event,
                "X-Homeward-Delivery": str(delivery.id),
            },
            timeout=TIMEOUT_S,
        )
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]
    return response.status_code, None if response.is_success else f"HTTP {response.status_code}"


def _settle(
    factory: SessionFactory,
    settings: Settings,
    delivery_id: int,
    status_code: int | None,
    error: str | None,
) -> str:
    with unit_of_work(factory) as session:
        delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
        assert delivery is not None
        now = utcnow()
        session.add(
            WebhookAttempt(
                delivery_id=delivery_id, attempted_at=now, status_code=status_code, error=error
            )
        )
        delivery.attempts += 1
        retry = Retry(settings.webhook_max_attempts, settings.webhook_backoff_seconds)
        next_attempt = retry.next_attempt(delivery.attempts, now)
        if error is None:
            delivery.status = DELIVERED
            delivery.delivered_at = now
        elif next_attempt is None:
            delivery.status = FAILED
        else:
            delivery.next_attempt_at = next_attempt
        session.add(delivery)
        return delivery.status


def deliver_due(
    factory: SessionFactory, settings: Settings, *, client: httpx.Client | None = None
) -> dict[str, int]:
    """Attempt every delivery that is due; returns how many ended in each status."""
    outcome = {PENDING: 0, DELIVERED: 0, FAILED: 0}
    own = client is None
    client = client or httpx.Client()
    try:
        due = claim(factory, WebhookDelivery, status=PENDING, limit=50, lease=LEASE)
        for delivery in due:
            status_code, error = _post(client, delivery)
            outcome[_settle(factory, settings, delivery.id or 0, status_code, error)] += 1
    finally:
        if own:
            client.close()
    return outcome


class Worker(outbox.Worker):
    """A daemon thread delivering due webhooks every `webhook_poll_seconds`."""

    def __init__(self, factory: SessionFactory, settings: Settings) -> None:
        self.client = httpx.Client()
        super().__init__(
            "homeward-webhooks",
            factory,
            lambda f: sum(deliver_due(f, settings, client=self.client).values()),
            poll_seconds=settings.webhook_poll_seconds,
            join_seconds=TIMEOUT_S + 1,
        )

    def close(self) -> None:
        super().close()
        self.client.close()


def deliveries(session: Session, limit: int = 200) -> list[dict[str, Any]]:
    """The newest deliveries with their attempts (the delivery log), in two queries."""
    rows = list(
        session.execute(
            select(WebhookDelivery).order_by(col(WebhookDelivery.id).desc()).limit(limit)
        ).scalars()
    )
    attempts: dict[int, list[dict[str, Any]]] = {row.id or 0: [] for row in rows}
    for attempt in session.execute(
        select(WebhookAttempt)
        .where(col(WebhookAttempt.delivery_id).in_(list(attempts)))
        .order_by(col(WebhookAttempt.id))
    ).scalars():
        attempts[attempt.delivery_id].append(
            {
                "attempted_at": attempt.attempted_at,
                "status_code": attempt.status_code,
                "error": attempt.error,
            }
        )
    return [
        {
            "id": row.id,
            "event": row.event,
            "url": row.url,
            "status": row.status,
            "attempts": attempts[row.id or 0],
            "created_at": row.created_at,
            "delivered_at": row.delivered_at,
            "next_attempt_at": row.next_attempt_at if row.status == PENDING else None,
            "body": json.loads(row.body),
        }
        for row in rows
    ]

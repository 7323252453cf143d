"""Outbound notifications (issue 6 §7): a release decision or a late failure writes one webhook
delivery per configured URL in its own transaction; `deliver_due` posts each, HMAC-signed, logs
every attempt, retries with exponential back-off and gives up after the last attempt. The
receiver is a real HTTP server on 127.0.0.1."""

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlmodel import Session

from app.auth.permissions import Role
from app.db import session_factory_for
from app.main import create_app
from app.notifications.models import WebhookAttempt, WebhookDelivery
from app.notifications.service import deliver_due, sign
from tests.helpers import Api, audit_events, error, failing_value, ok

SECRET = "whsec-test-0123456789"

# -- a real receiver -------------------------------------------------------------------------------


class Receiver:
    """An HTTP server on a free local port recording every POST and answering with the next of
    `statuses` (200 once they run out)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.requests.append((self.path, dict(self.headers.items()), body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks/homeward"

    def bodies(self) -> list[bytes]:
        with self.lock:
            return [body for _, _, body in self.requests]


@pytest.fixture
def receiver() -> Iterator[Callable[[list[int]], Receiver]]:
    started: list[Receiver] = []

    def start(statuses: list[int]) -> Receiver:
        found = Receiver(statuses)
        found.thread.start()
        started.append(found)
        return found

    yield start
    for found in started:
        found.server.shutdown()
        found.server.server_close()


def _closed_port_url() -> str:
    """A URL on a local port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks"


@pytest.fixture
def api_with(db, settings, session_factory) -> Callable[..., Api]:
    """An API driver on an app with other settings. Its lifespan is not entered, so no
    background worker shares the test's connection: the tests call `deliver_due` themselves."""

    def make(**changes: Any) -> Api:
        changed = settings.model_copy(update={"webhook_secret": SECRET} | changes)
        return Api(TestClient(create_app(changed, session_factory)), db, changed)

    return make


def _deliveries(db: Session) -> list[WebhookDelivery]:
    db.expire_all()  # written by deliver_due's own sessions
    found = list(db.execute(select(WebhookDelivery).order_by(WebhookDelivery.id)).scalars())
    db.commit()  # hold no transaction (nor SQLite's write lock) while a worker delivers
    return found


def _attempts(db: Session, delivery_id: int) -> list[WebhookAttempt]:
    db.expire_all()
    query = select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id)
    return list(db.execute(query.order_by(WebhookAttempt.id)).scalars())


def _make_due(db: Session) -> None:
    """Move every pending delivery's next attempt into the past (time passing, in the data)."""
    db.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.status == "pending")
        .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    db.commit()


def _verifies(body: bytes, header: str, secret: str = SECRET) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def _fail(api: Api, batch_id: int, test: str) -> None:
    (row,) = [r for r in api.qc(batch_id)["tests"] if r["test"] == test]
    assert ok(api.result(batch_id, test, failing_value(row)), 201)["outcome"] == "fail"


# -- the outbox ------------------------------------------------------------------------------------


def test_rel_a_release_enqueues_one_signed_delivery_per_url(api_with):
    urls = ["https://clinic.example/hooks/a", "https://ehr.example/hooks/b"]
    api = api_with(webhook_urls=urls)
    batch, _ = api.released()

    deliveries = _deliveries(api.db)
    assert [d.url for d in deliveries] == urls
    assert {(d.event, d.status, d.attempts) for d in deliveries} == {
        ("batch.released", "pending", 0)
    }
    assert deliveries[0].body == deliveries[1].body
    body = json.loads(deliveries[0].body)
    assert body["event"] == "batch.released"
    assert body["batch_id"] == batch["id"] and body["batch_number"] == batch["batch_number"]
    assert body["coi"] == batch["coi"] and body["din"] == batch["din"]
    assert (body["decision"], body["status"]) == ("release", "released")
    assert body["pending_tests"] == [] and body["out_of_specification"] is False
    for delivery in deliveries:
        assert delivery.signature == sign(SECRET, delivery.body)
        assert _verifies(delivery.body.encode(), delivery.signature)


def test_aud1_queueing_a_notification_is_audited_in_the_same_transaction(api_with):
    api = api_with(webhook_urls=["https://clinic.example/hooks"])
    batch, _ = api.released("conditional_release", pending=("sterility",))
    (delivery,) = _deliveries(api.db)
    (event,) = audit_events(api.db, "webhook.queued")
    assert event.actor == "system" and event.entity_type == "batch"
    assert event.entity_id == batch["id"] and event.scope == batch["coi"]
    assert json.loads(event.new_values or "{}") == {
        "event": "batch.released",
        "deliveries": [delivery.id],
    }
    body = json.loads(delivery.body)
    assert (body["decision"], body["pending_tests"]) == ("conditional_release", ["sterility"])


def test_rel_without_urls_nothing_is_enqueued(api):
    assert api.settings.webhook_urls == []
    batch, _ = api.released("conditional_release", pending=("sterility",))
    _fail(api, batch["id"], "sterility")  # a late failure: nothing either
    assert _deliveries(api.db) == []
    assert audit_events(api.db, "webhook.queued") == []


def test_rel_a_refused_or_rejected_release_enqueues_nothing(api_with):
    api = api_with(webhook_urls=["https://clinic.example/hooks"])
    untested, _ = api.formulated()
    error(api.decide(untested["id"]), 409, "gate_not_met")  # QC not done: refused
    tested, _ = api.formulated()
    api.pass_qc(tested["id"])
    response = api.decide(tested["id"], password="not-the-password")
    assert response.status_code == 401, response.text
    assert _deliveries(api.db) == []
    assert ok(api.decide(tested["id"], "reject", comment="Growth stalled"))["status"] == "rejected"
    assert _deliveries(api.db) == []
    assert audit_events(api.db, "webhook.queued") == []


def test_rel_a_late_failure_on_a_conditionally_released_batch_is_notified(api_with):
    api = api_with(webhook_urls=["https://clinic.example/hooks"])
    batch, _ = api.released("conditional_release", pending=("sterility",))
    _fail(api, batch["id"], "sterility")
    released, late = _deliveries(api.db)
    assert released.event == "batch.released" and late.event == "batch.late_failure"
    body = json.loads(late.body)
    assert body["event"] == "batch.late_failure"
    assert body["batch_number"] == batch["batch_number"] and body["coi"] == batch["coi"]
    assert (body["status"], body["test"]) == ("on_hold", "sterility")
    assert body["result"] and body["limit"]
    assert late.signature == sign(SECRET, late.body)


def test_rel_a_late_failure_after_a_dose_was_dispatched_is_notified(api_with):
    api = api_with(webhook_urls=["https://clinic.example/hooks"])
    batch, (code, _) = api.released("conditional_release", pending=("mycoplasma",))
    body = {"event": "dispatched", "location": "Courier box 7", "temperature_c": 5.0}
    ok(api.post(Role.TECHNICIAN, f"/vessels/{code}/custody", body), 201)
    assert ok(api.get(Role.QA, f"/batches/{batch['id']}"))["status"] == "issued"
    _fail(api, batch["id"], "mycoplasma")
    assert [d.event for d in _deliveries(api.db)] == ["batch.released", "batch.late_failure"]
    late = json.loads(_deliveries(api.db)[1].body)
    assert (late["status"], late["test"]) == ("on_hold", "mycoplasma")


def test_rel_a_failing_result_before_release_is_not_notified(api_with):
    api = api_with(webhook_urls=["https://clinic.example/hooks"])
    batch, _ = api.formulated()
    _fail(api, batch["id"], "sterility")
    assert _deliveries(api.db) == []


# -- delivery --------------------------------------------------------------------------------------


def test_rel_a_failed_delivery_is_retried_after_its_back_off_then_delivered(
    api_with, receiver, session_factory
):
    hook = receiver([500])
    api = api_with(webhook_urls=[hook.url], webhook_backoff_seconds=5.0)
    batch, _ = api.released()
    (delivery,) = _deliveries(api.db)

    before = datetime.now(UTC)
    assert deliver_due(session_factory, api.settings) == {"pending": 1, "delivered": 0, "failed": 0}
    after = datetime.now(UTC)
    (delivery,) = _deliveries(api.db)
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    delay = timedelta(seconds=5)
    assert before + delay <= delivery.next_attempt_at <= after + delay
    ((path, headers, first_body),) = hook.requests
    assert path == "/hooks/homeward"
    assert first_body == delivery.body.encode()
    assert headers["X-Homeward-Signature"] == delivery.signature
    assert headers["X-Homeward-Event"] == "batch.released"
    assert headers["X-Homeward-Delivery"] == str(delivery.id)
    assert headers["Content-Type"] == "application/json"
    (attempt,) = _attempts(api.db, delivery.id or 0)
    assert (attempt.status_code, attempt.error) == (500, "HTTP 500")

    # Not due yet: nothing is posted.
    assert deliver_due(session_factory, api.settings) == {"pending": 0, "delivered": 0, "failed": 0}
    assert len(hook.requests) == 1

    _make_due(api.db)
    assert deliver_due(session_factory, api.settings) == {"pending": 0, "delivered": 1, "failed": 0}
    (delivery,) = _deliveries(api.db)
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    assert delivery.delivered_at is not None
    assert [(a.status_code, a.error) for a in _attempts(api.db, delivery.id or 0)] == [
        (500, "HTTP 500"),
        (200, None),
    ]
    first, second = hook.bodies()
    assert first == second == delivery.body.encode()
    _, headers, _ = hook.requests[1]
    assert _verifies(second, headers["X-Homeward-Signature"])
    assert not _verifies(second, headers["X-Homeward-Signature"], secret="another secret")
    assert json.loads(second)["batch_number"] == batch["batch_number"]

    # Delivered once and for all.
    _make_due(api.db)
    assert deliver_due(session_factory, api.settings) == {"pending": 0, "delivered": 0, "failed": 0}
    assert len(hook.requests) == 2


def test_rel_the_back_off_doubles_with_each_failed_attempt(api_with, receiver, session_factory):
    hook = receiver([503, 503, 503])
    api = api_with(webhook_urls=[hook.url], webhook_backoff_seconds=10.0, webhook_max_attempts=5)
    api.released()
    for attempts, seconds in ((1, 10), (2, 20), (3, 40)):
        before = datetime.now(UTC)
        deliver_due(session_factory, api.settings)
        after = datetime.now(UTC)
        (delivery,) = _deliveries(api.db)
        assert (delivery.status, delivery.attempts) == ("pending", attempts)
        delay = timedelta(seconds=seconds)
        assert before + delay <= delivery.next_attempt_at <= after + delay
        _make_due(api.db)
    assert len(hook.requests) == 3


def test_rel_an_unreachable_url_fails_after_the_last_attempt(api_with, session_factory):
    url = _closed_port_url()
    api = api_with(webhook_urls=[url], webhook_max_attempts=2, webhook_backoff_seconds=0.001)
    api.released()

    assert deliver_due(session_factory, api.settings) == {"pending": 1, "delivered": 0, "failed": 0}
    time.sleep(0.01)
    assert deliver_due(session_factory, api.settings) == {"pending": 0, "delivered": 0, "failed": 1}
    (delivery,) = _deliveries(api.db)
    assert (delivery.status, delivery.attempts, delivery.delivered_at) == ("failed", 2, None)
    attempts = _attempts(api.db, delivery.id or 0)
    assert [a.status_code for a in attempts] == [None, None]
    assert all(a.error and a.error.startswith("ConnectError") for a in attempts)

    # Failed is final: no further attempt, whatever time it is.
    _make_due(api.db)
    time.sleep(0.01)
    assert deliver_due(session_factory, api.settings) == {"pending": 0, "delivered": 0, "failed": 0}
    assert len(_attempts(api.db, delivery.id or 0)) == 2


def test_rel_each_url_is_delivered_on_its_own(api_with, receiver, session_factory):
    good, bad = receiver([]), receiver([500])
    api = api_with(webhook_urls=[good.url, bad.url], webhook_backoff_seconds=60.0)
    api.released()
    assert deliver_due(session_factory, api.settings) == {"pending": 1, "delivered": 1, "failed": 0}
    delivered, pending = _deliveries(api.db)
    assert (delivered.url, delivered.status) == (good.url, "delivered")
    assert (pending.url, pending.status) == (bad.url, "pending")
    assert good.bodies() == bad.bodies() == [delivered.body.encode()]


# -- the delivery log ------------------------------------------------------------------------------


def test_sec_the_delivery_log_lists_every_attempt_for_qa_and_admin(
    api_with, receiver, session_factory
):
    hook = receiver([500])
    api = api_with(webhook_urls=[hook.url], webhook_backoff_seconds=0.001)
    batch, _ = api.released()
    deliver_due(session_factory, api.settings)
    time.sleep(0.01)
    deliver_due(session_factory, api.settings)

    for role in (Role.QA, Role.ADMIN):
        (logged,) = ok(api.get(role, "/webhooks/deliveries"))
        assert logged["event"] == "batch.released" and logged["url"] == hook.url
        assert logged["status"] == "delivered" and logged["delivered_at"]
        assert logged["next_attempt_at"] is None
        assert [a["status_code"] for a in logged["attempts"]] == [500, 200]
        assert (
            logged["attempts"][0]["error"] == "HTTP 500" and logged["attempts"][1]["error"] is None
        )
        assert logged["body"]["batch_number"] == batch["batch_number"]
    for role in (Role.TECHNICIAN, Role.CLINICIAN):
        error(api.get(role, "/webhooks/deliveries"), 403, "forbidden")


def test_sec_a_pending_delivery_shows_when_it_is_next_tried(api_with, receiver, session_factory):
    hook = receiver([500])
    api = api_with(webhook_urls=[hook.url], webhook_backoff_seconds=30.0)
    api.released()
    deliver_due(session_factory, api.settings)
    (logged,) = ok(api.get(Role.QA, "/webhooks/deliveries"))
    assert logged["status"] == "pending" and logged["delivered_at"] is None
    assert datetime.fromisoformat(logged["next_attempt_at"]) > datetime.now(UTC)
    assert [a["status_code"] for a in logged["attempts"]] == [500]


# -- the background worker -------------------------------------------------------------------------


def test_rel_the_apps_worker_delivers_in_the_background(settings, committed_engine, receiver):
    """With URLs configured the app starts a worker in its lifespan; on a database whose commits
    are real, a release is delivered (after one refused attempt) without anyone asking."""
    hook = receiver([500])
    factory = session_factory_for(committed_engine)
    changed = settings.model_copy(
        update={
            "webhook_urls": [hook.url],
            "webhook_secret": SECRET,
            "webhook_backoff_seconds": 0.05,
            "webhook_poll_seconds": 0.05,
        }
    )
    with TestClient(create_app(changed, factory)) as client, factory() as db:
        api = Api(client, db, changed)
        batch, _ = api.released()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            delivered = [d for d in _deliveries(db) if d.status == "delivered"]
            if delivered:
                break
            time.sleep(0.05)
        (delivery,) = _deliveries(db)
        assert (delivery.status, delivery.attempts) == ("delivered", 2)
    first, second = hook.bodies()
    assert first == second == delivery.body.encode()
    assert json.loads(second)["batch_number"] == batch["batch_number"]
    assert all(
        _verifies(body, headers["X-Homeward-Signature"]) for _, headers, body in hook.requests
    )

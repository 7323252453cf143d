"""AUD-8: QA reviews each period of the audit trail, exceptions first, and signs it reviewed;
unreviewed periods show on the QA queue."""

from datetime import timedelta

import pytest

from app.audit_review import service
from app.auth.permissions import Role
from app.clock import utcnow
from app.release.queue import qa_queue
from tests.helpers import PASSWORD, audit_events, error, make_user, ok
from tests.test_pages import _page_login, submit


@pytest.fixture
def later(monkeypatch):
    """The review's clock a period and a day ahead, so that today's period has ended."""
    moment = utcnow() + timedelta(days=8)
    monkeypatch.setattr(service, "utcnow", lambda: moment)
    return moment


def _period(api) -> dict:
    start, end = service.period_of(api.settings, utcnow())
    return {"period_start": start.isoformat(), "period_end": end.isoformat()}


def _sign(api, period: dict, **extra):
    body = period | {"password": PASSWORD, "comment": "Reviewed; exceptions explained"} | extra
    return api.post(Role.QA, "/audit-reviews", body)


def test_aud8_periods_are_calendar_weeks_by_default(settings):
    start, end = service.period_of(settings, utcnow())
    assert start.weekday() == 0 and (start.hour, start.minute) == (0, 0)
    assert end - start == timedelta(days=7)
    assert start <= utcnow() < end


def test_aud8_a_past_period_is_pending_until_qa_signs_it_reviewed(api, db, later):
    api.patient()
    period = _period(api)
    pending = ok(api.get(Role.QA, "/audit-reviews/pending"))
    (found,) = [
        p for p in pending["periods"] if p["period_start"][:10] == period["period_start"][:10]
    ]
    assert found["events"] >= 1 and pending["period_days"] == 7
    before = pending["pending"]

    review = ok(_sign(api, period), 201)
    assert review["signature"]["meaning"] == "reviewed" and review["signature"]["matches"]
    assert review["events"] >= found["events"]
    after = ok(api.get(Role.QA, "/audit-reviews/pending"))
    assert after["pending"] == before - 1
    assert all(p["period_start"][:10] != period["period_start"][:10] for p in after["periods"])
    (event,) = audit_events(db, "audit.review_signed")
    assert event.reason == "Reviewed; exceptions explained"
    assert ok(api.get(Role.QA, "/audit-reviews"))[0]["id"] == review["id"]


def test_aud8_a_period_not_over_is_refused(api):
    api.patient()
    error(_sign(api, _period(api)), 409, "period_not_over")


def test_aud8_a_review_covers_one_whole_period_once(api, later):
    api.patient()
    period = _period(api)
    shifted = period | {"period_start": period["period_end"]}
    error(_sign(api, shifted), 422, "invalid_request")
    ok(_sign(api, period), 201)
    error(_sign(api, period), 409, "already_reviewed")


def test_aud8_sig1_a_wrong_password_signs_nothing(api, db, later):
    api.patient()
    error(_sign(api, _period(api), password="wrong"), 401, "invalid_credentials")
    assert audit_events(db, "audit.review_signed") == []
    assert audit_events(db, "signature.failed")


def test_aud8_a_period_with_exceptions_needs_a_comment(api, later):
    user = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    assert api.login(user.username, "not-the-password").status_code == 401
    body = _period(api) | {"password": PASSWORD}
    message = error(api.post(Role.QA, "/audit-reviews", body), 422, "invalid_request")
    assert "exception" in message


def test_aud8_the_trail_of_a_period_shows_exceptions_first_filtered_and_paged(api):
    user = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
    batch = api.batch()
    other = api.patient()
    assert api.login(user.username, "not-the-password").status_code == 401
    start, end = service.period_of(api.settings, utcnow())
    window = {"from": start.isoformat(), "to": end.isoformat()}

    page = ok(api.get(Role.QA, "/audit-reviews/events", params=window))
    assert page["total"] > 3 and page["exceptions"] >= 1
    first = page["events"][0]
    assert first["exception"] == "failed sign-in" and first["action"] == "auth.login_failed"
    flags = [e["exception"] is not None for e in page["events"]]
    assert flags == sorted(flags, reverse=True)  # every exception before every ordinary event

    one = ok(api.get(Role.QA, "/audit-reviews/events", params=window | {"limit": 1, "offset": 1}))
    assert len(one["events"]) == 1 and one["total"] == page["total"]
    assert one["events"][0]["seq"] == page["events"][1]["seq"]

    only = ok(
        api.get(Role.QA, "/audit-reviews/events", params=window | {"exceptions_only": "true"})
    )
    assert only["total"] == page["exceptions"]
    assert all(e["exception"] for e in only["events"])

    by_batch = ok(api.get(Role.QA, "/audit-reviews/events", params=window | {"batch": batch["id"]}))
    assert {"batch.registered"} <= {e["action"] for e in by_batch["events"]}
    assert all(e["scope"] == batch["coi"] for e in by_batch["events"])

    by_patient = ok(
        api.get(Role.QA, "/audit-reviews/events", params=window | {"patient": other["id"]})
    )
    assert [e["action"] for e in by_patient["events"]] == ["patient.registered"]

    by_action = ok(api.get(Role.QA, "/audit-reviews/events", params=window | {"action": "batch"}))
    assert by_action["total"] >= 1
    assert all(e["action"].startswith("batch.") for e in by_action["events"])

    by_user = ok(api.get(Role.QA, "/audit-reviews/events", params=window | {"user": user.username}))
    assert {e["actor"] for e in by_user["events"]} == {user.username}


def test_aud8_reading_the_trail_is_bounded(api):
    start = utcnow()
    window = {"from": start.isoformat(), "to": (start + timedelta(days=400)).isoformat()}
    error(api.get(Role.QA, "/audit-reviews/events", params=window), 422, "invalid_request")
    window["to"] = (start + timedelta(days=1)).isoformat()
    error(
        api.get(Role.QA, "/audit-reviews/events", params=window | {"limit": 501}),
        422,
        "invalid_request",
    )
    error(api.get(Role.TECHNICIAN, "/audit-reviews/events", params=window), 403, "forbidden")


def test_aud8_unreviewed_periods_show_on_the_qa_queue(api, db, settings, later):
    api.patient()
    assert qa_queue(db, settings).audit_reviews.pending >= 1
    _page_login(api, Role.QA)
    queue = api.client.get("/qa")
    assert queue.status_code == 200 and "not reviewed" in queue.text
    page = api.client.get("/qa/audit-review")
    assert page.status_code == 200 and "patient.registered" in page.text
    period = _period(api)
    signed = submit(
        api,
        "/qa/audit-review",
        data=period | {"password": PASSWORD, "comment": "Looked at every event"},
        follow_redirects=False,
    )
    assert signed.status_code == 303, signed.text
    assert all(
        p.period_start.isoformat()[:10] != period["period_start"][:10]
        for p in qa_queue(db, settings).audit_reviews.periods
    )

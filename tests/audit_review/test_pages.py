"""The audit-trail review page (AUD-8): a refusal names the period's instants as every page
names a time — local, zone named — while the API's sentence keeps UTC (issue 12, lab day)."""

from app.audit_review import service
from app.auth.permissions import Role
from app.clock import local_text, utcnow
from tests.helpers import PASSWORD, error
from tests.test_pages import _page_login, submit


def test_aud8_a_period_not_over_is_refused_on_the_page_in_local_time(api):
    api.patient()
    start, end = service.period_of(api.settings, utcnow())
    period = {"period_start": start.isoformat(), "period_end": end.isoformat()}
    _page_login(api, Role.QA)
    page = submit(api, "/qa/audit-review", data=period | {"password": PASSWORD})
    assert page.status_code == 409
    local = local_text(end, api.settings.display_timezone)
    assert f"The period ending {local} has not ended yet." in page.text
    assert "UTC" not in page.text.split('role="alert"', 1)[1].split("</div>", 1)[0]
    told = error(api.post(Role.QA, "/audit-reviews", period | {"password": PASSWORD}), 409,
                 "period_not_over")  # fmt: skip
    assert told == f"The period ending {end:%Y-%m-%d %H:%M} UTC has not ended yet."

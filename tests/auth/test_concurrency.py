"""SEC-4 under concurrency: wrong passwords for one account sent at the same moment all count
(atomic increment), the account is locked once, every refusal is audited and counted against its
source. Real commits on a database of their own, through the HTTP API, on both backends."""

import threading

from sqlalchemy import func, select

from app.audit.actions import AuditAction
from app.audit.models import AuditEvent
from app.audit.service import verify_chain
from app.auth.models import SignInFailure, User
from app.auth.permissions import Role
from tests.helpers import make_user
from tests.races import committed_api

CONTENDERS = 8


def test_sec4_concurrent_wrong_passwords_all_count_and_lock_once(committed_engine, settings):
    threshold = settings.lockout_threshold
    assert threshold < CONTENDERS
    with committed_api(committed_engine, settings) as (api, factory):
        user = make_user(api.db, api.settings, roles=[Role.TECHNICIAN])
        start = threading.Barrier(CONTENDERS)
        answers: list[object] = []

        def guess() -> None:
            start.wait()
            try:
                answers.append(api.login(user.username, "not-the-password-42"))
            except BaseException as exc:  # an unexpected error fails the test
                answers.append(exc)

        threads = [threading.Thread(target=guess) for _ in range(CONTENDERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

    codes = [getattr(answer, "status_code", answer) for answer in answers]
    assert len(codes) == CONTENDERS and set(codes) <= {401, 503}, codes
    errors = [answer.json()["error"] for answer in answers if answer.status_code == 401]
    wrong = errors.count("invalid_credentials")
    assert set(errors) <= {"invalid_credentials", "account_locked"}, errors
    with factory() as session:
        fresh = session.get(User, user.id)
        assert fresh is not None
        # Every wrong password answered as such was counted; the lock came once, at the threshold.
        assert fresh.failed_logins == wrong >= threshold, (fresh.failed_logins, errors)
        assert fresh.locked and fresh.locked_until is not None

        def count(action: AuditAction) -> int:
            query = select(func.count()).select_from(AuditEvent)
            return session.execute(query.where(AuditEvent.action == action.value)).scalar_one()

        assert count(AuditAction.USER_LOCKED) == 1
        assert count(AuditAction.LOGIN_FAILED) == len(errors)
        failures = session.execute(select(func.count()).select_from(SignInFailure)).scalar_one()
        assert failures == len(errors)
        assert verify_chain(session).ok

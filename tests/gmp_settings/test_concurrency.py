"""REL / QC-3: two approvals of GMP settings at once leave one version of the group in force and
a 409 for the other, never a 500 or two versions in force. Real commits on a database of its
own."""

import pytest
from sqlalchemy import select

from app.audit.service import verify_chain
from app.auth.permissions import Role
from app.db import session_factory_for, unit_of_work
from app.gmp_settings import service as gmp_settings
from app.gmp_settings.groups import Group
from app.gmp_settings.models import GmpSetting
from app.gmp_settings.schemas import GmpSettingApprove, GmpSettingPropose
from tests.helpers import PASSWORD, make_user, one_winner, race
from tests.races import Contender, committed_api, wait_for_lock_waiters

APPROVAL = GmpSettingApprove(password=PASSWORD, reason="Approved (race)")


def _drafts(factory, settings, count: int) -> list[int]:
    """`count` drafts of the culture limits committed for real by one QA author."""
    with unit_of_work(factory) as session:
        author = make_user(session, settings, roles=[Role.QA])
        return [
            gmp_settings.propose(
                session,
                actor=author,
                data=GmpSettingPropose(
                    group=Group.CULTURE_LIMITS, values={"passage_soft": n}, reason="race"
                ),
            ).id
            or 0
            for n in range(1, count + 1)
        ]


def _approved(factory) -> list[int]:
    with factory() as session:
        return list(
            session.execute(
                select(GmpSetting.id).where(
                    GmpSetting.group_name == Group.CULTURE_LIMITS.value,
                    GmpSetting.status == "approved",
                )
            ).scalars()
        )


@pytest.mark.parametrize("drafts", [1, 2], ids=["same_draft", "two_drafts"])
def test_rel_qc3_two_simultaneous_approvals_leave_one_version_in_force(
    committed_engine, settings, drafts
):
    """Two QA users approve (one draft, or two drafts of one group) at the same moment."""
    factory = session_factory_for(committed_engine)
    ids = _drafts(factory, settings, drafts)
    with unit_of_work(factory) as session:
        approvers = [make_user(session, settings, roles=[Role.QA]) for _ in range(2)]
    targets = iter(zip(approvers, [ids[0], ids[-1]], strict=True))

    def approve(session):
        actor, setting_id = next(targets)
        return gmp_settings.approve(
            session, settings, actor=actor, setting_id=setting_id, data=APPROVAL
        )

    outcomes = race(factory, approve)
    if drafts == 1:
        one_winner(outcomes, {"not_draft", "conflict"})
    else:  # one after the other is also a correct outcome: the second supersedes the first
        assert all(
            not isinstance(o, BaseException) or getattr(o, "status", 0) == 409 for o in outcomes
        )
    assert len(_approved(factory)) == 1
    with factory() as session:
        assert verify_chain(session).ok


@pytest.mark.postgres_only
@pytest.mark.parametrize("drafts", [1, 2], ids=["same_draft", "two_drafts"])
def test_rel_qc3_an_approval_waiting_for_another_is_refused_once_that_one_commits(
    committed_engine, settings, drafts
):
    """The interleaving provoked: QA 1's approval holds the version in force, uncommitted; QA 2's
    approval is seen waiting for it; QA 1 commits; QA 2 is refused with a 409."""
    with committed_api(committed_engine, settings) as (api, factory):
        ids = _drafts(factory, settings, drafts)
        first = make_user(api.db, settings, roles=[Role.QA])
        second = api.headers_for(make_user(api.db, settings, roles=[Role.QA]))
        api.db.commit()
        with unit_of_work(factory) as session:
            gmp_settings.approve(session, settings, actor=first, setting_id=ids[0], data=APPROVAL)
            late = Contender(
                lambda: api.client.post(
                    f"/api/v1/gmp-settings/{ids[-1]}/approve",
                    headers=second,
                    json=APPROVAL.model_dump(),
                )
            )
            wait_for_lock_waiters(committed_engine, 1)
        refused = late.response()
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"] in {"not_draft", "conflict"}
    assert _approved(factory) == [ids[0]]
    with factory() as session:
        assert verify_chain(session).ok

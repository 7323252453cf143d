"""REL-7 under concurrency: dispatch checks the OOS supply record with the batch locked, and
recording it locks the batch first (ADR 0011), so a record and a dispatch at once serialize: the
dispatch that waited sees the record committed meanwhile. Real commits, PostgreSQL."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from app.audit.service import verify_chain
from app.auth.permissions import Role
from app.db import unit_of_work
from app.oos_supply import service
from app.oos_supply.schemas import NotificationCreate, Recipient
from app.storage.models import CustodyEvent
from tests.helpers import error, make_user, ok
from tests.oos_supply.support import DISPATCH, justify, notify
from tests.races import Contender, committed_api, headers_of_new, wait_for_lock_waiters
from tests.release.support import oos_ready


def _authority() -> NotificationCreate:
    return NotificationCreate(
        recipient=Recipient.AUTHORITY,
        party="FAMHP",
        notified_at=datetime.now(UTC),
        reference="AUTH-77",
    )


@pytest.mark.postgres_only
def test_rel7_a_dispatch_waiting_for_the_last_notification_sees_it(committed_engine, settings):
    with committed_api(committed_engine, settings) as (api, factory):
        batch, codes = oos_ready(api)
        ok(api.decide(batch["id"]))
        ok(justify(api, batch["id"]), 201)
        ok(notify(api, batch["id"], "sponsor"), 201)
        qa = make_user(api.db, settings, roles=[Role.QA])
        technician = headers_of_new(api, Role.TECHNICIAN)
        with unit_of_work(factory) as holder:
            service.record_notification(holder, actor=qa, batch_id=batch["id"], data=_authority())
            dispatch = Contender(
                lambda: api.client.post(
                    f"/api/v1/vessels/{codes[0]}/custody", headers=technician, json=DISPATCH
                )
            )
            wait_for_lock_waiters(committed_engine, 1)
        assert dispatch.response().status_code == 201, dispatch.response().text

    with factory() as session:
        assert service.supply_record(session, batch["id"]).missing == []
        assert verify_chain(session).ok


@pytest.mark.postgres_only
def test_rel7_a_dispatch_without_the_record_is_refused_while_a_record_rolls_back(
    committed_engine, settings
):
    with committed_api(committed_engine, settings) as (api, factory):
        batch, codes = oos_ready(api)
        ok(api.decide(batch["id"]))
        ok(justify(api, batch["id"]), 201)
        ok(notify(api, batch["id"], "sponsor"), 201)
        qa = make_user(api.db, settings, roles=[Role.QA])
        technician = headers_of_new(api, Role.TECHNICIAN)
        with pytest.raises(RuntimeError), unit_of_work(factory) as holder:
            service.record_notification(holder, actor=qa, batch_id=batch["id"], data=_authority())
            dispatch = Contender(
                lambda: api.client.post(
                    f"/api/v1/vessels/{codes[0]}/custody", headers=technician, json=DISPATCH
                )
            )
            wait_for_lock_waiters(committed_engine, 1)
            raise RuntimeError("the notification is withdrawn: its transaction rolls back")
        error(dispatch.response(), 409, "oos_supply_not_recorded")

    with factory() as session:
        assert session.execute(select(func.count()).select_from(CustodyEvent)).scalar_one() == 0
        assert verify_chain(session).ok

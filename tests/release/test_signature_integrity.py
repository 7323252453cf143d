"""A changed signed record blocks (SIG-6): once a dose's release signature no longer matches, the
dose is not dispatched, verified at the bedside, infused or labelled (409 `signature_mismatch`,
nothing changed), and QA gets one alert on the batch however many uses are refused."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.audit.actions import AuditAction
from app.auth.permissions import Role
from app.qc.models import QcResult
from app.vessels.models import Vessel
from tests.clinic.test_bedside import (
    check,
    clinician,
    custody,
    infuse,
    patient,
    ready,
    snapshot,
    to_clinic,
    verify,
)
from tests.helpers import audit_events, drop_append_only, error, ok
from tests.races import committed_api
from tests.release.support import new_values

MISMATCH = "signature_mismatch"


def forge_expiry(api, code: str, months: int = 6) -> None:
    """The expiry moved later directly in the database, as in the finding."""
    dose = api.db.execute(select(Vessel).where(Vessel.code == code)).scalar_one()
    assert dose.expires_at is not None
    later = dose.expires_at + timedelta(days=30 * months)
    api.db.execute(update(Vessel).where(Vessel.code == code).values(expires_at=later))
    api.db.commit()


def mismatch_alerts(api, batch_id: int) -> list[dict]:
    shown = ok(api.get(Role.QA, f"/batches/{batch_id}"))
    return [a for a in shown["alerts"] if a["kind"] == MISMATCH]


def test_sig6_a_dose_whose_release_signature_no_longer_matches_is_not_used(api):
    """Finding 4: with a dose's expiry moved 6 months later in the database the release showed
    `matches: false`, yet the dose was dispatched, passed the bedside check and its label printed
    the forged expiry."""
    batch, codes, who = ready(api, doses=3)  # codes[0] is at the clinic
    forge_expiry(api, codes[1])
    (decision,) = ok(api.get(Role.QA, f"/batches/{batch['id']}/releases"))
    assert decision["signature"]["matches"] is False
    witness, _ = clinician(api)
    before = snapshot(api, batch["id"])
    refusals = [
        custody(api, codes[2], "dispatched"),
        verify(api, check(who, codes[0])),
        infuse(api, check(who, codes[0]), witness),
        api.print_label(codes[1], format="zpl", reason="bag label damaged"),
        api.post(
            Role.TECHNICIAN,
            f"/batches/{batch['id']}/labels/print",
            {"format": "pdf", "reason": "sheet lost"},
        ),
    ]
    for response in refusals:
        detail = error(response, 409, MISMATCH)
        assert batch["batch_number"] in detail and "QA" in detail
    after = snapshot(api, batch["id"])
    # Nothing changed but the trace of the refusals: two bedside refusals and one alert.
    assert after | {"audit": 0} == before | {"audit": 0}
    assert after["audit"] == before["audit"] + 3
    # One alert for QA, kept after the rollbacks, not one per refused use.
    (alert,) = mismatch_alerts(api, batch["id"])
    assert "no longer matches" in alert["message"]
    raised = [
        e
        for e in audit_events(api.db, AuditAction.BATCH_ALERT_RAISED)
        if e.entity_id == batch["id"]
    ]
    assert [new_values(e)["kind"] for e in raised] == [MISMATCH]
    # The bedside refusals are audited with their code, as every bedside refusal is.
    refused = [
        new_values(e)["refused"]
        for e in audit_events(api.db, AuditAction.BEDSIDE_REFUSED)
        if new_values(e).get("dose_code") == codes[0]
    ]
    assert refused == [MISMATCH, MISMATCH]


def test_sig6_a_result_changed_under_the_release_blocks_every_dose(api, db):
    batch, codes, who = ready(api)
    ok(verify(api, check(who, codes[0])))
    drop_append_only(db, "qc_result")
    db.execute(
        update(QcResult)
        .where(QcResult.batch_id == batch["id"], QcResult.test == "endotoxin")
        .values(value_number=0.01)
    )
    db.commit()
    error(verify(api, check(who, codes[0])), 409, MISMATCH)
    error(custody(api, codes[1], "dispatched"), 409, MISMATCH)
    assert len(mismatch_alerts(api, batch["id"])) == 1


def test_sig6_an_intact_release_is_used_as_before(api):
    batch, codes, who = ready(api)
    ok(verify(api, check(who, codes[0])))
    label = api.get(Role.TECHNICIAN, f"/vessels/{codes[1]}/label", params={"format": "zpl"})
    assert label.status_code == 200 and label.text.startswith("^XA")
    to_clinic(api, codes[1])
    assert patient(api, batch)["mrn"] == who["mrn"]
    assert mismatch_alerts(api, batch["id"]) == []


@pytest.mark.postgres_only
def test_sig6_concurrent_refused_uses_raise_one_alert(committed_engine, settings):
    """Two refusals at once: each aftermath locks the batch before looking for the alert, so
    the second sees the first's and adds none."""
    with committed_api(committed_engine, settings) as (api, _):
        batch, codes, _ = ready(api, doses=3)
        forge_expiry(api, codes[1])
        headers = api.as_role(Role.TECHNICIAN)
        start = threading.Barrier(2)
        outcomes: list[tuple[int, str]] = []

        def attempt() -> None:
            start.wait()
            response = api.client.post(
                f"/api/v1/vessels/{codes[2]}/custody",
                json={"event": "dispatched", "location": "Courier", "temperature_c": 4.5},
                headers=headers,
            )
            outcomes.append((response.status_code, response.json()["error"]))

        threads = [threading.Thread(target=attempt) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert outcomes == [(409, MISMATCH), (409, MISMATCH)]
        assert len(mismatch_alerts(api, batch["id"])) == 1

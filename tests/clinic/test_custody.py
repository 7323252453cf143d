"""Dose custody with temperatures (CLN-3, issue 6 §3): dispatch by the lab and receipt at the
clinic record a temperature; a fresh dose outside 2 to 8 °C is audited and opens a temperature
deviation that holds its batch; the custody report checks every temperature."""

import json
from typing import Any

import pytest

from app.auth.permissions import Role
from app.gmp_settings.groups import Group
from app.identity.codes import DIN, VesselCode
from tests.helpers import Api, approve_gmp_settings, audit_events, error, ok

COURIER, WARD = "Courier box 7", "Ward 3 fridge"


def _custody(api: Api, code: str, event: str, temperature: float | None = None, **extra: Any):
    role = Role.TECHNICIAN if event in ("dispatched", "moved") else Role.CLINICIAN
    body = {"event": event, "location": COURIER if event == "dispatched" else WARD} | extra
    if temperature is not None:
        body["temperature_c"] = temperature
    return api.post(role, f"/vessels/{code}/custody", body)


def _report(api: Api, code: str, role: Role = Role.CLINICIAN) -> dict[str, Any]:
    return ok(api.get(role, f"/vessels/{code}/custody-report"))


def _deviations(api: Api, batch_id: int) -> list[dict[str, Any]]:
    return ok(api.get(Role.QA, f"/batches/{batch_id}/deviations"))


def _status(api: Api, batch_id: int) -> str:
    return ok(api.get(Role.QA, f"/batches/{batch_id}"))["status"]


def _excursions(api: Api) -> list[dict[str, Any]]:
    return [
        json.loads(e.new_values or "{}")
        for e in audit_events(api.db, "vessel.temperature_excursion")
    ]


# -- in range --------------------------------------------------------------------------------------


def test_cln3_an_in_range_dispatch_and_receipt_open_nothing_and_report_in_range(api):
    batch, (code, other) = api.released()
    ok(_custody(api, code, "dispatched", 4.0), 201)
    ok(_custody(api, code, "received", 6.5), 201)
    # The limits themselves are in range.
    ok(_custody(api, other, "dispatched", 2.0), 201)
    ok(_custody(api, other, "received", 8.0), 201)

    assert _deviations(api, batch["id"]) == []
    assert _status(api, batch["id"]) == "issued"
    assert _excursions(api) == []

    report = _report(api, code)
    assert report["vessel"] == code and report["batch_number"] == batch["batch_number"]
    assert report["coi"] == batch["coi"] and report["din"] == batch["din"]
    assert report["excursions"] == 0
    assert [
        (e["event"], e["from_location"], e["to_location"], e["temperature_c"], e["storage_type"])
        for e in report["events"]
    ] == [("dispatched", None, COURIER, 4.0, "fresh"), ("received", COURIER, WARD, 6.5, "fresh")]
    assert all(e["in_range"] is True and e["vessel_code"] == code for e in report["events"])
    assert all(e["recorded_by"] and e["occurred_at"] for e in report["events"])
    assert [e["in_range"] for e in _report(api, other)["events"]] == [True, True]


def test_cln3_a_vessel_that_is_not_a_dose_has_no_range_to_check(api):
    batch, (code, _) = api.formulated()
    sample = ok(api.step(batch["id"], "qc_sampling", [code], ["qc_sample"]), 201)
    tube = sample["outputs"][0]["code"]
    ok(_custody(api, tube, "moved", location="QC lab bench"), 201)
    report = _report(api, tube, Role.TECHNICIAN)
    (event,) = report["events"]
    assert (event["storage_type"], event["in_range"], event["temperature_c"]) == (None, None, None)
    assert report["excursions"] == 0 and _deviations(api, batch["id"]) == []


# -- out of range ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "temperature"),
    [("dispatched", 1.5), ("dispatched", 8.5), ("received", 1.5), ("received", 8.5)],
)
def test_cln3_a_fresh_dose_outside_two_to_eight_degrees_opens_a_deviation_and_holds_the_batch(
    api, event, temperature
):
    batch, (code, _) = api.released()
    if event == "received":
        ok(_custody(api, code, "dispatched", 5.0), 201)
    recorded = ok(_custody(api, code, event, temperature), 201)
    assert recorded["temperature_c"] == temperature  # the event itself is kept

    (deviation,) = _deviations(api, batch["id"])
    assert deviation["kind"] == "temperature" and deviation["status"] != "closed"
    assert f"{code} {event} at {temperature:g} °C" in deviation["description"]
    assert "2 to 8 °C" in deviation["description"]
    assert _status(api, batch["id"]) == "on_hold"

    (excursion,) = _excursions(api)
    assert excursion["temperature_c"] == temperature and excursion["limits"] == [2.0, 8.0]
    assert excursion["custody_event_id"] == recorded["id"]

    report = _report(api, code, Role.QA)
    assert report["excursions"] == 1
    assert [e["in_range"] for e in report["events"]] == (
        [False] if event == "dispatched" else [True, False]
    )

    (row,) = [
        r for r in ok(api.get(Role.CLINICIAN, "/clinic/readiness")) if r["batch_id"] == batch["id"]
    ]
    assert row["ready"] is False
    assert row["reason"] == f"on hold: deviation(s) {deviation['number']} open"


def test_cln3_qc3_the_acceptable_range_comes_from_the_approved_gmp_settings(api):
    approve_gmp_settings(
        api.db, api.settings, Group.TRANSPORT_TEMPERATURES, fresh_min_c=4.0, fresh_max_c=6.0
    )
    batch, (code, other) = api.released()
    ok(_custody(api, code, "dispatched", 5.0), 201)
    assert _deviations(api, batch["id"]) == []
    ok(_custody(api, other, "dispatched", 7.0), 201)  # inside 2 to 8 °C, outside 4 to 6 °C
    (deviation,) = _deviations(api, batch["id"])
    assert "4 to 6 °C" in deviation["description"]
    assert _report(api, other)["events"][0]["in_range"] is False
    assert _report(api, code)["events"][0]["in_range"] is True


def test_cln3_every_excursion_is_counted_in_the_report(api):
    batch, (code, _) = api.released()
    ok(_custody(api, code, "dispatched", 9.0), 201)
    ok(_custody(api, code, "received", 0.5), 201)
    report = _report(api, code)
    assert report["excursions"] == 2
    assert [e["in_range"] for e in report["events"]] == [False, False]
    assert len(_excursions(api)) == 2
    assert len(_deviations(api, batch["id"])) == 2


# -- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize("event", ["dispatched", "received"])
def test_cln3_a_doses_dispatch_or_receipt_without_a_temperature_is_refused(api, event):
    batch, (code, _) = api.released()
    if event == "received":
        ok(_custody(api, code, "dispatched", 5.0), 201)
    before = len(_report(api, code)["events"])
    detail = error(_custody(api, code, event), 422, "invalid_request")
    assert "temperature" in detail
    assert len(_report(api, code)["events"]) == before
    assert _deviations(api, batch["id"]) == []


def test_cln3_only_doses_of_a_released_batch_are_dispatched(api):
    batch, (code, _) = api.formulated()
    error(_custody(api, code, "dispatched", 5.0), 409, "not_released")
    assert _report(api, code)["events"] == []
    assert _status(api, batch["id"]) == "quarantine"


def test_cln3_the_lab_dispatches_and_the_clinic_receives(api):
    _, (code, _) = api.released()
    body = {"event": "dispatched", "location": COURIER, "temperature_c": 5.0}
    error(api.post(Role.CLINICIAN, f"/vessels/{code}/custody", body), 403, "forbidden")
    ok(api.post(Role.TECHNICIAN, f"/vessels/{code}/custody", body), 201)
    body = {"event": "received", "location": WARD, "temperature_c": 5.0}
    error(api.post(Role.TECHNICIAN, f"/vessels/{code}/custody", body), 403, "forbidden")
    ok(api.post(Role.CLINICIAN, f"/vessels/{code}/custody", body), 201)


def test_cln3_the_custody_report_of_an_unknown_vessel_is_not_found(api):
    batch, (code, _) = api.formulated()
    # A well-formed code (right check character) of a vessel that does not exist.
    unknown = VesselCode.build(DIN(batch["din"]), 9999).value
    error(api.get(Role.CLINICIAN, f"/vessels/{unknown}/custody-report"), 404, "not_found")
    assert code != unknown

"""The clinic's readiness board (CLN-1, issue 6 §1): one row per patient in treatment, their newest
biopsy, where the cells are, QC progress, release, doses and plan, and `ready` exactly when a dose
can be infused now (with the reason when not) — nearest an infusion first, paged, in a fixed
number of SQL statements however many patients and batches exist (DESIGN §12, ADR 0013)."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from app import demo, lifecycle
from app.auth.permissions import Role
from app.clinic import board
from tests.helpers import PASSWORD, Api, error, failing_value, iso, make_user, ok, statements
from tests.oos_supply.support import record_oos_supply
from tests.test_pages import _page_login

# -- helpers ---------------------------------------------------------------------------------------


def _board(api: Api, role: Role = Role.CLINICIAN, query: str = "") -> dict[int, dict[str, Any]]:
    """The board's rows by patient id (each patient exactly once)."""
    rows = ok(api.get(role, f"/clinic/readiness{query}"))
    by_patient = {row["patient_id"]: row for row in rows}
    assert len(by_patient) == len(rows), rows
    return by_patient


def _custody(api: Api, code: str, event_kind: str, temperature: float = 5.0) -> dict[str, Any]:
    """Dispatch (the lab) or receipt (the clinic) of a dose, in range by default."""
    role = Role.TECHNICIAN if event_kind == "dispatched" else Role.CLINICIAN
    place = "Courier box 7" if event_kind == "dispatched" else "Ward 3 fridge"
    body = {"event": event_kind, "location": place, "temperature_c": temperature}
    return ok(api.post(role, f"/vessels/{code}/custody", body), 201)


def _at_clinic(api: Api, code: str) -> None:
    _custody(api, code, "dispatched")
    _custody(api, code, "received")


def _infuse(api: Api, patient_id: int, code: str) -> dict[str, Any]:
    """The two-person infusion record, witnessed by a second clinician."""
    patient = ok(api.get(Role.CLINICIAN, f"/patients/{patient_id}"))
    witness = make_user(api.db, api.settings, roles=[Role.CLINICIAN])
    body = {
        "wristband_mrn": patient["mrn"],
        "birth_date": patient["birth_date"],
        "dose_code": code,
        "administered_at": iso(datetime.now(UTC)),
        "witness_username": witness.username,
        "witness_password": PASSWORD,
    }
    return ok(api.post(Role.CLINICIAN, "/infusions", body), 201)


def _tests(api: Api, batch_id: int) -> list[dict[str, Any]]:
    return api.qc(batch_id)["tests"]


def _fail(api: Api, batch_id: int, test: str) -> None:
    (row,) = [r for r in _tests(api, batch_id) if r["test"] == test]
    result = ok(api.result(batch_id, test, failing_value(row)), 201)
    assert result["outcome"] == "fail", result


def _close_deviations(api: Api, batch_id: int) -> None:
    for deviation in ok(api.get(Role.QA, f"/batches/{batch_id}/deviations")):
        if deviation["status"] != "closed":
            body = {
                "password": PASSWORD,
                "investigation": "Investigated by QA",
                "root_cause": "Identified",
                "capa": "Retraining",
            }
            ok(api.post(Role.QA, f"/deviations/{deviation['id']}/close", body))


def _board_statements(
    api: Api, engine: Engine, query: str = ""
) -> tuple[int, dict[int, dict[str, Any]]]:
    """Statements of one board request (after an identical warm-up request, so that a token
    touch, if due, falls outside the count)."""
    _board(api, query=query)
    with statements(engine) as sent:
        rows = _board(api, query=query)
    return len(sent), rows


def _patient(api: Api, family_name: str) -> int:
    return api.patient(family_name=family_name, given_name="Test")["id"]


def _released(api: Api, patient_id: int) -> tuple[dict[str, Any], list[str]]:
    """A batch of the given patient, formulated, tested and released by QA."""
    batch, codes = api.formulated(patient_id)
    api.pass_qc(batch["id"])
    ok(api.decide(batch["id"]))
    return batch, codes


def _rejected_long_ago(api: Api, monkeypatch: pytest.MonkeyPatch) -> int:
    """A patient whose batch QA rejected a month ago: history, off the board."""
    batch, _ = api.formulated()
    with monkeypatch.context() as then:
        then.setattr(lifecycle, "utcnow", lambda: datetime.now(UTC) - timedelta(days=30))
        ok(api.decide(batch["id"], "reject", comment="Growth stalled"))
    return batch["patient_id"]


def _completed(api: Api) -> int:
    """A patient whose only dose was infused: the batch is completed."""
    batch, (dose,) = api.released(doses=1)
    _at_clinic(api, dose)
    _infuse(api, batch["patient_id"], dose)
    return batch["patient_id"]


# -- the reason at every stage ---------------------------------------------------------------------


def test_cln1_every_stage_has_its_reason_and_only_a_dose_at_the_clinic_is_ready(api):
    expected: dict[int, str | None] = {}

    not_yet = api.patient()["id"]  # no biopsy: treatment has not started
    expected[api.biopsy()["patient_id"]] = "biopsy not yet received at the lab"
    expected[api.received_biopsy()["patient_id"]] = "biopsy received; batch not registered yet"
    refused = api.biopsy()
    ok(api.receive(refused, accepted=False, note="Tube leaked in transit"))
    expected[refused["patient_id"]] = "biopsy rejected at receipt"
    expected[api.batch()["patient_id"]] = "in manufacturing (registered)"
    expected[api.expanded_batch()[0]["patient_id"]] = "in manufacturing (expansion)"

    tested, _ = api.formulated()
    api.pass_qc(tested["id"])
    expected[tested["patient_id"]] = "QC complete; awaiting QA release"

    conditional, _ = api.released("conditional_release", pending=("sterility",))
    expected[conditional["patient_id"]] = (
        "conditionally released (sterility pending); treating physician acceptance not recorded"
    )

    held, _ = api.formulated()
    deviation = ok(
        api.post(
            Role.TECHNICIAN, f"/batches/{held['id']}/deviations", {"description": "Door ajar"}
        ),
        201,
    )
    expected[held["patient_id"]] = f"on hold: deviation(s) {deviation['number']} open"

    released, _ = api.released()
    expected[released["patient_id"]] = "dose not yet received at clinic"

    travelling, (travelling_dose, _) = api.released()
    _custody(api, travelling_dose, "dispatched")
    expected[travelling["patient_id"]] = "dose dispatched, not yet received at clinic"

    ready, (ready_dose, _) = api.released()
    _at_clinic(api, ready_dose)
    expected[ready["patient_id"]] = None

    rejected, _ = api.formulated()
    ok(api.decide(rejected["id"], "reject", comment="Growth stalled"))
    expected[rejected["patient_id"]] = "batch rejected"

    done, (done_dose,) = api.released(doses=1)
    _at_clinic(api, done_dose)
    _infuse(api, done["patient_id"], done_dose)
    expected[done["patient_id"]] = "every dose infused or disposed"

    rows = _board(api)
    assert {pid: rows[pid]["reason"] for pid in expected} == expected
    assert set(rows) == set(expected) and not_yet not in rows
    assert {pid for pid in expected if rows[pid]["ready"]} == {ready["patient_id"]}
    # Ready ones come first.
    assert next(iter(ok(api.get(Role.CLINICIAN, "/clinic/readiness"))))["ready"] is True
    assert rows[done["patient_id"]]["status"] == "completed"
    assert rows[done["patient_id"]]["doses"][0]["status"] == "infused"


def test_cln1_a_released_dose_becomes_ready_only_once_received_at_the_clinic(api):
    batch, (first, second) = api.released()
    pid = batch["patient_id"]

    row = _board(api)[pid]
    assert (row["ready"], row["reason"]) == (False, "dose not yet received at clinic")
    assert row["status"] == "released" and row["release"] == "released"
    assert [d["code"] for d in row["doses"]] == [first, second]
    assert not any(d["at_clinic"] for d in row["doses"])

    _custody(api, first, "dispatched")
    row = _board(api)[pid]
    assert (row["ready"], row["reason"]) == (False, "dose dispatched, not yet received at clinic")
    assert row["status"] == "issued"
    assert row["doses"][0]["status"] == "dispatched" and row["doses"][0]["at_clinic"] is False
    assert row["doses"][0]["location"] == "Courier box 7"

    _custody(api, first, "received")
    row = _board(api)[pid]
    assert (row["ready"], row["reason"]) == (True, None)
    dose = row["doses"][0]
    assert dose["code"] == first and dose["status"] == "received" and dose["at_clinic"] is True
    assert dose["location"] == "Ward 3 fridge" and dose["expired"] is False
    assert dose["expires_at"] is not None
    assert row["doses"][1]["at_clinic"] is False

    # The only dose at the clinic infused: the next one is still at the lab.
    _infuse(api, pid, first)
    row = _board(api)[pid]
    assert (row["ready"], row["reason"]) == (False, "dose not yet received at clinic")
    assert [d["status"] for d in row["doses"]] == ["infused", "active"]


def test_cln1_a_dose_at_the_clinic_past_its_expiry_is_not_ready(api, monkeypatch):
    batch, (code, _) = api.released()  # doses expire three days after formulation
    _at_clinic(api, code)
    assert _board(api)[batch["patient_id"]]["ready"] is True

    later = datetime.now(UTC) + timedelta(days=4)
    monkeypatch.setattr(board, "utcnow", lambda: later)
    row = _board(api)[batch["patient_id"]]
    assert (row["ready"], row["reason"]) == (False, "dose at clinic expired")
    assert row["doses"][0]["expired"] is True and row["doses"][0]["at_clinic"] is True


def test_cln1_conditional_release_is_ready_once_the_physician_accepts(api):
    batch, (code, _) = api.released("conditional_release", pending=("sterility",))
    pid = batch["patient_id"]
    _at_clinic(api, code)
    row = _board(api)[pid]
    assert row["ready"] is False
    assert row["reason"] == (
        "conditionally released (sterility pending); treating physician acceptance not recorded"
    )
    body = {
        "physician_name": "Dr. Ada Okonkwo",
        "accepted_at": iso(datetime.now(UTC)),
        "password": PASSWORD,
    }
    ok(api.post(Role.CLINICIAN, f"/batches/{batch['id']}/physician-acceptance", body), 201)
    row = _board(api)[pid]
    assert (row["ready"], row["reason"]) == (True, None)
    assert row["release"] == (
        "conditionally released (sterility pending); treating physician accepted"
    )


def test_cln1_the_board_follows_the_newest_biopsy_and_skips_voided_patients(api):
    batch, _ = api.released()
    pid = batch["patient_id"]
    api.biopsy(pid)  # a second biopsy, newer, not received yet
    row = _board(api)[pid]
    assert row["reason"] == "biopsy not yet received at the lab"
    assert row["batch_id"] is None and row["status"] is None and row["doses"] == []

    other = api.patient(family_name="Ekdahl", given_name="Sven")
    biopsy = api.biopsy(other["id"])
    row = _board(api)[other["id"]]
    assert row["patient_name"] == "Ekdahl, Sven" and row["mrn"] == other["mrn"]
    ok(api.post(Role.QA, f"/biopsies/{biopsy['id']}/void", {"reason": "Registered twice"}))
    voided = ok(api.post(Role.QA, f"/patients/{other['id']}/void", {"reason": "Registered twice"}))
    assert voided["voided_at"] is not None
    assert other["id"] not in _board(api)


def test_cln1_a_voided_biopsy_is_not_the_patients_newest(api):
    batch = api.batch()
    pid = batch["patient_id"]
    wrong = api.biopsy(pid)
    assert _board(api)[pid]["reason"] == "biopsy not yet received at the lab"
    ok(api.post(Role.QA, f"/biopsies/{wrong['id']}/void", {"reason": "Wrong patient label"}))
    row = _board(api)[pid]
    assert (row["batch_id"], row["reason"]) == (batch["id"], "in manufacturing (registered)")

    # A patient whose only biopsy is voided has none: off the board until a new one is registered.
    alone = api.biopsy()
    ok(api.post(Role.QA, f"/biopsies/{alone['id']}/void", {"reason": "Entered twice"}))
    assert alone["patient_id"] not in _board(api)
    api.biopsy(alone["patient_id"])
    assert _board(api)[alone["patient_id"]]["reason"] == "biopsy not yet received at the lab"


# -- QC progress and alerts ------------------------------------------------------------------------


def test_cln1_qc_progress_counts_current_results_of_the_batchs_specification(api):
    batch, _ = api.formulated()
    pid = batch["patient_id"]
    tests = [row["test"] for row in _tests(api, batch["id"])]
    total = len(tests)
    assert total >= 4

    row = _board(api)[pid]
    assert (row["qc_passed"], row["qc_total"]) == (0, total)
    assert row["reason"] == f"QC 0 of {total} complete"

    api.pass_qc(batch["id"], skip=tuple(tests[-3:]))
    row = _board(api)[pid]
    assert (row["qc_passed"], row["qc_total"]) == (total - 3, total)
    assert row["reason"] == f"QC {total - 3} of {total} complete"
    assert row["status"] == "quarantine" and row["ready"] is False

    # A failing result holds the batch (its deviation); once closed, the failure is counted.
    _fail(api, batch["id"], tests[-1])
    row = _board(api)[pid]
    assert row["status"] == "on_hold" and row["reason"].startswith("on hold: deviation(s) ")
    _close_deviations(api, batch["id"])
    row = _board(api)[pid]
    assert row["reason"] == f"QC {total - 3} of {total} complete, 1 failed"

    api.pass_qc(batch["id"])
    row = _board(api)[pid]
    assert row["qc_passed"] == total - 1
    assert row["reason"] == f"QC {total - 1} of {total} complete, 1 failed"


def test_cln1_a_late_failure_is_shown_as_an_alert_and_holds_the_dose(api):
    batch, (code, _) = api.released("conditional_release", pending=("sterility",))
    pid = batch["patient_id"]
    body = {
        "physician_name": "Dr. Ada Okonkwo",
        "accepted_at": iso(datetime.now(UTC)),
        "password": PASSWORD,
    }
    ok(api.post(Role.CLINICIAN, f"/batches/{batch['id']}/physician-acceptance", body), 201)
    _at_clinic(api, code)
    assert _board(api)[pid]["ready"] is True
    assert _board(api)[pid]["alerts"] == []

    _fail(api, batch["id"], "sterility")
    row = _board(api)[pid]
    (alert,) = row["alerts"]
    assert alert.startswith("Result after release failed: Sterility")
    assert row["status"] == "on_hold" and row["ready"] is False
    assert row["reason"] == f"on hold: {alert}"
    # The same alert as the batch shows.
    shown = ok(api.get(Role.QA, f"/batches/{batch['id']}"))
    assert [a["message"] for a in shown["alerts"]] == [alert]


def test_cln1_rows_carry_the_patient_biopsy_and_plan(api):
    patient = api.patient(family_name="Lindqvist", given_name="Maja")
    biopsy = api.biopsy(patient["id"])
    batch, codes = api.released(doses=2)
    # api.released makes its own patient; use that one for the plan, the named one's biopsy alone.
    first = datetime(2031, 3, 3, 9, 0, tzinfo=UTC)
    plan = ok(
        api.post(
            Role.CLINICIAN,
            f"/batches/{batch['id']}/infusion-plan",
            {"first_infusion_at": iso(first)},
        ),
        201,
    )
    rows = _board(api)
    row = rows[batch["patient_id"]]
    assert row["batch_id"] == batch["id"] and row["batch_number"] == batch["batch_number"]
    assert row["biopsy_collected_at"] is not None
    assert [p["id"] for p in row["planned_infusions"]] == [p["id"] for p in plan]
    assert [d["planned_at"] for d in row["doses"]] == [p["planned_at"] for p in plan]
    assert datetime.fromisoformat(row["doses"][0]["planned_at"]) == first
    assert [d["code"] for d in row["doses"]] == codes

    alone = rows[patient["id"]]
    assert alone["patient_name"] == "Lindqvist, Maja" and alone["mrn"] == patient["mrn"]
    assert alone["batch_id"] is None and alone["batch_number"] is None
    assert alone["biopsy_collected_at"] == biopsy["collected_at"]
    assert (alone["qc_passed"], alone["qc_total"], alone["release"]) == (0, 0, None)
    assert alone["planned_infusions"] == [] and alone["alerts"] == []


# -- a fixed number of statements ------------------------------------------------------------------


def _planned_released_at_clinic(api: Api) -> int:
    """A patient whose batch has every kind of fact the board reads: QC results, a release,
    a plan, custody events, an open deviation and an alert."""
    batch, (code, _) = api.released("conditional_release", pending=("sterility",))
    first = iso(datetime.now(UTC) + timedelta(days=1))
    ok(
        api.post(
            Role.CLINICIAN, f"/batches/{batch['id']}/infusion-plan", {"first_infusion_at": first}
        ),
        201,
    )
    _at_clinic(api, code)
    _fail(api, batch["id"], "sterility")
    return batch["patient_id"]


def test_perf_the_board_is_a_fixed_number_of_statements_for_one_patient_or_pages_of_many(
    api, engine, monkeypatch
):
    """DESIGN §12: the same statements for one patient as for a page of many, whatever the
    history (patients out of treatment) and whichever page."""
    first = _planned_released_at_clinic(api)
    one, rows = _board_statements(api, engine)
    assert list(rows) == [first] and rows[first]["alerts"] and rows[first]["planned_infusions"]

    others = [_planned_released_at_clinic(api)]
    ready, (code, _) = api.released()
    _at_clinic(api, code)
    others.append(ready["patient_id"])
    tested, _ = api.formulated()
    api.pass_qc(tested["id"], skip=("sterility",))
    others.append(tested["patient_id"])
    others.append(api.expanded_batch()[0]["patient_id"])
    others.append(api.batch()["patient_id"])
    others.append(_completed(api))
    history = [_rejected_long_ago(api, monkeypatch) for _ in range(3)] + [api.patient()["id"]]

    counts = []
    seen: list[int] = []
    for offset in (0, 3, 6):
        count, rows = _board_statements(api, engine, f"?limit=3&offset={offset}")
        assert all(row["batch_id"] is not None for row in rows.values())
        counts.append(count)
        seen += rows
    assert sorted(seen) == sorted({first, *others}) and not set(seen) & set(history)
    # The first page has every kind of fact; a page without some (no plan, say) skips a query.
    assert counts[0] == one and max(counts) <= one, (one, counts)
    assert 0 < one <= 20, one


# -- who may read it -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.QA])
def test_sec_clinicians_and_qa_read_the_board(api, role):
    biopsy = api.biopsy()
    assert _board(api, role)[biopsy["patient_id"]]["reason"] == "biopsy not yet received at the lab"


@pytest.mark.parametrize("role", [Role.TECHNICIAN, Role.ADMIN])
def test_sec_technicians_and_admins_may_not_read_the_board(api, role):
    error(api.get(role, "/clinic/readiness"), 403, "forbidden")


def test_sec_the_board_needs_a_login(api):
    error(api.get(None, "/clinic/readiness"), 401, "not_authenticated")


def test_cln1_a_hold_names_its_open_deviation_not_an_earlier_resolved_alert(api):
    batch, (first, _) = api.released("conditional_release", pending=("sterility",))
    pid = batch["patient_id"]
    _fail(api, batch["id"], "sterility")
    (alert,) = _board(api)[pid]["alerts"]
    _close_deviations(api, batch["id"])  # QA investigated: the hold lifts
    assert _board(api)[pid]["status"] == "conditionally_released"

    record_oos_supply(api, batch["id"])  # sterility failed: an OOS supply (REL-7)
    _custody(api, first, "dispatched", temperature=9.5)  # a temperature excursion: a new hold
    (deviation,) = [
        d
        for d in ok(api.get(Role.QA, f"/batches/{batch['id']}/deviations"))
        if d["status"] != "closed"
    ]
    row = _board(api)[pid]
    assert row["status"] == "on_hold" and row["alerts"] == [alert]  # the history stays shown
    assert row["reason"] == f"on hold: deviation(s) {deviation['number']} open"


def test_cln1_a_hold_placed_by_qa_without_a_deviation_says_so(api):
    batch, _ = api.released()
    ok(api.post(Role.QA, f"/batches/{batch['id']}/hold", {"reason": "Courier strike"}))
    row = _board(api)[batch["patient_id"]]
    assert (row["status"], row["ready"]) == ("on_hold", False)
    assert row["reason"] == "on hold: held by QA"


# -- who is on the board, in which order, a page at a time -----------------------------------------


def test_cln1_a_patient_whose_treatment_ended_stays_on_the_board_for_14_days(api, monkeypatch):
    """Completed, rejected, destroyed, or a biopsy refused at receipt: shown for
    HOMEWARD_BOARD_ENDED_DAYS (14 days by default) so the clinic sees the outcome, then history."""
    completed = _completed(api)
    rejected, _ = api.formulated()
    ok(api.decide(rejected["id"], "reject", comment="Growth stalled"))
    destroyed = api.batch()
    ok(api.post(Role.QA, f"/batches/{destroyed['id']}/destroy", {"reason": "Contaminated"}))
    refused = api.biopsy()
    ok(api.receive(refused, accepted=False, note="Tube leaked in transit"))
    ended = {
        completed: "every dose infused or disposed",
        rejected["patient_id"]: "batch rejected",
        destroyed["patient_id"]: "batch destroyed",
        refused["patient_id"]: "biopsy rejected at receipt",
    }
    # Open ones stay however long they take.
    manufacturing = api.expanded_batch()[0]["patient_id"]
    waiting = api.received_biopsy()["patient_id"]
    held, _ = api.released()
    ok(api.post(Role.QA, f"/batches/{held['id']}/hold", {"reason": "Courier strike"}))
    still = {manufacturing, waiting, held["patient_id"]}

    rows = _board(api)
    assert {pid: rows[pid]["reason"] for pid in ended} == ended
    now = datetime.now(UTC)
    monkeypatch.setattr(
        board,
        "utcnow",
        lambda: now + timedelta(days=api.settings.board_ended_days) - timedelta(days=1),
    )
    assert set(_board(api)) == set(ended) | still
    monkeypatch.setattr(
        board,
        "utcnow",
        lambda: now + timedelta(days=api.settings.board_ended_days) + timedelta(days=1),
    )
    assert set(_board(api)) == still


def test_cln1_the_board_lists_patients_nearest_an_infusion_first_then_by_name(api):
    ready = _patient(api, "Zorn")
    batch, (dose, _) = _released(api, ready)
    _at_clinic(api, dose)
    released_b, released_a = _patient(api, "Berg"), _patient(api, "Adler")
    _released(api, released_b)
    _released(api, released_a)
    held = _patient(api, "Holm")
    batch, _ = _released(api, held)
    ok(api.post(Role.QA, f"/batches/{batch['id']}/hold", {"reason": "Courier strike"}))
    quarantine = _patient(api, "Quist")
    api.formulated(quarantine)
    manufacturing = _patient(api, "Moll")
    api.expanded_batch(manufacturing)
    waiting = _patient(api, "Ahl")
    api.biopsy(waiting)
    ended = _patient(api, "Aalto")
    batch, _ = api.formulated(ended)
    ok(api.decide(batch["id"], "reject", comment="Growth stalled"))

    rows = ok(api.get(Role.CLINICIAN, "/clinic/readiness"))
    assert [row["patient_id"] for row in rows] == [
        ready,  # a dose at the clinic
        released_a,  # released, by name
        released_b,
        held,
        quarantine,
        manufacturing,
        waiting,  # no batch yet
        ended,
    ]
    assert rows[0]["ready"] is True and not any(row["ready"] for row in rows[1:])


def test_cln1_pages_list_each_patient_in_treatment_exactly_once_with_links(api, monkeypatch):
    in_treatment = {api.biopsy()["patient_id"] for _ in range(5)}
    in_treatment |= {api.batch()["patient_id"] for _ in range(2)}
    out = {api.patient()["id"], _rejected_long_ago(api, monkeypatch)}
    headers = api.as_role(Role.CLINICIAN)
    whole = api.client.get("/api/v1/clinic/readiness?limit=200", headers=headers)
    assert whole.headers["X-Total-Count"] == "7" and "Link" not in whole.headers

    url: str | None = "/api/v1/clinic/readiness?limit=3"
    pages = []
    while url is not None:
        response = api.client.get(url, headers=headers)
        assert response.headers["X-Total-Count"] == "7"
        pages.append((ok(response), response.links))
        url = response.links.get("next", {}).get("url")
    assert [len(rows) for rows, _ in pages] == [3, 3, 1]
    listed = [row["patient_id"] for rows, _ in pages for row in rows]
    assert listed == [row["patient_id"] for row in whole.json()]  # the same order, each once
    assert set(listed) == in_treatment and not set(listed) & out
    assert [sorted(links) for _, links in pages] == [["next"], ["next", "prev"], ["prev"]]
    assert pages[1][1]["prev"]["url"].endswith("/api/v1/clinic/readiness?limit=3&offset=0")
    assert pages[2][1]["prev"]["url"].endswith("?limit=3&offset=3")

    past = api.client.get("/api/v1/clinic/readiness?limit=3&offset=30", headers=headers)
    assert ok(past) == [] and past.headers["X-Total-Count"] == "7"
    assert past.links["prev"]["url"].endswith("?limit=3&offset=27")


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=201", "limit=many", "offset=-1", "offset=2147483648"]
)
def test_cln1_a_page_out_of_bounds_is_refused(api, query):
    api.biopsy()
    error(api.get(Role.CLINICIAN, f"/clinic/readiness?{query}"), 422, "invalid_request")


def test_cln1_the_board_page_links_to_the_next_and_previous_pages(api):
    names = ["Aberg", "Bok", "Cato"]
    for name in names:
        api.biopsy(_patient(api, name))
    _page_login(api, Role.CLINICIAN)
    first = api.client.get("/clinic?limit=2")
    assert first.status_code == 200
    assert "Patients 1\u20132 of 3 in treatment" in first.text
    assert "Aberg" in first.text and "Bok" in first.text and "Cato" not in first.text
    assert (
        'href="?limit=2&amp;offset=2" rel="next"' in first.text and 'rel="prev"' not in first.text
    )
    second = api.client.get("/clinic?limit=2&offset=2")
    assert "Patients 3\u20133 of 3 in treatment" in second.text and "Cato" in second.text
    assert (
        'href="?limit=2&amp;offset=0" rel="prev"' in second.text and 'rel="next"' not in second.text
    )
    assert api.client.get("/clinic?limit=500").status_code == 422


def test_cln1_the_demo_s_ready_patient_is_first_on_the_first_page(api, session_factory, settings):
    demo.seed(session_factory, settings)
    rows = ok(api.get(Role.CLINICIAN, "/clinic/readiness"))
    assert len(rows) == len(demo.DEMO_PATIENTS)
    assert (rows[0]["patient_name"], rows[0]["ready"]) == ("Greco, Chiara", True)

"""Step entry by scanning (issue 12 item 3, ADR 0026): inputs filled by scanning and checked
against the working context at once, outputs declared, measurements, lots and equipment, the
step recorded by the same service as the API, the outputs' labels printed only on request."""

import re
from datetime import UTC, datetime, timedelta

from sqlmodel import select

from app.audit.actions import AuditAction
from app.auth.permissions import Role
from app.labels.models import LabelPrint
from app.steps.models import Step
from tests.helpers import audit_events
from tests.test_pages import _page_login, submit


def _count(db, table) -> int:
    return len(db.exec(select(table)).all())


def _context(api, batch):
    page = submit(api, "/scan/context", {"context": batch["batch_number"]}, follow_redirects=True)
    assert page.status_code == 200


def _round(api, kind: str, state: list[tuple[str, str]], **fields: str):
    """One round of the step form, sending what the page holds plus `fields`."""
    data: dict[str, list[str]] = {}
    for name, value in [("kind", kind), *state, *fields.items()]:
        data.setdefault(name, []).append(value)
    data["csrf_token"] = [api.client.cookies["homeward_csrf"]]
    return api.client.post("/steps/new", data=data, follow_redirects=False)


def _state(page_text: str) -> list[tuple[str, str]]:
    """The fields a browser would send back from the page: its hidden inputs."""
    pairs = []
    hidden = r'<input type="hidden" name="([^"]+)" value="([^"]*)"'
    for name, value in re.findall(hidden, page_text):
        if name not in {"csrf_token", "kind", "next"}:
            pairs.append((name, value))
    return pairs


def test_coi3_a_passage_recorded_by_scanning_its_input_with_outputs_and_measurements(api, db):
    batch = api.batch()
    isolation = api.step(batch["id"], "isolation", [batch["tube_code"]], ["flask"])
    flask = isolation.json()["outputs"][0]["code"]
    _page_login(api, Role.TECHNICIAN)
    _context(api, batch)
    page = api.client.get("/steps/new?kind=passage")
    assert page.status_code == 200 and "ROSSI, Anna" in page.text and 'id="scan"' in page.text
    page = _round(api, "passage", _state(page.text), scan=flask, action="scan")
    assert page.status_code == 200 and f"{flask} added to the inputs" in page.text
    assert "MATCHES THE WORKING CONTEXT" in page.text
    state = _state(page.text)
    assert ("input", flask) in state
    page = _round(api, "passage", state, action="add_output")
    state = _state(page.text)
    assert ("outputs", "2") in state
    recorded = _round(
        api,
        "passage",
        state,
        out_kind_0="flask",
        out_kind_1="flask",
        out_seeded_0="1000000",
        m_viable_cells="4 000 000",
        m_viability_pct="92,5",
        action="record",
    )
    assert recorded.status_code == 303, recorded.text
    step = db.get(Step, int(recorded.headers["location"].rsplit("/", 1)[1]))
    assert step.kind == "passage" and step.batch_id == batch["id"]
    assert '"viable_cells":4000000' in step.measurements and "92.5" in step.measurements
    shown = api.client.get(recorded.headers["location"])
    assert shown.status_code == 200 and "STEP RECORDED" in shown.text
    assert shown.text.count("Print label of") == 2
    assert _count(db, LabelPrint) == 0  # offered, never printed by itself
    assert len(audit_events(db, AuditAction.STEP_RECORDED)) == 2


def test_coi5_another_patients_input_is_stopped_and_the_form_survives_the_acknowledgement(api, db):
    mine, other = api.batch(), api.batch()
    _page_login(api, Role.TECHNICIAN)
    _context(api, mine)
    page = _round(api, "isolation", [("outputs", "1"), ("out_kind_0", "flask")], note="keep me",
                  scan=other["tube_code"], action="scan")  # fmt: skip
    assert page.status_code == 409 and "STOP — IDENTITY MISMATCH" in page.text
    assert other["coi"] in page.text and mine["coi"] in page.text
    assert 'id="scan"' not in page.text
    assert len(audit_events(db, AuditAction.SCAN_IDENTITY_MISMATCH)) == 1
    # Nothing else happens until the STOP is acknowledged, then the form is as it was.
    page = _round(api, "isolation", _state(page.text), action="record")
    assert page.status_code == 409 and _count(db, Step) == 0
    page = _round(api, "isolation", _state(page.text), action="ack")
    assert page.status_code == 200 and 'id="scan"' in page.text and "keep me" in page.text
    assert ("input", other["tube_code"]) not in _state(page.text)
    (mismatch,) = audit_events(db, AuditAction.SCAN_IDENTITY_MISMATCH)
    (acknowledged,) = audit_events(db, AuditAction.SCAN_STOP_ACKNOWLEDGED)
    assert acknowledged.scope == other["coi"] and mismatch.seq < acknowledged.seq
    assert f'"mismatch_seq":{mismatch.seq}' in acknowledged.new_values.replace(" ", "")


def test_coi5_an_unusable_input_is_flagged_and_not_kept(api):
    batch, _ = api.expanded_batch()
    _page_login(api, Role.TECHNICIAN)
    _context(api, batch)
    page = _round(api, "harvest", [("outputs", "1"), ("out_kind_0", "tube")],
                  scan=batch["tube_code"], action="scan")  # fmt: skip
    assert "NOT USABLE" in page.text and ("input", batch["tube_code"]) not in _state(page.text)


def test_a_refused_step_keeps_the_page_and_records_nothing(api, db):
    batch = api.batch()
    _page_login(api, Role.TECHNICIAN)
    _context(api, batch)
    page = _round(api, "passage", [("outputs", "1"), ("out_kind_0", "flask")],
                  scan=batch["tube_code"], action="scan")  # fmt: skip
    page = _round(api, "passage", _state(page.text), action="record")
    assert page.status_code == 422 and "STEP NOT RECORDED" in page.text
    assert "ROSSI, Anna" in page.text and 'id="scan"' in page.text
    assert _count(db, Step) == 0


def test_lbl5_an_output_label_is_printed_on_request_and_a_reprint_asks_why(api, db):
    batch = api.batch()
    _page_login(api, Role.TECHNICIAN)
    _context(api, batch)
    page = _round(api, "isolation", [("outputs", "1"), ("out_kind_0", "flask")],
                  scan=batch["tube_code"], action="scan")  # fmt: skip
    recorded = _round(api, "isolation", _state(page.text), out_kind_0="flask", action="record")
    assert recorded.status_code == 303
    step_url = recorded.headers["location"]
    shown = api.client.get(step_url)
    (flask,) = [v for v in _state(shown.text) if v[0] == "code"]
    printed = submit(api, f"{step_url}/print", {"code": flask[1], "printer_id": ""})
    assert printed.status_code == 200 and printed.headers["content-type"] == "application/pdf"
    assert printed.headers["content-disposition"].startswith("attachment")
    assert _count(db, LabelPrint) == 1
    again = submit(api, f"{step_url}/print", {"code": flask[1], "printer_id": ""})
    assert again.status_code == 422 and "LABEL NOT PRINTED" in again.text
    assert "STEP RECORDED" in again.text and _count(db, LabelPrint) == 1
    again = submit(api, f"{step_url}/print", {"code": flask[1], "reason": "label smudged"})
    assert again.status_code == 200 and _count(db, LabelPrint) == 2


def test_a_dose_is_declared_with_its_expiry_in_local_time(api, db):
    batch, flasks = api.expanded_batch()
    harvest = api.step(batch["id"], "harvest", flasks, ["tube"])
    tube = harvest.json()["outputs"][0]["code"]
    _page_login(api, Role.TECHNICIAN)
    _context(api, batch)
    page = _round(api, "formulation", [("outputs", "1"), ("out_kind_0", "bag")], scan=tube,
                  action="scan")  # fmt: skip
    local = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    dose = {"out_kind_0": "bag", "out_cells_0": "150000000", "out_volume_0": "50"}
    recorded = _round(
        api, "formulation", _state(page.text), **dose, out_expires_0=local, action="record"
    )
    assert recorded.status_code == 303, recorded.text
    shown = api.client.get(recorded.headers["location"])
    assert "150,000,000 cells · 50 mL" in shown.text  # the `number` filter (ADR 0027)


def test_without_a_working_context_the_page_asks_for_one(api):
    _page_login(api, Role.TECHNICIAN)
    page = api.client.get("/steps/new?kind=passage")
    assert page.status_code == 200 and "No working context" in page.text
    assert 'id="scan"' not in page.text and 'value="/steps/new?kind=passage"' in page.text


def test_sec_step_entry_needs_the_step_permission(api):
    _page_login(api, Role.CLINICIAN)
    assert api.client.get("/steps/new").status_code == 403

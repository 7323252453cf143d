"""Network label printers (LBL-3, LBL-4): an admin registers them; a vessel's or a batch's labels
are queued as one print job, logged with the printer, and the printer worker sends exactly the ZPL
of those labels to the printer's raw TCP port after the commit; a printer that cannot be reached
loses nothing: the job is retried with back-off, every attempt recorded and audited, then failed
and shown. The printers here are real sockets; the tests run the worker's rounds themselves."""

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlmodel import Session

from app.audit.actions import AuditAction
from app.auth.permissions import Role
from app.db import SessionFactory
from app.labels import printing
from app.labels.models import LabelPrint, LabelPrinter, PrintJob
from app.notifications.outbox import Retry
from tests.helpers import Api, audit_events, error, ok, unique
from tests.labels.printers import FakeZebra, dead_port
from tests.labels.support import dose_symbols, dots, zpl_jobs


@pytest.fixture
def zebra() -> Iterator[FakeZebra]:
    printer = FakeZebra()
    yield printer
    printer.close()
    assert printer.received.empty(), "a job the test did not look at"


def _printer(api: Api, port: int, dpi: int = 203, **extra: Any) -> dict[str, Any]:
    body = {"name": unique("Zebra bench "), "host": "127.0.0.1", "port": port, "dpi": dpi}
    return ok(api.post(Role.ADMIN, "/printers", body | extra), 201)


def _prints(db: Session) -> int:
    return db.execute(select(func.count()).select_from(LabelPrint)).scalar_one()


def _without_reprint_mark(zpl: str) -> str:
    return "".join(line for line in zpl.splitlines(keepends=True) if "^FDREPRINT^FS" not in line)


# -- the printer registry ------------------------------------------------------------------------


def test_lbl3_admin_registers_printers(api: Api, db: Session) -> None:
    created = _printer(api, 9100, dpi=300, name="Zebra ZT411 cleanroom B", host="zebra-b.lab")
    assert created == {
        "id": created["id"],
        "name": "Zebra ZT411 cleanroom B",
        "host": "zebra-b.lab",
        "port": 9100,
        "dpi": 300,
    }
    default = ok(api.post(Role.ADMIN, "/printers", {"name": "Annex", "host": "10.0.0.7"}), 201)
    assert (default["port"], default["dpi"]) == (9100, 203)
    listed = ok(api.get(Role.TECHNICIAN, "/printers"))
    assert [p["name"] for p in listed] == ["Annex", "Zebra ZT411 cleanroom B"]
    event = audit_events(db, AuditAction.PRINTER_CREATED)[-1]
    assert event.entity_type == "printer" and event.entity_id == default["id"]
    assert json.loads(event.new_values or "{}")["host"] == "10.0.0.7"


def test_lbl3_only_an_admin_registers_a_printer_and_names_are_unique(api: Api, db: Session) -> None:
    body = {"name": "Bench 1", "host": "127.0.0.1", "port": 9100, "dpi": 203}
    for role in (Role.TECHNICIAN, Role.QA, Role.CLINICIAN):
        error(api.post(role, "/printers", body), 403, "forbidden")
    ok(api.post(Role.ADMIN, "/printers", body), 201)
    error(api.post(Role.ADMIN, "/printers", body | {"host": "10.1.1.1"}), 409, "duplicate_code")
    (row,) = db.execute(select(LabelPrinter)).scalars()
    assert row.host == "127.0.0.1"
    assert len(audit_events(db, AuditAction.PRINTER_CREATED)) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"host": "printer one"},
        {"host": "-printer"},
        {"host": "tcp://127.0.0.1"},
        {"host": "127.0.0.1:9100"},
        {"host": ""},
        {"port": 0},
        {"port": 65536},
        {"port": "ninety"},
        {"dpi": 150},
        {"dpi": 0},
        {"name": ""},
        {"name": "x" * 65},
        {"colour": "black"},
    ],
)
def test_rel_a_bad_printer_is_refused(api: Api, db: Session, change: dict[str, Any]) -> None:
    body = {"name": "Bench 2", "host": "127.0.0.1", "port": 9100, "dpi": 300} | change
    error(api.post(Role.ADMIN, "/printers", body), 422, "invalid_request")
    assert db.execute(select(func.count()).select_from(LabelPrinter)).scalar_one() == 0
    assert audit_events(db, AuditAction.PRINTER_CREATED) == []


# -- printing to a printer -----------------------------------------------------------------------


def _make_due(db: Session) -> None:
    """Move every queued job's next attempt into the past (time passing, in the data)."""
    db.execute(
        update(PrintJob)
        .where(PrintJob.status == "queued")
        .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    db.commit()


def _job(api: Api, job_id: int, role: Role = Role.TECHNICIAN) -> dict[str, Any]:
    return ok(api.get(role, f"/print-jobs/{job_id}"))


def _attempts(db: Session, job_id: int) -> list[dict[str, Any]]:
    """The audited attempts of a job: the `new` values of its print_job.attempted events."""
    return [
        json.loads(e.new_values or "{}")
        for e in audit_events(db, AuditAction.PRINT_JOB_ATTEMPTED)
        if e.entity_id == job_id
    ]


def _none(**ended: int) -> dict[str, int]:
    return {"queued": 0, "sent": 0, "failed": 0} | ended


def test_lbl3_a_vessel_label_goes_to_the_printer_as_its_zpl_once(
    api: Api, db: Session, zebra: FakeZebra, session_factory: SessionFactory
) -> None:
    batch, (dose, _) = api.formulated(doses=2)
    printer = _printer(api, zebra.port, dpi=300)
    job = ok(
        api.post(Role.TECHNICIAN, f"/vessels/{dose}/print", {"printer_id": printer["id"]}), 201
    )
    assert (job["status"], job["attempts"], job["printer"]) == ("queued", [], printer["name"])
    (logged,) = job["labels"]
    assert logged["vessel_code"] == dose and logged["printer"] == printer["name"]
    assert (logged["format"], logged["dpi"], logged["copy_number"]) == ("zpl", 300, 1)
    assert (logged["print_job_id"], logged["job_status"]) == (job["id"], "queued")
    (event,) = audit_events(db, AuditAction.LABEL_PRINTED)
    values = json.loads(event.new_values or "{}")
    assert (values["printer"], values["print_job"]) == (printer["name"], job["id"])
    assert event.scope == batch["coi"]
    # the request sent nothing itself, and with the test's shared connection no worker runs
    assert zebra.received.empty()
    assert "homeward-printers" not in {t.name for t in threading.enumerate()}

    assert printing.send_due(session_factory) == _none(sent=1)
    sent = zebra.job()
    assert sent.startswith("^XA") and sent.rstrip().endswith("^XZ")
    (label,) = zpl_jobs(sent)
    assert [data for _, data in label.qr] == [f"MA,{dose}"]
    product, coi = dose_symbols([data for _, data in label.datamatrix])
    assert (product.din.din.value, product.container, coi) == (batch["din"], 1, batch["coi"])
    assert label.width == pytest.approx(dots(100, 300), abs=1)  # at the printer's resolution
    assert "REPRINT" not in label.texts
    done = _job(api, job["id"])
    assert (done["status"], done["last_error"], done["next_attempt_at"]) == ("sent", None, None)
    assert [a["error"] for a in done["attempts"]] == [None] and done["sent_at"]
    assert ok(api.get(Role.TECHNICIAN, f"/vessels/{dose}/labels"))[0]["job_status"] == "sent"
    (attempt,) = audit_events(db, AuditAction.PRINT_JOB_ATTEMPTED)
    assert (attempt.actor, attempt.entity_type, attempt.scope) == (
        "system",
        "print_job",
        batch["coi"],
    )
    assert json.loads(attempt.old_values or "{}") == {"status": "queued"}
    assert json.loads(attempt.new_values or "{}") == {
        "status": "sent",
        "attempt": 1,
        "printer_id": printer["id"],
        "error": None,
        "next_attempt_at": None,
    }

    # sent once and for all: no later round sends it again
    _make_due(db)
    assert printing.send_due(session_factory) == _none()
    assert zebra.received.empty()

    # exactly the label's ZPL: its preview now (the next print: a reprint) is it plus the mark
    preview = api.get(
        Role.TECHNICIAN, f"/vessels/{dose}/label", params={"format": "zpl", "dpi": 300}
    )
    assert preview.status_code == 200, preview.text
    assert "^FDREPRINT^FS" in preview.text
    assert _without_reprint_mark(preview.text) == sent

    # a second print to the printer is a reprint, with its reason, marked on the label it prints
    body = {"printer_id": printer["id"], "reason": "bag label torn in transit"}
    again = ok(api.post(Role.QA, f"/vessels/{dose}/print", body), 201)
    assert (again["labels"][0]["copy_number"], again["labels"][0]["reprint"]) == (2, True)
    assert again["labels"][0]["reason"] == "bag label torn in transit"
    assert printing.send_due(session_factory) == _none(sent=1)
    assert "REPRINT" in zpl_jobs(zebra.job())[0].texts


def test_lbl3_a_batch_goes_to_the_printer_as_the_zpl_of_its_live_vessels(
    api: Api, zebra: FakeZebra, session_factory: SessionFactory
) -> None:
    batch, doses = api.formulated(doses=3)
    printer = _printer(api, zebra.port)
    job = ok(
        api.post(
            Role.TECHNICIAN, f"/batches/{batch['id']}/labels/print", {"printer_id": printer["id"]}
        ),
        201,
    )
    printed = job["labels"]
    assert [p["vessel_code"] for p in printed] == doses
    assert {(p["printer"], p["copy_number"], p["dpi"], p["print_job_id"]) for p in printed} == {
        (printer["name"], 1, 203, job["id"])
    }
    # queued, not yet on the vessels: the reconciliation says so
    waiting = ok(api.get(Role.QA, f"/batches/{batch['id']}/labels/reconciliation"))
    assert (waiting["awaiting_printer"], waiting["labelled"], waiting["complete"]) == (3, 0, False)
    assert waiting["unlabelled"] == doses

    assert printing.send_due(session_factory) == _none(sent=1)
    sent = zebra.job()
    assert sent.startswith("^XA")
    labels = zpl_jobs(sent)
    assert len(labels) == sent.count("^XA") == 3  # the consumed vessels get no new label
    assert [label.qr[0][1] for label in labels] == [f"MA,{code}" for code in doses]
    for number, label in enumerate(labels, start=1):  # each dose its own container flags
        product, _ = dose_symbols([data for _, data in label.datamatrix])
        assert (product.din.din.value, product.container) == (batch["din"], number)
    assert all(label.width == pytest.approx(dots(100, 203), abs=1) for label in labels)
    history = ok(api.get(Role.TECHNICIAN, f"/vessels/{doses[1]}/labels"))
    assert [(h["printer"], h["job_status"]) for h in history] == [(printer["name"], "sent")]
    # the sheet's preview now shows reprints; without their mark, byte for byte what was sent
    preview = api.get(Role.TECHNICIAN, f"/batches/{batch['id']}/labels", params={"format": "zpl"})
    assert preview.status_code == 200, preview.text
    assert preview.text.count("^FDREPRINT^FS") == 3
    assert _without_reprint_mark(preview.text) == sent
    reconciliation = ok(api.get(Role.QA, f"/batches/{batch['id']}/labels/reconciliation"))
    assert reconciliation["complete"] is True and reconciliation["labels_printed"] == 3
    assert (reconciliation["awaiting_printer"], reconciliation["printer_failed"]) == (0, 0)


def test_lbl4_an_unreachable_printer_loses_nothing_every_attempt_is_recorded_then_it_fails(
    api: Api, db: Session, session_factory: SessionFactory
) -> None:
    batch, (dose, _) = api.formulated(doses=2)
    printer = _printer(api, dead_port())
    job = ok(
        api.post(Role.TECHNICIAN, f"/vessels/{dose}/print", {"printer_id": printer["id"]}), 201
    )
    assert job["status"] == "queued" and _prints(db) == 1
    assert len(audit_events(db, AuditAction.LABEL_PRINTED)) == 1

    retry = Retry(max_attempts=3, backoff_seconds=30.0)
    before = datetime.now(UTC)
    assert printing.send_due(session_factory, retry=retry) == _none(queued=1)
    after = datetime.now(UTC)
    waiting = _job(api, job["id"])
    assert waiting["status"] == "queued" and len(waiting["attempts"]) == 1
    assert waiting["last_error"].startswith("cannot connect: ConnectionRefusedError")
    delay = timedelta(seconds=30)
    next_at = datetime.fromisoformat(waiting["next_attempt_at"])
    assert before + delay <= next_at <= after + delay
    assert printing.send_due(session_factory, retry=retry) == _none()  # not due yet

    _make_due(db)
    assert printing.send_due(session_factory, retry=retry) == _none(queued=1)
    second = _job(api, job["id"])
    assert datetime.fromisoformat(second["next_attempt_at"]) - datetime.fromisoformat(
        second["attempts"][1]["attempted_at"]
    ) == timedelta(seconds=60)  # the back-off doubles
    _make_due(db)
    assert printing.send_due(session_factory, retry=retry) == _none(failed=1)

    failed = _job(api, job["id"])
    assert (failed["status"], failed["next_attempt_at"], failed["sent_at"]) == (
        "failed",
        None,
        None,
    )
    assert len(failed["attempts"]) == 3
    assert all(a["error"].startswith("cannot connect") for a in failed["attempts"])
    assert [(a["status"], a["attempt"]) for a in _attempts(db, job["id"])] == [
        ("queued", 1),
        ("queued", 2),
        ("failed", 3),
    ]
    assert {e.scope for e in audit_events(db, AuditAction.PRINT_JOB_ATTEMPTED)} == {batch["coi"]}
    # failed is final, and visible: in the queue, the label's history, the reconciliation
    _make_due(db)
    assert printing.send_due(session_factory, retry=retry) == _none()
    assert [
        j["id"] for j in ok(api.get(Role.ADMIN, "/print-jobs", params={"status": "failed"}))
    ] == [job["id"]]
    assert ok(api.get(Role.ADMIN, "/print-jobs", params={"status": "queued"})) == []
    (logged,) = ok(api.get(Role.TECHNICIAN, f"/vessels/{dose}/labels"))
    assert (logged["copy_number"], logged["job_status"], logged["voided"]) == (1, "failed", False)
    reconciliation = ok(api.get(Role.QA, f"/batches/{batch['id']}/labels/reconciliation"))
    assert reconciliation["printer_failed"] == 1 and dose in reconciliation["unlabelled"]
    assert reconciliation["labels_printed"] == 1 and reconciliation["complete"] is False


def test_lbl4_a_job_broken_off_while_sending_fails_at_once_without_a_second_copy(
    api: Api, db: Session, session_factory: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A printer that stops reading may have printed part of the job: sending it again could
    print labels twice, so the job fails for a person to check the printer."""
    stalled = socket.create_server(("127.0.0.1", 0))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    _, (dose, _) = api.formulated(doses=2)
    printer = _printer(api, stalled.getsockname()[1])
    job = ok(
        api.post(Role.TECHNICIAN, f"/vessels/{dose}/print", {"printer_id": printer["id"]}), 201
    )
    # a job far larger than the socket buffers, so the sender waits for a reader that never reads
    db.execute(update(PrintJob).values(payload=PrintJob.payload + "^XA^XZ" * 1_000_000))
    db.commit()
    monkeypatch.setattr(printing, "SEND_TIMEOUT_S", 0.3)
    try:
        outcome = printing.send_due(session_factory, retry=Retry(8, 0.001))
    finally:
        stalled.close()
    assert outcome == _none(failed=1)
    failed = _job(api, job["id"])
    assert failed["status"] == "failed" and len(failed["attempts"]) == 1
    assert failed["last_error"].startswith("interrupted while sending: TimeoutError")
    assert [a["status"] for a in _attempts(db, job["id"])] == ["failed"]


def test_lbl4_an_attempt_a_stopped_server_never_finished_is_not_sent_again(
    api: Api, db: Session, zebra: FakeZebra, session_factory: SessionFactory
) -> None:
    """A server that stops while sending leaves its job claimed, its lease running out, and no
    outcome: the printer may have printed it, so the next worker fails it rather than print
    the labels a second time."""
    _, (dose, _) = api.formulated(doses=2)
    printer = _printer(api, zebra.port)
    job = ok(
        api.post(Role.TECHNICIAN, f"/vessels/{dose}/print", {"printer_id": printer["id"]}), 201
    )
    now = datetime.now(UTC)
    db.execute(
        update(PrintJob).values(
            sending_since=now - timedelta(minutes=2), next_attempt_at=now - timedelta(minutes=1)
        )
    )
    db.commit()
    assert printing.send_due(session_factory) == _none(failed=1)
    assert zebra.received.empty()
    failed = _job(api, job["id"])
    assert failed["status"] == "failed" and len(failed["attempts"]) == 1
    assert failed["last_error"].startswith("outcome unknown")
    assert [a["status"] for a in _attempts(db, job["id"])] == ["failed"]


def test_sec_the_print_queue_is_for_technicians_and_admins_and_never_shows_the_zpl(
    api: Api, zebra: FakeZebra, session_factory: SessionFactory
) -> None:
    batch = api.batch()
    printer = _printer(api, zebra.port)
    job = ok(
        api.post(
            Role.TECHNICIAN, f"/batches/{batch['id']}/labels/print", {"printer_id": printer["id"]}
        ),
        201,
    )
    for role in (Role.TECHNICIAN, Role.ADMIN):
        (listed,) = ok(api.get(role, "/print-jobs"))
        assert listed == _job(api, job["id"], role)
        assert listed["id"] == job["id"] and listed["status"] == "queued"
        assert "payload" not in listed  # dose labels carry the patient's name and birth date
    for role in (Role.QA, Role.CLINICIAN):
        error(api.get(role, "/print-jobs"), 403, "forbidden")
        error(api.get(role, f"/print-jobs/{job['id']}"), 403, "forbidden")
    error(api.get(Role.TECHNICIAN, "/print-jobs/987654"), 404, "not_found")
    error(
        api.get(Role.TECHNICIAN, "/print-jobs", params={"status": "lost"}), 422, "invalid_request"
    )
    printing.send_due(session_factory)
    assert zebra.job().startswith("^XA")
    assert ok(api.get(Role.ADMIN, "/print-jobs", params={"status": "sent"}))[0]["id"] == job["id"]


def test_rel_printing_needs_a_known_printer_and_a_lab_role(api: Api, db: Session) -> None:
    created = api.batch()
    tube, batch_id = created["tube_code"], created["id"]
    printer = _printer(api, dead_port())
    paths = (f"/vessels/{tube}/print", f"/batches/{batch_id}/labels/print")
    for path in paths:
        error(api.post(Role.TECHNICIAN, path, {"printer_id": 987654}), 404, "not_found")
        for body in (
            {"printer_id": 0},
            {"printer_id": "one"},
            {"printer_id": 1, "copies": 2},
            {"printer_id": printer["id"], "format": "pdf"},  # a printer takes ZPL
        ):
            error(api.post(Role.TECHNICIAN, path, body), 422, "invalid_request")
        error(api.post(Role.ADMIN, path, {"printer_id": printer["id"]}), 403, "forbidden")
    error(api.get(Role.ADMIN, "/printers"), 403, "forbidden")
    error(
        api.post(Role.TECHNICIAN, "/vessels/not-a-code/print", {"printer_id": printer["id"]}),
        422,
        "invalid_code",
    )
    error(
        api.post(Role.TECHNICIAN, "/batches/987654/labels/print", {"printer_id": printer["id"]}),
        404,
        "not_found",
    )
    assert _prints(db) == 0
    assert db.execute(select(func.count()).select_from(PrintJob)).scalar_one() == 0
    assert audit_events(db, AuditAction.LABEL_PRINTED) == []


def test_lbl5_a_reprint_to_a_printer_needs_a_reason_and_queues_nothing_without_one(
    api: Api, db: Session, zebra: FakeZebra, session_factory: SessionFactory
) -> None:
    _, (dose, _) = api.formulated(doses=2)
    printer = _printer(api, zebra.port)
    ok(api.post(Role.TECHNICIAN, f"/vessels/{dose}/print", {"printer_id": printer["id"]}), 201)
    assert printing.send_due(session_factory) == _none(sent=1)
    assert "REPRINT" not in zpl_jobs(zebra.job())[0].texts
    jobs = db.execute(select(func.count()).select_from(PrintJob)).scalar_one()
    refused = api.post(Role.TECHNICIAN, f"/vessels/{dose}/print", {"printer_id": printer["id"]})
    assert dose in error(refused, 422, "reprint_reason_required")
    assert db.execute(select(func.count()).select_from(PrintJob)).scalar_one() == jobs
    assert _prints(db) == 1
    body = {"printer_id": printer["id"], "reason": "label peeled off in the freezer"}
    job = ok(api.post(Role.TECHNICIAN, f"/vessels/{dose}/print", body), 201)
    assert job["labels"][0]["reason"] == "label peeled off in the freezer"
    assert printing.send_due(session_factory) == _none(sent=1)
    assert "REPRINT" in zpl_jobs(zebra.job())[0].texts

"""Network label printers (LBL-3, LBL-4): an admin registers them; a vessel's or a batch's labels
go to the printer's raw TCP port as exactly the ZPL of those labels, logged with the printer; an
unreachable printer is a 503 that logs and audits nothing. The printer here is a real socket."""

import json
import queue
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from app.audit.actions import AuditAction
from app.auth.permissions import Role
from app.labels.models import LabelPrint, LabelPrinter
from tests.helpers import Api, audit_events, error, ok, unique
from tests.labels.support import dots, zpl_jobs


class FakeZebra:
    """A TCP listener on 127.0.0.1 that keeps what each connection sent (one job each)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)
        self.port = self.server.getsockname()[1]
        self.received: queue.Queue[bytes] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                chunks = []
                while chunk := conn.recv(65536):
                    chunks.append(chunk)
                self.received.put(b"".join(chunks))

    def job(self) -> str:
        """The next job received (waits for the sender to close the connection)."""
        return self.received.get(timeout=10).decode("utf-8")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.server.close()


@pytest.fixture
def zebra() -> Iterator[FakeZebra]:
    printer = FakeZebra()
    yield printer
    printer.close()
    assert printer.received.empty(), "a job the test did not look at"


@pytest.fixture
def dead_port() -> int:
    """A local port with nothing listening (bound once, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


def test_lbl3_a_vessel_label_goes_to_the_printer_as_its_zpl(
    api: Api, db: Session, zebra: FakeZebra
) -> None:
    batch, (dose, _) = api.formulated(doses=2)
    printer = _printer(api, zebra.port, dpi=300)
    printed = ok(api.post(Role.TECHNICIAN, f"/vessels/{dose}/print", {"printer_id": printer["id"]}))
    sent = zebra.job()
    assert sent.startswith("^XA") and sent.rstrip().endswith("^XZ")
    (job,) = zpl_jobs(sent)
    assert [data for _, data in job.qr] == [f"MA,{dose}"]
    assert [data for _, data in job.datamatrix] == [f"={batch['din']}00"]
    assert job.width == pytest.approx(dots(100, 300), abs=1)  # at the printer's resolution
    assert "REPRINT" not in job.texts
    (logged,) = printed
    assert logged["vessel_code"] == dose and logged["printer"] == printer["name"]
    assert (logged["format"], logged["dpi"], logged["copy_number"]) == ("zpl", 300, 1)
    (event,) = audit_events(db, AuditAction.LABEL_PRINTED)
    assert json.loads(event.new_values or "{}")["printer"] == printer["name"]
    assert event.scope == batch["coi"]

    # exactly the label's ZPL: the same label downloaded (a reprint) is it plus the REPRINT mark
    download = api.get(
        Role.TECHNICIAN, f"/vessels/{dose}/label", params={"format": "zpl", "dpi": 300}
    )
    assert download.status_code == 200, download.text
    assert "^FDREPRINT^FS" in download.text
    assert _without_reprint_mark(download.text) == sent

    # a second print to the printer is a reprint, marked on the label it prints
    again = ok(api.post(Role.QA, f"/vessels/{dose}/print", {"printer_id": printer["id"]}))
    assert (again[0]["copy_number"], again[0]["reprint"]) == (3, True)
    assert "REPRINT" in zpl_jobs(zebra.job())[0].texts


def test_lbl3_a_batch_goes_to_the_printer_as_the_zpl_of_its_live_vessels(
    api: Api, zebra: FakeZebra
) -> None:
    batch, doses = api.formulated(doses=3)
    printer = _printer(api, zebra.port)
    printed = ok(
        api.post(
            Role.TECHNICIAN, f"/batches/{batch['id']}/labels/print", {"printer_id": printer["id"]}
        )
    )
    sent = zebra.job()
    assert sent.startswith("^XA")
    jobs = zpl_jobs(sent)
    assert len(jobs) == sent.count("^XA") == 3  # the consumed vessels get no new label
    assert [job.qr[0][1] for job in jobs] == [f"MA,{code}" for code in doses]
    assert all(job.datamatrix[0][1] == f"={batch['din']}00" for job in jobs)
    assert all(job.width == pytest.approx(dots(100, 203), abs=1) for job in jobs)
    assert [p["vessel_code"] for p in printed] == doses
    assert {(p["printer"], p["copy_number"], p["dpi"]) for p in printed} == {
        (printer["name"], 1, 203)
    }
    history = ok(api.get(Role.TECHNICIAN, f"/vessels/{doses[1]}/labels"))
    assert [h["printer"] for h in history] == [printer["name"]]
    # the same labels downloaded are reprints; without their mark, byte for byte what was sent
    download = api.get(
        Role.TECHNICIAN, f"/batches/{batch['id']}/labels", params={"format": "zpl", "live": "true"}
    )
    assert download.status_code == 200, download.text
    assert download.headers["X-Label-Reprints"] == "3"
    assert _without_reprint_mark(download.text) == sent
    reconciliation = ok(api.get(Role.QA, f"/batches/{batch['id']}/labels/reconciliation"))
    assert reconciliation["complete"] is True and reconciliation["labels_printed"] == 6


def test_lbl3_an_unreachable_printer_prints_and_logs_nothing(
    api: Api, db: Session, dead_port: int
) -> None:
    batch, (dose, _) = api.formulated(doses=2)
    printer = _printer(api, dead_port)
    before = _prints(db)
    detail = error(
        api.post(Role.TECHNICIAN, f"/vessels/{dose}/print", {"printer_id": printer["id"]}),
        503,
        "printer_unavailable",
    )
    assert printer["name"] in detail
    error(
        api.post(
            Role.TECHNICIAN, f"/batches/{batch['id']}/labels/print", {"printer_id": printer["id"]}
        ),
        503,
        "printer_unavailable",
    )
    assert _prints(db) == before == 0
    assert audit_events(db, AuditAction.LABEL_PRINTED) == []
    assert ok(api.get(Role.TECHNICIAN, f"/vessels/{dose}/labels")) == []
    reconciliation = ok(api.get(Role.QA, f"/batches/{batch['id']}/labels/reconciliation"))
    assert reconciliation["labels_printed"] == 0 and reconciliation["complete"] is False


def test_rel_printing_needs_a_known_printer_and_a_lab_role(
    api: Api, db: Session, dead_port: int
) -> None:
    created = api.batch()
    tube, batch_id = created["tube_code"], created["id"]
    printer = _printer(api, dead_port)
    paths = (f"/vessels/{tube}/print", f"/batches/{batch_id}/labels/print")
    for path in paths:
        error(api.post(Role.TECHNICIAN, path, {"printer_id": 987654}), 404, "not_found")
        for body in ({}, {"printer_id": 0}, {"printer_id": "one"}, {"printer_id": 1, "copies": 2}):
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
    assert audit_events(db, AuditAction.LABEL_PRINTED) == []

"""Plain factories and an API driver that logs in as users of each role."""

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine, event, select, text
from sqlmodel import Session

from app import demo
from app.audit.models import AuditEvent
from app.auth import security
from app.auth import service as auth
from app.auth.models import User, UserRole
from app.auth.permissions import Role
from app.biopsies import service as biopsies
from app.biopsies.schemas import BiopsyCreate, BiopsyReceipt
from app.config import Settings
from app.db import SessionFactory, unit_of_work
from app.errors import HomewardError
from app.gmp_settings import service as gmp_settings
from app.gmp_settings.groups import Group
from app.gmp_settings.models import GmpSetting
from app.gmp_settings.schemas import GmpSettingApprove, GmpSettingPropose
from app.patients import service as patients
from app.patients.schemas import PatientCreate
from app.qualifications import service as qualifications

PASSWORD = "correct-horse-battery"
NEW_PASSWORD = "saffron-quokka-lantern"  # chosen at first sign-in (Api.first_sign_in, SEC-3)
_counter = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}{next(_counter)}"


def make_user(
    session: Session,
    settings: Settings,
    *,
    roles: list[Role],
    username: str | None = None,
    password: str = PASSWORD,
    qualified: bool = True,
    full_name: str = "Test User",
) -> User:
    """A user holding `roles`, qualified (SEC-5) for every duty they can exercise unless not
    `qualified`."""
    user = auth.create_user(
        session,
        settings,
        actor="test",
        username=username or unique(f"{roles[0].value}-"),
        full_name=full_name,
        password=password,
        roles=roles,
    )
    if qualified:
        qualify(session, user)
    session.commit()
    return user


def qualify(session: Session, user: User) -> None:
    """Qualify `user` for every duty their roles can exercise (SEC-5), as QA would record their
    training: from a month ago (so back-dated acts are covered) for a year."""
    now = datetime.now(UTC)
    qualifications.grant_for_roles(
        session,
        actor="test",
        user=user,
        valid_from=now - timedelta(days=30),
        expires_at=now + timedelta(days=365),
        reason="Test builder: training on file.",
    )


def make_legacy_user(
    session: Session, settings: Settings, *, roles: list[Role], password: str = PASSWORD
) -> User:
    """A user written straight into the tables, as an account created before separation of
    duties (SEC-2) was enforced may hold roles that can no longer be given together."""
    user = User(
        username=unique("legacy-"),
        full_name="Legacy User",
        password_hash=security.hash_password(settings, password),
    )
    session.add(user)
    session.flush()
    session.add_all(UserRole(user_id=user.id or 0, role=role.value) for role in roles)
    session.commit()
    return user


def prepare_release_in(session: Session, settings: Settings, batch_id: int) -> None:
    """`Api.prepare_release` through the services, for batches committed for real: a second
    person reviews every critical result in force, a technician prints each dose's label."""
    reviewer = make_user(session, settings, roles=[Role.QA])
    labeller = make_user(session, settings, roles=[Role.TECHNICIAN])
    demo.prepare_release(
        session, settings, batch_id, reviewer=reviewer, password=PASSWORD, labeller=labeller
    )


def approve_gmp_settings(
    session: Session, settings: Settings, group: Group, **values: Any
) -> GmpSetting:
    """A new version of one group of GMP settings (QC-3) with `values` changed, proposed by one
    QA user and approved, e-signed, by another (through the services), and committed."""
    author = make_user(session, settings, roles=[Role.QA])
    approver = make_user(session, settings, roles=[Role.QA])
    draft = gmp_settings.propose(
        session,
        actor=author,
        data=GmpSettingPropose(group=group, values=values, reason="Site validation (test)"),
    )
    approved = gmp_settings.approve(
        session,
        settings,
        actor=approver,
        setting_id=draft.id or 0,
        data=GmpSettingApprove(password=PASSWORD, reason="Approved for the test"),
    )
    session.commit()
    return approved


def audit_events(session: Session, action: str | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.seq)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    return list(session.execute(query).scalars())


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement sent to the database while inside the block (to prove a query count
    does not grow with the data)."""
    sent: list[str] = []

    def count(_conn, _cursor, statement, _parameters, _context, _executemany) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", count)


def ok(response: Response, status: int = 200) -> Any:
    """Assert a response's status; return its JSON body."""
    assert response.status_code == status, response.text
    return response.json()


def error(response: Response, status: int, code: str) -> str:
    """Assert a refusal's status and machine code; return its sentence."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code, body
    assert isinstance(body["detail"], str) and body["detail"], body
    return body["detail"]


def iso(moment: datetime) -> str:
    return moment.isoformat()


def ago(**delta: float) -> str:
    return iso(datetime.now(UTC) - timedelta(**delta))


class Api:
    """Calls the HTTP API as users of given roles; builds patients, biopsies and batches."""

    def __init__(self, client: TestClient, db: Session, settings: Settings) -> None:
        self.client = client
        self.db = db
        self.settings = settings
        self._headers: dict[Role, dict[str, str]] = {}
        self._reviewer: dict[str, str] | None = None

    def login(self, username: str, password: str = PASSWORD) -> Response:
        return self.client.post(
            "/api/v1/auth/token", data={"username": username, "password": password}
        )

    def headers_for(self, user: User, password: str = PASSWORD) -> dict[str, str]:
        response = self.login(user.username, password)
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def first_sign_in(
        self, username: str, password: str, new_password: str = NEW_PASSWORD
    ) -> dict[str, str]:
        """Headers of a user an admin created (POST /users) or reset: they sign in and change
        the password they were given, as a real client must before any other call (SEC-3)."""
        response = self.login(username, password)
        assert response.status_code == 200, response.text
        headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
        body = {"current_password": password, "new_password": new_password}
        changed = self.client.post("/api/v1/auth/password", json=body, headers=headers)
        assert changed.status_code == 204, changed.text
        return headers

    def as_role(self, role: Role) -> dict[str, str]:
        """Headers of a (cached) user holding only `role`."""
        if role not in self._headers:
            user = make_user(self.db, self.settings, roles=[role])
            self._headers[role] = self.headers_for(user)
        return self._headers[role]

    def call(self, role: Role | None, method: str, path: str, **kwargs: Any) -> Response:
        headers = self.as_role(role) if role is not None else {}
        return self.client.request(method, f"/api/v1{path}", headers=headers, **kwargs)

    def post(self, role: Role | None, path: str, json: Any = None, **kwargs: Any) -> Response:
        return self.call(role, "POST", path, json=json, **kwargs)

    def get(self, role: Role | None, path: str, **kwargs: Any) -> Response:
        return self.call(role, "GET", path, **kwargs)

    def print_label(self, code: str, role: Role = Role.TECHNICIAN, **body: Any) -> Response:
        """POST a print of the vessel's label (LBL-5): a PDF unless `body` says otherwise (a
        `format`, a `printer_id`, the `reason` a reprint needs)."""
        return self.post(role, f"/vessels/{code}/print", body)

    # -- builders through the public API -------------------------------------------------------

    def release_lot(self, lot_id: int) -> dict[str, Any]:
        """QA releases a lot received in quarantine (SEC-5): the lot as it now is."""
        body = {"status": "released", "reason": "Certificate of analysis checked."}
        return ok(self.call(Role.QA, "PUT", f"/lots/{lot_id}/status", json=body))

    def qualify_equipment(self, equipment_id: int) -> dict[str, Any]:
        """QA records equipment calibrated and qualified (SEC-5): the equipment as it now is."""
        later = datetime.now(UTC)
        body = {
            "calibration_due_at": iso(later + timedelta(days=180)),
            "qualification_due_at": iso(later + timedelta(days=365)),
            "reason": "Calibration certificate and requalification report on file.",
        }
        return ok(self.call(Role.QA, "PUT", f"/equipment/{equipment_id}/due-dates", json=body))

    def patient(self, **overrides: Any) -> dict[str, Any]:
        body = {
            "mrn": unique("MRN"),
            "family_name": "Rossi",
            "given_name": "Anna",
            "birth_date": "1990-05-17",
            "sex": "female",
        } | overrides
        response = self.post(Role.CLINICIAN, "/patients", body)
        assert response.status_code == 201, response.text
        return response.json()

    def biopsy(self, patient_id: int | None = None) -> dict[str, Any]:
        patient_id = patient_id or self.patient()["id"]
        body = {
            "patient_id": patient_id,
            "collected_at": ago(hours=3),
            "site": "vastus lateralis",
            "mass_mg": 150.5,
        }
        response = self.post(Role.CLINICIAN, "/biopsies", body)
        assert response.status_code == 201, response.text
        return response.json()

    def receive(self, biopsy: dict[str, Any], **overrides: Any) -> Response:
        body = {
            "scanned_code": biopsy["tube_code"],
            "received_at": ago(seconds=0),
            "temperature_c": 4.5,
            "accepted": True,
        } | overrides
        return self.post(Role.TECHNICIAN, f"/biopsies/{biopsy['id']}/receipt", body)

    def received_biopsy(self, patient_id: int | None = None) -> dict[str, Any]:
        biopsy = self.biopsy(patient_id)
        response = self.receive(biopsy)
        assert response.status_code == 200, response.text
        return biopsy

    def step(self, batch_id: int, kind: str, inputs: list[str], outputs=(), **extra: Any):
        """POST a step as a technician; outputs given as kinds or full dicts."""
        body = {
            "kind": kind,
            "inputs": inputs,
            "outputs": [o if isinstance(o, dict) else {"kind": o} for o in outputs],
        } | extra
        return self.post(Role.TECHNICIAN, f"/batches/{batch_id}/steps", body)

    def dose(self, **overrides: Any) -> dict[str, Any]:
        return {
            "kind": "bag",
            "cell_count": 150_000_000,
            "volume_ml": 50.0,
            "expires_at": iso(datetime.now(UTC) + timedelta(days=3)),
        } | overrides

    def expanded_batch(self, patient_id: int | None = None) -> tuple[dict[str, Any], list[str]]:
        """A batch through isolation and one passage: (batch, active flask codes)."""
        batch = self.batch(patient_id)
        isolation = self.step(batch["id"], "isolation", [batch["tube_code"]], ["flask"])
        assert isolation.status_code == 201, isolation.text
        flask = isolation.json()["outputs"][0]["code"]
        passage = self.step(batch["id"], "passage", [flask], ["flask", "flask"])
        assert passage.status_code == 201, passage.text
        return batch, [o["code"] for o in passage.json()["outputs"]]

    def formulated(
        self, patient_id: int | None = None, doses: int = 2
    ) -> tuple[dict[str, Any], list[str]]:
        """A batch harvested and formulated into dose bags, hence in quarantine: (batch, doses)."""
        batch, flasks = self.expanded_batch(patient_id)
        harvest = self.step(batch["id"], "harvest", flasks, ["tube"])
        assert harvest.status_code == 201, harvest.text
        tube = harvest.json()["outputs"][0]["code"]
        formulation = self.step(
            batch["id"], "formulation", [tube], [self.dose() for _ in range(doses)]
        )
        assert formulation.status_code == 201, formulation.text
        return batch, [o["code"] for o in formulation.json()["outputs"]]

    def qc(self, batch_id: int) -> dict[str, Any]:
        response = self.get(Role.TECHNICIAN, f"/batches/{batch_id}/qc")
        assert response.status_code == 200, response.text
        return response.json()

    def result(self, batch_id: int, test: str, value: Any, **extra: Any) -> Response:
        body = {"test": test, "value": value} | extra
        return self.post(Role.TECHNICIAN, f"/batches/{batch_id}/qc-results", body)

    def pass_qc(self, batch_id: int, *, skip: tuple[str, ...] = (), prepare: bool = True) -> None:
        """Enter a passing result for every test of the batch's specification but `skip`; with
        `prepare`, also what the release gate asks beyond results (`prepare_release`)."""
        for row in self.qc(batch_id)["tests"]:
            if row["test"] not in skip and row["outcome"] == "pending":
                response = self.result(batch_id, row["test"], passing_value(row))
                assert response.status_code == 201, response.text
                assert response.json()["outcome"] == "pass", response.text
        if prepare:
            self.prepare_release(batch_id)

    def reviewer(self) -> dict[str, str]:
        """Headers of a (cached) QA person who reviews results and releases nothing."""
        if self._reviewer is None:
            user = make_user(self.db, self.settings, roles=[Role.QA], username=unique("reviewer-"))
            self._reviewer = self.headers_for(user)
        return self._reviewer

    def review(self, result_id: int, headers: dict[str, str] | None = None) -> Response:
        return self.client.post(
            f"/api/v1/qc-results/{result_id}/review",
            json={"password": PASSWORD, "comment": "Second-person check"},
            headers=headers or self.reviewer(),
        )

    def review_critical(self, batch_id: int) -> None:
        """The second person's review of every critical result in force not yet reviewed."""
        for row in self.qc(batch_id)["tests"]:
            if row["critical"] and row["result_id"] is not None and not row["reviewed"]:
                response = self.review(row["result_id"])
                assert response.status_code == 200, response.text

    def label_doses(self, batch_id: int) -> None:
        """Print a label for every dose in use that has none: THE one place tests print dose
        labels (LBL-5: by POST; a GET is a preview)."""
        batch = self.get(Role.TECHNICIAN, f"/batches/{batch_id}").json()
        doses = {v["code"] for v in batch["vessels"] if v["is_dose"]}
        unlabelled = self.get(Role.TECHNICIAN, f"/batches/{batch_id}/labels/reconciliation")
        assert unlabelled.status_code == 200, unlabelled.text
        for code in sorted(doses & set(unlabelled.json()["unlabelled"])):
            response = self.print_label(code, format="zpl", reason="labelled for release")
            assert response.status_code == 200, response.text

    def prepare_release(self, batch_id: int) -> None:
        """What the gate asks besides results (REL-6): critical results reviewed by a second
        person, every dose labelled. A builder of state, so through the services in one
        transaction (the reviews and prints themselves are tested through HTTP by their own
        tests: `review_critical`, `label_doses`)."""
        if not hasattr(self, "_preparers"):
            self._preparers = (
                make_user(self.db, self.settings, roles=[Role.QA]),
                make_user(self.db, self.settings, roles=[Role.TECHNICIAN]),
            )
        reviewer, labeller = self._preparers
        demo.prepare_release(
            self.db,
            self.settings,
            batch_id,
            reviewer=reviewer,
            password=PASSWORD,
            labeller=labeller,
        )
        self.db.commit()

    def decide(self, batch_id: int, decision: str = "release", **extra: Any) -> Response:
        body = {"decision": decision, "password": PASSWORD, "comment": "QA decision"} | extra
        return self.post(Role.QA, f"/batches/{batch_id}/release", body)

    def released(
        self, decision: str = "release", *, doses: int = 2, pending: tuple[str, ...] = ()
    ) -> tuple[dict[str, Any], list[str]]:
        """A batch formulated, tested (but `pending`) and released by QA: (batch, dose codes)."""
        batch, codes = self.formulated(doses=doses)
        self.pass_qc(batch["id"], skip=pending)
        response = self.decide(batch["id"], decision, pending_tests=list(pending))
        assert response.status_code == 200, response.text
        return batch, codes

    def batch(self, patient_id: int | None = None) -> dict[str, Any]:
        biopsy = self.received_biopsy(patient_id)
        response = self.post(Role.TECHNICIAN, "/batches", {"biopsy_id": biopsy["id"]})
        assert response.status_code == 201, response.text
        return response.json() | {"tube_code": biopsy["tube_code"]}


def passing_value(row: dict[str, Any]) -> Any:
    """A value inside a test's limits (from GET /batches/{id}/qc), or its expected answer."""
    if row["expected"] is not None:
        return row["expected"]
    low, high = row["min"], row["max"]
    if low is not None and high is not None:
        return (low + high) / 2
    return low + 1 if low is not None else high / 2


def failing_value(row: dict[str, Any]) -> Any:
    """A value outside a test's limits, or an answer that fails."""
    if row["expected"] is not None:
        failing = [answer for answer, passes in (row.get("answers") or {}).items() if not passes]
        return failing[0] if failing else f"not {row['expected']}"
    return row["max"] * 2 if row["max"] is not None else row["min"] / 2


def race(factory: SessionFactory, action, contenders: int = 2) -> list[object]:
    """Run `action(session)` in parallel transactions; return each result or HomewardError."""
    outcomes: list[object] = []
    start = threading.Barrier(contenders)

    def run() -> None:
        start.wait()
        try:
            with unit_of_work(factory) as session:
                outcomes.append(action(session))
        except HomewardError as exc:
            outcomes.append(exc)
        except BaseException as exc:  # an unexpected error is a failure of the test
            outcomes.append(exc)

    threads = [threading.Thread(target=run) for _ in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def one_winner(outcomes: list[object], loser_code: set[str]) -> None:
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(outcomes) - len(errors) == 1, outcomes
    assert len(errors) == 1 and isinstance(errors[0], HomewardError), errors
    assert errors[0].status == 409 and errors[0].code in loser_code


def committed_biopsy(factory: SessionFactory, settings: Settings, *, received: bool):
    """A patient and biopsy committed for real (for concurrency tests): (technician, biopsy id,
    receipt), the biopsy received when `received`."""
    with unit_of_work(factory) as session:
        clinician = make_user(session, settings, roles=[Role.CLINICIAN])
        tech = make_user(session, settings, roles=[Role.TECHNICIAN])
        patient = patients.register(
            session,
            settings,
            actor=clinician,
            data=PatientCreate(
                mrn=unique("RACE-"),
                family_name="R",
                given_name="C",
                birth_date="1980-01-01",
                sex="male",
            ),
        )
        now = datetime.now(UTC)
        biopsy, tube = biopsies.register(
            session,
            settings,
            actor=clinician,
            data=BiopsyCreate(
                patient_id=patient.id, collected_at=now - timedelta(hours=2), site="x", mass_mg=5
            ),
        )
        receipt = BiopsyReceipt(
            scanned_code=tube.code,
            received_at=now,
            temperature_c=4,
            accepted=True,
        )
        if received:
            biopsies.receive(session, settings, actor=tech, biopsy_id=biopsy.id, data=receipt)
        return tech, biopsy.id, receipt


def drop_append_only(session: Session, table: str) -> None:
    """What someone with rights on the database does before rewriting an append-only table's rows
    (AUD-7 triggers, migrations 0001, 0003, 0011). DDL is transactional on both databases, so the
    test's rollback restores the triggers."""
    if session.get_bind().dialect.name == "sqlite":
        for verb in ("update", "delete"):
            session.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{verb}"))
    else:
        session.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))

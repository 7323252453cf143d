"""Print jobs (LBL-3, ADR 0012): the outbox between a print request and a network printer.

A request writes its print records and one job (the exact ZPL) in its transaction and commits; a
worker (app/notifications/outbox.py) then claims the job, sends it over raw TCP with no
transaction open, and records the attempt in a new one, audited in the patient's chain. A printer
that cannot be reached is tried again with back-off and the job ends `failed` after the last
attempt. A send broken off after the connection was made, or an attempt a stopped server never
finished, ends `failed` at once: the printer may have printed some of the job, and only a person
can see which labels came out. No label is ever printed twice automatically.
"""

import socket
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import event, select
from sqlmodel import Session, col

from app.auth.models import User
from app.biopsies.models import Biopsy
from app.clock import utcnow
from app.db import SessionFactory, unit_of_work
from app.labels.models import LabelPrint, LabelPrinter, PrintAttempt, PrintJob
from app.labels.states import PRINT_JOB_LIFECYCLE, PrintJobStatus
from app.lifecycle import transition
from app.notifications import outbox
from app.notifications.outbox import Retry, claim
from app.patients.models import Patient
from app.vessels.models import Vessel

CONNECT_TIMEOUT_S = 5.0
SEND_TIMEOUT_S = 10.0  # per socket operation: a printer that stops reading for this long
# Longer than one send can take, so a job is never sent by two workers at once.
LEASE = timedelta(seconds=60)
# About ten minutes of retries (5 s, 10 s, ... 320 s): long enough to load paper or power on.
RETRY = Retry(max_attempts=8, backoff_seconds=5.0)
POLL_SECONDS = 5.0  # new jobs wake the worker at once; the poll finds retries and other processes'
ERROR_LENGTH = 500

assert LEASE.total_seconds() > CONNECT_TIMEOUT_S + 2 * SEND_TIMEOUT_S


def queue(session: Session, *, actor: User, printer: LabelPrinter, payload: str) -> PrintJob:
    """A job for `printer` in the current transaction; the printer hears of it after the commit."""
    job = PrintJob(
        printer_id=printer.id or 0,
        payload=payload,
        status=PrintJobStatus.QUEUED.value,
        created_by=actor.id or 0,
    )
    session.add(job)
    session.flush()
    # No commit, no job: the workers are woken only once the job can be seen.
    event.listen(session, "after_commit", _wake_workers, once=True)
    return job


@dataclass(frozen=True)
class Outcome:
    error: str | None  # None: the printer took every byte
    retry: bool  # nothing reached the printer, so trying again cannot print anything twice


# A worker stopped (the server died) during an attempt: whether the printer got the job is unknown.
UNFINISHED = Outcome("outcome unknown: the attempt before was never finished", retry=False)


def transmit(host: str, port: int, payload: bytes) -> Outcome:
    """Send `payload` to a raw TCP printer port (Zebra: 9100), within bounded timeouts."""
    try:
        conn = socket.create_connection((host, port), CONNECT_TIMEOUT_S)
    except OSError as exc:
        return Outcome(_describe("cannot connect", exc), retry=True)
    try:
        with conn:
            conn.settimeout(SEND_TIMEOUT_S)
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)
    except OSError as exc:
        return Outcome(_describe("interrupted while sending", exc), retry=False)
    return Outcome(None, retry=False)


def _describe(what: str, exc: OSError) -> str:
    return f"{what}: {type(exc).__name__}: {exc}"[:ERROR_LENGTH]


def _coi_of_job(session: Session, job_id: int) -> str:
    """The patient of a job's labels (a job holds labels of one batch, hence one patient)."""
    return session.execute(
        select(Patient.coi)
        .join(Biopsy, col(Biopsy.patient_id) == Patient.id)
        .join(Vessel, col(Vessel.biopsy_id) == Biopsy.id)
        .join(LabelPrint, col(LabelPrint.vessel_id) == Vessel.id)
        .where(LabelPrint.print_job_id == job_id)
        .limit(1)
    ).scalar_one()


def _settle(factory: SessionFactory, job_id: int, outcome: Outcome, retry: Retry) -> str:
    """Record one attempt and move the job on, in a transaction of its own."""
    with unit_of_work(factory) as session:
        job = session.get(PrintJob, job_id, with_for_update=True)
        assert job is not None
        now = utcnow()
        job.attempts += 1
        job.sending_since = None
        session.add(PrintAttempt(job_id=job_id, attempted_at=now, error=outcome.error))
        next_attempt = retry.next_attempt(job.attempts, now) if outcome.retry else None
        if outcome.error is None:
            target = PrintJobStatus.SENT
            job.sent_at = now
        elif next_attempt is None:
            target = PrintJobStatus.FAILED
        else:
            target = PrintJobStatus.QUEUED
            job.next_attempt_at = next_attempt
        job.last_error = outcome.error
        transition(
            session,
            PRINT_JOB_LIFECYCLE,
            job,
            target,
            actor="system",
            coi=_coi_of_job(session, job_id),
            label=f"Print job {job_id}",
            extra={
                "attempt": job.attempts,
                "printer_id": job.printer_id,
                "error": outcome.error,
                "next_attempt_at": job.next_attempt_at if target is PrintJobStatus.QUEUED else None,
            },
        )
        return target.value


def send_due(factory: SessionFactory, *, retry: Retry = RETRY, limit: int = 1) -> dict[str, int]:
    """Send the jobs that are due (claimed with a lease, sent with no transaction open); returns
    how many ended in each status."""
    outcome = {status.value: 0 for status in PrintJobStatus}
    unfinished: set[int] = set()

    def start_sending(job: PrintJob, now: datetime) -> None:
        if job.sending_since is not None:
            unfinished.add(job.id or 0)
        job.sending_since = now

    jobs = claim(
        factory,
        PrintJob,
        status=PrintJobStatus.QUEUED,
        limit=limit,
        lease=LEASE,
        on_claim=start_sending,
    )
    if not jobs:
        return outcome
    with factory() as session:
        printers = {
            p.id: p
            for p in session.execute(
                select(LabelPrinter).where(col(LabelPrinter.id).in_({j.printer_id for j in jobs}))
            ).scalars()
        }
    for job in jobs:
        if job.id in unfinished:
            sent = UNFINISHED
        else:
            printer = printers[job.printer_id]
            sent = transmit(printer.host, printer.port, job.payload.encode())
        outcome[_settle(factory, job.id or 0, sent, retry)] += 1
    return outcome


_workers: "weakref.WeakSet[outbox.Worker]" = weakref.WeakSet()


def _wake_workers(_session: Session) -> None:
    for worker in list(_workers):
        worker.wake()


def worker(
    factory: SessionFactory, *, retry: Retry = RETRY, poll_seconds: float = POLL_SECONDS
) -> outbox.Worker:
    """The printer worker of one application (started in its lifespan, closed at shutdown),
    woken by every commit that queues a job."""
    found = outbox.Worker(
        "homeward-printers",
        factory,
        lambda f: sum(send_due(f, retry=retry).values()),
        poll_seconds=poll_seconds,
        join_seconds=CONNECT_TIMEOUT_S + 2 * SEND_TIMEOUT_S,
    )
    _workers.add(found)
    return found

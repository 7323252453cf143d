from datetime import datetime

from sqlalchemy import Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.db import UTCDateTime


class LabelPrint(SQLModel, table=True):
    """One printed label (LBL-4, LBL-5): copy 1 is the original, later copies are reprints, each
    with its reason. Append-only (triggers, AUD-7): a voided label is a `LabelVoid` row."""

    __tablename__ = "label_print"
    __table_args__ = (UniqueConstraint("vessel_id", "copy_number"),)

    id: int | None = Field(default=None, primary_key=True)
    vessel_id: int = Field(foreign_key="vessel.id", index=True)
    batch_id: int | None = Field(default=None, foreign_key="batch.id", index=True)
    copy_number: int
    format: str = Field(max_length=8)
    dpi: int | None = None
    printer_id: int | None = Field(default=None, foreign_key="label_printer.id")
    print_job_id: int | None = Field(default=None, foreign_key="print_job.id", index=True)
    printed_by: int = Field(foreign_key="app_user.id")
    printed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    reason: str | None = Field(default=None, sa_type=Text)  # why it was printed again


class LabelVoid(SQLModel, table=True):
    """A printed label declared void (torn off, misprinted, lost), with who, when and why: at most
    one per print (unique), append-only like the print it names (AUD-7)."""

    __tablename__ = "label_void"

    id: int | None = Field(default=None, primary_key=True)
    label_print_id: int = Field(foreign_key="label_print.id", unique=True)
    reason: str = Field(sa_type=Text)
    voided_by: int = Field(foreign_key="app_user.id")
    voided_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class LabelPrinter(SQLModel, table=True):
    """A network label printer that takes ZPL on a raw TCP port (Zebra: 9100)."""

    __tablename__ = "label_printer"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True)
    host: str = Field(max_length=255)
    port: int = 9100
    dpi: int = 203
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PrintJob(SQLModel, table=True):
    """Labels on their way to a network printer (an outbox, ADR 0012): written with their print
    records in the request's transaction, sent by a worker outside any transaction."""

    __tablename__ = "print_job"

    id: int | None = Field(default=None, primary_key=True)
    printer_id: int = Field(foreign_key="label_printer.id", index=True)
    payload: str = Field(sa_type=Text)  # the ZPL, exactly as the printer receives it
    status: str = Field(max_length=16, index=True)  # PrintJobStatus
    attempts: int = 0
    # When the next attempt is due; while a worker sends, the end of its lease.
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # When the attempt under way began; cleared when its outcome is recorded. Still set at the
    # next claim: the worker stopped mid-send, and the printer may have printed the job.
    sending_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=500)
    created_by: int = Field(foreign_key="app_user.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class PrintAttempt(SQLModel, table=True):
    """Every attempt to send a print job, and what came of it (the job's delivery log)."""

    __tablename__ = "print_attempt"

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="print_job.id", index=True)
    attempted_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    error: str | None = Field(default=None, max_length=500)  # None: sent

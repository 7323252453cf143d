from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from app.types import Id, LongText, ShortText

Dpi = Literal[203, 300, 600]


def typed_int(value: object) -> object:
    """A query string or a page form carries "300"; a Literal of ints does not coerce it by
    itself."""
    return int(value) if isinstance(value, str) and value.isascii() and value.isdigit() else value


QueryDpi = Annotated[Dpi, BeforeValidator(typed_int)]


class LabelFormat(StrEnum):
    SVG = "svg"
    PNG = "png"
    ZPL = "zpl"


class SheetFormat(StrEnum):
    PDF = "pdf"
    ZPL = "zpl"


class PrintFormat(StrEnum):
    """What a print delivers: one label as an image or a PDF page, or ZPL for a Zebra."""

    PDF = "pdf"
    PNG = "png"
    ZPL = "zpl"
    SVG = "svg"


class SheetLayout(StrEnum):
    ROLL = "roll"  # one label a page, at its real size
    A4 = "a4"


Host = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,253})$"),
]


class PrinterCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ShortText
    host: Host
    port: Annotated[int, Field(ge=1, le=65535)] = 9100
    dpi: Dpi = 203


class PrinterPublic(BaseModel):
    id: int
    name: str
    host: str
    port: int
    dpi: int


class _PrintRequest(BaseModel):
    """A print (LBL-5): downloaded as a document, or sent as ZPL to a network printer; a reprint
    says why. Without a format: ZPL for a printer, else PDF."""

    model_config = ConfigDict(extra="forbid")

    printer_id: Id | None = None
    reason: LongText | None = None
    dpi: Dpi | None = None  # a download's resolution; a printer prints at its own

    @property
    def chosen_format(self) -> str:
        chosen = getattr(self, "format", None)
        if chosen is not None:
            return str(chosen)
        return "zpl" if self.printer_id is not None else "pdf"

    @model_validator(mode="after")
    def _printers_take_zpl(self) -> "_PrintRequest":
        if self.printer_id is not None and self.chosen_format != "zpl":
            raise ValueError("a network printer takes ZPL: leave out the format or say zpl")
        return self


class VesselPrintRequest(_PrintRequest):
    format: PrintFormat | None = None


class BatchPrintRequest(_PrintRequest):
    format: SheetFormat | None = None
    layout: SheetLayout = SheetLayout.ROLL


class LabelPrintPublic(BaseModel):
    id: int
    vessel_code: str
    copy_number: int
    reprint: bool
    reason: str | None  # why a reprint was printed
    format: str
    dpi: int | None
    printer: str | None
    print_job_id: int | None  # sent to a printer by this job; None: downloaded
    job_status: str | None  # the job's PrintJobStatus
    printed_by: str
    printed_at: datetime
    voided: bool
    voided_at: datetime | None
    voided_by: str | None
    void_reason: str | None


class PrintAttemptPublic(BaseModel):
    attempted_at: datetime
    error: str | None  # None: the printer took the whole job


class PrintJobPublic(BaseModel):
    """Labels sent (or on their way) to a network printer, with every attempt."""

    id: int
    printer: str
    status: str  # queued, sent, failed
    attempts: list[PrintAttemptPublic]
    last_error: str | None
    next_attempt_at: datetime | None  # while queued
    created_by: str
    created_at: datetime
    sent_at: datetime | None
    labels: list[LabelPrintPublic]


class LabelReconciliation(BaseModel):
    """Labels printed against vessels that exist (LBL-4)."""

    batch_id: int
    vessels: int  # every vessel of the batch
    live_vessels: int  # not consumed, discarded or infused: these must carry a valid label
    labelled: int
    unlabelled: list[str]  # live vessels with no valid label (unvoided, and printed if sent)
    labels_printed: int
    reprints: int
    voided: int
    awaiting_printer: int  # unvoided labels whose print job is still queued
    printer_failed: int  # unvoided labels whose print job failed: never (fully) printed
    labels_of_gone_vessels: int  # valid labels of vessels consumed, discarded or infused
    complete: bool

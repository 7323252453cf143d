"""What a label shows and where (LBL-1, LBL-2, LBL-6), as renderer-neutral items in millimetres.

One layout per label kind; the SVG, PNG, PDF and ZPL renderers draw the same items, so every
format says the same thing. Codes are set in DejaVu Sans Mono with a slash drawn through every
zero, so 0/O and 1/I cannot be confused on any label. What each line is for, and the clause it
answers, is in docs/labels.md (ADR 0020).
"""

from dataclasses import dataclass
from datetime import date, datetime

from app.clock import local, local_text
from app.identity.codes import (
    DIN,
    FlaggedDIN,
    ProductLabel,
    coi_structure,
    container_flags,
    product_code,
)
from app.labels.product import TRIAL_PRODUCT, LabelProduct

# DejaVu Sans Mono advances every glyph by 1233/2048 em.
MONO_ADVANCE = 1233 / 2048
AUTOLOGOUS = "FOR AUTOLOGOUS USE ONLY"  # 21 CFR 1271.90(c)(1); Reg. 1394/2007 Annex III (n)
NOT_EVALUATED = "NOT EVALUATED FOR INFECTIOUS SUBSTANCES"  # 21 CFR 1271.90(c)(2)
HUMAN_ORIGIN = "Contains cells of human origin"  # Reg. 1394/2007 Annex III (b)
CLINICAL_TRIAL = "FOR CLINICAL TRIAL USE ONLY"  # CTR 536/2014 Annex VI


@dataclass(frozen=True, slots=True)
class DoseContent:
    patient_name: str
    birth_date: date
    mrn: str
    coi: str
    expires_at: datetime
    cell_count: int
    volume_ml: float
    batch_number: str = ""
    dose_number: int = 1  # the dose's place in its batch's set: its container flags
    collected_at: datetime | None = None
    product: LabelProduct = TRIAL_PRODUCT


@dataclass(frozen=True, slots=True)
class LabelContent:
    """Everything a label shows. Immutable per vessel (a reprint only adds its mark), hence the
    key of the render cache."""

    code: str
    din: str
    din_check: str
    kind: str
    passage: int
    made_on: date
    reprint: bool = False
    dose: DoseContent | None = None
    zone: str = "UTC"  # the facility's display time zone: every time on a label is local

    @property
    def flagged_din(self) -> FlaggedDIN:
        """Data structure 001 of the label: a dose's DIN carries its container flags."""
        flags = container_flags(self.dose.dose_number) if self.dose else "00"
        return FlaggedDIN(DIN(self.din), flags)

    @property
    def isbt_din(self) -> str:
        return self.flagged_din.structure

    @property
    def product_label(self) -> ProductLabel:
        """What the dose's product Data Matrix carries (ISBT 128 times are wall-clock times)."""
        dose = self.dose
        assert dose is not None
        collected = dose.collected_at
        return ProductLabel(
            self.flagged_din,
            product_code(dose.product.isbt_product_code, dose.dose_number),
            local(dose.expires_at, self.zone).replace(tzinfo=None),
            None if collected is None else local(collected, self.zone).replace(tzinfo=None),
        )

    @property
    def isbt_message(self) -> str:
        """The product Data Matrix: compound message (023) of structures 001, 003, 005, 007."""
        return self.product_label.message

    @property
    def isbt_coi(self) -> str:
        """The COI Data Matrix: data structure 040 (ST-028)."""
        assert self.dose is not None
        return coi_structure(self.dose.coi)

    def local_text(self, moment: datetime) -> str:
        return local_text(moment, self.zone)


@dataclass(frozen=True, slots=True)
class Text:
    x: float  # left edge
    y: float  # baseline
    size: float  # em size
    text: str
    bold: bool = False
    mono: bool = False


@dataclass(frozen=True, slots=True)
class Box:
    x: float
    y: float
    w: float
    h: float
    stroke: float = 0.25


@dataclass(frozen=True, slots=True)
class Line:
    """A stroke; `zero_slash` lines are the slashes of the layout font's zeros (ZPL prints text
    in the printer's own font, where they would not line up, so it leaves them out)."""

    x1: float
    y1: float
    x2: float
    y2: float
    stroke: float
    zero_slash: bool = False


@dataclass(frozen=True, slots=True)
class Symbol:
    kind: str  # "qr" or "datamatrix"
    x: float
    y: float
    size: float  # the square the symbol (with its quiet zone) fills
    payload: str


Item = Text | Box | Line | Symbol


@dataclass(frozen=True, slots=True)
class Label:
    width: float
    height: float
    items: tuple[Item, ...]


def mono_width(text: str, size: float) -> float:
    return len(text) * MONO_ADVANCE * size


MIN_TEXT = 1.8  # mm: below this a printed line is no longer read reliably


def _fitted(
    x: float, y: float, size: float, width: float, text: str, *, bold: bool = False
) -> Text:
    """`text` at the largest size up to `size` that fits `width`, never below MIN_TEXT: what
    still does not fit is cut with an ellipsis."""
    fitted = max(MIN_TEXT, min(size, width / max(1, len(text)) / MONO_ADVANCE))
    room = int(width / (fitted * MONO_ADVANCE))
    shown = text if len(text) <= room else text[: max(room - 1, 1)] + "…"
    return Text(x, y, fitted, shown, bold=bold)


def _mono(x: float, y: float, size: float, text: str, *, bold: bool = True) -> list[Item]:
    """Monospaced text with a slash through each zero."""
    items: list[Item] = [Text(x, y, size, text, bold=bold, mono=True)]
    advance = MONO_ADVANCE * size
    for i, char in enumerate(text):
        if char == "0":
            left = x + i * advance
            items.append(
                Line(
                    left + 0.20 * size,
                    y - 0.10 * size,
                    left + 0.40 * size,
                    y - 0.64 * size,
                    stroke=0.07 * size,
                    zero_slash=True,
                )
            )
    return items


def grouped_din(din: str) -> str:
    """The eye-readable DIN as ISBT 128 prints it: FIN, year, sequence (`A9999 26 000007`)."""
    return f"{din[:5]} {din[5:7]} {din[7:]}"


def _din(x: float, y: float, size: float, content: LabelContent, *, flags: bool) -> list[Item]:
    """`DIN A9999 26 000001 01 [8]`: grouped, the flags smaller, the check character boxed
    (ISBT 128 eye-readable convention, ST-001 §7.5)."""
    label = "DIN "
    items: list[Item] = [Text(x, y, size, label, mono=True)]
    start = x + mono_width(label, size)
    shown = grouped_din(content.din)
    items += _mono(start, y, size, shown, bold=False)
    check_x = start + mono_width(shown + " ", size)
    if flags:
        small = 0.7 * size
        items += _mono(check_x, y, small, content.flagged_din.flags, bold=False)
        check_x += mono_width("00 ", small)
    items += _mono(check_x, y, size, content.din_check)
    pad = 0.15 * size
    items.append(
        Box(check_x - pad, y - 0.85 * size, mono_width("X", size) + 2 * pad, 1.1 * size, 0.2)
    )
    return items


def vessel_label(content: LabelContent) -> Label:
    """50 x 25 mm: QR (the vessel code), code, DIN with boxed check, kind, passage, date."""
    x = 21.5
    items: list[Item] = [Symbol("qr", 0.5, 1.5, 21.0, content.code)]
    items += _mono(x, 5.2, 2.35, content.code)
    items += _din(x, 9.4, 1.85, content, flags=False)
    what = f"{content.kind.replace('_', ' ')} · P{content.passage}"
    items.append(_fitted(x, 13.6, 2.3, 50.0 - x - 0.5, what))
    items += _mono(x, 17.6, 2.1, content.made_on.isoformat(), bold=False)
    if content.reprint:
        items.append(Text(x, 22.0, 2.3, "REPRINT", bold=True))
    return Label(50.0, 25.0, tuple(items))


def dose_label(content: LabelContent) -> Label:
    """100 x 50 mm, for the bag itself: what the rules ask of the immediate container (ADR 0020).
    Left: the QR (vessel code), the code and the product Data Matrix (ISBT 128 compound message);
    right: the patient, the product, the dose, its identity codes, expiry and warnings, and the
    COI Data Matrix (data structure 040). The rest goes on the accompanying document."""
    dose = content.dose
    assert dose is not None
    product = dose.product
    x, right = 28.5, 98.8
    beside_coi = 87.0 - x  # lines level with the COI symbol stop short of it
    width = right - x
    items: list[Item] = [
        Symbol("qr", 0.5, 0.5, 24.5, content.code),
        *_mono(1.2, 26.9, 2.25, content.code),
        _fitted(
            1.2,
            29.6,
            1.9,
            25.5,
            f"{content.kind.replace('_', ' ')} · P{content.passage} · {content.made_on}",
        ),
        Symbol("datamatrix", 2.0, 30.3, 19.5, content.isbt_message),
        Symbol("datamatrix", 87.5, 9.2, 11.5, content.isbt_coi),
        Text(x, 5.0, 3.4, AUTOLOGOUS, bold=True),
        Box(x - 1.0, 1.5, mono_width(AUTOLOGOUS, 3.4) + 2.0, 4.6, 0.4),
    ]
    if product.investigational:
        trial = f"{CLINICAL_TRIAL} · {product.trial_code}"
        items.append(_fitted(x, 8.7, 2.0, width, trial, bold=True))  # above the COI symbol
    items.append(_fitted(x, 12.6, 3.1, beside_coi, dose.patient_name, bold=True))
    born = f"born {dose.birth_date.isoformat()} · MRN {dose.mrn}"
    items.append(_fitted(x, 16.0, 2.3, beside_coi, born))
    items += [Text(x, 19.4, 2.3, "COI "), *_mono(x + mono_width("COI ", 2.3), 19.4, 2.3, dose.coi)]
    items.append(_fitted(x, 22.9, 2.4, width, product.product_name, bold=True))
    lines = [
        f"{HUMAN_ORIGIN} · {product.pharmaceutical_form}",
        f"{product.route_of_administration} · {dose.cell_count:,} viable cells · "
        f"{dose.volume_ml:g} mL",
        f"Store at {product.storage_temperature} · see accompanying document",
    ]
    items += [_fitted(x, 25.9 + 3.0 * i, 2.0, width, line) for i, line in enumerate(lines)]
    items += _din(x, 35.4, 2.6, content, flags=True)
    code = content.product_label.product
    assert code is not None
    batch = f"BATCH {dose.batch_number} · PRODUCT {code.value} · DOSE {dose.dose_number}"
    items.append(_fitted(x, 38.8, 2.2, width, batch))
    items.append(Text(x, 42.4, 3.0, f"EXP {content.local_text(dose.expires_at)}", bold=True))
    items.append(_fitted(x, 45.6, 2.2, width, NOT_EVALUATED, bold=True))
    contact = (
        f"Sponsor: {product.sponsor}"
        if product.investigational
        else f"{product.establishment_name}, {product.establishment_address}"
    )
    items.append(_fitted(x, 48.7, 1.8, width, contact))
    if content.reprint:
        items.append(Text(80.0, 42.4, 3.0, "REPRINT", bold=True))
    return Label(100.0, 50.0, tuple(items))


def layout(content: LabelContent) -> Label:
    return dose_label(content) if content.dose is not None else vessel_label(content)

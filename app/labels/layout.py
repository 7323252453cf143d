"""What a label shows and where (LBL-1, LBL-2), as renderer-neutral items in millimetres.

One layout per label kind; the SVG, PNG, PDF and ZPL renderers draw the same items, so every
format says the same thing. Codes are set in DejaVu Sans Mono with a slash drawn through every
zero, so 0/O and 1/I cannot be confused on any label.
"""

from dataclasses import dataclass
from datetime import date, datetime

# DejaVu Sans Mono advances every glyph by 1233/2048 em.
MONO_ADVANCE = 1233 / 2048
AUTOLOGOUS = "FOR AUTOLOGOUS USE ONLY"


@dataclass(frozen=True, slots=True)
class DoseContent:
    patient_name: str
    birth_date: date
    mrn: str
    coi: str
    expires_at: datetime
    cell_count: int
    volume_ml: float


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

    @property
    def isbt_din(self) -> str:
        """The ISBT 128 DIN data structure (001): `=` + DIN + two flag characters ("00")."""
        return f"={self.din}00"


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


def _din(x: float, y: float, size: float, content: LabelContent) -> list[Item]:
    """`DIN A999926000001 [8]`: the check character boxed (ISBT 128 eye-readable convention)."""
    label = "DIN "
    items: list[Item] = [Text(x, y, size, label, mono=True)]
    start = x + mono_width(label, size)
    items += _mono(start, y, size, content.din, bold=False)
    check_x = start + mono_width(content.din + " ", size)
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
    items += _din(x, 9.4, 1.95, content)
    what = f"{content.kind.replace('_', ' ')} · P{content.passage}"
    items.append(_fitted(x, 13.6, 2.3, 50.0 - x - 0.5, what))
    items += _mono(x, 17.6, 2.1, content.made_on.isoformat(), bold=False)
    if content.reprint:
        items.append(Text(x, 22.0, 2.3, "REPRINT", bold=True))
    return Label(50.0, 25.0, tuple(items))


def dose_label(content: LabelContent) -> Label:
    """100 x 50 mm: the vessel label's facts, the patient, the dose, FOR AUTOLOGOUS USE ONLY and
    an ISBT 128 Data Matrix of the DIN."""
    dose = content.dose
    assert dose is not None
    x = 29.0
    items: list[Item] = [
        Symbol("qr", 1.0, 1.0, 27.0, content.code),
        Symbol("datamatrix", 5.0, 30.0, 18.0, content.isbt_din),
        Text(x, 6.0, 4.2, AUTOLOGOUS, bold=True),
        Box(x - 1.0, 1.6, 68.5, 5.8, 0.4),
    ]
    width = 100.0 - x - 1.5
    items.append(_fitted(x, 12.5, 3.6, width, dose.patient_name, bold=True))
    born = f"born {dose.birth_date.isoformat()} · MRN {dose.mrn}"
    items.append(_fitted(x, 17.0, 2.8, width, born))
    items += [Text(x, 21.5, 2.8, "COI "), *_mono(x + 7.0, 21.5, 2.8, dose.coi)]
    items += _mono(x, 27.0, 3.2, content.code)
    items += _din(x, 32.0, 2.8, content)
    expires = dose.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    items.append(Text(x, 37.0, 2.8, f"EXP {expires}", bold=True))
    items.append(Text(x, 41.5, 2.8, f"{dose.cell_count:,} viable cells · {dose.volume_ml:g} mL"))
    what = f"{content.kind.replace('_', ' ')} · P{content.passage} · {content.made_on}"
    items.append(Text(x, 46.0, 2.4, what))
    if content.reprint:
        items.append(Text(80.0, 46.0, 3.0, "REPRINT", bold=True))
    return Label(100.0, 50.0, tuple(items))


def layout(content: LabelContent) -> Label:
    return dose_label(content) if content.dose is not None else vessel_label(content)

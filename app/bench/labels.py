"""Label rendering figures (DESIGN §12): first PNG renders per second on one core, repeat renders
(served from the cache) per second, and the time of a 200-label batch PDF."""

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime

from app.identity.codes import DIN, VesselCode
from app.labels import pdf, raster
from app.labels.layout import DoseContent, LabelContent, layout

PDF_LABELS = 200


def contents(count: int) -> list[LabelContent]:
    """`count` distinct vessels of one batch; every tenth a dose."""
    din = DIN.build("A9999", 26, 4242)
    dose = DoseContent(
        patient_name="ROSSI, Anna Maria",
        birth_date=date(1990, 5, 17),
        mrn="MRN-100001",
        coi="CHA99992600424200",
        expires_at=datetime(2026, 12, 31, 12, tzinfo=UTC),
        cell_count=150_000_000,
        volume_ml=50.0,
    )
    return [
        LabelContent(
            code=VesselCode.build(din, n).value,
            din=din.value,
            din_check=din.check,
            kind="bag" if n % 10 == 0 else "flask",
            passage=n % 7,
            made_on=date(2026, 11, 29),
            dose=dose if n % 10 == 0 else None,
        )
        for n in range(1, count + 1)
    ]


@dataclass(frozen=True)
class LabelFigures:
    vessels: list[LabelContent]  # the vessel (not dose) labels rendered
    rendered: list[bytes]  # their PNGs, first renders, in the same order
    first_s: float
    cached_s: float
    pdf_s: float
    pdf_bytes: int

    @property
    def png_per_s(self) -> float:
        return len(self.vessels) / self.first_s

    @property
    def cached_per_s(self) -> float:
        return len(self.vessels) / self.cached_s


def measure(count: int, dpi: int = 300) -> LabelFigures:
    """Render `count` labels' vessel labels once, then again from the cache, then a PDF roll."""
    vessels = [c for c in contents(count) if c.dose is None]
    began = time.perf_counter()
    rendered = [raster.render(layout(c), dpi) for c in vessels]
    first = time.perf_counter() - began

    raster.png.cache_clear()
    for c in vessels:
        raster.png(c, dpi)
    began = time.perf_counter()
    for c in vessels:
        raster.png(c, dpi)
    cached = time.perf_counter() - began

    sheet = [layout(c) for c in contents(PDF_LABELS)]
    began = time.perf_counter()
    document = pdf.roll(sheet)
    pdf_seconds = time.perf_counter() - began
    return LabelFigures(vessels, rendered, first, cached, pdf_seconds, len(document))

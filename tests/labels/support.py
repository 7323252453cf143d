"""Reading labels back the way a bench does: scan the symbols (zxing-cpp) of PNG, SVG (rasterised
by resvg) and PDF (rasterised by pdfium), read their text, and take ZPL jobs apart."""

import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import pypdfium2 as pdfium
import resvg_py
import zxingcpp
from PIL import Image

from app.identity.codes import ProductLabel, parse_coi_structure, parse_scan
from app.labels.layout import MONO_ADVANCE
from app.labels.raster import BOLD, REGULAR

SVG_NS = "{http://www.w3.org/2000/svg}"
MM_PER_INCH = 25.4
PT_PER_MM = 72 / MM_PER_INCH
VESSEL_MM = (50.0, 25.0)
DOSE_MM = (100.0, 50.0)


@dataclass(frozen=True)
class Scan:
    qr: list[str]
    datamatrix: list[str]


def scan(image: Image.Image) -> Scan:
    """Every QR code and Data Matrix zxing-cpp finds in `image`."""
    found = zxingcpp.read_barcodes(image.convert("L"))
    return Scan(
        qr=[r.text for r in found if r.format == zxingcpp.BarcodeFormat.QRCode],
        datamatrix=[r.text for r in found if r.format == zxingcpp.BarcodeFormat.DataMatrix],
    )


def png_image(body: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image


def svg_image(svg: str, **options: float) -> Image.Image:
    """The SVG rasterised by resvg with the label fonts (e.g. dpi=300, or dpi=96 and zoom=1.37,
    or a width in pixels)."""
    body = resvg_py.svg_to_bytes(
        svg_string=svg,
        font_files=[str(REGULAR), str(BOLD)],
        skip_system_fonts=True,
        background="#ffffff",
        **options,
    )
    return png_image(body)


def pdf_pages(body: bytes) -> pdfium.PdfDocument:
    assert body.startswith(b"%PDF-"), body[:20]
    return pdfium.PdfDocument(body)


def page_image(page: pdfium.PdfPage, dpi: float = 300) -> Image.Image:
    return page.render(scale=dpi / 72).to_pil()


def page_text(page: pdfium.PdfPage) -> str:
    return page.get_textpage().get_text_range()


def page_size_mm(page: pdfium.PdfPage) -> tuple[float, float]:
    width, height = page.get_size()
    return width / PT_PER_MM, height / PT_PER_MM


def dots(mm: float, dpi: int) -> float:
    return mm * dpi / MM_PER_INCH


# -- SVG ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SvgText:
    x: float
    y: float
    size: float
    text: str
    bold: bool


@dataclass(frozen=True)
class SvgRect:
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class SvgLine:
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class SvgLabel:
    width: str
    height: str
    view_box: str
    texts: list[SvgText]
    rects: list[SvgRect]
    lines: list[SvgLine]

    def strings(self) -> list[str]:
        return [t.text for t in self.texts]

    def text(self, value: str) -> SvgText:
        matches = [t for t in self.texts if t.text == value]
        assert len(matches) == 1, (value, self.strings())
        return matches[0]

    def slashes_in(self, text: SvgText) -> list[int]:
        """Indexes of the characters of `text` (monospaced) that a stroke crosses."""
        advance = MONO_ADVANCE * text.size
        hits = []
        for line in self.lines:
            middle_x = (line.x1 + line.x2) / 2
            middle_y = (line.y1 + line.y2) / 2
            inside_x = text.x <= middle_x <= text.x + len(text.text) * advance
            inside_y = text.y - text.size <= middle_y <= text.y
            if inside_x and inside_y:
                hits.append(int((middle_x - text.x) // advance))
        return sorted(hits)

    def boxes_around(self, text: SvgText) -> list[SvgRect]:
        """Rectangles that enclose the glyph cells of `text` (baseline to cap height)."""
        advance = MONO_ADVANCE * text.size
        right = text.x + len(text.text) * advance
        top = text.y - 0.7 * text.size
        return [
            r
            for r in self.rects
            if r.x <= text.x and r.x + r.w >= right and r.y <= top and r.y + r.h >= text.y
        ]


def parse_svg(svg: str) -> SvgLabel:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG_NS}svg", root.tag
    texts = [
        SvgText(
            float(el.get("x", "nan")),
            float(el.get("y", "nan")),
            float(el.get("font-size", "nan")),
            el.text or "",
            el.get("font-weight") == "bold",
        )
        for el in root.iter(f"{SVG_NS}text")
    ]
    rects = [
        SvgRect(*(float(el.get(a, "nan")) for a in ("x", "y", "width", "height")))
        for el in root.iter(f"{SVG_NS}rect")
        if el.get("width") != "100%"  # the white background
    ]
    lines = [
        SvgLine(*(float(el.get(a, "nan")) for a in ("x1", "y1", "x2", "y2")))
        for el in root.iter(f"{SVG_NS}line")
    ]
    return SvgLabel(
        root.get("width", ""), root.get("height", ""), root.get("viewBox", ""), texts, rects, lines
    )


# -- ZPL ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZplJob:
    source: str
    width: int
    length: int
    qr: list[tuple[int, str]]  # (magnification, field data)
    datamatrix: list[tuple[int, str]]  # (module size, field data)
    texts: list[str]


_FIELD = re.compile(r"\^FO(\d+),(\d+)(\^[A-Z0-9]{2}[^\^]*)(\^FH)?\^FD(.*?)\^FS", re.S)


def unhex(data: str) -> str:
    """A ^FH field: `_hh` is the byte 0xhh (UTF-8 with ^CI28)."""
    raw = re.sub(rb"_([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), data.encode())
    return raw.decode()


def zpl_jobs(zpl: str) -> list[ZplJob]:
    """Each ^XA ... ^XZ label of a ZPL stream, taken apart."""
    jobs = re.findall(r"\^XA.*?\^XZ", zpl, re.S)
    assert "".join(jobs).replace("\n", "") == zpl.replace("\n", ""), "text outside ^XA...^XZ"
    parsed = []
    for job in jobs:
        width = re.findall(r"\^PW(\d+)", job)
        length = re.findall(r"\^LL(\d+)", job)
        assert len(width) == 1 and len(length) == 1, job
        qr, datamatrix, texts = [], [], []
        for _x, _y, command, hexed, data in _FIELD.findall(job):
            value = unhex(data) if hexed else data
            if command.startswith("^BQ"):
                magnification = int(command.split(",")[2])
                qr.append((magnification, value))
            elif command.startswith("^BX"):
                datamatrix.append((int(command.split(",")[1]), value))
            elif command.startswith("^A0"):
                texts.append(value)
        parsed.append(ZplJob(job, int(width[0]), int(length[0]), qr, datamatrix, texts))
    return parsed


# -- ISBT 128 symbols of a dose label ----------------------------------------------------------


def dose_symbols(datamatrix: list[str]) -> tuple[ProductLabel, str]:
    """What a dose label's two Data Matrix symbols say, parsed back by the app's own parsers:
    the product label (compound message) and the COI (data structure 040)."""
    compound = [d for d in datamatrix if d.startswith("=+")]
    coi = [d for d in datamatrix if d.startswith("&/")]
    assert len(datamatrix) == 2 and len(compound) == 1 and len(coi) == 1, datamatrix
    product = parse_scan(compound[0])
    assert isinstance(product, ProductLabel), product
    return product, parse_coi_structure(coi[0])

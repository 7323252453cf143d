"""Benchmark: label rendering (DESIGN §12, issue 5 §4).

Bars: >= 150 PNG labels/s on one core for first renders, every one decoding back exactly; repeat
renders served from the cache; a 200-label batch PDF in under 2 s. Machines are noisy, so a
baseline is measured in the same run: qrcode's own plain PNG of the same payloads (the QR alone,
no label), and the label/baseline ratio is printed beside the absolute figures. Usage:

    .venv/bin/python benchmarks/labels.py [N]
"""

import io
import sys
import time
from datetime import UTC, date, datetime

import qrcode
import zxingcpp
from PIL import Image

from app.identity.codes import DIN, VesselCode
from app.labels import pdf, raster
from app.labels.layout import DoseContent, LabelContent, layout


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


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>8,.0f}/s"


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    labels = contents(count)
    vessels = [c for c in labels if c.dose is None]

    began = time.perf_counter()
    for c in vessels:
        qrcode.make(c.code).save(io.BytesIO(), format="PNG")
    baseline = time.perf_counter() - began

    began = time.perf_counter()
    rendered = [raster.render(layout(c), 300) for c in vessels]
    first = time.perf_counter() - began

    decoded = sum(
        1
        for c, png in zip(vessels, rendered, strict=True)
        if [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))] == [c.code]
    )

    raster.png.cache_clear()
    for c in vessels:
        raster.png(c, 300)
    began = time.perf_counter()
    for c in vessels:
        raster.png(c, 300)
    cached = time.perf_counter() - began

    sheet = contents(200)
    began = time.perf_counter()
    document = pdf.roll([layout(c) for c in sheet])
    pdf_seconds = time.perf_counter() - began

    print(f"vessel labels: {len(vessels)} (PNG, 300 dpi, one core)")
    print(f"baseline qrcode plain PNG   : {rate(len(vessels), baseline)}")
    print(f"label PNG, first render     : {rate(len(vessels), first)}")
    print(f"ratio label/baseline        : {baseline / first:.2f}")
    print(f"label PNG, repeat (cached)  : {rate(len(vessels), cached)}")
    print(f"decoded back exactly        : {decoded}/{len(vessels)}")
    print(f"200-label batch PDF         : {pdf_seconds:.2f} s ({len(document):,} bytes)")
    bars = {
        ">= 150 PNG/s first render": len(vessels) / first >= 150,
        "every label decodes": decoded == len(vessels),
        "cache faster than rendering": cached < first / 10,
        "200-label PDF < 2 s": pdf_seconds < 2.0,
    }
    for bar, met in bars.items():
        print(f"bar {bar:<28}: {'PASS' if met else 'FAIL'}")


if __name__ == "__main__":
    main()

"""Benchmark: label rendering (DESIGN §12, issue 5 §4).

Bars: >= 150 PNG labels/s on one core for first renders, every one decoding back exactly; repeat
renders served from the cache; a 200-label batch PDF in under 2 s. Machines are noisy, so a
baseline is measured in the same run: qrcode's own plain PNG of the same payloads (the QR alone,
no label), and the label/baseline ratio is printed beside the absolute figures. The label figures
are `app.bench.labels.measure`, the ones `homeward bench` reports. Usage:

    .venv/bin/python benchmarks/labels.py [N]
"""

import io
import sys
import time

import qrcode
import zxingcpp
from PIL import Image

from app.bench.labels import PDF_LABELS, contents, measure
from app.bench.report import CACHE_SPEED_UP, LABEL_PDF_200_S, LABEL_PNG_PER_S


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>8,.0f}/s"


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    codes = [c.code for c in contents(count) if c.dose is None]

    began = time.perf_counter()
    for code in codes:
        qrcode.make(code).save(io.BytesIO(), format="PNG")
    baseline = time.perf_counter() - began

    figures = measure(count)
    decoded = sum(
        1
        for c, png in zip(figures.vessels, figures.rendered, strict=True)
        if [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))] == [c.code]
    )

    vessels = len(figures.vessels)
    print(f"vessel labels: {vessels} (PNG, 300 dpi, one core)")
    print(f"baseline qrcode plain PNG   : {rate(vessels, baseline)}")
    print(f"label PNG, first render     : {rate(vessels, figures.first_s)}")
    print(f"ratio label/baseline        : {baseline / figures.first_s:.2f}")
    print(f"label PNG, repeat (cached)  : {rate(vessels, figures.cached_s)}")
    print(f"decoded back exactly        : {decoded}/{vessels}")
    pdf_size = f"{figures.pdf_s:.2f} s ({figures.pdf_bytes:,} bytes)"
    print(f"{PDF_LABELS}-label batch PDF         : {pdf_size}")
    bars = {
        f">= {LABEL_PNG_PER_S:.0f} PNG/s first render": figures.png_per_s >= LABEL_PNG_PER_S,
        "every label decodes": decoded == vessels,
        "cache faster than rendering": figures.cached_s < figures.first_s / CACHE_SPEED_UP,
        f"200-label PDF < {LABEL_PDF_200_S:.0f} s": figures.pdf_s < LABEL_PDF_200_S,
    }
    for bar, met in bars.items():
        print(f"bar {bar:<28}: {'PASS' if met else 'FAIL'}")


if __name__ == "__main__":
    main()

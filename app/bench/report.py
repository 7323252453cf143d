"""The bench's figures against the PERF bars of DESIGN §12: a table for people, JSON for CI."""

from dataclasses import dataclass
from typing import Any

# DESIGN §12 PERF, each bar once (benchmarks/*.py print the same bars from here).
CEILING_SHARE = 0.30  # scan at 32 clients, of the raw-driver ceiling
C32_P99_MS = 100.0
C4_P99_MS = 20.0
AUDIT_COST_RATIO = 0.60  # scan with its audit record, of the same scan without it
OVERLOAD_MAX_WAIT_MS = 5000.0
LABEL_PNG_PER_S = 150.0
CACHE_SPEED_UP = 10.0  # repeat renders at least this many times faster than first renders
LABEL_PDF_200_S = 2.0
AUDIT_VERIFY_PER_S = 100_000.0
# "Flat in time as the database grows": at the large size at most this many times the time at
# the small size (the run is on a noisy machine; linear growth over 100x the data shows as ~100x).
FLAT_GROWTH = 2.0


@dataclass(frozen=True)
class Bar:
    text: str
    met: bool | None  # None: this run could not measure it


def bars(f: dict[str, Any]) -> list[Bar]:
    """Every PERF bar with whether the figures meet it."""
    small, large = f["sizes"]["batches_small"], f["sizes"]["batches_large"]
    return [
        Bar(
            f"scan, 32 clients: >= {CEILING_SHARE:.0%} of the raw-driver ceiling",
            f["scan_ratio_to_ceiling"] >= CEILING_SHARE,
        ),
        Bar(f"scan, 32 clients: p99 <= {C32_P99_MS:.0f} ms", f["scan_c32_p99_ms"] <= C32_P99_MS),
        Bar("scan, 32 clients: no errors", f["scan_c32_errors"] == 0),
        Bar(f"scan, 4 clients: p99 <= {C4_P99_MS:.0f} ms", f["scan_c4_p99_ms"] <= C4_P99_MS),
        Bar(
            f"scan with its audit record >= {AUDIT_COST_RATIO:.0%} of the scan without it",
            f["audit_cost_ratio"] >= AUDIT_COST_RATIO if f["scan_audit_switch_honoured"] else None,
        ),
        Bar("256 clients: every answer 200 or 503", f["scan_c256_errors"] == 0),
        Bar(
            f"256 clients: none waits > {OVERLOAD_MAX_WAIT_MS / 1000:.0f} s",
            f["scan_c256_max_wait_ms"] <= OVERLOAD_MAX_WAIT_MS,
        ),
        Bar(
            "nothing hangs: the server answers again after every load",
            not any(value for key, value in f.items() if key.endswith("_stuck")),
        ),
        Bar(
            f"labels: >= {LABEL_PNG_PER_S:.0f} PNG/s first render, one core",
            f["label_png_per_s"] >= LABEL_PNG_PER_S,
        ),
        Bar(
            f"labels: repeat renders cached (>= {CACHE_SPEED_UP:.0f}x first renders)",
            f["label_png_cached_per_s"] >= CACHE_SPEED_UP * f["label_png_per_s"],
        ),
        Bar(
            f"labels: 200-label PDF < {LABEL_PDF_200_S:.0f} s",
            f["label_pdf_200_s"] < LABEL_PDF_200_S,
        ),
        Bar(
            f"audit verification >= {AUDIT_VERIFY_PER_S:,.0f} events/s",
            f["audit_verify_per_s"] >= AUDIT_VERIFY_PER_S,
        ),
        Bar(
            f"readiness flat from {small} to {large} batches (<= {FLAT_GROWTH:.0f}x)",
            f["readiness_ms_10000"] <= FLAT_GROWTH * f["readiness_ms_100"],
        ),
        Bar(
            f"lineage flat from {small} to {large} batches (<= {FLAT_GROWTH:.0f}x)",
            f["lineage_ms_10000"] <= FLAT_GROWTH * f["lineage_ms_100"],
        ),
    ]


def verdict(met: bool | None) -> str:
    return "n/a" if met is None else "PASS" if met else "FAIL"


def table(f: dict[str, Any]) -> str:
    """The figures and the bars as text, one a line."""
    lines = [f"{'figure':<32} {'value':>14}"]
    for key, value in f.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            shown = str(value)
        elif isinstance(value, int):
            shown = f"{value:,}"
        else:
            shown = f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
        lines.append(f"{key:<32} {shown:>14}")
    lines.append("")
    lines.append("PERF bars (DESIGN §12)")
    lines += [f"  {verdict(bar.met):<4}  {bar.text}" for bar in bars(f)]
    return "\n".join(lines)


def with_bars(f: dict[str, Any]) -> dict[str, Any]:
    """The figures with the bars' verdicts under "bars" (true, false, or null: not measured)."""
    return f | {"bars": {bar.text: bar.met for bar in bars(f)}}

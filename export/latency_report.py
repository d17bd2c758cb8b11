"""The export's Cortex-M4 latency estimate: per bucket graph of the library, instructions per
classify() and ms at 64 MHz (CPI 1.0-1.5), with TFLM + CMSIS-NN kernels and with this
library's own kernels (tflm_embbert.tflm.latency), for export_report.json/.md, the demo's
summary and latency.png beside the report.
"""

from __future__ import annotations

from pathlib import Path

from export import cpp_sources
from tflm_embbert.report import pictures
from tflm_embbert.tflm import latency

PICTURE = "latency.png"
KERNELS = {"tflm": "TFLM + CMSIS-NN", "own": "own kernels"}


def latency_report(model_array: bytes, lengths: list[int], offsets: list[int], own: bool) -> dict:
    """{"buckets": {L: {"tflm": estimate json, "own": ...}}, "library": "own" | "tflm", ...}.
    `own`: the library registers its own kernels (cpp_sources.OWN_KERNELS)."""
    own_ops = frozenset(cpp_sources.OWN_KERNELS)
    plain = latency.estimate_buckets(model_array, lengths, offsets)
    mine = latency.estimate_buckets(model_array, lengths, offsets, own_ops)
    return {
        "clock_hz": latency.CLOCK_HZ,
        "cpi": list(latency.CPIS),
        "library": "own" if own else "tflm",
        "own_ops": sorted(own_ops),
        "buckets": {
            str(length): {"tflm": plain[length].to_json(), "own": mine[length].to_json()}
            for length in lengths
        },
        "method": (
            "estimate (tflm_embbert/tflm/latency.py): per-op unit costs x each op's work from "
            "the .tflite's shapes; TFLM + CMSIS-NN costs measured on real TFLM under QEMU's "
            "Cortex-M4, own kernels measured by bench/m4_kernels.py; ms = instructions x CPI / "
            "64 MHz. Per Invoke: a bucket switch (~1.35 M) and the tokenizer come on top."
        ),
    }


def library_ms(report: dict) -> dict[str, str]:
    """{bucket L: "<M> M instructions, <ms>-<ms> ms"} for the kernels the library registers."""
    kernels = report["library"]
    out = {}
    for length, both in report["buckets"].items():
        est = both[kernels]
        ms = " - ".join(f"{v:,.0f}" for v in est["ms"].values())
        out[length] = f"{est['instructions'] / 1e6:.2f} M instructions, {ms} ms"
    return out


def latency_markdown(report: dict | None) -> list[str]:
    """The report's latency section (lines); [] for a report without one."""
    if not report:
        return []
    cpis = " / ".join(f"{c:g}" for c in report["cpi"])
    library = KERNELS[report["library"]]
    rows = []
    for length, both in report["buckets"].items():
        for kernels in ("tflm", "own"):
            est = both[kernels]
            top = ", ".join(
                f"{op} {100 * v / est['instructions']:.0f}%"
                for op, v in list(est["by_op"].items())[:3]
            )
            mark = " (this library)" if kernels == report["library"] else ""
            ms = " / ".join(f"{v:,.0f}" for v in est["ms"].values())
            rows.append(
                f"| {length} | {KERNELS[kernels]}{mark} | {est['instructions'] / 1e6:.2f} M | "
                f"{ms} | {top} |"
            )
    own = ", ".join(report["own_ops"])
    return [
        "## Latency on the Cortex-M4 (estimate)",
        "",
        f"Instructions per classify() (one Invoke of the bucket's graph) and ms at "
        f"{report['clock_hz'] / 1e6:g} MHz for CPI {cpis}. This library runs {library}"
        + (
            f": it registers its own kernels for {own}."
            if report["library"] == "own"
            else f"; with --tflm=tflm_tree it would register its own kernels for {own}."
        ),
        f"Method: {report['method']}",
        "",
        f"![Cortex-M4 instructions per classify()]({PICTURE})",
        "",
        f"| bucket L | kernels | instructions | ms, CPI {cpis} | largest ops |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]


def latency_picture(report: dict, path: Path) -> Path:
    bars = {
        f"L={length}, {KERNELS[kernels]}": both[kernels]["by_op"]
        for length, both in report["buckets"].items()
        for kernels in ("tflm", "own")
    }
    return pictures.latency_png(path, bars, "Cortex-M4 instructions per classify(), per bucket")

"""Cortex-M4 latency estimate per bucket of exported libraries, with TFLM + CMSIS-NN kernels and
with the library's own kernels, against issue 19's targets.

    python bench/m4_latency.py --exports runs/demo/arduino,runs/l256

Each --exports folder is an export_tflite output (model.tflite: the bucket model array;
export_report.json: its bucket lengths and offsets). Per bucket graph: the estimate of
tflm_embbert/tflm/latency.py (instructions per classify(), ms at 64 MHz for CPI 1.0 / 1.5), the
share of each op, and, with the own kernels, what remains by op. Writes
bench/results/m4_latency/results.json + results.md.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from absl import app, flags  # noqa: E402

from bench.common import machine, markdown_table, write_json  # noqa: E402
from export.cpp_sources import OWN_KERNELS  # noqa: E402
from tflm_embbert.common.files import write_text_atomic  # noqa: E402
from tflm_embbert.tflm import latency  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("exports", None, "export_tflite output folders (model.tflite + report).")
flags.DEFINE_string("out", "bench/results/m4_latency", "Result folder.")

# Issue 19: instructions per classify() on the Cortex-M4 (real TFLM + CMSIS-NN under QEMU).
TARGETS = {16: 6.4e6, 32: 12.8e6, 256: 200e6}
MEASURED_BEFORE = {16: "13.85-13.97 M", 32: "28.3-28.9 M", 256: "402-422 M"}


def read_export(folder: Path) -> dict:
    model, report = folder / "model.tflite", folder / "export_report.json"
    for path in (model, report):
        if not path.is_file():
            raise SystemExit(f"m4_latency: {path}: not found (an export_tflite output expected)")
    data = model.read_bytes()
    info = json.loads(report.read_text())
    buckets = info.get("length_buckets") or {}
    if buckets.get("enabled"):
        lengths = [b["length"] for b in buckets["buckets"]]
        offsets = [b["offset"] for b in buckets["buckets"]]
    else:
        lengths, offsets = [info["seq_len"]], [0]
    return {
        "folder": str(folder),
        "name": info["name"],
        "seq_len": info["seq_len"],
        "model_sha256": hashlib.sha256(data).hexdigest(),
        "data": data,
        "lengths": lengths,
        "offsets": offsets,
    }


def estimate(export: dict, own_costs: dict) -> dict:
    own_ops = frozenset(OWN_KERNELS)
    plain = latency.estimate_buckets(export["data"], export["lengths"], export["offsets"])
    mine = latency.estimate_buckets(
        export["data"], export["lengths"], export["offsets"], own_ops, own_costs
    )
    out = {}
    for length in export["lengths"]:
        target = TARGETS.get(length) if length in TARGETS else None
        out[str(length)] = {
            "tflm": plain[length].to_json(),
            "own": mine[length].to_json(),
            "own_kernel_ops": sorted(
                {c.op for c in mine[length].ops if c.kernel == "own"}, key=str
            ),
            "target": target,
            "own_meets_target": None if target is None else mine[length].instructions <= target,
        }
    return out


def main(argv):
    del argv
    if not FLAGS.exports:
        raise app.UsageError("--exports: give at least one export_tflite output folder")
    own_costs = latency.load_own_kernel_costs()
    exports = [read_export(Path(folder)) for folder in FLAGS.exports]
    results = {
        "machine": machine(),
        "own_kernels": sorted(OWN_KERNELS),
        "own_costs": str(latency.OWN_KERNEL_COSTS_FILE.relative_to(latency.REPO_ROOT)),
        "clock_hz": latency.CLOCK_HZ,
        "cpi": list(latency.CPIS),
        "targets": {str(k): v for k, v in TARGETS.items()},
        "exports": [
            {**{k: v for k, v in e.items() if k != "data"}, "buckets": estimate(e, own_costs)}
            for e in exports
        ],
    }
    out = Path(FLAGS.out)
    write_json(out / "results.json", results)
    write_text_atomic(out / "results.md", markdown(results))
    print((out / "results.md").read_text())


def _ms(est: dict) -> str:
    return " / ".join(f"{v:,.0f}" for v in est["ms"].values())


def markdown(results: dict) -> str:
    cpis = " / ".join(f"{c:g}" for c in results["cpi"])
    lines = [
        "# Cortex-M4 latency estimate per bucket: TFLM + CMSIS-NN vs the library's own kernels",
        "",
        "Estimate of tflm_embbert/tflm/latency.py: per-op unit costs (TFLM + CMSIS-NN: measured "
        "on real TFLM under QEMU's Cortex-M4; own kernels: bench/m4_kernels.py, "
        f"{results['own_costs']}) x each op's work from the bucket graph's shapes. Instructions "
        f"per classify() (one Invoke), ms at 64 MHz for CPI {cpis}. Own kernels: "
        f"{', '.join(results['own_kernels'])}. Targets: issue 19 (instructions measured per "
        "classify() on real TFLM + CMSIS-NN under QEMU). Code "
        f"{results['machine']['code']}, {results['machine']['date']}.",
        "",
    ]
    for export in results["exports"]:
        lines += [
            f"## {export['name']} (L={export['seq_len']}): {export['folder']}",
            "",
            f"model.tflite sha256 `{export['model_sha256'][:16]}...`",
            "",
        ]
        rows = []
        for length, b in export["buckets"].items():
            target = b["target"]
            rows.append(
                [
                    length,
                    MEASURED_BEFORE.get(int(length), ""),
                    f"{b['tflm']['instructions'] / 1e6:.2f} M ({_ms(b['tflm'])} ms)",
                    f"{b['own']['instructions'] / 1e6:.2f} M ({_ms(b['own'])} ms)",
                    f"{b['tflm']['instructions'] / b['own']['instructions']:.2f}x",
                    f"{target / 1e6:g} M: {'met' if b['own_meets_target'] else 'NOT met'}"
                    if target
                    else "",
                ]
            )
        header = [
            "bucket L",
            "measured before (TFLM + CMSIS-NN, notes)",
            f"estimate TFLM + CMSIS-NN (ms, CPI {cpis})",
            "estimate own kernels",
            "speed-up",
            "target",
        ]
        lines.append(markdown_table(header, rows))
        lines += ["With the own kernels, by op (share of the bucket's instructions):", ""]
        rows = []
        for length, b in export["buckets"].items():
            total = b["own"]["instructions"]
            rows.append(
                [
                    length,
                    ", ".join(
                        f"{op} {v / 1e6:.2f} M ({100 * v / total:.0f}%)"
                        for op, v in list(b["own"]["by_op"].items())[:6]
                    ),
                ]
            )
        lines.append(markdown_table(["bucket L", "largest ops"], rows))
    return "\n".join(lines)


if __name__ == "__main__":
    app.run(main)

"""Cortex-M4 instruction counts of the library's own kernel cores (arduino/src), measured under
QEMU, and the linear cost models the latency estimate uses (tflm_embbert/tflm/latency.py).

    python bench/m4_kernels.py                    # shapes of the shipped backbone, L 16..256

Method: the cores (embbert_lut.h's table lookup for LOGISTIC; embbert_int8_ops.cpp's ADD / SUB /
MUL, MEAN, SOFTMAX and depthwise conv; embbert_int8_matmul.cpp's FULLY_CONNECTED, BATCH_MATMUL) are
cross-compiled with Debian's arm-none-eabi-gcc (-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -O2)
into a bare-metal harness (bench/m4/: start-up, linker script, counter, driver; no TFLM) and
run on qemu-system-arm's mps2-an386 with `-icount shift=0`: every executed instruction advances
the virtual clock by exactly 1 ns, and SysTick, clocked from the processor clock, is read around
each call, so instructions = ticks x (ns per tick). The ratio is calibrated in the same run on a
loop of known length (2 instructions per iteration). Each case is called enough times for a span
of ~200k ticks.

Cases: every shape the shipped backbone's bucket graphs give each kernel (d = hidden_dim,
k = kernel_size, L = --lengths, plus the [CLS]-only last layer's single row), and a few more
shapes so each cost family's features vary independently. Per family a least-squares fit (of
the relative error) of instructions per call on its features (latency.own_kernel_work) is written to
bench/results/m4_kernels/results.json and to tflm_embbert/assets/m4_kernel_costs.json (what
the estimate reads), with the largest relative residual over the measured cases.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from absl import app, flags  # noqa: E402

from bench.common import machine, markdown_table, write_json  # noqa: E402
from tflm_embbert.common import paths  # noqa: E402
from tflm_embbert.common.files import write_text_atomic  # noqa: E402
from tflm_embbert.tflm import latency  # noqa: E402

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The CLI's flags, defined only when run as a script, so tests can import measure() beside
    other bench modules that define flags of the same names."""
    flags.DEFINE_list("lengths", ["16", "32", "64", "128", "256"], "Sequence lengths (buckets).")
    flags.DEFINE_string("out", "bench/results/m4_kernels", "Result folder.")
    flags.DEFINE_string(
        "costs_file",
        str(latency.OWN_KERNEL_COSTS_FILE),
        "Where the fitted cost models go (the file the latency estimate reads); '' to skip.",
    )
    flags.DEFINE_string("cxx", "arm-none-eabi-g++", "Cross compiler (C++).")
    flags.DEFINE_string("cc", "arm-none-eabi-gcc", "Cross compiler (C).")
    flags.DEFINE_string("qemu", "qemu-system-arm", "QEMU system emulator for Arm.")
    flags.DEFINE_integer("timeout", 600, "Seconds the QEMU run may take.")


HARNESS_DIR = Path(__file__).resolve().parent / "m4"
SRC_DIR = paths.REPO_ROOT / "arduino" / "src"
ARCH_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2"]
CXX_FLAGS = ["-std=gnu++17", "-fno-exceptions", "-fno-rtti", "-Wall", "-Wextra"]
QEMU_ARGS = [
    "-M", "mps2-an386", "-cpu", "cortex-m4", "-nographic", "-monitor", "none", "-serial",
    "none", "-semihosting-config", "enable=on,target=native", "-icount", "shift=0",
]  # fmt: skip
FEATURES = {
    "LOGISTIC": ["calls", "elements"],
    "MEAN": ["calls", "rows", "elements"],
    "SOFTMAX": ["calls", "rows", "elements"],
    "DEPTHWISE_CONV_2D": ["calls", "scanned", "outputs", "macs"],
    "FULLY_CONNECTED": ["calls", "groups", "dots", "macs4", "tail_blocks", "tail_macs", "outputs"],
    "BATCH_MATMUL": [
        "calls",
        "batches",
        "sums",
        "groups",
        "dots",
        "macs4",
        "tail_blocks",
        "tail_macs",
        "outputs",
    ],  # fmt: skip
}
BINARY_OPS = {"ADD": "kAdd", "SUB": "kSub", "MUL": "kMul"}


def features_of(family: str) -> list[str]:
    return FEATURES.get(family.split("/")[0], ["calls", "rows", "elements"])


def shipped_dims() -> tuple[int, int]:
    config = json.loads((paths.SHIPPED_BACKBONE_DIR / "backbone_config.json").read_text())
    return int(config["hidden_dim"]), int(config["kernel_size"])


def _dims(shape) -> str:
    return f"{len(shape)}, DIMS({', '.join(str(d) for d in shape) or '1'})"


def cases(lengths: list[int], hidden: int, kernel: int) -> list[dict]:
    """[{name, op, inputs (shapes), output, macro}] for the harness's cases.inc."""
    out = []

    def add(op, inputs, output, macro):
        name = f"{op}:" + "x".join("(" + ",".join(map(str, s)) + ")" for s in inputs)
        family, work = latency.own_kernel_work(op, inputs, output)
        out.append(
            {"name": name, "op": op, "family": family, "work": work, "inputs": inputs,
             "output": output, "macro": macro.replace("@", f'"{name}"')}
        )  # fmt: skip

    def add_depthwise(rows, channels, k):  # a causal conv over rows + k - 1 padded positions
        width = rows + k - 1
        add(
            "DEPTHWISE_CONV_2D",
            [(1, 1, width, channels), (1, 1, k, channels)],
            (1, 1, rows, channels),
            f"DEPTHWISE(@, {width}, {rows}, {channels}, {k}, {k - 1})",
        )

    rows_list = sorted({1, *lengths})
    for rows in rows_list:
        shape = (1, rows, hidden)
        add("LOGISTIC", [shape], shape, f"LOGISTIC(@, {rows * hidden})")
        for depth in sorted({hidden, hidden // 2}):
            add("MEAN", [(1, rows, depth)], (1, rows, 1), f"MEAN(@, {rows}, {depth})")
        add("SOFTMAX", [(1, rows, rows)], (1, rows, rows), f"SOFTMAX(@, {rows}, {rows})")
        if rows > 1:
            add("SOFTMAX", [(1, 1, rows)], (1, 1, rows), f"SOFTMAX(@, 1, {rows})")
            add_depthwise(rows, hidden, kernel)
    # the [CLS]-only last layer (one position over k rows, k - 1 of them padding), and other
    # channel counts and kernel sizes so scanned values, outputs and MACs vary independently
    conv_shapes = [(1, hidden, kernel)]
    conv_shapes += [
        (rows, c, k)
        for rows in lengths[:2]
        for c, k in ((hidden // 2, kernel), (hidden, kernel // 2), (hidden // 4, kernel // 4))
    ]
    for rows, channels, k in conv_shapes:
        add_depthwise(rows, channels, k)
    # FULLY_CONNECTED: the graphs' Dense layers (L rows or the [CLS] row, hidden -> hidden, the
    # 16-wide embedding projection, the label head) and shapes with leftover rows and depths
    fc_shapes = [(rows, hidden, hidden) for rows in rows_list] + [(lengths[0], 16, hidden)]
    fc_shapes += [(1, hidden, 7), (3, 64, 32), (6, 128, 64), (5, 40, 10), (9, 130, 12),
                  (8, 32, 96), (2, 256, 16), (4, 256, 8), (12, 8, 64), (1, 16, 40), (3, 12, 3),
                  (20, 64, 24)]  # fmt: skip
    for rows, depth, channels in fc_shapes:
        add(
            "FULLY_CONNECTED",
            [(1, rows, depth), (channels, depth)],
            (1, rows, channels),
            f"FC(@, {rows}, {depth}, {channels})",
        )
    # BATCH_MATMUL: attention scores (L x d by L x d), probabilities x values (L x L by d x L),
    # the [CLS] row, the chunked L=256 attention (64-row chunks), odd shapes
    bmm_shapes = []
    for rows in lengths:
        bmm_shapes += [(1, rows, hidden, rows), (1, rows, rows, hidden), (1, 1, hidden, rows),
                       (1, 1, rows, hidden)]  # fmt: skip
    bmm_shapes += [(1, 64, hidden, 256), (1, 64, 256, hidden), (2, 7, 10, 5), (3, 5, 9, 6),
                   (2, 12, 40, 20), (1, 4, 12, 3), (4, 8, 16, 8)]  # fmt: skip
    for batches, rows, depth, cols in bmm_shapes:
        add(
            "BATCH_MATMUL",
            [(batches, rows, depth), (batches, cols, depth)],
            (batches, rows, cols),
            f"BMM(@, {batches}, {rows}, {depth}, {cols})",
        )
    for op, code in BINARY_OPS.items():
        for rows in rows_list:
            pairs = [
                ((1, rows, hidden), (1, rows, hidden)),  # same shape
                ((1, rows, hidden), (hidden,)),  # a per-channel vector
                ((1, rows, hidden), (1, rows, 1)),  # a per-row scalar (RMSNorm)
                ((1, rows, 1), ()),  # a scalar (epsilon)
                ((1, rows, rows), (1, 1, rows)),  # the attention mask over keys
            ]
            for a, b in pairs:
                padded = (1,) * (len(a) - len(b)) + b
                output = tuple(max(x, y) for x, y in zip(a, padded, strict=True))
                add(op, [a, b], output, f"BINARY(@, {code}, {_dims(a)}, {_dims(b)})")
    return out


@dataclass(frozen=True)
class Tools:
    cxx: str = "arm-none-eabi-g++"
    cc: str = "arm-none-eabi-gcc"
    qemu: str = "qemu-system-arm"
    timeout: int = 600

    def missing(self) -> list[str]:
        return [tool for tool in (self.cxx, self.cc, self.qemu) if shutil.which(tool) is None]


def build(work: Path, case_list: list[dict], tools: Tools) -> Path:
    for tool in (tools.cxx, tools.cc):
        if shutil.which(tool) is None:
            raise SystemExit(
                f"m4_kernels: {tool} not found (Debian: apt-get install gcc-arm-none-eabi "
                f"libnewlib-arm-none-eabi)"
            )
    (work / "cases.inc").write_text("".join(c["macro"] + ";\n" for c in case_list))
    include = ["-I", str(work), "-I", str(HARNESS_DIR), "-I", str(SRC_DIR)]
    objects = []
    for source, compiler, extra in (
        (HARNESS_DIR / "kernels_bench.cpp", tools.cxx, CXX_FLAGS),
        (SRC_DIR / "embbert_int8_ops.cpp", tools.cxx, CXX_FLAGS),
        (SRC_DIR / "embbert_int8_matmul.cpp", tools.cxx, CXX_FLAGS),
        (SRC_DIR / "embbert_int8_conv.cpp", tools.cxx, CXX_FLAGS),
        (HARNESS_DIR / "startup.c", tools.cc, ["-std=c11"]),
    ):
        obj = work / (source.stem + ".o")
        _run([compiler, *ARCH_FLAGS, *extra, *include, "-c", str(source), "-o", str(obj)])
        objects.append(str(obj))
    elf = work / "kernels_bench.elf"
    _run(
        [tools.cxx, *ARCH_FLAGS, "-T", str(HARNESS_DIR / "link.ld"), "-nostartfiles",
         "--specs=rdimon.specs", *objects, "-lm", "-o", str(elf)]
    )  # fmt: skip
    return elf


def _run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"m4_kernels: {Path(command[0]).name} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def run_qemu(elf: Path, tools: Tools) -> str:
    if shutil.which(tools.qemu) is None:
        raise SystemExit(
            f"m4_kernels: {tools.qemu} not found (Debian: apt-get install qemu-system-arm)"
        )
    done = subprocess.run(
        [tools.qemu, *QEMU_ARGS, "-kernel", str(elf)],
        capture_output=True,
        text=True,
        timeout=tools.timeout,
    )
    if done.returncode or "done" not in done.stdout.split():
        raise SystemExit(f"m4_kernels: the QEMU run failed:\n{done.stdout[-2000:]}{done.stderr}")
    return done.stdout


def parse(stdout: str) -> tuple[float, float, dict]:
    """(instructions per tick, empty-call ticks per call, {case: (calls, ticks)})."""
    calibration, measured, empty = [], {}, None
    for line in stdout.splitlines():
        parts = line.split()
        if parts[:1] == ["calibration"]:
            calibration.append((int(parts[1]), int(parts[2])))
        elif parts[:1] == ["empty"]:
            empty = int(parts[2]) / int(parts[1])
        elif parts[:1] == ["case"]:
            measured[parts[1]] = (int(parts[2]), int(parts[3]))
        elif parts[:1] == ["error"]:
            raise SystemExit(f"m4_kernels: harness: {line}")
    if len(calibration) != 2 or empty is None:
        raise SystemExit("m4_kernels: the harness printed no calibration lines")
    (n1, t1), (n2, t2) = calibration
    return 2.0 * (n2 - n1) / (t2 - t1), empty, measured


def fit(case_list: list[dict]) -> dict:
    import numpy as np

    models = {}
    for family in sorted({c["family"] for c in case_list}):
        members = [c for c in case_list if c["family"] == family]
        names = features_of(family)
        x = np.array([[c["work"][f] for f in names] for c in members], np.float64)
        y = np.array([c["instructions"] for c in members], np.float64)
        # least relative error: each case weighs 1/instructions, so short calls fit too
        coef, *_ = np.linalg.lstsq(x / y[:, None], np.ones_like(y), rcond=None)
        error = np.abs(x @ coef - y)
        residual = error / y
        models[family] = {
            "features": names,
            "coefficients": {f: round(float(v), 4) for f, v in zip(names, coef, strict=True)},
            "cases": len(members),
            "rank": int(np.linalg.matrix_rank(x)),
            "max_rel_residual": round(float(residual.max()), 4),
            "max_abs_residual": round(float(error.max()), 1),
        }
    return models


def tool_version(tool: str) -> str:
    done = subprocess.run([tool, "--version"], capture_output=True, text=True)
    return done.stdout.splitlines()[0] if done.returncode == 0 and done.stdout else "unknown"


def measure(case_list: list[dict], tools: Tools = Tools()) -> float:
    """Builds and runs the harness on `case_list`, adding each case's "instructions" per call
    (and calls, ticks, per_output_element); returns the calibrated instructions per tick."""
    with tempfile.TemporaryDirectory(prefix="m4_kernels_") as tmp:
        elf = build(Path(tmp), case_list, tools)
        per_tick, empty, measured = parse(run_qemu(elf, tools))
    for case in case_list:
        calls, ticks = measured[case["name"]]
        case["calls"], case["ticks"] = calls, ticks
        case["instructions"] = round((ticks - empty * calls) * per_tick / calls, 1)
        elements = latency._size(case["output"])
        case["per_output_element"] = round(case["instructions"] / elements, 3)
    return per_tick


def main(argv):
    del argv
    lengths = sorted({int(v) for v in FLAGS.lengths})
    hidden, kernel = shipped_dims()
    case_list = cases(lengths, hidden, kernel)
    tools = Tools(FLAGS.cxx, FLAGS.cc, FLAGS.qemu, FLAGS.timeout)
    per_tick = measure(case_list, tools)
    models = fit(case_list)
    meta = {
        "method": re.sub(r"\s+", " ", __doc__.split("Method: ")[1].split("\n\n")[0]).strip(),
        "compiler": tool_version(tools.cxx),
        "flags": " ".join(ARCH_FLAGS),
        "qemu": tool_version(tools.qemu),
        "qemu_args": " ".join(QEMU_ARGS),
        "instructions_per_tick": round(per_tick, 4),
        "shapes": {"hidden_dim": hidden, "kernel_size": kernel, "lengths": lengths},
        "machine": machine(),
    }
    out = Path(FLAGS.out)
    drop = ("macro",)
    write_json(
        out / "results.json",
        {**meta, "models": models, "cases": [{k: v for k, v in c.items() if k not in drop}
                                             for c in case_list]},
    )  # fmt: skip
    write_text_atomic(out / "results.md", markdown(meta, models, case_list))
    if FLAGS.costs_file:
        write_json(Path(FLAGS.costs_file), {**meta, "models": models})
    print((out / "results.md").read_text())


def markdown(meta: dict, models: dict, case_list: list[dict]) -> str:
    lines = [
        "# Own kernel cores on the Cortex-M4 (QEMU instruction counts)",
        "",
        f"{meta['method']}",
        "",
        f"Compiler: {meta['compiler']}, `{meta['flags']}`. QEMU: {meta['qemu']}, "
        f"`{meta['qemu_args']}`; {meta['instructions_per_tick']:g} instructions per SysTick "
        f"tick (calibrated). Code {meta['machine']['code']}, {meta['machine']['date']}.",
        "",
        "## Cost models (instructions per call = sum of coefficient x feature)",
        "",
    ]
    rows = [
        [family, m["cases"], ", ".join(f"{f} {v:g}" for f, v in m["coefficients"].items()),
         f"{100 * m['max_rel_residual']:.1f}% ({m['max_abs_residual']:,.0f} instructions)"]
        for family, m in models.items()
    ]  # fmt: skip
    lines.append(markdown_table(["family", "cases", "coefficients", "max residual"], rows))
    lines += ["## Measured cases", ""]
    rows = [
        [c["name"], c["family"], f"{c['instructions']:,.0f}", f"{c['per_output_element']:.2f}",
         ", ".join(f"{k} {v:,}" for k, v in c["work"].items() if k != "calls")]
        for c in case_list
    ]  # fmt: skip
    header = ["case (input shapes)", "family", "instructions per call", "per output element",
              "work"]  # fmt: skip
    lines.append(markdown_table(header, rows))
    return "\n".join(lines)


if __name__ == "__main__":
    define_flags()
    app.run(main)

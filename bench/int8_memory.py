"""Flash and RAM of the full-size int8 `embbert` under TFLM, per sequence length.

    python bench/int8_memory.py                                   # shipped backbone, L 64/128/256
    python bench/int8_memory.py --model runs/bench_int8/snips_seed0/qat.keras --name snips_qat

Per length: the classifier converted to a batch-1 full-integer .tflite (calibrated on Snips
training sentences encoded at that length), checked for int8/TFLM ops, then measured by the TFLM
runtime: the smallest arena that runs, the recorded planned head + persistent tail, the tensors
alive at the activation peak, the paper's analytic int8 count, the median host invoke time, and
the quantization of the tensors the int8 traps are about (SOFTMAX input/output, RSQRT output).
Without --model the shipped backbone gets a seeded random 7-way head and post-training int8:
arena and op list do not depend on weight values, and a head's size is (d + 1) * labels.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from absl import app, flags  # noqa: E402

from bench.common import machine, markdown_table, write_json  # noqa: E402
from keras_models.backend import keras  # noqa: E402
from keras_models.models import build_classifier, load_backbone, transfer_backbone_weights  # noqa: E402
from tflm_embbert.common import paths  # noqa: E402
from tflm_embbert.data.datasets import load_task  # noqa: E402
from tflm_embbert.data.tokenizer import Tokenizer  # noqa: E402
from tflm_embbert.graph.int8_check import check_int8_graph  # noqa: E402
from tflm_embbert.quantize.convert import to_int8_tflite  # noqa: E402
from tflm_embbert.quantize.qat import load_qat_model  # noqa: E402
from tflm_embbert.quantize.rewrites import export_rewrites, trained_parameters  # noqa: E402
from tflm_embbert.tflm.check import invoke_ms, measure_arena_bytes  # noqa: E402
from tflm_embbert.tflm.int8_eval import calibration_inputs  # noqa: E402
from tflm_embbert.tflm.memory_report import memory_report  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("lengths", ["64", "128", "256"], "Sequence lengths.")
flags.DEFINE_string(
    "model",
    None,
    "A classifier .keras (float or QAT); default: shipped backbone "
    "+ random head, post-training int8.",
)
flags.DEFINE_string("name", "shipped_ptq", "Name of this variant in the results.")
flags.DEFINE_string("out", "bench/results/int8_memory", "Result folder.")
flags.DEFINE_integer("invokes", 20, "Host TFLM invokes timed per length.")


def _model():
    if FLAGS.model is None:
        backbone, config = load_backbone(paths.SHIPPED_BACKBONE_DIR)
        keras.utils.set_random_seed(0)
        model = build_classifier(config, 7)
        transfer_backbone_weights(backbone, model)
        return export_rewrites(model), config.hidden_dim
    try:
        model = load_qat_model(FLAGS.model, compile=False)
    except Exception:  # a float model
        model = export_rewrites(keras.models.load_model(FLAGS.model, compile=False))
    head = model.layers[-1]
    return model, int(head.input_shape[-1])


def _quantization(report) -> dict:
    found = {"softmax_in": set(), "softmax_out": set(), "rsqrt_out": set()}
    for op in report.ops:
        if op.name == "SOFTMAX":
            found["softmax_in"].add(report.tensors[op.inputs[0]].scale)
            found["softmax_out"].add(
                (report.tensors[op.outputs[0]].scale, report.tensors[op.outputs[0]].zero_point)
            )
        if op.name == "RSQRT":
            found["rsqrt_out"].add(report.tensors[op.outputs[0]].scale)
    return {k: sorted(v) for k, v in found.items()}


def main(argv):
    del argv
    model, hidden_dim = _model()
    parameters = trained_parameters(model)
    task = load_task("snips", paths.SHIPPED_DATA_DIR, seed=0)
    tokenizer = Tokenizer.load(paths.SHIPPED_TOKENIZER_DIR)
    rows = []
    for seq_len in map(int, FLAGS.lengths):
        print(f"[L={seq_len}] converting", flush=True)
        calibration = calibration_inputs(tokenizer, task, seq_len, 200, seed=0)
        tflite = to_int8_tflite(model, seq_len, calibration)
        report = check_int8_graph(tflite)
        memory = memory_report(
            tflite,
            measure_arena_bytes(tflite),
            parameters=parameters,
            seq_len=seq_len,
            hidden_dim=hidden_dim,
        )
        memory["host_invoke_ms"] = round(invoke_ms(tflite, calibration, FLAGS.invokes), 2)
        memory["op_counts"] = report.op_counts
        memory["quantization"] = _quantization(report)
        print(
            json.dumps({k: memory[k] for k in ("flash_tflite_bytes", "arena", "host_invoke_ms")}),
            flush=True,
        )
        rows.append(memory)
    out = Path(FLAGS.out)
    write_json(
        out / f"{FLAGS.name}.json",
        {"machine": machine(), "model": FLAGS.model, "variant": FLAGS.name, "lengths": rows},
    )
    write_report(out)


def write_report(out: Path) -> None:
    table = []
    for path in sorted(out.glob("*.json")):
        if path.name == "results.json":
            continue
        data = json.loads(path.read_text())
        for m in data["lengths"]:
            peak = m["activation_peak"]
            table.append(
                [
                    data["variant"],
                    m["seq_len"],
                    f"{m['flash_tflite_bytes']:,}",
                    " / ".join(f"{v:,}" for v in m["flash_breakdown"].values()),
                    f"{m['ram_arena_bytes']:,}",
                    f"{m['arena']['planned']:,}",
                    f"{m['arena']['persistent']:,}",
                    f"{peak['live_bytes']:,} at {peak['op']} ({peak['layer']})",
                    f"{m['paper_analytic_int8']['total']:,}",
                    m["host_invoke_ms"],
                ]
            )
    header = [
        "variant",
        "L",
        ".tflite B (flash)",
        "constants / names / quant params / other B",
        "arena B (smallest that runs)",
        "planned (head) B",
        "persistent (tail) B",
        "live activations at peak B",
        "paper analytic int8 B",
        "host TFLM invoke ms",
    ]
    (out / "results.md").write_text(
        "# Full-size `embbert` int8 under TFLM: flash and RAM per sequence length\n\n"
        "Measured by the `tflite_micro` runtime (x86 reference kernels): arena = the smallest "
        "`arena_size` that allocates and invokes (bisection); planned/persistent from the "
        "runtime's RecordingMicroAllocator. The paper's analytic count is weights + L^2 + 2Ld "
        "at 1 byte per value. Command: `python bench/int8_memory.py` (see --model).\n\n"
        + markdown_table(header, table)
    )
    print((out / "results.md").read_text())


if __name__ == "__main__":
    app.run(main)

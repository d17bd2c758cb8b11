"""Length buckets sharing one copy of the weights: equality, flash, MACs and RAM under TFLM.

    python bench/length_buckets.py --model runs/bench_int8/snips_seed0/qat.keras
    python bench/length_buckets.py --study graphs --model runs/bench_int8/snips_seed0/qat.keras

--study export (the default): what `export_tflite` builds, per full length in --export_lengths
(default 256, the paper's length, and 32, the Snips 99th percentile the export picks): the
exported int8 graph (`int8_eval.int8_under_tflm`: conversion, lean choice by measured arena,
the test split under TFLM), then `export.buckets.build_buckets` with the default buckets (powers
of two from 16 below L, then L): one model array with a root per bucket sharing the weights, the
lean rewrite and offline plan per bucket where they lower its arena, every test example checked
on the bucket it chooses. On top, every test example is run on every bucket that holds it and
compared with the exported graph (int8 LSB). Reported: bytes and flash growth against the exported
single graph, measured arena per bucket (the library reserves the largest, with margin), MACs per
bucket and their mean over the test split against the single graph, the converter's graph, and
(for shorter L) the single L=256 graph. Writes <out>/results.json.

--study graphs: the graph-level study (bench/bucket_dispatch.py's IF-dispatching model against the
shipped `bucket_model_array`), one conversion per bucket length (calibrated on the task's training
sentences at that length); the longest length is the full graph. Per bucket set (--buckets, plus
each of --subsets):
- the dispatching model (`dispatching_model`: subgraph 0 picks the shortest bucket through TFLM IF
  ops) run under the TFLM runtime on every test example encoded at the full length, against the
  full graph alone: largest int8 logit difference (LSB) and class agreement; the buckets chosen;
- .tflite bytes of the dispatching model and of the multi-root blob (`bucket_model_array`: one model
  per bucket, no dispatcher) against the full graph;
- mean MACs per example (`count_macs` of the chosen bucket's subgraph) / MACs of the full graph;
- the arena (smallest that runs; planned head + persistent tail) of the dispatching model and of
  each bucket alone, and the median host TFLM invoke time per bucket (alone and dispatched).
Writes <out>/<name>.json.

Both rewrite <out>/results.md from every JSON in <out>.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from absl import app, flags  # noqa: E402

from bench.common import machine, write_json  # noqa: E402
from bench.length_buckets_report import write_report  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "A classifier .keras (QAT or float).", required=True)
flags.DEFINE_enum("study", "export", ["export", "graphs"], "What to measure (see the docstring).")
flags.DEFINE_list("export_lengths", ["256", "32"], "--study export: full lengths L to export.")
flags.DEFINE_string("tokenizer", None, "Tokenizer folder; default: the model's folder.")
flags.DEFINE_string("task", "snips", "Task whose test split is run.")
flags.DEFINE_string("data_dir", None, "Task data folder; default: ../shared/data.")
flags.DEFINE_list("buckets", ["16", "32", "64", "128", "256"], "Bucket lengths; max = full.")
flags.DEFINE_multi_string(
    "subsets", ["32,64,128,256"], "Other bucket sets (subsets of --buckets) to report."
)
flags.DEFINE_string("name", "snips_qat", "Name of this run in the results.")
flags.DEFINE_enum(
    "rewrite",
    "none",
    ["none", "lean"],
    "Per-bucket rewrite: lean = tflm_embbert.graph.lean_graph.lean_subgraph (default options).",
)
flags.DEFINE_string("out", "bench/results/length_buckets", "Result folder.")
flags.DEFINE_integer("calibration_examples", 200, "Training examples calibrating each length.")
flags.DEFINE_integer("invokes", 20, "Host TFLM invokes timed per bucket.")
flags.DEFINE_integer("test_limit", 0, "Only the first N test examples (0: all).")
flags.DEFINE_bool(
    "per_channel_dense",
    False,
    "--study export: per-channel int8 Dense weights (export_tflite's --per_channel_dense).",
)


def _convert_all(lengths):
    from keras_models.backend import keras  # noqa: F401  (TF_USE_LEGACY_KERAS before tfmot)
    from tflm_embbert.common import paths
    from tflm_embbert.data.datasets import load_task
    from tflm_embbert.data.tokenizer import Tokenizer
    from tflm_embbert.graph.int8_check import check_int8_graph
    from tflm_embbert.quantize.convert import to_int8_tflite
    from tflm_embbert.quantize.prepare import load_for_conversion
    from tflm_embbert.tflm.int8_eval import calibration_inputs

    model = load_for_conversion(FLAGS.model)
    tokenizer = Tokenizer.load(FLAGS.tokenizer or Path(FLAGS.model).parent)
    task = load_task(FLAGS.task, FLAGS.data_dir or paths.shared_data_dir(), seed=0)
    graphs = {}
    for length in lengths:
        print(f"[L={length}] converting", flush=True)
        calibration = calibration_inputs(
            tokenizer, task, length, FLAGS.calibration_examples, seed=0
        )
        graphs[length] = to_int8_tflite(model, length, calibration)
        check_int8_graph(graphs[length])
    return graphs, tokenizer, task


def _rewrite():
    if FLAGS.rewrite == "lean":
        from tflm_embbert.graph.lean_graph import lean_subgraph

        return lean_subgraph
    return None


def _bucket_set(lengths, graphs, test_x, reference, full_macs, measure_each):
    """Every measurement of one bucket set (lengths ascending, the last = the full graph)."""
    import numpy as np

    from bench import bucket_dispatch as dispatch
    from tflm_embbert.graph import flatbuffer as fb
    from tflm_embbert.graph import length_buckets as lb
    from tflm_embbert.graph.macs import count_macs
    from tflm_embbert.tflm.check import invoke_ms, measure_arena_bytes, run_tflm

    full = graphs[lengths[-1]]
    shaped = {length: graphs[length] for length in lengths[:-1]}
    rewrite = _rewrite()
    model = dispatch.dispatching_model(full, shaped, rewrite=rewrite)
    dispatch.check_dispatching_model(model)
    entries, offsets = lb.bucket_model_array(full, shaped, rewrite=rewrite)
    subgraphs = dispatch.dispatch_table(model)
    print(f"[{lengths}] running {len(reference)} test examples", flush=True)
    raw = run_tflm(model, test_x).raw
    difference = np.abs(raw.astype(np.int32) - reference.astype(np.int32))
    chosen = lb.bucket_for(test_x["token_ids"], lengths)
    macs = {length: count_macs(model, subgraph=subgraphs[length])["total"] for length in lengths}
    ratios = np.asarray([macs[length] / full_macs for length in chosen])
    result = {
        "lengths": list(lengths),
        "logits_max_lsb": int(difference.max()),
        "logits_identical_fraction": float(np.mean((difference == 0).all(1))),
        "class_agreement": float(np.mean(raw.argmax(1) == reference.argmax(1))),
        "chosen": {str(k): int(v) for k, v in sorted(Counter(chosen.tolist()).items())},
        "bytes": {
            "full": len(full),
            "full_reserialized": len(fb.serialize(lb.buckets_as_subgraphs(full, {}, rewrite)[0])),
            "dispatching": len(model),
            "entries": len(entries),
        },
        "macs": {str(k): v for k, v in macs.items()},
        "mean_macs_ratio": float(ratios.mean()),
        "entry_offsets": {str(k): v for k, v in offsets.items()},
    }
    print(f"[{lengths}] arena", flush=True)
    result["arena_dispatching"] = measure_arena_bytes(model)
    if measure_each:
        result["buckets"] = {}
        for length in lengths:
            fits = chosen == length
            rows = {k: v[fits] for k, v in test_x.items()} if fits.any() else test_x
            alone = entries[offsets[length] :]
            result["buckets"][str(length)] = {
                "examples": int(fits.sum()),
                "arena_alone": measure_arena_bytes(alone),
                "invoke_ms_alone": round(
                    invoke_ms(alone, {k: v[:, :length] for k, v in rows.items()}, FLAGS.invokes),
                    3,
                ),
                "invoke_ms_dispatched": round(invoke_ms(model, rows, FLAGS.invokes), 3)
                if fits.any()
                else None,
            }
    return result


def main(argv):
    del argv
    if FLAGS.study == "export":
        return export_study()
    from tflm_embbert.data.encoding import encode
    from tflm_embbert.graph.macs import count_macs
    from tflm_embbert.tflm.check import invoke_ms, measure_arena_bytes, run_tflm

    lengths = sorted({int(v) for v in FLAGS.buckets})
    subsets = [sorted({int(v) for v in s.split(",")}) for s in FLAGS.subsets if s]
    for subset in subsets:
        if not set(subset) <= set(lengths) or max(subset) != max(lengths):
            raise app.UsageError(f"--subsets {subset}: must be within --buckets, same maximum")
    graphs, tokenizer, task = _convert_all(lengths)
    full = graphs[lengths[-1]]
    examples = task.test[: FLAGS.test_limit] if FLAGS.test_limit else task.test
    test_x, _ = encode(tokenizer, examples, lengths[-1])
    print(f"[full L={lengths[-1]}] running {len(examples)} test examples", flush=True)
    reference = run_tflm(full, test_x).raw
    full_macs = count_macs(full)["total"]
    results = {
        "machine": machine(),
        "model": FLAGS.model,
        "name": FLAGS.name,
        "rewrite": FLAGS.rewrite,
        "task": FLAGS.task,
        "test_examples": len(examples),
        "real_tokens": _percentiles((test_x["token_ids"] != 0).sum(1)),
        "full": {
            "length": lengths[-1],
            "bytes": len(full),
            "macs": full_macs,
            "arena": measure_arena_bytes(full),
            "invoke_ms": round(invoke_ms(full, test_x, FLAGS.invokes), 3),
        },
        "sets": [_bucket_set(lengths, graphs, test_x, reference, full_macs, True)],
    }
    for subset in subsets:
        results["sets"].append(_bucket_set(subset, graphs, test_x, reference, full_macs, False))
    out = Path(FLAGS.out)
    write_json(out / f"{FLAGS.name}.json", results)
    write_report(out)
    print((out / "results.md").read_text())


def _percentiles(values) -> dict:
    import numpy as np

    return {f"p{p}": float(np.percentile(values, p)) for p in (50, 90, 99, 100)}


# ----------------------------------------------------------------------------------------------
# --study export


def export_study() -> None:
    import tempfile
    import time

    from export import boards
    from export.bucket_lengths import default_lengths
    from export.buckets import build_buckets
    from export.cpp_sources import arena_with_margin, buffer_bytes
    from export.library import ARENA_EXTRA_BYTES, DEFAULT_ARENA_MARGIN
    from export.tokenizer_data import write_tokenizer_data
    from keras_models.backend import keras  # noqa: F401  (TF_USE_LEGACY_KERAS before tfmot)
    from tflm_embbert.common import paths
    from tflm_embbert.data.datasets import load_task
    from tflm_embbert.data.encoding import encode
    from tflm_embbert.data.tokenizer import Tokenizer
    from tflm_embbert.quantize.qat import load_qat_model
    from tflm_embbert.tflm.int8_eval import int8_under_tflm
    from tflm_embbert.tflm.settings import Int8Settings

    model = load_qat_model(FLAGS.model, compile=False)
    tokenizer = Tokenizer.load(FLAGS.tokenizer or Path(FLAGS.model).parent)
    task = load_task(FLAGS.task, FLAGS.data_dir or paths.shared_data_dir(), seed=0)
    if FLAGS.test_limit:
        task.test = task.test[: FLAGS.test_limit]
    test_x, _ = encode(tokenizer, task.test, 256)
    results = {
        "machine": machine(),
        "model": FLAGS.model,
        "task": FLAGS.task,
        "test_examples": len(task.test),
        "real_tokens": _percentiles((test_x["token_ids"] != 0).sum(1)),
        "exports": [],
    }
    settings = Int8Settings(
        calibration_examples=FLAGS.calibration_examples, per_channel_dense=FLAGS.per_channel_dense
    )
    for seq_len in sorted({int(v) for v in FLAGS.export_lengths}, reverse=True):
        started = time.time()
        print(f"[L={seq_len}] int8 graph as the export makes it", flush=True)
        converted = int8_under_tflm(
            model,
            task,
            tokenizer,
            seq_len,
            settings,
        )
        built = build_buckets(
            model,
            task,
            tokenizer,
            seq_len,
            default_lengths(seq_len),
            converted.tflite,
            converted.lean,
            settings,
        )
        library_arena = arena_with_margin(
            built.arena_measured_bytes, DEFAULT_ARENA_MARGIN, ARENA_EXTRA_BYTES
        )
        with tempfile.TemporaryDirectory() as folder:
            tokenizer_bytes = write_tokenizer_data(tokenizer, Path(folder))["flash_bytes"]
        fit = boards.fit(
            boards.BOARDS["nano33ble"],
            model_bytes=len(built.data),
            tokenizer_bytes=tokenizer_bytes,
            arena_bytes=library_arena,
            buffer_bytes=buffer_bytes(seq_len, task.num_labels),
            seq_len=seq_len,
            force=True,
        )
        exhaustive = _every_fitting_example(built, converted.tflite, tokenizer, task, seq_len)
        results["exports"].append(
            {
                "seq_len": seq_len,
                "single": {
                    "bytes": len(converted.tflite),
                    "lean": converted.lean,
                    "test": converted.test,
                },
                "buckets": built.report,
                "per_channel_dense": FLAGS.per_channel_dense,
                "library_arena_bytes": library_arena,
                "nano33ble_fit": fit,
                "every_fitting_example": exhaustive,
                "seconds": round(time.time() - started, 1),
            }
        )
        out = Path(FLAGS.out)
        write_json(out / "results.json", results)
        write_report(out)
    print((Path(FLAGS.out) / "results.md").read_text())


def _every_fitting_example(built, single, tokenizer, task, seq_len) -> dict:
    """Every test example on every bucket that holds it (cut to the bucket's length) against the
    single graph: {length: {"examples": n, "max_lsb": m}}."""
    import numpy as np

    from tflm_embbert.data.encoding import encode
    from tflm_embbert.tflm.check import run_tflm

    test_x, _ = encode(tokenizer, task.test, seq_len)
    reference = run_tflm(single, test_x).raw.astype(np.int32)
    real = (test_x["token_ids"] != 0).sum(1)
    checked = {}
    for length, offset in zip(built.lengths, built.offsets, strict=True):
        fits = real <= length
        print(f"[L={seq_len}] bucket {length}: {int(fits.sum())} test examples", flush=True)
        cut = {k: v[fits][:, :length] for k, v in test_x.items()}
        got = run_tflm(built.data[offset:], cut).raw.astype(np.int32)
        checked[str(length)] = {
            "examples": int(fits.sum()),
            "max_lsb": int(np.abs(got - reference[fits]).max()),
        }
    return checked


if __name__ == "__main__":
    app.run(main)

"""Length buckets sharing one copy of the weights: equality, flash, MACs and RAM under TFLM.

    python bench/length_buckets.py --model runs/bench_int8/snips_seed0/qat.keras

The classifier is converted to full-integer .tflite once per bucket length (calibrated on the
task's training sentences at that length); the longest length is the full graph. Per bucket set
(--buckets, plus each of --subsets), with `tflm_embbert.length_buckets`:
- the dispatching model (`bucketed_model`: subgraph 0 picks the shortest bucket through TFLM IF
  ops) run under the TFLM runtime on every test example encoded at the full length, against the
  full graph alone: largest int8 logit difference (LSB) and class agreement; the buckets chosen;
- .tflite bytes of the dispatching model and of the multi-root blob (`bucket_entries`: one model
  per bucket, no dispatcher) against the full graph;
- mean MACs per example (`count_macs` of the chosen bucket's subgraph) / MACs of the full graph;
- the arena (smallest that runs; planned head + persistent tail) of the dispatching model and of
  each bucket alone, and the median host TFLM invoke time per bucket (alone and dispatched).
Writes <out>/<name>.json and <out>/results.md.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from absl import app, flags  # noqa: E402

from bench.common import machine, markdown_table, write_json  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "A classifier .keras (QAT or float).", required=True)
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
    "Per-bucket rewrite: lean = tflm_embbert.lean_graph.lean_subgraph (default options).",
)
flags.DEFINE_string("out", "bench/results/length_buckets", "Result folder.")
flags.DEFINE_integer("calibration_examples", 200, "Training examples calibrating each length.")
flags.DEFINE_integer("invokes", 20, "Host TFLM invokes timed per bucket.")
flags.DEFINE_integer("limit", 0, "Only the first N test examples (0: all).")


def _convert_all(lengths):
    from keras_models.backend import keras  # noqa: F401  (TF_USE_LEGACY_KERAS before tfmot)
    from tflm_embbert import paths
    from tflm_embbert.convert import check_int8_graph, to_int8_tflite
    from tflm_embbert.datasets import load_task
    from tflm_embbert.int8_eval import calibration_inputs, is_qat
    from tflm_embbert.qat import load_qat_model
    from tflm_embbert.rewrites import export_rewrites
    from tflm_embbert.tokenizer import Tokenizer

    model = load_qat_model(FLAGS.model, compile=False)
    if not is_qat(model):
        model = export_rewrites(model)
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
        from tflm_embbert.lean_graph import lean_subgraph

        return lean_subgraph
    return None


def _bucket_set(lengths, graphs, test_x, reference, full_macs, measure_each):
    """Every measurement of one bucket set (lengths ascending, the last = the full graph)."""
    import numpy as np

    from tflm_embbert import length_buckets as lb
    from tflm_embbert.macs import count_macs
    from tflm_embbert.tflm_check import invoke_ms, measure_arena_bytes, run_tflm

    full = graphs[lengths[-1]]
    shaped = {length: graphs[length] for length in lengths[:-1]}
    rewrite = _rewrite()
    model = lb.bucketed_model(full, shaped, rewrite=rewrite)
    lb.check_bucketed_graph(model)
    entries, offsets = lb.bucket_entries(full, shaped, rewrite=rewrite)
    subgraphs = lb.bucket_subgraphs(model)
    print(f"[{lengths}] running {len(reference)} test examples", flush=True)
    raw = run_tflm(model, test_x).raw
    difference = np.abs(raw.astype(np.int32) - reference.astype(np.int32))
    chosen = lb.chosen_length(test_x["token_ids"], lengths)
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
            "full_reserialized": len(lb.serialize(lb.bucket_models(full, {}, rewrite)[0])),
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
                    invoke_ms(
                        alone, {k: v[:, :length] for k, v in rows.items()}, FLAGS.invokes
                    ),
                    3,
                ),
                "invoke_ms_dispatched": round(invoke_ms(model, rows, FLAGS.invokes), 3)
                if fits.any()
                else None,
            }
    return result


def main(argv):
    del argv
    from tflm_embbert.finetune import encode
    from tflm_embbert.macs import count_macs
    from tflm_embbert.tflm_check import invoke_ms, measure_arena_bytes, run_tflm

    lengths = sorted({int(v) for v in FLAGS.buckets})
    subsets = [sorted({int(v) for v in s.split(",")}) for s in FLAGS.subsets if s]
    for subset in subsets:
        if not set(subset) <= set(lengths) or max(subset) != max(lengths):
            raise app.UsageError(f"--subsets {subset}: must be within --buckets, same maximum")
    graphs, tokenizer, task = _convert_all(lengths)
    full = graphs[lengths[-1]]
    examples = task.test[: FLAGS.limit] if FLAGS.limit else task.test
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


def write_report(out: Path) -> None:
    """results.md: one section per <name>.json in `out`."""
    import json

    sections = [report(json.loads(path.read_text())) for path in sorted(out.glob("*.json"))]
    (out / "results.md").write_text("# Length buckets under TFLM\n\n" + "\n".join(sections))


def report(results: dict) -> str:
    full = results["full"]
    rows = []
    for s in results["sets"]:
        bytes_ = s["bytes"]
        arena = s["arena_dispatching"]
        rows.append(
            [
                "/".join(map(str, s["lengths"])),
                f"{s['logits_max_lsb']} LSB, {100 * s['class_agreement']:.1f}%",
                ", ".join(f"{k}: {v}" for k, v in s["chosen"].items()),
                f"{bytes_['dispatching']:,} ({_growth(bytes_['dispatching'], full['bytes'])})",
                f"{bytes_['entries']:,} ({_growth(bytes_['entries'], full['bytes'])})",
                f"{s['mean_macs_ratio']:.4f}x",
                f"{arena['minimum']:,} ({arena['planned']:,} + {arena['persistent']:,})",
            ]
        )
    header = [
        "buckets",
        "vs full graph: max logit diff, class agreement",
        "bucket chosen (examples)",
        "dispatching .tflite B (vs full)",
        "multi-root blob B (vs full)",
        "mean MACs / full",
        "dispatching arena B (planned + persistent)",
    ]
    main = results["sets"][0]
    per_bucket = [
        [
            length,
            b["examples"],
            f"{int(main['macs'][length]):,}",
            f"{b['arena_alone']['minimum']:,} ({b['arena_alone']['planned']:,} + "
            f"{b['arena_alone']['persistent']:,})",
            b["invoke_ms_alone"],
            b["invoke_ms_dispatched"] if b["invoke_ms_dispatched"] is not None else "-",
        ]
        for length, b in main["buckets"].items()
    ]
    per_header = [
        "bucket L",
        "test examples",
        "MACs",
        "arena alone B (planned + persistent)",
        "host invoke ms alone",
        "host invoke ms dispatched",
    ]
    return (
        f"## {results.get('name', 'snips_qat')}: per-bucket rewrite "
        f"{results.get('rewrite', 'none')}, {results['task']} test split "
        f"({results['test_examples']} examples), `{results['model']}`\n\n"
        f"Full graph: L={full['length']}, {full['bytes']:,} B, {full['macs']:,} MACs, arena "
        f"{full['arena']['minimum']:,} B ({full['arena']['planned']:,} planned + "
        f"{full['arena']['persistent']:,} persistent), host invoke {full['invoke_ms']} ms. "
        f"Real tokens per example: {results['real_tokens']}. The full graph alone (canonical, "
        f"after the rewrite, written by `length_buckets.serialize`, identical tables shared): "
        f"{results['sets'][0]['bytes']['full_reserialized']:,} B. Growth is against the "
        f"converter's full graph.\n\n"
        + markdown_table(header, rows)
        + f"\nPer bucket ({'/'.join(map(str, main['lengths']))}):\n\n"
        + markdown_table(per_header, per_bucket)
        + "\nMeasured by the `tflite_micro` runtime (x86 reference kernels). The dispatching "
        "model runs subgraph 0, which picks the bucket with TFLM IF ops; TFLM prepares every "
        "subgraph, so its arena holds the largest bucket's planned buffers plus the persistent "
        "data of all of them. The multi-root blob holds one complete model per bucket sharing "
        "the weights; the caller picks the bucket, and the arena is that bucket's alone (the "
        "'arena alone' column). MACs: matmuls and convolutions (`tflm_embbert.macs`). Invoke "
        "times: median host time over the bucket's examples (over all test examples, cut to "
        "the bucket's length, when none chose it); host timings on a shared 2-core machine are "
        "noisy. Command: `python bench/length_buckets.py --model ...`.\n"
    )


def _growth(value: int, base: int) -> str:
    return f"{100 * (value - base) / base:+.1f}%"


if __name__ == "__main__":
    app.run(main)

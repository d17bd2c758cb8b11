"""results.md of bench/length_buckets.py: the export study (results.json) and one section per
graph study (<name>.json)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.common import markdown_table


def write_report(out: Path) -> None:
    """results.md: the export study (results.json) first, then one section per other
    <name>.json in `out` (the graph studies)."""
    sections = []
    if (out / "results.json").is_file():
        sections.append(export_markdown(json.loads((out / "results.json").read_text())))
    sections += [
        report(json.loads(path.read_text()))
        for path in sorted(out.glob("*.json"))
        if path.name != "results.json"
    ]
    (out / "results.md").write_text("# Length buckets under TFLM\n\n" + "\n".join(sections))


def export_markdown(results: dict) -> str:
    exports = results["exports"]
    single_256 = next((e for e in exports if e["seq_len"] == 256), None)
    summary, sections = [], []
    for e in exports:
        b = e["buckets"]
        vs_256 = (
            f"{b['mean_macs'] / single_256['buckets']['single_macs']:.4f}x"
            if single_256 is not None
            else "-"
        )
        checked = e["every_fitting_example"]
        fit = e.get("nano33ble_fit")
        fit_text = "-"
        if fit:
            fit_text = (
                f"flash {fit['flash']['total_bytes']:,} / {fit['flash']['available_bytes']:,}, "
                f"RAM {fit['ram']['total_bytes']:,} / {fit['ram']['available_bytes']:,}: "
                + ("fits" if fit["flash"]["fits"] and fit["ram"]["fits"] else "does not fit")
            )
        layout = {True: "per-channel", False: "per-tensor"}.get(e.get("per_channel_dense"), "-")
        summary.append(
            [
                e["seq_len"],
                layout,
                "/".join(map(str, b["lengths"])),
                f"{e['single']['bytes']:,}",
                f"{b['bytes']:,} ({100 * b['flash_growth']:+.1f}%)",
                f"{b['single_arena']['minimum']:,}",
                f"{max(x['arena']['minimum'] for x in b['buckets']):,} "
                f"({e['library_arena_bytes']:,})",
                f"{b['mean_macs']:,.0f}",
                f"{b['mean_macs_ratio']:.4f}x",
                f"{b['mean_macs_ratio_vs_converter_graph']:.4f}x",
                vs_256,
                f"{max(c['max_lsb'] for c in checked.values())} LSB "
                f"({sum(c['examples'] for c in checked.values()):,} runs)",
                fit_text,
                e["seconds"],
            ]
        )
        rows = [
            [
                x["length"],
                f"{x['offset']:,}",
                x["graph"],
                f"{x['arena']['minimum']:,} ({x['arena']['planned']:,} + "
                f"{x['arena']['persistent']:,})",
                f"{x['macs']:,}",
                f"{x['test_examples']} ({100 * x['share']:.1f}%)",
                f"{checked[str(x['length'])]['examples']}: "
                f"{checked[str(x['length'])]['max_lsb']} LSB",
            ]
            for x in b["buckets"]
        ]
        sections.append(
            f"Per bucket, L={e['seq_len']} (single graph: {e['single']['bytes']:,} B, "
            f"{b['single_macs']:,} MACs, arena {b['single_arena']['minimum']:,} B; test "
            f"accuracy under TFLM {e['single']['test'].get('accuracy', float('nan')):.4f}):\n\n"
            + markdown_table(
                [
                    "bucket L",
                    "offset",
                    "graph",
                    "arena B (planned + persistent)",
                    "MACs",
                    "test examples choosing it",
                    "test examples it holds: max LSB vs single",
                ],
                rows,
            )
        )
    header = [
        "L",
        "Dense weights",
        "buckets",
        "single graph B",
        "model array B (flash growth)",
        "single graph arena B",
        "largest bucket arena B (library kArenaBytes)",
        "mean MACs / example",
        "vs single graph",
        "vs converter's graph at L",
        "vs single L=256 graph",
        "every test example on every bucket holding it",
        "export's Nano 33 BLE check (flash, RAM)",
        "seconds",
    ]
    return (
        f"## Export: `export_tflite`'s default buckets, {results['task']} test split "
        f"({results['test_examples']} examples), `{results['model']}`\n\n"
        f"Real tokens per example: {results['real_tokens']}.\n\n"
        + markdown_table(header, summary)
        + "\n"
        + "\n".join(sections)
        + "\nThe single graph is what the export ships without buckets (`int8_under_tflm`: the "
        "converter's graph or the lean rewrite with its offline memory plan, whichever arena is "
        "smallest). The model array holds one flatbuffer root per bucket (the full model at "
        "offset 0) sharing every weight buffer; each shorter bucket keeps the lean variant with "
        "the smallest measured arena. Arena: the smallest that allocates and invokes under the "
        "`tflite_micro` runtime (x86 reference kernels, 64-bit); the library reserves the largest "
        "bucket's + 10% + 2 KiB. MACs: `tflm_embbert.graph.macs` (matmuls and convolutions) of "
        "each "
        "root; the mean is over the test split, each example on the bucket it chooses. The Nano "
        "33 BLE check is `export.boards.fit`, the export's own: flash = model array + tokenizer "
        "tables + 164 KiB code baseline, RAM = kArenaBytes + buffers + 61 KiB baseline. "
        "Command: `python bench/length_buckets.py --model runs/bench_int8/snips_seed0/qat.keras "
        "[--per_channel_dense]` (2 shared CPU cores).\n"
    )


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
        "'arena alone' column). MACs: matmuls and convolutions (`tflm_embbert.graph.macs`). Invoke "
        "times: median host time over the bucket's examples (over all test examples, cut to "
        "the bucket's length, when none chose it); host timings on a shared 2-core machine are "
        "noisy. Command: `python bench/length_buckets.py --study graphs --model ...`.\n"
    )


def _growth(value: int, base: int) -> str:
    return f"{100 * (value - base) / base:+.1f}%"

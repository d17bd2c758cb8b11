"""export_report.md: the export report's JSON (export.library) as a page."""

from __future__ import annotations

from export.latency_report import latency_markdown


def bucket_markdown(buckets: dict | None) -> list[str]:
    """The report's length-bucket section (lines)."""
    if not buckets:
        return []
    if not buckets.get("enabled"):
        return ["## Length buckets: off", "", f"{buckets.get('reason', '')}", ""]
    rows = [
        f"| {b['length']} | {b['offset']:,} | {b['graph']} | {b['arena']['minimum']:,} "
        f"({b['arena']['planned']:,} + {b['arena']['persistent']:,}) | {b['macs']:,} | "
        f"{b['test_examples']} ({100 * b['share']:.1f}%) | {b['verified_examples']} |"
        for b in buckets["buckets"]
    ]
    return [
        f"## Length buckets {'/'.join(map(str, buckets['lengths']))}",
        "",
        f"One model array of {buckets['bytes']:,} B holds a model per bucket sharing the weights "
        f"({100 * buckets['flash_growth']:+.1f}% vs the single graph's "
        f"{buckets['single_bytes']:,} B); the library runs the shortest bucket that holds the "
        f"tokenized input. Over the {buckets['test_examples']} test examples: mean MACs "
        f"{buckets['mean_macs']:,.0f} = {buckets['mean_macs_ratio']:.4f}x of the single graph "
        f"({buckets['single_macs']:,}; {buckets['mean_macs_ratio_vs_converter_graph']:.4f}x of "
        f"the converter's graph, {buckets['converter_graph_macs']:,}); every bucket's int8 "
        f"logits equal the single graph's ({buckets['max_lsb']} LSB). The arena is the largest "
        "bucket's.",
        "",
        "| bucket L | offset | graph | arena B (planned + persistent) | MACs | test examples "
        "choosing it | examples run on it |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def report_markdown(result: dict) -> str:
    budget = result["budget"]
    flash, ram = budget["flash"], budget["ram"]
    lines = [
        f"# Arduino library {result['name']}",
        "",
        f"Task {result['task']}, L={result['seq_len']}, {len(result['labels'])} labels; model "
        f"{result['model_bytes']:,} B, sha256 `{result['model_sha256'][:16]}...`; "
        f"TFLM: {result['tflm']['description']}; {result['tflm_note']}.",
        "",
        f"## Fit on {budget['board']['name']}" + (" (forced)" if budget["forced"] else ""),
        "",
        "| | bytes | of which | available | fits |",
        "|---|---|---|---|---|",
        f"| flash | {flash['total_bytes']:,} | model {flash['model_bytes']:,} + tokenizer "
        f"{flash['tokenizer_bytes']:,} + code baseline {flash['code_baseline_bytes']:,} | "
        f"{flash['available_bytes']:,} | {'yes' if flash['fits'] else 'NO'} |",
        f"| RAM | {ram['total_bytes']:,} | arena {ram['arena_bytes']:,} + buffers "
        f"{ram['buffer_bytes']:,} + baseline {ram['baseline_bytes']:,} | "
        f"{ram['available_bytes']:,} | {'yes' if ram['fits'] else 'NO'} |",
        "",
        f"Arena: {result['arena']['measured_bytes']:,} B measured under the TFLM runtime + "
        f"{result['arena']['margin']} = {result['arena']['bytes']:,} B.",
        "",
    ]
    lines += [f"- warning: {w}" for w in budget["warnings"]]
    lines += bucket_markdown(result.get("length_buckets"))
    lines += latency_markdown(result.get("latency"))
    if "tflm_test" in result:
        test = result["tflm_test"]
        lines += [
            "## int8 under the TFLM runtime",
            "",
            "| metric | value |",
            "|---|---|",
            *[f"| {k} | {v:.4f} |" for k, v in test.items() if isinstance(v, float)],
            "",
        ]
    lines += [
        f"## Op resolver: MicroMutableOpResolver<{result['op_resolver_size']}>",
        "",
        ", ".join(f"{op} x{n}" for op, n in result["ops"].items()),
        "",
        "## Files",
        "",
        "| file | bytes |",
        "|---|---|",
        *[f"| {name} | {size:,} |" for name, size in result["files"].items()],
        "",
    ]
    return "\n".join(lines)

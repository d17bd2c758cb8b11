"""Length buckets for the exported library: one model array, one model per sequence length.

Padded keys are masked and EmbBERT's conv branch is causal, so the [CLS] logits for n real tokens
are the same at any length >= n (`tflm_embbert.graph.length_buckets`). `build_buckets` turns the
exported full-length int8 graph into one byte array holding a complete model per bucket length
(`length_buckets.bucket_model_array`: flatbuffer roots at 16-byte aligned offsets, the full model at
offset 0, every weight buffer stored once), which the generated C++ picks from per input:
`tflite::GetModel(model_data + offset)` of the shortest bucket holding the tokens.

1. The model is converted again at the full length with the same calibration, and the result must
   reproduce the exported graph byte for byte (after the same lean rewrite): bucket graphs need the
   converter's graph topology, which the lean rewrite changes. It is converted at every shorter
   bucket length too (only the shapes of those graphs are used; quantization and weights come from
   the full graph).
2. Per shorter bucket, the lean rewrite (`int8_eval.smallest_lean`: row chunks, and the offline
   memory plan where the exported graph has one) is kept where it lowers that bucket's measured
   arena; the full bucket keeps the exported graph's choice. Each root carries its own plan.
3. Every bucket runs under the TFLM runtime: each test example on the bucket `bucket_for`
   picks, plus the longest test examples that fit each bucket (so a bucket that no example chose
   is still run). Its int8 logits must equal the exported full graph's exactly (0 LSB), else
   `BucketError` (one line).
4. Per bucket: offset, measured arena, MACs, share of test examples; the mean MACs ratio against the
   single graph and the flash growth.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from export.bucket_lengths import BucketError
from tflm_embbert.data.encoding import encode
from tflm_embbert.data.examples import TaskData
from tflm_embbert.data.tokenizer import Tokenizer
from tflm_embbert.graph import length_buckets as lb
from tflm_embbert.graph.flatbuffer import inspect_tflite
from tflm_embbert.graph.int8_check import check_int8_graph
from tflm_embbert.graph.lean_graph import LeanOptions, lean_subgraph, lean_tflite
from tflm_embbert.graph.macs import count_macs
from tflm_embbert.quantize.convert import to_int8_tflite
from tflm_embbert.quantize.prepare import prepare_for_conversion
from tflm_embbert.tflm.check import measure_arena_bytes, run_tflm
from tflm_embbert.tflm.int8_eval import calibration_inputs, smallest_lean
from tflm_embbert.tflm.settings import Int8Settings

VERIFY_LONGEST = 8  # per bucket, also run the longest test examples that fit it


@dataclass
class LengthBuckets:
    """The model array with one root per bucket and what the library needs from it."""

    data: bytes  # a valid .tflite (the full model's root at offset 0) holding every bucket
    lengths: list[int]  # increasing; the last is the full length
    offsets: list[int]  # of each bucket's flatbuffer root in `data`, 16-byte aligned
    arena_bytes: list[int]  # smallest arena each bucket runs in under the TFLM runtime
    report: dict  # export_report.json's "length_buckets"

    @property
    def arena_measured_bytes(self) -> int:
        return max(self.arena_bytes)


def build_or_fall_back(
    build: Callable[[], LengthBuckets], explicit: bool, seq_len: int, say: Callable[[str], None]
) -> tuple[LengthBuckets | None, dict | None]:
    """(buckets, None) from `build()`, or on BucketError: raised again when the lengths were asked
    for (`explicit`: the export stops, nothing written), else (None, a report entry with the
    reason) after a printed line: the default buckets are only on where they are exact."""
    try:
        return build(), None
    except BucketError as error:
        if explicit:
            raise
        say(f"{error}: the default length buckets are off, one model at L={seq_len}")
        return None, {"enabled": False, "reason": f"{error} (default buckets: one model)"}


def build_buckets(
    model,
    task: TaskData,
    tokenizer: Tokenizer,
    seq_len: int,
    lengths: list[int],
    single: bytes,
    single_lean: dict | None,
    settings: Int8Settings | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> LengthBuckets:
    """The buckets `lengths` (increasing, last = seq_len) of `single`, the exported full-length
    int8 graph that `int8_eval.int8_under_tflm` made from `model` with the same `settings`
    (default Int8Settings()); `single_lean` is its lean choice (`Int8Result.lean`; None: the
    converter's graph as it is). See the module docstring; BucketError (one line) when the
    buckets cannot be built or differ from `single` on the test split."""
    say = progress or (lambda line: print(line, flush=True))
    settings = settings or Int8Settings()
    if len(lengths) < 2 or lengths[-1] != seq_len or sorted(set(lengths)) != list(lengths):
        raise BucketError(f"length buckets: expected increasing lengths ending with {seq_len}")
    started = time.time()
    model = prepare_for_conversion(model)

    def convert(length: int) -> bytes:
        calibration = calibration_inputs(
            tokenizer, task, length, settings.calibration_examples, settings.seed
        )
        return to_int8_tflite(
            model, length, calibration, per_channel_dense=settings.per_channel_dense
        )

    say(f"length buckets {'/'.join(map(str, lengths))}: converting at L={seq_len} again")
    straight = convert(seq_len)
    if rebuild(straight, single_lean) != single:
        raise BucketError(
            f"length buckets: converting the model again at L={seq_len} did not reproduce the "
            "exported int8 graph (same calibration), so the buckets would not share its "
            "quantization"
        )
    shaped = {}
    for length in lengths[:-1]:
        say(f"length buckets: converting at L={length} (shapes only)")
        shaped[length] = convert(length)
    choices = {seq_len: single_lean}
    plan_flag = {
        key: single_lean[key]
        for key in ("offline_plan", "mask_bias")
        if single_lean and single_lean.get(key) is not None
    }
    for length in lengths[:-1]:
        try:
            alone = lb.graph_at_length(straight, shaped[length])
        except ValueError as error:
            raise BucketError(f"length buckets: L={length}: {error}") from None
        choices[length] = None
        if settings.lean and single_lean is not None:
            _, choices[length], _ = smallest_lean(
                alone,
                settings.chunk_rows,
                True,
                lambda line, length=length: say(f"bucket L={length}: {line}"),
                **plan_flag,
            )

    def rewrite(bucket_model, index: int) -> None:
        options = lean_options(choices[lb.sequence_length(bucket_model, index)])
        if options is not None:
            lean_subgraph(bucket_model, index, options)

    def root_metadata(bucket_model, index: int) -> dict:
        choice = choices[lb.sequence_length(bucket_model, index)]
        if not (choice and choice.get("offline_plan")):
            return {}
        from tflm_embbert.graph import memory_plan

        plan = memory_plan.plan(bucket_model, index)
        values = np.asarray([1, 0, len(plan.offsets), *plan.offsets], dtype="<i4")
        return {memory_plan.METADATA_NAME.decode(): values.tobytes()}

    try:
        data, offset_of = lb.bucket_model_array(straight, shaped, rewrite, root_metadata)
    except ValueError as error:
        raise BucketError(f"length buckets: {error}") from None
    offsets = [offset_of[length] for length in lengths]
    roots = {length: data[offset_of[length] :] for length in lengths}
    io = _check_roots(roots, single)
    seconds = {"build": round(time.time() - started, 1)}

    started = time.time()
    verified = verify_buckets(
        data, dict(zip(lengths, offsets, strict=True)), single, task, tokenizer, seq_len, say
    )
    seconds["verify"] = round(time.time() - started, 1)
    started = time.time()
    arenas = {length: measure_arena_bytes(roots[length]) for length in lengths}
    single_arena = measure_arena_bytes(single)
    seconds["arena"] = round(time.time() - started, 1)
    macs = {length: count_macs(roots[length])["total"] for length in lengths}
    single_macs = count_macs(single)["total"]
    straight_macs = count_macs(straight)["total"]
    chosen = verified["chosen"]
    mean_macs = float(np.mean([macs[length] for length in chosen]))
    buckets = []
    for length, offset in zip(lengths, offsets, strict=True):
        buckets.append(
            {
                "length": length,
                "offset": offset,
                "graph": graph_label(choices[length]),
                "lean": choices[length],
                "arena": arenas[length],
                "macs": macs[length],
                "test_examples": int(np.sum(chosen == length)),
                "share": float(np.mean(chosen == length)),
                "verified_examples": verified["examples"][length],
            }
        )
    report = {
        "enabled": True,
        "lengths": list(lengths),
        "buckets": buckets,
        "bytes": len(data),
        "single_bytes": len(single),
        "flash_growth": (len(data) - len(single)) / len(single),
        "single_arena": single_arena,
        "single_macs": single_macs,
        "converter_graph_macs": straight_macs,
        "mean_macs": mean_macs,
        "mean_macs_ratio": mean_macs / single_macs,
        "mean_macs_ratio_vs_converter_graph": mean_macs / straight_macs,
        "test_examples": len(chosen),
        "max_lsb": verified["max_lsb"],
        "inputs": io,
        "seconds": seconds,
    }
    say(
        f"length buckets {'/'.join(map(str, lengths))}: {len(data):,} B "
        f"({100 * report['flash_growth']:+.1f}% vs the single graph), mean MACs "
        f"{report['mean_macs_ratio']:.4f}x of the single graph over {len(chosen)} test "
        f"examples, logits equal (0 LSB), arena per bucket "
        + ", ".join(f"L={n}: {arenas[n]['minimum']:,} B" for n in lengths)
        + f" (single graph: {single_arena['minimum']:,} B)"
    )
    return LengthBuckets(
        data=data,
        lengths=list(lengths),
        offsets=offsets,
        arena_bytes=[arenas[length]["minimum"] for length in lengths],
        report=report,
    )


def lean_options(choice: dict | None) -> LeanOptions | None:
    """The LeanOptions of a `smallest_lean` choice; None for the converter's graph."""
    if not choice or choice.get("chunk_rows") is None:
        return None
    names = {f.name for f in dataclasses.fields(LeanOptions)}
    return LeanOptions(**{k: v for k, v in choice.items() if k in names and v is not None})


def rebuild(straight: bytes, choice: dict | None) -> bytes:
    """The graph `smallest_lean` kept with `choice`, made again from the converter's graph."""
    options = lean_options(choice)
    graph = straight if options is None else lean_tflite(straight, options)
    if choice and choice.get("offline_plan"):
        from tflm_embbert.graph.memory_plan import with_offline_plan

        graph = with_offline_plan(graph)[0]
    return graph


def graph_label(choice: dict | None) -> str:
    options = lean_options(choice)
    label = "converter's graph" if options is None else f"lean, chunk_rows {options.chunk_rows}"
    if options is not None and options.chunk_rows and getattr(options, "chunk_scope", None):
        label += f" per {options.chunk_scope}"
    return label + (" + offline plan" if choice and choice.get("offline_plan") else "")


def _check_roots(roots: dict, single: bytes) -> list[str]:
    """Each root is a full-integer single-subgraph model with (1, Lb) id inputs in the single
    graph's input order and its output quantization. Returns the input names."""
    reference = inspect_tflite(single)
    names = [_input_key(t.name) for t in reference.inputs]
    for length, root in roots.items():
        try:
            report = check_int8_graph(root)
        except ValueError as error:
            raise BucketError(f"length buckets: L={length}: {error}") from None
        if [_input_key(t.name) for t in report.inputs] != names or any(
            t.shape != (1, length) for t in report.inputs
        ):
            raise BucketError(
                f"length buckets: L={length}: inputs "
                f"{[(t.name, t.shape) for t in report.inputs]} differ from the single graph's "
                f"{names} at (1, {length})"
            )
        out, expected = report.outputs[0], reference.outputs[0]
        if (out.shape, out.scale, out.zero_point) != (
            expected.shape,
            expected.scale,
            expected.zero_point,
        ):
            raise BucketError(f"length buckets: L={length}: output differs from the single graph's")
    return names


def _input_key(name: str) -> str:
    return next((key for key in ("segment_ids", "token_ids") if key in name), name)


def verify_buckets(
    data: bytes,
    offsets: dict[int, int],
    single: bytes,
    task: TaskData,
    tokenizer: Tokenizer,
    seq_len: int,
    say: Callable[[str], None],
) -> dict:
    """Runs the test split under TFLM: the single graph on every example, and every bucket on
    the examples that choose it plus its `VERIFY_LONGEST` longest fitting ones, cut to its
    length. BucketError (one line) unless all logits are equal. Returns {"chosen": bucket length
    per example, "examples": {length: examples run}, "max_lsb": 0}."""
    lengths = sorted(offsets)
    test_x, _ = encode(tokenizer, task.test, seq_len)
    say(f"length buckets: the full graph and every bucket on {len(task.test)} test examples")
    reference = run_tflm(single, test_x).raw.astype(np.int32)
    chosen = lb.bucket_for(test_x["token_ids"], lengths)
    real = (test_x["token_ids"] != lb.PAD_ID).sum(1)
    examples = {}
    for length in lengths:
        rows = set(np.flatnonzero(chosen == length).tolist())
        fitting = np.flatnonzero(real <= length)
        longest = fitting[np.argsort(-real[fitting], kind="stable")][:VERIFY_LONGEST]
        rows = sorted(rows | set(longest.tolist()))
        examples[length] = len(rows)
        if not rows:
            continue
        cut = {key: value[rows][:, :length] for key, value in test_x.items()}
        got = run_tflm(data[offsets[length] :], cut).raw.astype(np.int32)
        difference = np.abs(got - reference[rows]).max(axis=1)
        if difference.any():
            raise BucketError(
                f"length buckets: bucket L={length} gives logits up to {difference.max()} LSB "
                f"away from the full L={seq_len} graph on {int(np.sum(difference > 0))} of "
                f"{len(rows)} test examples (the model's output depends on padding); export "
                "with --length_buckets=none"
            )
    return {"chosen": chosen, "examples": examples, "max_lsb": 0}

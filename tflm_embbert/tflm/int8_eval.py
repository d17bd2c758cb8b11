"""Full-integer conversion of a trained classifier, checked and scored under the TFLM runtime.

`int8_under_tflm(model, task, tokenizer, seq_len, ...)`:
1. converts `model` (float: post-training quantization; QAT: keeps its trained ranges) to a batch-1
   int8 .tflite, calibrating on `calibration_examples` training examples (seeded sample); Dense
   weights per-tensor by default, the grid QAT trains (bench/dense_layout.py: the same or closer
   agreement with the QAT model than the converter's per-channel re-quantization, 38 KB less
   flash, 13-32 KB less arena); per_channel_dense=True for the converter's default;
2. `lean_graph.lean_tflite` (unless lean=False): the exact memory-lean rewrite; with
   `chunk_candidates`, each row-chunk size and chunk scope is tried, each with its offline
   memory plan (`memory_plan`), and the one whose measured arena is smallest is kept; then
   `check_int8_graph`: int8/int32 tensors only, TFLM int8 ops only, no
   QUANTIZE/DEQUANTIZE;
3. runs every test example under `tflite_micro` and scores the task metric on the int8 logits;
   a lean graph is compared with the converter's graph on up to `lean_check_examples` test
   examples (seeded sample): the rewrite is exact, so any difference is an error, except that
   the mask bias (`LeanOptions.mask_bias`, exact through the softmax's saturation) is then
   dropped and the graph chosen again;
4. compares the predicted classes with each Keras model in `references` on the same test split;
5. measures the arena TFLM needs and builds the memory report.
A float model gets `rewrites.export_rewrites` first (a QAT model already had them before QAT).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field

import numpy as np

from tflm_embbert.data.encoding import encode
from tflm_embbert.data.examples import TaskData
from tflm_embbert.data.metrics import compute_metrics
from tflm_embbert.data.tokenizer import Tokenizer
from tflm_embbert.graph.flatbuffer import inspect_tflite
from tflm_embbert.graph.int8_check import check_int8_graph
from tflm_embbert.graph.lean_graph import CHUNK_SCOPES, LeanOptions, lean_tflite
from tflm_embbert.graph.memory_plan import with_offline_plan
from tflm_embbert.quantize.convert import to_int8_tflite
from tflm_embbert.quantize.prepare import prepare_for_conversion
from tflm_embbert.quantize.rewrites import trained_parameters
from tflm_embbert.tflm.check import measure_arena_bytes, run_tflm
from tflm_embbert.tflm.memory_report import memory_report
from tflm_embbert.tflm.settings import Int8Settings


@dataclass
class Int8Result:
    tflite: bytes
    test: dict  # the task's metrics, TFLM int8 logits on the whole test split
    agreement: dict  # {reference name: fraction of test examples with the same predicted class}
    memory: dict  # memory_report(...)
    op_counts: dict
    output_quantization: dict  # {"scale": ..., "zero_point": ...} of the int8 logits
    seconds: dict = field(default_factory=dict)
    lean: dict | None = None  # smallest_lean's choice; None: the converter's graph as it is
    lean_check: dict | None = None  # the lean graph against the converter's on test examples
    per_channel_dense: bool = False  # the Dense weight layout of the conversion
    # Dequantized int8 logits of every test example under TFLM, (n, labels); not in to_json
    # (the pipeline writes them to predictions.csv). None when read back from JSON.
    test_logits: np.ndarray | None = None

    def to_json(self) -> dict:
        return {
            "lean": self.lean,
            "lean_check": self.lean_check,
            "per_channel_dense": self.per_channel_dense,
            "test": self.test,
            "agreement": self.agreement,
            "memory": self.memory,
            "op_counts": self.op_counts,
            "output_quantization": self.output_quantization,
            "seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, tflite: bytes, values: dict) -> Int8Result:
        """The inverse of `to_json` (e.g. a pipeline's results.json entry and its .tflite)."""
        names = ("test", "agreement", "memory", "op_counts", "output_quantization", "seconds")
        return cls(
            tflite=tflite,
            **{name: values[name] for name in names},
            lean=values.get("lean"),
            lean_check=values.get("lean_check"),
            per_channel_dense=values.get("per_channel_dense", False),
        )


def calibration_inputs(tokenizer: Tokenizer, task: TaskData, seq_len: int, count: int, seed: int):
    """`count` training examples, a seeded random sample, encoded at `seq_len`."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(task.train), size=min(count, len(task.train)), replace=False)
    inputs, _ = encode(tokenizer, [task.train[i] for i in sorted(chosen)], seq_len)
    return inputs


def int8_under_tflm(
    model,
    task: TaskData,
    tokenizer: Tokenizer,
    seq_len: int,
    settings: Int8Settings | None = None,
    *,
    references: dict | None = None,
    measure_arena: bool = True,
    progress=None,
) -> Int8Result:
    """Converts, checks and scores `model` under TFLM (see the module docstring); `settings`
    defaults to Int8Settings()."""
    settings = settings or Int8Settings()
    progress = progress or (lambda line: print(line, flush=True))
    seconds = {}
    started = time.time()
    parameters = trained_parameters(model)
    model = prepare_for_conversion(model)
    calibration = calibration_inputs(
        tokenizer, task, seq_len, settings.calibration_examples, settings.seed
    )
    straight = to_int8_tflite(
        model, seq_len, calibration, per_channel_dense=settings.per_channel_dense
    )
    tflite, lean_choice, arena = straight, None, None
    test_x, test_y = encode(tokenizer, task.test, seq_len)
    lean_check = None
    if settings.lean:
        tflite, lean_choice, arena = smallest_lean(
            straight, settings.chunk_rows, measure_arena, progress, mask_bias=settings.mask_bias
        )
        lean_check = compare_graphs(
            straight, tflite, test_x, settings.lean_check_examples, settings.seed
        )
        if lean_check["max_lsb"] and lean_choice.get("mask_bias"):
            progress(
                f"lean graph: {lean_check['max_lsb']} LSB from the converter's graph with the "
                "mask bias; choosing again without it"
            )
            tflite, lean_choice, arena = smallest_lean(
                straight, settings.chunk_rows, measure_arena, progress, mask_bias=False
            )
            lean_check = compare_graphs(
                straight, tflite, test_x, settings.lean_check_examples, settings.seed
            )
        if lean_check["max_lsb"]:
            raise ValueError(
                f"lean graph: its int8 logits differ from the converter's graph by up to "
                f"{lean_check['max_lsb']} LSB on {lean_check['examples']} test examples (the "
                "rewrite must be exact); export with --nolean and report this model"
            )
        progress(
            f"lean graph: same int8 logits as the converter's graph on "
            f"{lean_check['examples']} test examples"
        )
    report = check_int8_graph(tflite)
    seconds["convert"] = round(time.time() - started, 1)
    progress(f"int8: {report.summary()}")

    started = time.time()
    outputs = run_tflm(tflite, test_x, workers=os.cpu_count() or 1)
    scores = outputs.logits[:, 0] if outputs.logits.shape[-1] == 1 else outputs.logits
    test = compute_metrics(task.metric, test_y, scores)
    seconds["tflm_test_run"] = round(time.time() - started, 1)
    agreement = {}
    if not task.is_regression:
        predicted = outputs.raw.argmax(-1)
        for name, reference in (references or {}).items():
            expected = reference.predict(test_x, batch_size=256, verbose=0).argmax(-1)
            agreement[name] = float(np.mean(predicted == expected))
    shown = " ".join(f"{k} {v:.4f}" for k, v in test.items())
    progress(f"int8 under TFLM, {len(test_y)} test examples: {shown}; agreement {agreement}")

    memory = {}
    if measure_arena:
        started = time.time()
        memory = memory_report(
            tflite,
            arena or measure_arena_bytes(tflite),
            parameters=parameters,
            seq_len=seq_len,
            hidden_dim=_hidden_dim(report),
            names=tensor_names(straight, lean_choice),
        )
        seconds["arena"] = round(time.time() - started, 1)
    output = report.outputs[0]
    return Int8Result(
        tflite=tflite,
        test=test,
        agreement=agreement,
        memory=memory,
        op_counts=report.op_counts,
        output_quantization={"scale": output.scale, "zero_point": output.zero_point},
        seconds=seconds,
        lean=lean_choice,
        lean_check=lean_check,
        per_channel_dense=settings.per_channel_dense,
        test_logits=outputs.logits,
    )


def compare_graphs(reference: bytes, graph: bytes, inputs: dict, count: int, seed: int) -> dict:
    """Int8 logits of `graph` against `reference` under TFLM on up to `count` of `inputs` (a
    seeded sample): {"examples", "max_lsb", "same_class"}."""
    total = len(next(iter(inputs.values())))
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(total, size=min(count, total), replace=False))
    subset = {name: values[chosen] for name, values in inputs.items()}
    theirs = run_tflm(reference, subset).raw.astype(np.int32)
    mine = run_tflm(graph, subset).raw.astype(np.int32)
    return {
        "examples": int(len(chosen)),
        "max_lsb": int(np.abs(mine - theirs).max()) if len(chosen) else 0,
        "same_class": float(np.mean(mine.argmax(-1) == theirs.argmax(-1))) if len(chosen) else 1.0,
    }


def lean_variants(
    tflite: bytes, chunk_candidates, offline_plan: bool = True, mask_bias: bool = True
) -> dict:
    """{label: (options or None for the converter's graph, graph)}: the converter's graph and the
    exact lean rewrite at each row-chunk size, chunked per layer and per attention chain (the
    two scopes coincide without chunks), each with its offline memory plan (memory_plan) unless
    offline_plan=False."""
    variants = {"converter": (None, tflite)}
    for rows in dict.fromkeys(chunk_candidates):
        for scope in CHUNK_SCOPES if rows else CHUNK_SCOPES[:1]:
            options = LeanOptions(chunk_rows=rows, chunk_scope=scope, mask_bias=mask_bias)
            label = f"chunk_rows={rows}" + (f"/{scope}" if rows else "")
            variants[label] = (options, lean_tflite(tflite, options))
    if offline_plan:
        variants = {
            label: (options, with_offline_plan(graph)[0])
            for label, (options, graph) in variants.items()
        }
    return variants


def smallest_lean(
    tflite: bytes,
    chunk_candidates,
    measure: bool,
    progress,
    offline_plan: bool = True,
    mask_bias: bool = True,
) -> tuple:
    """The graph (the converter's own, or the exact lean rewrite at each row-chunk size and
    chunk scope; each with an offline memory plan unless offline_plan=False) whose TFLM arena is
    smallest.

    Chunks cut the planned part of the arena but every chunk's ops add persistent bytes, and on
    some graphs (the BERT baselines) the rewrite itself costs more than it saves, so the choice
    is measured, not guessed. Without measuring, the first candidate's rewrite (chunked per
    layer) is kept. Returns (tflite, {"chunk_rows": rows or None for the converter's graph,
    "chunk_scope", "offline_plan", "arena_by_variant"}, the kept graph's measure_arena_bytes()
    or None).
    """
    candidates = tuple(chunk_candidates)
    if not measure:
        options = LeanOptions(chunk_rows=candidates[0], mask_bias=mask_bias)
        graph = lean_tflite(tflite, options)
        if offline_plan:
            graph = with_offline_plan(graph)[0]
        choice = {
            "chunk_rows": options.chunk_rows,
            "chunk_scope": options.chunk_scope,
            "mask_bias": options.mask_bias,
            "offline_plan": offline_plan,
            "arena_by_variant": {},
        }
        return graph, choice, None
    variants = lean_variants(tflite, candidates, offline_plan, mask_bias)
    measured = {label: measure_arena_bytes(graph) for label, (_, graph) in variants.items()}
    arenas = {label: arena["minimum"] for label, arena in measured.items()}
    best = min(arenas, key=lambda label: arenas[label])
    shown = ", ".join(f"{label}: {arena:,} B" for label, arena in arenas.items())
    plan = " with offline memory plans" if offline_plan else ""
    progress(f"lean graph: arena by variant{plan} ({shown}); keeping {best}")
    options, graph = variants[best]
    choice = {
        "chunk_rows": None if options is None else options.chunk_rows,
        "chunk_scope": None if options is None else options.chunk_scope,
        "mask_bias": None if options is None else options.mask_bias,
        "offline_plan": offline_plan,
        "arena_by_variant": arenas,
    }
    return graph, choice, measured[best]


def tensor_names(straight: bytes, lean_choice: dict | None) -> list[str]:
    """The names of the kept graph's tensors, by index (the kept graph is written without them:
    TFLM never reads them); the memory report names tensors from them. The lean rewrite is made
    again with names (an offline plan adds metadata only), and a tensor it made, named
    'lean/<k><suffix>', is named after the converter's tensor k it stands for: '<name><suffix>'.
    """
    converter = [t.name.split(";")[0] for t in inspect_tflite(straight).tensors]
    if lean_choice is None or lean_choice["chunk_rows"] is None:
        return converter
    options = LeanOptions(
        chunk_rows=lean_choice["chunk_rows"],
        chunk_scope=lean_choice["chunk_scope"],
        mask_bias=lean_choice["mask_bias"],
    )
    names = []
    for tensor in inspect_tflite(lean_tflite(straight, options, keep_names=True)).tensors:
        found = re.fullmatch(r"lean/(\d+)(.*)", tensor.name)
        if found and int(found[1]) < len(converter):
            names.append(converter[int(found[1])] + found[2])
        else:
            names.append(tensor.name)
    return names


def _hidden_dim(report) -> int:
    """d: the last dimension of the classifier head's input (the [CLS] or pooled vector)."""
    head = [op for op in report.ops if op.name == "FULLY_CONNECTED"][-1]
    return int(report.tensors[head.inputs[0]].shape[-1])

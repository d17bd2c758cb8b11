"""Runs a full-integer .tflite under the TFLM host runtime and compares it with references.

`run_tflm` feeds examples one at a time (the model's batch is 1) through
`tflite_micro.runtime.Interpreter`, which runs TFLM's reference kernels on the host; `run_tflite`
does the same with tf.lite.Interpreter (TFLite's kernels, a second implementation).
`measure_arena_bytes` reports the tensor arena a model needs. `compare_tflm_tflite` (int8 LSB
differences) and `class_agreement` (against Keras) check the port.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from tflm_embbert.graph.flatbuffer import TFLiteReport, inspect_tflite

DEFAULT_ARENA_BYTES = 8 << 20  # for host runs; the board needs measure_arena_bytes() bytes

_ARENA_LINE = re.compile(r"recorded (\d+) head (\d+) tail (\d+) minimum (\d+)")


@dataclass
class Outputs:
    raw: np.ndarray  # (n, num_labels) as the model outputs them (int8)
    logits: np.ndarray  # dequantized: scale * (raw - zero_point)


def _input_order(report: TFLiteReport, inputs: dict) -> list[str]:
    """Maps the graph's inputs (in order) to keys of `inputs` by name: the converter names them
    "serving_default_token_ids:0" and may reorder them."""
    keys = sorted(inputs, key=len, reverse=True)  # "segment_ids" before a shorter key it contains
    order = []
    for tensor in report.inputs:
        match = next((k for k in keys if k in tensor.name), None)
        if match is None:
            raise ValueError(f"model input {tensor.name!r} matches none of {sorted(inputs)}")
        order.append(match)
    return order


def _as_input(value: np.ndarray, tensor) -> np.ndarray:
    """One example (1, L) in the input tensor's type: ids stay integers; an int8 input is
    quantized with its scale and zero point."""
    if tensor.dtype == "INT32":
        return np.asarray(value, np.int32)
    if tensor.dtype == "INT8":
        quantized = np.round(np.asarray(value, np.float32) / tensor.scale) + tensor.zero_point
        return np.clip(quantized, -128, 127).astype(np.int8)
    raise ValueError(f"input {tensor.name!r}: unsupported dtype {tensor.dtype}")


def _dequantize(raw: np.ndarray, tensor) -> np.ndarray:
    if tensor.scale is None:
        return raw.astype(np.float32)
    return (raw.astype(np.float32) - tensor.zero_point) * tensor.scale


def _run(model_bytes: bytes, inputs: dict, make_step) -> Outputs:
    report = inspect_tflite(model_bytes, subgraph=0)  # what the interpreter invokes
    order = _input_order(report, inputs)
    arrays = {k: np.asarray(v) for k, v in inputs.items()}
    count = len(arrays[order[0]])
    if not count:
        raise ValueError("no examples to run")
    step = make_step(report)
    raw = np.stack(
        [
            step(
                [
                    _as_input(arrays[key][i : i + 1], tensor)
                    for key, tensor in zip(order, report.inputs, strict=True)
                ]
            )
            for i in range(count)
        ]
    )
    raw = raw.reshape(count, -1)
    return Outputs(raw=raw, logits=_dequantize(raw, report.outputs[0]))


def run_tflm(
    model_bytes: bytes,
    inputs: dict,
    arena_size: int = DEFAULT_ARENA_BYTES,
    workers: int = 1,
    min_per_worker: int = 1000,
) -> Outputs:
    """Runs every example of `inputs` ({"token_ids": (n, L), ...}) under TFLM.

    `workers` > 1 splits the examples, in order, over up to that many processes with one
    interpreter each (at least `min_per_worker` examples per process, since each one imports
    TensorFlow first); the outputs are the same as one process's. Threads would not help: the
    runtime's invoke holds the GIL (measured: two threads ran no faster than one)."""
    arrays = {k: np.asarray(v) for k, v in inputs.items()}
    count = len(next(iter(arrays.values()))) if arrays else 0
    workers = max(1, min(workers, count // max(1, min_per_worker)))
    if workers == 1:
        return _run_tflm_here(model_bytes, arrays, arena_size)
    bounds = np.linspace(0, count, workers + 1).astype(int)
    spans = zip(bounds[:-1], bounds[1:], strict=True)
    chunks = [{k: v[a:b] for k, v in arrays.items()} for a, b in spans]
    context = multiprocessing.get_context("spawn")  # no fork of a process that runs TensorFlow
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        repeat = [model_bytes] * workers, chunks, [arena_size] * workers
        raw = np.concatenate(list(pool.map(_run_tflm_raw, *repeat)))
    output = inspect_tflite(model_bytes, subgraph=0).outputs[0]
    return Outputs(raw=raw, logits=_dequantize(raw, output))


def _run_tflm_raw(model_bytes: bytes, inputs: dict, arena_size: int) -> np.ndarray:
    return _run_tflm_here(model_bytes, inputs, arena_size).raw


def _run_tflm_here(model_bytes: bytes, inputs: dict, arena_size: int) -> Outputs:
    from tflite_micro import runtime

    def make_step(report):
        interpreter = runtime.Interpreter.from_bytes(model_bytes, arena_size=arena_size)

        def step(values):
            for index, value in enumerate(values):
                interpreter.set_input(value, index)
            interpreter.invoke()
            return np.array(interpreter.get_output(0))

        return step

    return _run(model_bytes, inputs, make_step)


def run_tflite(model_bytes: bytes, inputs: dict) -> Outputs:
    """The same through tf.lite.Interpreter: TFLite's builtin kernels, no delegate (XNNPACK)."""
    import warnings

    from keras_models.backend import tf

    def make_step(report):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "tf.lite.Interpreter is deprecated"
            interpreter = tf.lite.Interpreter(
                model_content=model_bytes,
                # Not BUILTIN_REF: its int8 SUM returned 0 for a sum of nine 1.0s (measured).
                experimental_op_resolver_type=(
                    tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
                ),
            )
        interpreter.allocate_tensors()
        input_indices = [tensor.index for tensor in report.inputs]
        output_index = report.outputs[0].index

        def step(values):
            for index, value in zip(input_indices, values, strict=True):
                interpreter.set_tensor(index, value)
            interpreter.invoke()
            return interpreter.get_tensor(output_index).copy()

        return step

    return _run(model_bytes, inputs, make_step)


_ARENA_SCRIPT = r"""
import os, re, sys, tempfile
import numpy as np
from tflite_micro import runtime

model = open(sys.argv[1], "rb").read()
upper, count = int(sys.argv[2]), int(sys.argv[3])


def run(size):
    try:
        interpreter = runtime.Interpreter.from_bytes(model, arena_size=size)
        for i in range(count):
            details = interpreter.get_input_details(i)
            interpreter.set_input(np.zeros(details["shape"], details["dtype"]), i)
        interpreter.invoke()
        return interpreter
    except RuntimeError:
        return None


interpreter = run(upper)
if interpreter is None:
    sys.exit(f"the model does not allocate and run in {upper} bytes")
with tempfile.TemporaryFile("w+") as log:  # print_allocations writes to the C++ stderr
    saved = os.dup(2)
    sys.stderr.flush()
    os.dup2(log.fileno(), 2)
    try:
        interpreter.print_allocations()
    finally:
        os.dup2(saved, 2)
    log.seek(0)
    text = log.read()
found = [
    re.search(rf"Arena allocation {part} (\d+) bytes", text) for part in ("total", "head", "tail")
]
if not all(found):
    sys.exit("no allocation total/head/tail in print_allocations() output")
recorded, head, tail = (int(f.group(1)) for f in found)
# The smallest arena that works: at least the recorded total (below it TFLM can even crash),
# plus what the memory planner needs temporarily while it plans.
low, high = recorded - 1, recorded
while run(high) is None:
    low, high = high, min(upper, 2 * high)
while high - low > 1:
    middle = (low + high) // 2
    low, high = (middle, high) if run(middle) is None else (low, middle)
print(f"recorded {recorded} head {head} tail {tail} minimum {high}")
"""


def measure_arena_bytes(model_bytes: bytes, upper_bound: int = DEFAULT_ARENA_BYTES) -> dict:
    """Tensor-arena bytes the model needs under TFLM's host build (same planner as the board).

    Returns {"recorded", "planned", "persistent", "minimum"}. "recorded" is the
    RecordingMicroAllocator's total that `print_allocations()` writes from C++ to stderr (what
    stays allocated after AllocateTensors): "planned" (the arena head: the memory planner's
    buffers for the activations, reused between ops) plus "persistent" (the tail: tensor structs,
    quantization data, kernels' persistent buffers such as BATCH_MATMUL's transposed operands).
    "minimum" is the smallest arena_size that allocates and runs, found by bisection: it can
    exceed "recorded" by the memory planner's temporary scratch (measured: +2 to +10 KB on the
    tiny test models). Give the board "minimum" (a 64-bit host's per-tensor structs are larger
    than a Cortex-M's, so it errs on the safe side).
    Runs in a subprocess: TFLM prints planner errors at every failing size and crashed on arenas
    far too small.
    """
    count = len(inspect_tflite(model_bytes, subgraph=0).inputs)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.tflite")
        with open(path, "wb") as file:
            file.write(model_bytes)
        done = subprocess.run(
            [sys.executable, "-c", _ARENA_SCRIPT, path, str(upper_bound), str(count)],
            capture_output=True,
            text=True,
            timeout=600,
        )
    found = _ARENA_LINE.search(done.stdout)
    if done.returncode != 0 or not found:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"measure_arena_bytes: TFLM run failed: {tail}")
    recorded, planned, persistent, minimum = (int(v) for v in found.groups())
    return {
        "recorded": recorded,
        "planned": planned,
        "persistent": persistent,
        "minimum": minimum,
    }


def compare_tflm_tflite(model_bytes: bytes, inputs: dict) -> dict:
    """TFLM against tf.lite.Interpreter on the same int8 model: the largest output difference in
    LSB (int8 steps) and the fraction of output values that differ at all."""
    tflm, tflite = run_tflm(model_bytes, inputs), run_tflite(model_bytes, inputs)
    difference = np.abs(tflm.raw.astype(np.int32) - tflite.raw.astype(np.int32))
    return {
        "max_lsb": int(difference.max()) if difference.size else 0,
        "fraction_differing": float(np.mean(difference > 0)) if difference.size else 0.0,
        "class_agreement": float(np.mean(tflm.raw.argmax(-1) == tflite.raw.argmax(-1))),
    }


def class_agreement(model_bytes: bytes, keras_model, inputs: dict) -> float:
    """Fraction of examples whose TFLM predicted class equals the Keras model's."""
    expected = keras_model.predict(dict(inputs), batch_size=256, verbose=0).argmax(-1)
    return float(np.mean(run_tflm(model_bytes, inputs).logits.argmax(-1) == expected))


def invoke_ms(model_bytes: bytes, inputs: dict, count: int = 20) -> float:
    """Median wall time (ms) of one TFLM `invoke()` on the host, over `count` examples of
    `inputs` (cycled). Host x86 reference kernels: compare variants with it, not boards."""
    import statistics
    import time

    from tflite_micro import runtime

    report = inspect_tflite(model_bytes, subgraph=0)  # what the interpreter invokes
    order = _input_order(report, inputs)
    interpreter = runtime.Interpreter.from_bytes(model_bytes, arena_size=DEFAULT_ARENA_BYTES)
    times = []
    for i in range(count):
        for index, (key, tensor) in enumerate(zip(order, report.inputs, strict=True)):
            rows = np.asarray(inputs[key])
            interpreter.set_input(_as_input(rows[i % len(rows)][None], tensor), index)
        started = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)

"""Multiply-accumulates per inference of a .tflite graph, counted from its op list and shapes.

Only ops that multiply two operands and sum (matmuls and convolutions) are counted, as papers
count MACs; element-wise ops (ADD, MUL, LOGISTIC, SOFTMAX, ...) are left out of `total` and
reported as `elementwise` (one per output element) so nothing is hidden.
"""

from __future__ import annotations

import numpy as np

from tflm_embbert.graph.flatbuffer import ELEMENTWISE_OPS, REDUCTION_OPS, inspect_tflite


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def op_macs(name: str, input_shapes: list, output_shape: tuple, options=None) -> int:
    """MACs of one op from its input and output shapes (0 for ops that do no matmul/conv)."""
    if name == "FULLY_CONNECTED":
        # weights (units, in_features); every output element sums in_features products.
        return _size(output_shape) * int(input_shapes[1][-1])
    if name == "BATCH_MATMUL":
        adj_x = bool(getattr(options, "adjX", False))
        inner = int(input_shapes[0][-2] if adj_x else input_shapes[0][-1])
        return _size(output_shape) * inner
    if name == "DEPTHWISE_CONV_2D":
        kernel = input_shapes[1]  # (1, kh, kw, channels * multiplier)
        return _size(output_shape) * int(kernel[1]) * int(kernel[2])
    if name == "CONV_2D":
        kernel = input_shapes[1]  # (out_c, kh, kw, in_c)
        return _size(output_shape) * int(kernel[1]) * int(kernel[2]) * int(kernel[3])
    return 0


def count_macs(model_bytes: bytes, subgraph: int = 0) -> dict:
    """{"total": MACs, "by_op": {op name: MACs}, "elementwise": output elements of element-wise
    ops} for one run of `subgraph` (subgraph 0 is what the interpreter invokes)."""
    report = inspect_tflite(model_bytes, subgraph=subgraph)
    by_op: dict[str, int] = {}
    elementwise = 0
    for op in report.ops:
        shapes = [report.tensors[i].shape if i >= 0 else () for i in op.inputs]
        out_shape = report.tensors[op.outputs[0]].shape if op.outputs else ()
        macs = op_macs(op.name, shapes, out_shape, op.options)
        if macs:
            by_op[op.name] = by_op.get(op.name, 0) + macs
        elif op.name in ELEMENTWISE_OPS | REDUCTION_OPS:
            elementwise += _size(out_shape)
    return {"total": sum(by_op.values()), "by_op": by_op, "elementwise": elementwise}

"""Exact memory-lean rewrite of a converted int8 graph: same integer results, smaller TFLM arena.

The converter emits each layer on whole (1, L, d) tensors, so at L=256 the attention's (L, L)
score tensors and a handful of (L, d) tensors are alive at once. `lean_tflite` rewrites the
int8 flatbuffer itself, after conversion and calibration, so every new tensor keeps the
quantization parameters of the tensor it is a piece of and TFLM computes the very same int8
values (the tests compare outputs bit for bit):

- row chunks: every op that works row by row along the sequence (FULLY_CONNECTED, element-wise
  ops, SOFTMAX and reductions over the last axis, the query side of BATCH_MATMUL, the causal
  depthwise conv through a window of k-1 extra rows) is emitted per chunk of `chunk_rows` rows,
  depth first, so only one chunk's (rows, L) scores exist at a time. A tensor that is needed
  whole (the keys/values of attention, the graph output) is the CONCATENATION of its chunks.
- [CLS]-only last layer: rows are computed on demand, so when the graph output reads row 0 only
  (the classifier's [CLS] slice), the last layer computes queries, attention, conv and dense
  for row 0 only; exact because the conv is causal and keys/values stay whole.
- pre-transposed A.x: BATCH_MATMUL(A, x) becomes BATCH_MATMUL(A, TRANSPOSE(x), adj_y=True);
  TFLM otherwise keeps a persistent transposed copy of x for every such op.
- identity STRIDED_SLICE of a constant (the position table sliced to its full length) is
  dropped, so the constant is read from flash instead of copied into the arena.
- mask bias (`mask_bias`): the converter masks padded keys as
  ADD(MUL(scores, keep), MUL(1 - keep, floor)) with floor = REDUCE_MIN(scores) - MASK_MARGIN, so
  every chunk holds two (rows, L) tensors and five ops. The rewrite keeps MUL(scores, keep) and
  adds one per-key bias instead of the second product: SELECT_V2(keep != 0, zero, lowest) in
  the quantization of MUL(1 - keep, floor), built once per layer. Real keys get the very same
  integers (the ADD sees the same operands there: the second product is exactly its zero point
  on real keys); padded keys get the lowest score instead of floor. Both are at least
  MASK_MARGIN = 20 below the row's largest score (or both clamp to the lowest level), which
  TFLM's int8 SOFTMAX turns into weight 0, so the attention output is unchanged: the outputs are
  compared bit for bit in the tests and, at export, on the test split
  (`int8_eval.int8_under_tflm`).

Ops are emitted in the order the recursion finishes them (depth first from the output), so a
chunk's intermediates die before the next chunk starts. Anything the rewrite does not recognise
is copied as it is, on whole tensors.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema_fb

from tflm_embbert.graph.converter_patterns import conv_chain, mask_pattern
from tflm_embbert.graph.flatbuffer import ELEMENTWISE_OPS, REDUCTION_OPS, serialize
from tflm_embbert.graph.graph_editor import GraphEditor

BuiltinOptions = schema_fb.BuiltinOptions


# "layer": every row-wise op of a region that contains attention is chunked (the conv branch,
# dense layers and norms too: the smallest planned arena, the most ops). "attention": only the
# chain that ends in A.x (queries, scores, mask, softmax, A.x and the dense layers that read it
# alone) is chunked; the conv branch and norms run on whole tensors (fewer ops, and TFLM keeps
# ~200 B of persistent data per op on a 64-bit host).
CHUNK_SCOPES = ("layer", "attention")


@dataclass(frozen=True)
class LeanOptions:
    """chunk_rows: rows per chunk (0 = no chunking; [CLS]-only still applies).
    pretranspose: TRANSPOSE the values of A.x once instead of TFLM's per-op persistent copy.
    chunk_scope: which ops are chunked (CHUNK_SCOPES).
    mask_bias: padded keys masked by one per-key bias (module doc) instead of the per-row floor.
    """

    chunk_rows: int = 0  # as the export's first choice (tflm.settings.Int8Settings.chunk_rows)
    pretranspose: bool = True
    chunk_scope: str = "layer"
    mask_bias: bool = True

    def __post_init__(self):
        if self.chunk_rows < 0:
            raise ValueError(f"chunk_rows: expected >= 0, got {self.chunk_rows}")
        if self.chunk_scope not in CHUNK_SCOPES:
            raise ValueError(
                f"chunk_scope: expected one of {', '.join(CHUNK_SCOPES)}, got {self.chunk_scope!r}"
            )


def lean_tflite(
    model_bytes: bytes, options: LeanOptions = LeanOptions(), keep_names: bool = False
) -> bytes:
    """The rewritten .tflite (every subgraph that has a sequence input; see the module doc),
    written compactly (`flatbuffer_model.serialize`): inner tensor names are dropped unless
    keep_names (TFLM never reads them; at L=256 they were ~10 KB of the flash)."""
    model = schema_fb.ModelT.InitFromObj(schema_fb.Model.GetRootAsModel(model_bytes, 0))
    for index in range(len(model.subgraphs)):
        lean_subgraph(model, index, options)
    drop_unused_buffers(model)
    return serialize(model, strip_names=not keep_names)


def drop_unused_buffers(model) -> None:
    """Empties buffers no tensor refers to any more (indices stay valid)."""
    used = {int(t.buffer) for graph in model.subgraphs for t in graph.tensors}
    for index, buffer in enumerate(model.buffers):
        if index not in used and index:
            buffer.data = None


def write_model(model) -> bytes:
    """ModelT -> .tflite bytes, identical tables and buffers written once (flatbuffer_model)."""
    return serialize(model)


def lean_subgraph(model, index: int, options: LeanOptions = LeanOptions()) -> None:
    """Rewrites model.subgraphs[index] in place (buffers may be appended to model.buffers)."""
    graph = model.subgraphs[index]
    length = _sequence_length(graph)
    if length is None:
        return
    _Rewriter(model, graph, length, options).run()


def _sequence_length(graph) -> int | None:
    shapes = [list(graph.tensors[i].shape) for i in graph.inputs]
    lengths = {s[1] for s in shapes if len(s) == 2 and s[0] == 1}
    return lengths.pop() if len(lengths) == 1 else None


class _Rewriter(GraphEditor):
    def __init__(self, model, graph, length: int, options: LeanOptions):
        super().__init__(model, graph, length)
        self.options = options
        self.full_memo: dict[int, int] = {}
        self.rows_memo: dict[tuple, int] = {}
        self.transposed: dict[int, int] = {}
        self.old_to_new: dict[int, int] = {}
        self.bias_memo: dict[tuple, int] = {}  # (keep, product) -> the bias tensor
        self.real_memo: dict[int, int] = {}  # keep -> its bool "real key" tensor

    # ---- row rules -----------------------------------------------------------------------
    def row_rule(self, op) -> str | None:
        """How an op maps output rows to input rows, or None (whole tensors)."""
        name = self.op_name(op)
        out = int(op.outputs[0])
        if len(op.outputs) != 1 or not self.is_row(out):
            return None
        if name in ELEMENTWISE_OPS:
            return "elementwise"
        if name == "FULLY_CONNECTED" and self.is_row(int(op.inputs[0])):
            return "elementwise"
        if name in REDUCTION_OPS and self.is_constant(int(op.inputs[1])):
            axes = self.constant_values(int(op.inputs[1])).reshape(-1)
            if all(a in (-1, 2) for a in axes):
                return "elementwise"
        if name == "BATCH_MATMUL" and self.is_row(int(op.inputs[0])):
            if not getattr(op.builtinOptions, "adjX", False):
                return "matmul"
        if name == "GATHER" and self.is_constant(int(op.inputs[0])):
            indices = self.shape(int(op.inputs[1]))
            if indices == [1, self.length] and getattr(op.builtinOptions, "axis", 0) == 0:
                return "gather"
        if name == "RESHAPE" and conv_chain(self, op) is not None:
            return "conv"
        return None

    def slice_rows(self, source_old: int, full_new: int, start: int, stop: int) -> int:
        shape = self.shape(source_old)
        rank = len(shape)
        begin = [0] * rank
        end = list(shape)
        begin[1], end[1] = start, stop
        out_shape = list(shape)
        out_shape[1] = stop - start
        out = self.add_tensor(source_old, out_shape, f"/rows_{start}_{stop}")
        options = schema_fb.StridedSliceOptionsT()
        self.add_op(
            "STRIDED_SLICE",
            [
                full_new,
                self.add_constant(begin, "lean/begin"),
                self.add_constant(end, "lean/end"),
                self.add_constant([1] * rank, "lean/strides"),
            ],
            [out],
            BuiltinOptions.StridedSliceOptions,
            options,
        )
        return out

    # ---- the recursion -------------------------------------------------------------------
    def needs_whole(self, t: int) -> bool:
        """Some consumer reads the whole tensor (not row by row), or it is a graph output."""
        if t in set(int(o) for o in self.graph.outputs):
            return True
        for op in self.consumers.get(t, []):
            rule = self.row_rule(op)
            if rule in ("elementwise", "gather"):
                continue
            if rule == "matmul" and int(op.inputs[0]) == t and int(op.inputs[1]) != t:
                continue
            if self.op_name(op) == "PAD":
                continue  # read through the conv window (a slice of the whole tensor)
            if self._is_row_slice(op):
                continue
            return True
        return False

    def _is_row_slice(self, op) -> bool:
        """STRIDED_SLICE of the first rows (e.g. [CLS]): begin 0, end <= L, stride 1 on axis 1."""
        if self.op_name(op) != "STRIDED_SLICE" or not self.is_row(int(op.inputs[0])):
            return False
        if not all(self.is_constant(int(t)) for t in op.inputs[1:4]):
            return False
        options = op.builtinOptions
        if options.beginMask & 2 or options.endMask & 2 or options.ellipsisMask:
            return False
        begin, end, strides = (self.constant_values(int(t)).tolist() for t in op.inputs[1:4])
        return begin[1] >= 0 and 0 < end[1] <= self.length and strides[1] == 1

    def whole(self, t: int) -> int:
        """New index of old tensor t, computed on all rows."""
        t = self.resolve(t)
        if t in self.full_memo:
            return self.full_memo[t]
        op = self.producer.get(t)
        if op is None:  # graph input or constant: kept as is
            new = self.keep_tensor(t)
        elif (
            self.row_rule(op)
            and self.options.chunk_rows
            and self.is_row(t)
            and (
                self._attention_chain(t)
                if self.options.chunk_scope == "attention"
                else self._region_has_matmul(t, set())
            )
        ):
            step = self.options.chunk_rows
            parts = [
                self.rows(t, start, min(start + step, self.length), force=True)
                for start in range(0, self.length, step)
            ]
            if len(parts) == 1:
                new = parts[0]
            else:
                new = self.keep_tensor(t)
                options = schema_fb.ConcatenationOptionsT()
                options.axis = 1
                self.add_op(
                    "CONCATENATION", parts, [new], BuiltinOptions.ConcatenationOptions, options
                )
        else:
            new = self.emit_whole(op, t)
        self.full_memo[t] = new
        return new

    def _region_has_matmul(self, t: int, seen: set) -> bool:
        """Whether the rows of t come from attention (only there do chunks cut the peak)."""
        op = self.producer.get(t)
        if op is None or t in seen:
            return False
        seen.add(t)
        rule = self.row_rule(op)
        if rule == "matmul":
            return True
        if rule is None:
            return False
        sources = [self.resolve(int(i)) for i in op.inputs if i >= 0]
        if rule == "conv":
            sources = [conv_chain(self, op)[0]]
        return any(
            self.is_row(i) and not self.needs_whole(i) and self._region_has_matmul(i, seen)
            for i in sources
        )

    def _attention_chain(self, t: int) -> bool:
        """Whether t is A.x or computed row by row from A.x alone (every row input is)."""
        op = self.producer.get(t)
        rule = None if op is None else self.row_rule(op)
        if rule == "matmul":
            return True
        if rule != "elementwise":
            return False
        sources = [self.resolve(int(i)) for i in op.inputs if i >= 0]
        rows = [i for i in sources if self.is_row(i)]
        return bool(rows) and all(self._attention_chain(i) for i in rows)

    def keep_tensor(self, t: int) -> int:
        if t not in self.old_to_new:
            self.new_tensors.append(copy.copy(self.old_tensors[t]))
            self.old_to_new[t] = len(self.new_tensors) - 1
        return self.old_to_new[t]

    def emit_whole(self, op, t: int) -> int:
        name = self.op_name(op)
        if name == "STRIDED_SLICE" and self._is_row_slice(op):
            stop = int(self.constant_values(int(op.inputs[2]))[1])
            source = self.rows(int(op.inputs[0]), 0, stop)
            inputs = [source] + [self.whole(int(i)) for i in op.inputs[1:]]
            outputs = [self.keep_tensor(int(o)) for o in op.outputs]
            self.copy_op(op, inputs, outputs)
            return self.old_to_new[t]
        rule = self.row_rule(op)
        if rule:  # chunking off: the row rule on all rows still pre-transposes
            return self.rows(t, 0, self.length, force=True, keep=True)
        inputs = [self.whole(int(i)) if i >= 0 else -1 for i in op.inputs]
        outputs = [self.keep_tensor(int(o)) for o in op.outputs]
        self.copy_op(op, inputs, outputs)
        return self.old_to_new[t]

    def rows(self, t: int, start: int, stop: int, force=False, keep=False) -> int:
        """New index of rows [start, stop) of old row tensor t."""
        t = self.resolve(t)
        if (start, stop) == (0, self.length) and not force:
            return self.whole(t)
        key = (t, start, stop)
        if key in self.rows_memo:
            return self.rows_memo[key]
        op = self.producer.get(t)
        if op is None or (not force and self.needs_whole(t)) or not self.row_rule(op):
            new = self.slice_rows(t, self.whole(t), start, stop)
        else:
            new = self.emit_rows(op, t, start, stop, keep)
        self.rows_memo[key] = new
        return new

    def piece(self, source: int, start: int, stop: int) -> int:
        """An op input for output rows [start, stop): rows of a row tensor, else the whole."""
        source = self.resolve(source)
        if self.is_row(source):
            return self.rows(source, start, stop)
        shape = self.shape(source)
        if (
            self.is_constant(source)
            and len(shape) == 3
            and shape[1] == self.length
            and (start, stop) != (0, self.length)
        ):  # e.g. the position table: a slice of the flash constant
            key = (source, start, stop)
            if key not in self.rows_memo:
                self.rows_memo[key] = self.slice_rows(source, self.whole(source), start, stop)
            return self.rows_memo[key]
        return self.whole(source)

    def output_for(self, t: int, start: int, stop: int, keep: bool) -> int:
        if keep:
            return self.keep_tensor(t)
        shape = self.shape(t)
        shape[1] = stop - start
        return self.add_tensor(t, shape, f"/rows_{start}_{stop}")

    def mask_bias(self, keep: int, product: int) -> int:
        """(1, 1, L) int8 in product's quantization: its zero point on real keys (keep != its
        zero point, i.e. keep != 0), its lowest level on padded keys."""
        key = (keep, product)
        if key in self.bias_memo:
            return self.bias_memo[key]
        quantization = self.old_tensors[keep].quantization
        zero_point = int(quantization.zeroPoint[0]) if quantization is not None else 0
        if keep not in self.real_memo:
            real = self.add_tensor(keep, [1, 1, self.length], "/real")
            self.new_tensors[real].type = schema_fb.TensorType.BOOL
            self.new_tensors[real].quantization = None
            self.add_op(
                "NOT_EQUAL",
                [self.whole(keep), self.add_int8_constant(zero_point, keep, "lean/keep_zero")],
                [real],
                BuiltinOptions.NotEqualOptions,
                schema_fb.NotEqualOptionsT(),
            )
            self.real_memo[keep] = real
        product_zero = self.old_tensors[product].quantization.zeroPoint
        bias = self.add_tensor(product, [1, 1, self.length], "/mask_bias")
        self.add_op(
            "SELECT_V2",
            [
                self.real_memo[keep],
                self.add_int8_constant(int(product_zero[0]), product, "lean/bias_zero"),
                self.add_int8_constant(-128, product, "lean/bias_lowest"),
            ],
            [bias],
            BuiltinOptions.SelectV2Options,
            schema_fb.SelectV2OptionsT(),
        )
        self.bias_memo[key] = bias
        return bias

    def emit_rows(self, op, t: int, start: int, stop: int, keep: bool) -> int:
        rule = self.row_rule(op)
        pattern = mask_pattern(self, op) if self.options.mask_bias and rule else None
        if pattern is not None:
            masked, keep_mask, product, position = pattern
            inputs = [self.piece(masked, start, stop), self.mask_bias(keep_mask, product)]
            inputs = inputs if position == 0 else inputs[::-1]
            out = self.output_for(t, start, stop, keep)
            self.copy_op(op, inputs, [out])
            return out
        if rule == "elementwise":
            inputs = [self.piece(int(i), start, stop) if i >= 0 else -1 for i in op.inputs]
            out = self.output_for(t, start, stop, keep)
            self.copy_op(op, inputs, [out])
            return out
        if rule == "gather":
            ids = self.resolve(int(op.inputs[1]))
            ids_new = self.whole(ids)
            if (start, stop) != (0, self.length):
                ids_new = self.slice_rows(ids, ids_new, start, stop)
            out = self.output_for(t, start, stop, keep)
            self.copy_op(op, [self.whole(int(op.inputs[0])), ids_new], [out])
            return out
        if rule == "matmul":
            query = self.rows(int(op.inputs[0]), start, stop)
            values_old = self.resolve(int(op.inputs[1]))
            options = copy.copy(op.builtinOptions)
            if self.options.pretranspose and not options.adjY:
                values = self.transpose(values_old)
                options.adjY = True
            else:
                values = self.whole(values_old)
            out = self.output_for(t, start, stop, keep)
            self.copy_op(op, [query, values], [out], options)
            return out
        if rule == "conv":
            return self.emit_conv_rows(op, t, start, stop, keep)
        raise AssertionError(rule)

    def transpose(self, t: int) -> int:
        if t not in self.transposed:
            source = self.whole(t)
            shape = self.shape(t)
            out = self.add_tensor(t, [shape[0], shape[2], shape[1]], "/transposed")
            self.add_op(
                "TRANSPOSE",
                [source, self.add_constant([0, 2, 1], "lean/perm_021")],
                [out],
                BuiltinOptions.TransposeOptions,
                schema_fb.TransposeOptionsT(),
            )
            self.transposed[t] = out
        return self.transposed[t]

    def emit_conv_rows(self, reshape_out_op, t: int, start: int, stop: int, keep: bool) -> int:
        x, pad, reshape_in, conv = conv_chain(self, reshape_out_op)
        taps = self.shape(int(conv.inputs[1]))[2]
        low = max(0, start - (taps - 1))
        front = (taps - 1) - (start - low)
        window = self.rows(x, low, stop)
        width = self.shape(x)[2]
        rows = stop - low + front
        if front:
            padded = self.add_tensor(int(pad.outputs[0]), [1, rows, width], f"/rows_{start}_{stop}")
            self.copy_op(
                pad,
                [window, self.add_constant([[0, 0], [front, 0], [0, 0]], "lean/pad")],
                [padded],
            )
            window = padded
        image_shape = [1, 1, rows, width]
        image = self.add_tensor(int(reshape_in.outputs[0]), image_shape, f"/rows_{start}_{stop}")
        self.reshape(reshape_in, window, image, image_shape)
        channels = self.shape(int(conv.outputs[0]))[3]
        conv_out = self.add_tensor(
            int(conv.outputs[0]), [1, 1, stop - start, channels], f"/rows_{start}_{stop}"
        )
        self.copy_op(conv, [image] + [self.whole(int(i)) for i in conv.inputs[1:]], [conv_out])
        out = self.output_for(t, start, stop, keep)
        self.reshape(reshape_out_op, conv_out, out, [1, stop - start, channels])
        return out

    def reshape(self, op, source: int, out: int, shape: list) -> None:
        options = copy.copy(op.builtinOptions)
        if options is not None and getattr(options, "newShape", None) is not None:
            options.newShape = list(shape)
        inputs = [source]
        if len(op.inputs) > 1:
            inputs.append(self.add_constant(shape, "lean/shape"))
        self.copy_op(op, inputs, [out], options)

    # ---- driver ------------------------------------------------------------------------
    def run(self) -> None:
        for op in self.old_ops:  # identity slices of constants read the constant itself
            if self.op_name(op) == "STRIDED_SLICE" and self.is_constant(int(op.inputs[0])):
                if self.shape(int(op.inputs[0])) == self.shape(int(op.outputs[0])):
                    begin, _, strides = (
                        self.constant_values(int(i)).tolist() for i in op.inputs[1:4]
                    )
                    if not any(begin) and all(s == 1 for s in strides):
                        self.alias[int(op.outputs[0])] = int(op.inputs[0])
        inputs = [self.keep_tensor(int(t)) for t in self.graph.inputs]
        outputs = [self.whole(int(t)) for t in self.graph.outputs]
        self.graph.tensors = self.new_tensors
        self.graph.operators = self.new_ops
        self.graph.inputs = np.asarray(inputs, dtype=np.int32)
        self.graph.outputs = np.asarray(outputs, dtype=np.int32)

"""An editor for one subgraph of an int8 .tflite (flatbuffer object API): facts about the old
graph (shapes, constants, producers and consumers) and helpers that add tensors, constants and
ops to a new op list. The rewrites (`lean_graph`) subclass it."""

from __future__ import annotations

import copy

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema_fb

from tflm_embbert.graph.flatbuffer import BUILTIN_CODES, builtin_name, constant_bytes, tensor_shape


class GraphEditor:
    def __init__(self, model, graph, length: int):
        self.model, self.graph, self.length = model, graph, length
        self.old_tensors = list(graph.tensors)
        self.old_ops = list(graph.operators or [])
        self.producer = {}
        self.consumers: dict[int, list] = {}
        for op in self.old_ops:
            for t in op.outputs:
                self.producer[int(t)] = op
            for t in op.inputs:
                if t >= 0:
                    self.consumers.setdefault(int(t), []).append(op)
        self.alias: dict[int, int] = {}  # old tensor -> the old tensor it stands for
        self.new_tensors: list = []
        self.new_ops: list = []
        self.const_memo: dict[tuple, int] = {}

    # ---- graph facts -------------------------------------------------------------------
    def op_name(self, op) -> str:
        return builtin_name(self.model, op)

    def shape(self, t: int) -> list:
        return list(tensor_shape(self.old_tensors[t]))

    def is_constant(self, t: int) -> bool:
        return constant_bytes(self.model, self.old_tensors[t]) is not None

    def is_row(self, t: int) -> bool:
        """A (1, L, x) activation: rows are sequence positions."""
        s = self.shape(t)
        return len(s) == 3 and s[0] == 1 and s[1] == self.length and not self.is_constant(t)

    def constant_values(self, t: int) -> np.ndarray:
        tensor = self.old_tensors[t]
        dtype = {schema_fb.TensorType.INT32: np.int32, schema_fb.TensorType.INT64: np.int64}[
            tensor.type
        ]
        data = np.asarray(self.model.buffers[tensor.buffer].data, dtype=np.uint8)
        return np.frombuffer(data.tobytes(), dtype=dtype).reshape(self.shape(t))

    def resolve(self, t: int) -> int:
        while t in self.alias:
            t = self.alias[t]
        return t

    def producer_named(self, t: int, name: str):
        """The op producing `t` (after aliases) if it is a `name` op, else None."""
        op = self.producer.get(self.resolve(t))
        return op if op is not None and self.op_name(op) == name else None

    # ---- emission helpers ----------------------------------------------------------------
    def opcode(self, name: str) -> int:
        code = BUILTIN_CODES[name]
        for i, existing in enumerate(self.model.operatorCodes):
            if max(existing.builtinCode, existing.deprecatedBuiltinCode) == code:
                return i
        new = schema_fb.OperatorCodeT()
        new.builtinCode = code
        new.deprecatedBuiltinCode = min(code, 127)
        new.version = 1
        self.model.operatorCodes.append(new)
        return len(self.model.operatorCodes) - 1

    def add_tensor(self, like: int, shape: list, suffix: str) -> int:
        tensor = copy.copy(self.old_tensors[like])
        tensor.shape = np.asarray(shape, dtype=np.int32)
        tensor.shapeSignature = None
        tensor.buffer = 0
        # Short names: thousands of chunk tensors with the converter's long names cost flash.
        tensor.name = f"lean/{like}{suffix}".encode()
        self.new_tensors.append(tensor)
        return len(self.new_tensors) - 1

    def add_constant(self, values, name: str) -> int:
        values = np.asarray(values, dtype=np.int32)
        key = (values.shape, values.tobytes())
        if key in self.const_memo:
            return self.const_memo[key]
        buffer = schema_fb.BufferT()
        buffer.data = np.frombuffer(values.tobytes(), dtype=np.uint8)
        self.model.buffers.append(buffer)
        tensor = schema_fb.TensorT()
        tensor.shape = np.asarray(values.shape, dtype=np.int32)
        tensor.type = schema_fb.TensorType.INT32
        tensor.buffer = len(self.model.buffers) - 1
        tensor.name = name.encode()
        self.new_tensors.append(tensor)
        self.const_memo[key] = len(self.new_tensors) - 1
        return self.const_memo[key]

    def add_int8_constant(self, value: int, like: int, name: str) -> int:
        """A (1,) int8 constant in the quantization of old tensor `like`."""
        key = ("int8", value, like)
        if key in self.const_memo:
            return self.const_memo[key]
        buffer = schema_fb.BufferT()
        buffer.data = np.frombuffer(np.asarray([value], np.int8).tobytes(), dtype=np.uint8)
        self.model.buffers.append(buffer)
        tensor = copy.copy(self.old_tensors[like])
        tensor.shape = np.asarray([1], dtype=np.int32)
        tensor.shapeSignature = None
        tensor.buffer = len(self.model.buffers) - 1
        tensor.name = name.encode()
        self.new_tensors.append(tensor)
        self.const_memo[key] = len(self.new_tensors) - 1
        return self.const_memo[key]

    def add_op(self, name: str, inputs, outputs, options_type=0, options=None) -> None:
        op = schema_fb.OperatorT()
        op.opcodeIndex = self.opcode(name)
        op.inputs = np.asarray(inputs, dtype=np.int32)
        op.outputs = np.asarray(outputs, dtype=np.int32)
        op.builtinOptionsType = options_type
        op.builtinOptions = options
        self.new_ops.append(op)

    def copy_op(self, op, inputs, outputs, options=None) -> None:
        new = copy.copy(op)
        new.inputs = np.asarray(inputs, dtype=np.int32)
        new.outputs = np.asarray(outputs, dtype=np.int32)
        if options is not None:
            new.builtinOptions = options
        self.new_ops.append(new)

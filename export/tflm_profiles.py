"""Which builtin ops each TFLM distribution for Arduino can run, and the check against a model.

A model that uses an op its TFLM build lacks fails on the board with "Didn't find op for builtin
opcode". `check_ops` finds that before anything is written and says what to do instead.

Profiles:
  tflm_tree               a TFLM tree generated from a current tflite-micro checkout (its
                          create_tflm_tree.py), vendored into the library with --tflm_tree. The
                          op list is read from the tree itself (`ops_in_tree`); without a tree it
                          is the 2023-02 list plus the ops added since that this project ran
                          under the pinned tflite-micro runtime.
  arduino_tensorflowlite  Library Manager's "Arduino_TensorFlowLite" (tflite-micro-arduino-
                          examples), last synced with TFLM on 2023-02-27, no longer maintained.
  chirale                 "Chirale_TensorFlowLite" 2.0.0, the same kernel list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tflm_embbert.common.errors import UserInputError
from tflm_embbert.graph.int8_check import TFLM_INT8_OPS


class ExportError(UserInputError):
    """A model or option the export cannot turn into a working Arduino library (one line)."""


# The builtin ops of TFLM's MicroMutableOpResolver as of the 2023-02-27 sync (one Add* method per
# op; CIRCULAR_BUFFER, DETECTION_POSTPROCESS and ETHOSU are custom ops and left out). BATCH_MATMUL,
# REDUCE_MIN and EMBEDDING_LOOKUP came to TFLM later in 2023.
_TFLM_2023_02_OPS = frozenset(
    """
    ABS ADD ADD_N ARG_MAX ARG_MIN ASSIGN_VARIABLE AVERAGE_POOL_2D BATCH_TO_SPACE_ND BROADCAST_ARGS
    BROADCAST_TO CALL_ONCE CAST CEIL CONCATENATION CONV_2D COS CUMSUM DEPTH_TO_SPACE
    DEPTHWISE_CONV_2D DEQUANTIZE DIV ELU EQUAL EXP EXPAND_DIMS FILL FLOOR FLOOR_DIV FLOOR_MOD
    FULLY_CONNECTED GATHER GATHER_ND GREATER GREATER_EQUAL HARD_SWISH IF L2_NORMALIZATION
    L2_POOL_2D LEAKY_RELU LESS LESS_EQUAL LOG LOGICAL_AND LOGICAL_NOT LOGICAL_OR LOGISTIC
    LOG_SOFTMAX MAXIMUM MAX_POOL_2D MIRROR_PAD MEAN MINIMUM MUL NEG NOT_EQUAL PACK PAD PADV2 PRELU
    QUANTIZE READ_VARIABLE REDUCE_MAX RELU RELU6 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR
    ROUND RSQRT SELECT_V2 SHAPE SIN SLICE SOFTMAX SPACE_TO_BATCH_ND SPACE_TO_DEPTH SPLIT SPLIT_V
    SQUEEZE SQRT SQUARE SQUARED_DIFFERENCE STRIDED_SLICE SUB SUM SVDF TANH TRANSPOSE_CONV TRANSPOSE
    UNPACK UNIDIRECTIONAL_SEQUENCE_LSTM VAR_HANDLE WHILE ZEROS_LIKE
    """.split()
)


@dataclass(frozen=True)
class TFLMProfile:
    name: str
    description: str
    ops: frozenset
    library: str | None  # Library-Manager name the generated library depends on, if any
    include: str | None  # header a sketch includes first for that library
    cpp17: bool  # needs -std=gnu++17 (the mbed core defaults to gnu++14)


PROFILES = {
    "tflm_tree": TFLMProfile(
        "tflm_tree",
        "a TFLM tree from a current tflite-micro checkout (its create_tflm_tree.py)",
        TFLM_INT8_OPS | _TFLM_2023_02_OPS | {"BATCH_MATMUL", "REDUCE_MIN", "EMBEDDING_LOOKUP"},
        library=None,
        include=None,
        cpp17=True,
    ),
    "arduino_tensorflowlite": TFLMProfile(
        "arduino_tensorflowlite",
        "Library Manager's Arduino_TensorFlowLite (TFLM synced 2023-02-27)",
        _TFLM_2023_02_OPS,
        library="Arduino_TensorFlowLite",
        include="TensorFlowLite.h",
        cpp17=False,
    ),
    "chirale": TFLMProfile(
        "chirale",
        "Library Manager's Chirale_TensorFlowLite 2.0.0 (same kernels as Arduino_TensorFlowLite)",
        _TFLM_2023_02_OPS,
        library="Chirale_TensorFlowLite",
        include="Chirale_TensorFlowLite.h",
        cpp17=False,
    ),
}

# Add* method names that the plain CamelCase rule does not give.
_ADD_METHOD_EXCEPTIONS = {
    "BATCH_MATMUL": "BatchMatMul",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "UnidirectionalSequenceLSTM",
}


def add_method(op: str) -> str:
    """MicroMutableOpResolver's method for a builtin op: DEPTHWISE_CONV_2D -> AddDepthwiseConv2D."""
    if op in _ADD_METHOD_EXCEPTIONS:
        return "Add" + _ADD_METHOD_EXCEPTIONS[op]
    parts = []
    for word in op.split("_"):
        parts.append(word if re.fullmatch(r"\d+D|V\d+", word) else word.capitalize())
    return "Add" + "".join(parts)


def ops_in_tree(tree: Path) -> frozenset:
    """The builtin ops a generated TFLM tree registers, read from its MicroMutableOpResolver."""
    header = Path(tree) / "tensorflow" / "lite" / "micro" / "micro_mutable_op_resolver.h"
    if not header.is_file():
        raise ExportError(
            f"--tflm_tree: {tree} is not a TFLM tree (no {header.relative_to(tree)}); "
            "make one with tflite-micro's create_tflm_tree.py (see arduino/README.md)"
        )
    text = header.read_text(errors="replace")
    return frozenset(re.findall(r"BuiltinOperator_([A-Z0-9_]+)", text))


def check_ops(model_ops, profile: TFLMProfile, tree: Path | None = None) -> frozenset:
    """Raises ExportError naming the model's ops that `profile` (or `tree`) lacks, with the fix.
    Returns the ops available."""
    available = ops_in_tree(tree) if tree is not None else profile.ops
    missing = sorted(set(model_ops) - available)
    if missing:
        where = f"the TFLM tree {tree}" if tree is not None else profile.description
        fix = (
            "regenerate the tree from a newer tflite-micro checkout"
            if tree is not None
            else "export with --tflm=tflm_tree and --tflm_tree=<a tree made by tflite-micro's "
            "create_tflm_tree.py> (steps in arduino/README.md)"
        )
        raise ExportError(
            f"--tflm={profile.name}: the model uses {', '.join(missing)}, which {where} does not "
            f'have (the board would stop with "Didn\'t find op for builtin opcode"); fix: {fix}'
        )
    return available

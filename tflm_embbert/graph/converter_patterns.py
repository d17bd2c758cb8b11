"""Recognisers of the TFLite converter's idioms in an int8 graph being edited (`GraphEditor`).

- `conv_chain`: the causal depthwise conv as converted:
  RESHAPE(DEPTHWISE_CONV_2D(RESHAPE(PAD(x)))) with a front-only pad of k-1 rows.
- `mask_pattern`: the attention mask as converted:
  ADD(MUL(scores, keep), MUL(SUB(c, keep), SUB(REDUCE_MIN(scores), m))).
"""

from __future__ import annotations

from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema_fb


def conv_chain(editor, reshape_out_op):
    """RESHAPE(DEPTHWISE_CONV_2D(RESHAPE(PAD(x)))) with a front-only pad of k-1 rows:
    the causal conv. Returns (x, pad_op, reshape_in_op, conv_op) or None."""
    conv = editor.producer.get(int(reshape_out_op.inputs[0]))
    if conv is None or editor.op_name(conv) != "DEPTHWISE_CONV_2D":
        return None
    reshape_in = editor.producer.get(int(conv.inputs[0]))
    if reshape_in is None or editor.op_name(reshape_in) != "RESHAPE":
        return None
    pad = editor.producer.get(int(reshape_in.inputs[0]))
    if pad is None or editor.op_name(pad) != "PAD" or not editor.is_constant(int(pad.inputs[1])):
        return None
    x = int(pad.inputs[0])
    kernel = editor.shape(int(conv.inputs[1]))
    paddings = editor.constant_values(int(pad.inputs[1])).tolist()
    options = conv.builtinOptions
    if (
        not editor.is_row(x)
        or len(kernel) != 4
        or kernel[1] != 1
        or paddings != [[0, 0], [kernel[2] - 1, 0], [0, 0]]
        or options.padding != schema_fb.Padding.VALID
        or (options.strideW, options.strideH, options.dilationWFactor) != (1, 1, 1)
    ):
        return None
    return x, pad, reshape_in, conv


def mask_pattern(editor, op):
    """ADD(MUL(scores, keep), MUL(SUB(c, keep), SUB(REDUCE_MIN(scores), m))), the converted
    `mask_scores`, with keep a (1, 1, L) activation: returns (masked, keep, product, position)
    (old indices of MUL(scores, keep), keep and MUL(1 - keep, floor); the ADD input position
    of the first), else None."""
    if editor.op_name(op) != "ADD" or len(op.inputs) != 2:
        return None
    if getattr(op.builtinOptions, "fusedActivationFunction", 0):
        return None
    for first, second in ((0, 1), (1, 0)):
        masked, product = (
            editor.resolve(int(op.inputs[first])),
            editor.resolve(int(op.inputs[second])),
        )
        mul_a = editor.producer_named(masked, "MUL")
        mul_b = editor.producer_named(product, "MUL")
        if mul_a is None or mul_b is None:
            continue
        scores, keep = (editor.resolve(int(i)) for i in mul_a.inputs)
        if not editor.is_row(scores) or editor.is_row(keep) or editor.is_constant(keep):
            continue
        if editor.shape(keep) != [1, 1, editor.length] or editor.shape(scores)[2] != editor.length:
            continue
        for x, y in ((0, 1), (1, 0)):
            inverse = editor.resolve(int(mul_b.inputs[x]))
            floor = editor.resolve(int(mul_b.inputs[y]))
            sub_keep = editor.producer_named(inverse, "SUB")
            sub_floor = editor.producer_named(floor, "SUB")
            if sub_keep is None or sub_floor is None:
                continue
            if editor.resolve(int(sub_keep.inputs[1])) != keep:
                continue
            if not editor.is_constant(int(sub_keep.inputs[0])):
                continue
            reduce_min = editor.producer_named(int(sub_floor.inputs[0]), "REDUCE_MIN")
            if reduce_min is None or editor.resolve(int(reduce_min.inputs[0])) != scores:
                continue
            if not editor.is_constant(int(sub_floor.inputs[1])):
                continue
            if editor.old_tensors[product].type != schema_fb.TensorType.INT8:
                continue
            return masked, keep, product, first
    return None

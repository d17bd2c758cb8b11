"""The library's own int8 kernels (arduino/src/embbert_lut.h, embbert_kernels.cpp) against TFLM's
reference kernels in the `tflite_micro` runtime, on single-op models.

LOGISTIC: the kernel's Prepare fills a 256-entry table with TFLM's reference Logistic over all
int8 inputs; here the runtime fills it the same way (a tensor holding all 256 values), and the C++
lookup core must then give the runtime's output bit for bit on random tensors of other shapes
(which also shows the reference op is a function of the element's value alone)."""

import shutil
import subprocess

import numpy as np
import pytest

from tflm_embbert.common.paths import REPO_ROOT

GXX = shutil.which("g++")
SRC = REPO_ROOT / "arduino" / "src"

_MAIN = """#include <stdio.h>
#include "embbert_lut.h"
int main() {
  int8_t table[256];
  for (int i = 0; i < 256; ++i) { int v; if (scanf("%d", &v) != 1) return 2; table[i] = v; }
  int n;
  if (scanf("%d", &n) != 1) return 2;
  static int8_t data[1 << 16];
  for (int i = 0; i < n; ++i) { int v; if (scanf("%d", &v) != 1) return 2; data[i] = v; }
  embbert::ApplyInt8Table(table, data, data, n);  // in place, as allowed
  for (int i = 0; i < n; ++i) printf("%d\\n", data[i]);
  return 0;
}
"""


def _logistic_model(size, calibration_range, seed):
    import tensorflow as tf

    inputs = tf.keras.Input((size,))
    model = tf.keras.Model(inputs, tf.keras.layers.Activation("sigmoid")(inputs))
    rng = np.random.default_rng(seed)

    def data():
        for _ in range(8):
            low, high = calibration_range
            sample = rng.uniform(low, high, (1, size))
            sample[0, :2] = low, high  # the same quantization at every size
            yield [sample.astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    return _full_int8(converter, data)


def _full_int8(converter, data, per_channel=True):
    """A full-integer model (int8 input and output) from `converter`, calibrated on `data`;
    per_channel=False: Dense weights on one scale, as the export's default."""
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = data
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    if not per_channel:
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    return converter.convert()


def _run(tflite, values):
    from tflite_micro import runtime

    from tflm_embbert.graph.flatbuffer import inspect_tflite

    interpreter = runtime.Interpreter.from_bytes(tflite, arena_size=16 * 1024)
    quantization = inspect_tflite(tflite).inputs[0]
    _run.quantizations.add((quantization.scale, quantization.zero_point))
    interpreter.set_input(np.asarray(values, np.int8).reshape(1, -1), 0)
    interpreter.invoke()
    return interpreter.get_output(0).reshape(-1).astype(int)


_run.quantizations = set()


@pytest.fixture(scope="module")
def lut_binary(tmp_path_factory):
    if GXX is None:
        pytest.skip("g++ not installed")
    folder = tmp_path_factory.mktemp("lut")
    (folder / "main.cpp").write_text(_MAIN)
    binary = folder / "lut"
    done = subprocess.run([GXX, "-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-I", str(SRC),
                           str(folder / "main.cpp"), "-o", str(binary)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return binary


@pytest.mark.parametrize("calibration_range", [(-8.0, 8.0), (-1.5, 0.5), (-30.0, 4.0)])
def test_logistic_table_equals_tflm_reference(lut_binary, calibration_range):
    all_values = np.arange(-128, 128)
    _run.quantizations.clear()
    table = _run(_logistic_model(256, calibration_range, 0), all_values)
    assert len(set(table.tolist())) > 8  # a real curve, not a constant
    rng = np.random.default_rng(1)
    data = rng.integers(-128, 128, 1003)  # odd length: the unrolled loop and its tail
    expected = _run(_logistic_model(1003, calibration_range, 0), data)
    assert len(_run.quantizations) == 1  # both models quantize the input alike
    text = " ".join(map(str, table)) + f"\n{len(data)}\n" + " ".join(map(str, data)) + "\n"
    ran = subprocess.run([str(lut_binary)], input=text, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    got = np.asarray(ran.stdout.split(), int)
    np.testing.assert_array_equal(got, expected)


# --- The NumPy port of TFLM's integer arithmetic (tests/tflm_int8_port.py) against the runtime ---
# Single-op int8 models from the TFLite converter, random int8 inputs; the port (the oracle of
# the C++ cores in test_kernels_cpp.py) must give the `tflite_micro` runtime's output bit for bit.


def _single_op_model(fn, shapes, low=-4.0, high=4.0, seed=0, per_channel=True):
    import tensorflow as tf

    specs = [tf.TensorSpec(shape, tf.float32) for shape in shapes]
    concrete = tf.function(fn).get_concrete_function(*specs)
    rng = np.random.default_rng(seed)

    def data():
        for _ in range(16):
            yield [rng.uniform(low, high, shape).astype(np.float32) for shape in shapes]

    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    return _full_int8(converter, data, per_channel)


def _op_tensors(tflite, op_name):
    """(inputs, outputs) of the model's op `op_name`: dicts with scale(s), zero point and, for
    constants, the int values; inputs in the op's order."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=tflite)
    interpreter.allocate_tensors()
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    ops = [op for op in interpreter._get_ops_details() if op["op_name"] == op_name]
    assert len(ops) == 1, [op["op_name"] for op in interpreter._get_ops_details()]

    def info(index):
        if index < 0:
            return None
        d = details[index]
        q = d["quantization_parameters"]
        try:
            value = interpreter.get_tensor(index)
        except ValueError:
            value = None
        return dict(scales=q["scales"], zero_point=int(q["zero_points"][0]) if len(
            q["zero_points"]) else 0, shape=tuple(d["shape"]), value=value)

    return [info(i) for i in ops[0]["inputs"]], [info(i) for i in ops[0]["outputs"]]


def _run_micro(tflite, inputs):
    from tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(tflite, arena_size=256 * 1024)
    for i, value in enumerate(inputs):
        interpreter.set_input(value, i)
    interpreter.invoke()
    return interpreter.get_output(0)


@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL"])
@pytest.mark.parametrize("shapes", [((1, 32, 128), (1, 32, 128)), ((1, 32, 128), (1, 32, 1)),
                                    ((1, 32, 32), (1, 1, 32)), ((1, 4, 8), (8,))])
def test_port_binary_equals_runtime(op, shapes):
    from tests import tflm_int8_port as port

    fn = {"ADD": lambda a, b: a + b, "SUB": lambda a, b: a - b, "MUL": lambda a, b: a * b}[op]
    tflite = _single_op_model(fn, shapes)
    (a_info, b_info), (o_info,) = _op_tensors(tflite, op)
    rng = np.random.default_rng(1)
    values = [rng.integers(-128, 128, info["shape"]).astype(np.int8) for info in (a_info, b_info)]
    got = _run_micro(tflite, values)
    quant = [(float(i["scales"][0]), i["zero_point"]) for i in (a_info, b_info, o_info)]
    (s1, z1), (s2, z2), (so, zo) = quant
    p = (port.mul_params(s1, z1, s2, z2, so, zo) if op == "MUL"
         else port.add_sub_params(s1, z1, s2, z2, so, zo, sub=op == "SUB"))
    np.testing.assert_array_equal(port.binary(op, p, *values).reshape(got.shape), got)


def test_port_mean_equals_runtime():
    import tensorflow as tf

    from tests import tflm_int8_port as port

    tflite = _single_op_model(lambda x: tf.reduce_mean(x, axis=-1, keepdims=True),
                              [(1, 32, 128)], low=0.0, high=16.0)
    (x_info, _), (o_info,) = _op_tensors(tflite, "MEAN")
    p = port.mean_params(float(x_info["scales"][0]), x_info["zero_point"],
                         float(o_info["scales"][0]), o_info["zero_point"])
    x = np.random.default_rng(2).integers(-128, 128, (1, 32, 128)).astype(np.int8)
    got = _run_micro(tflite, [x])
    np.testing.assert_array_equal(port.mean(p, x, [2]).reshape(got.shape), got)


@pytest.mark.parametrize("high", [2.0, 12.0, 40.0])
def test_port_softmax_equals_runtime(high):
    import tensorflow as tf

    from tests import tflm_int8_port as port

    tflite = _single_op_model(lambda x: tf.nn.softmax(x), [(1, 32, 32)], low=-high, high=high)
    (x_info,), (o_info,) = _op_tensors(tflite, "SOFTMAX")
    assert (float(o_info["scales"][0]), o_info["zero_point"]) == (1 / 256, -128)
    p = port.softmax_params(float(x_info["scales"][0]))
    x = np.random.default_rng(3).integers(-128, 128, (1, 32, 32)).astype(np.int8)
    got = _run_micro(tflite, [x])
    np.testing.assert_array_equal(port.softmax(p, x).reshape(got.shape), got)


def test_port_depthwise_equals_runtime():
    import tensorflow as tf

    from tests import tflm_int8_port as port

    rng = np.random.default_rng(4)
    taps, channels, width = 32, 16, 47
    kernel = tf.constant(rng.normal(0, 0.3, (1, taps, channels, 1)).astype(np.float32))
    bias = tf.constant(rng.normal(0, 0.5, channels).astype(np.float32))

    def fn(x):
        return tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], "VALID") + bias

    tflite = _single_op_model(fn, [(1, 1, width, channels)])
    inputs, (o_info,) = _op_tensors(tflite, "DEPTHWISE_CONV_2D")
    x_info, f_info, b_info = inputs
    mults, shifts = port.depthwise_params(float(x_info["scales"][0]), f_info["scales"],
                                          float(o_info["scales"][0]))
    zi = x_info["zero_point"]
    x = rng.integers(-128, 128, (1, 1, width, channels)).astype(np.int8)
    x[0, 0, :31] = zi  # causal padding rows
    got = _run_micro(tflite, [x])
    want = port.depthwise(x, f_info["value"], b_info["value"], mults, shifts, zi=zi,
                          zo=o_info["zero_point"])
    np.testing.assert_array_equal(want.reshape(got.shape), got)


@pytest.mark.parametrize("per_channel", [False, True])
def test_port_fully_connected_equals_runtime(per_channel):
    import tensorflow as tf

    from tests import tflm_int8_port as port

    rng = np.random.default_rng(7)
    rows, depth, channels = 16, 128, 24
    kernel = tf.constant(rng.normal(0, 0.2, (depth, channels)).astype(np.float32))
    bias = tf.constant(rng.normal(0, 0.5, channels).astype(np.float32))
    tflite = _single_op_model(lambda x: tf.matmul(x, kernel) + bias, [(rows, depth)],
                              per_channel=per_channel)
    inputs, (o_info,) = _op_tensors(tflite, "FULLY_CONNECTED")
    x_info, f_info, b_info = inputs
    assert (len(f_info["scales"]) > 1) == per_channel
    mults, shifts = port.depthwise_params(float(x_info["scales"][0]), f_info["scales"],
                                          float(o_info["scales"][0]))
    x = rng.integers(-128, 128, (rows, depth)).astype(np.int8)
    got = _run_micro(tflite, [x])
    want = port.fully_connected(x, f_info["value"], b_info["value"], mults, shifts,
                                zi=x_info["zero_point"], zw=0, zo=o_info["zero_point"])
    np.testing.assert_array_equal(want.reshape(got.shape), got)


@pytest.mark.parametrize("adj_y", [True, False])
def test_port_batch_matmul_equals_runtime(adj_y):
    import tensorflow as tf

    from tests import tflm_int8_port as port

    rows, depth, cols = 16, 32, 24
    rhs_shape = (1, cols, depth) if adj_y else (1, depth, cols)
    tflite = _single_op_model(
        lambda a, b: tf.matmul(a, b, transpose_b=adj_y), [(1, rows, depth), rhs_shape]
    )
    (l_info, r_info), (o_info,) = _op_tensors(tflite, "BATCH_MATMUL")
    (mult,), (shift,) = port.depthwise_params(
        float(l_info["scales"][0]), [float(r_info["scales"][0])], float(o_info["scales"][0])
    )
    rng = np.random.default_rng(9)
    lhs = rng.integers(-128, 128, (1, rows, depth)).astype(np.int8)
    rhs = rng.integers(-128, 128, rhs_shape).astype(np.int8)
    got = _run_micro(tflite, [lhs, rhs])
    want = port.batch_matmul(
        lhs,
        rhs,
        mult,
        shift,
        zl=l_info["zero_point"],
        zr=r_info["zero_point"],
        zo=o_info["zero_point"],
        adj_y=adj_y,
    )
    np.testing.assert_array_equal(want.reshape(got.shape), got)

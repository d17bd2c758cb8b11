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
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = data
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
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

"""Does the int8 model keep its predictions when the same inputs are padded to a longer L?

    python bench/int8_length.py --run runs/bench_int8/emotion_seed0 --task emotion

In float, padded keys are masked and the conv branch is causal, so the [CLS] logits of n real
tokens are the same at every L >= n. In int8 the longer graph has other calibrated ranges (the
score and mask tensors, SOFTMAX over L keys with its fixed 1/256 output step), so this measures,
under the TFLM runtime, the test accuracy of the model's QAT version converted at each L and how
often its class equals the shortest L's and the float model's. A `bench/int8_accuracy.py` cell's
folder holds what it needs (model.keras, qat.keras, tokenizer).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from bench.common import machine, markdown_table, write_json  # noqa: E402
from keras_models.backend import keras  # noqa: E402
from tflm_embbert.common import paths  # noqa: E402
from tflm_embbert.data.datasets import load_task  # noqa: E402
from tflm_embbert.data.encoding import encode  # noqa: E402
from tflm_embbert.data.tokenizer import Tokenizer  # noqa: E402
from tflm_embbert.quantize.convert import to_int8_tflite  # noqa: E402
from tflm_embbert.quantize.qat import load_qat_model  # noqa: E402
from tflm_embbert.tflm.check import run_tflm  # noqa: E402
from tflm_embbert.tflm.int8_eval import calibration_inputs  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("run", "runs/bench_int8/emotion_seed0", "A pipeline output folder.")
flags.DEFINE_string("task", "emotion", "Task of that model.")
flags.DEFINE_integer("seed", 0, "Seed of that model's validation slice.")
flags.DEFINE_list("lengths", ["64", "128", "256"], "Lengths; the first must fit every input.")
flags.DEFINE_string("data_dir", None, "Task data (default ../shared/data).")
flags.DEFINE_string("out", "bench/results/int8_length", "Result folder.")


def main(argv):
    del argv
    folder = Path(FLAGS.run)
    data_dir = Path(FLAGS.data_dir) if FLAGS.data_dir else paths.shared_data_dir()
    task = load_task(FLAGS.task, data_dir, seed=FLAGS.seed)
    if task.metric != "accuracy":
        raise app.UsageError(
            f"--task: {FLAGS.task} is scored by {task.metric}; use a task scored by accuracy"
        )
    tokenizer = Tokenizer.load(folder)
    float_model = keras.models.load_model(folder / "model.keras", compile=False)
    qat_model = load_qat_model(folder / "qat.keras", compile=False)
    lengths = [int(v) for v in FLAGS.lengths]
    rows, first = [], None
    for seq_len in lengths:
        print(f"[L={seq_len}] converting and running {len(task.test)} test examples", flush=True)
        started = time.time()
        test_x, test_y = encode(tokenizer, task.test, seq_len)
        calibration = calibration_inputs(tokenizer, task, seq_len, 200, FLAGS.seed)
        tflite = to_int8_tflite(qat_model, seq_len, calibration)
        predicted = run_tflm(tflite, test_x).raw.argmax(-1)
        expected = float_model.predict(test_x, batch_size=256, verbose=0).argmax(-1)
        first = predicted if first is None else first
        rows.append(
            {
                "seq_len": seq_len,
                "int8_tflm_test": float(np.mean(predicted == test_y)),
                "float_test": float(np.mean(expected == test_y)),
                "agreement_with_float": float(np.mean(predicted == expected)),
                f"agreement_with_L{lengths[0]}": float(np.mean(predicted == first)),
                "seconds": round(time.time() - started, 1),
            }
        )
        print(rows[-1], flush=True)
    out = Path(FLAGS.out)
    name = f"{FLAGS.task}_{folder.name}"
    write_json(
        out / f"{name}.json",
        {"machine": machine(), "model_dir": str(folder), "task": FLAGS.task, "rows": rows},
    )
    table = [
        [
            r["seq_len"],
            f"{100 * r['float_test']:.2f}",
            f"{100 * r['int8_tflm_test']:.2f}",
            f"{100 * r['agreement_with_float']:.2f}",
            f"{100 * r[f'agreement_with_L{lengths[0]}']:.2f}",
        ]
        for r in rows
    ]
    (out / f"{name}.md").write_text(
        f"# {FLAGS.task} ({folder}): the same test inputs padded to longer L, int8 under TFLM\n\n"
        f"Command: `python bench/int8_length.py --run {folder} --task {FLAGS.task}`.\n\n"
        + markdown_table(
            [
                "L",
                "float test %",
                "int8 TFLM test %",
                "int8 = float class %",
                f"int8 = int8 at L={lengths[0]} class %",
            ],
            table,
        )
    )
    print((out / f"{name}.md").read_text())


if __name__ == "__main__":
    app.run(main)

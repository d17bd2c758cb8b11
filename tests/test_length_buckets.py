"""Length buckets on a tiny int8 `embbert`: a bucket graph computes exactly what the full-length
graph computes, the bucketed model dispatches to the shortest bucket that holds the input under
the TFLM runtime, the weights are stored once, and mismatched graphs are refused in one line.

One tiny float classifier, converted (post-training int8, calibrated at each length) at L = 32
(full), 8 and 16 (buckets), built once for the module.
"""

import numpy as np
import pytest

from bench import bucket_dispatch as dispatch
from keras_models.backend import keras
from keras_models.models import build_classifier
from tests.conftest import WORDS, tiny_config
from tflm_embbert.data.encoding import encode
from tflm_embbert.data.examples import Example
from tflm_embbert.graph import flatbuffer as fb
from tflm_embbert.graph import length_buckets as lb
from tflm_embbert.graph.macs import count_macs
from tflm_embbert.quantize.convert import to_int8_tflite
from tflm_embbert.tflm.check import measure_arena_bytes, run_tflm

FULL, BUCKETS = 32, (8, 16)


def _sentences(n, seed):
    rng = np.random.default_rng(seed)
    return [
        Example(" ".join(rng.choice(WORDS, size=int(rng.integers(1, 40)))), None, 0)
        for _ in range(n)
    ]


@pytest.fixture(scope="module")
def graphs(tiny_tokenizer):
    keras.utils.set_random_seed(0)
    model = build_classifier(tiny_config(), 3)
    examples = _sentences(48, seed=0)
    converted = {}
    for length in (FULL,) + BUCKETS:
        calibration, _ = encode(tiny_tokenizer, examples, length)
        converted[length] = to_int8_tflite(model, length, calibration)
    return converted


@pytest.fixture(scope="module")
def inputs(tiny_tokenizer):
    """(1, 32) ids of every length from 1 to 32 real tokens (the bucket edges 8/9, 16/17)."""
    x, _ = encode(tiny_tokenizer, _sentences(64, seed=1), FULL)
    real = (x["token_ids"] != 0).sum(1)
    rows = [int(np.argmin(np.abs(real - n))) for n in range(1, FULL + 1)]
    x = {k: v[rows].copy() for k, v in x.items()}
    for n, row in enumerate(x["token_ids"], start=1):  # exactly n real tokens
        x["segment_ids"][n - 1, n:] = 0
        row[n:] = 0
        row[:n][row[:n] == 0] = 5
        x["segment_ids"][n - 1, :n] = np.maximum(x["segment_ids"][n - 1, :n], 1)
    assert ((x["token_ids"] != 0).sum(1) == np.arange(1, FULL + 1)).all()
    return x


@pytest.fixture(scope="module")
def reference(graphs, inputs):
    return run_tflm(graphs[FULL], inputs).raw


def _lengths(inputs):
    return (inputs["token_ids"] != 0).sum(1)


@pytest.mark.parametrize("length", BUCKETS)
def test_bucket_graph_gives_the_full_graphs_logits(graphs, inputs, reference, length):
    bucket = lb.graph_at_length(graphs[FULL], graphs[length])
    fits = _lengths(inputs) <= length
    short = {k: v[fits][:, :length] for k, v in inputs.items()}
    np.testing.assert_array_equal(run_tflm(bucket, short).raw, reference[fits])
    assert lb.sequence_length(fb.load_model(bucket)) == length


def test_bucketed_model_matches_the_full_graph_under_tflm(graphs, inputs, reference):
    model = dispatch.dispatching_model(graphs[FULL], {b: graphs[b] for b in BUCKETS})
    dispatch.check_dispatching_model(model)
    np.testing.assert_array_equal(run_tflm(model, inputs).raw, reference)
    assert sorted(dispatch.dispatch_table(model)) == sorted(BUCKETS + (FULL,))


def _tag_buckets(model, targets):
    """Each bucket's classifier gets zero weights and a bias giving the int8 output targets[k],
    so the logits say which bucket ran."""
    table = dict(zip(*[model_list for model_list in _bucket_table(model)], strict=True))
    for length, index in table.items():
        graph = model.subgraphs[index]
        head = graph.operators[-1]  # FULLY_CONNECTED (x, weights[, bias])
        x, weights = (graph.tensors[int(i)] for i in head.inputs[:2])
        out = graph.tensors[int(head.outputs[0])]
        bias_scale = x.quantization.scale[0] * weights.quantization.scale[0]
        value = round(
            (targets[length] - out.quantization.zeroPoint[0])
            * out.quantization.scale[0]
            / bias_scale
        )
        weights.buffer = _new_buffer(model, np.zeros(fb.tensor_shape(weights), np.int8))
        bias = fb.new_tensor(
            "tag_bias",
            fb.schema_fb.TensorType.INT32,
            fb.tensor_shape(out)[-1:],
            _new_buffer(model, np.full(fb.tensor_shape(out)[-1:], value, np.int32)),
        )
        bias.quantization = fb.schema_fb.QuantizationParametersT()
        bias.quantization.scale, bias.quantization.zeroPoint = [bias_scale], [0]
        graph.tensors.append(bias)
        head.inputs = np.asarray([head.inputs[0], head.inputs[1], len(graph.tensors) - 1], np.int32)
    return model


def _bucket_table(model):
    import json

    entry = next(m for m in model.metadata if m.name == dispatch.METADATA_NAME.encode())
    table = json.loads(bytes(model.buffers[entry.buffer].data))
    return table["lengths"], table["subgraphs"]


def _new_buffer(model, array):
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema_fb

    buffer = schema_fb.BufferT()
    buffer.data = np.frombuffer(array.tobytes(), np.uint8).copy()
    model.buffers.append(buffer)
    return len(model.buffers) - 1


def test_dispatch_runs_the_shortest_bucket_that_holds_the_input(graphs, inputs):
    lengths = BUCKETS + (FULL,)
    targets = {length: -100 + 40 * k for k, length in enumerate(lengths)}
    tagged = _tag_buckets(
        dispatch.dispatching_model_t(graphs[FULL], {b: graphs[b] for b in BUCKETS}), targets
    )
    ran = run_tflm(fb.serialize(tagged), inputs).raw[:, 0]
    expected = [targets[length] for length in lb.bucket_for(inputs["token_ids"], lengths)]
    np.testing.assert_array_equal(ran, expected)
    real = _lengths(inputs)
    for length in lengths:  # the shortest bucket that holds the input
        shorter = [b for b in lengths if b < length]
        picked = real[ran == targets[length]]
        assert picked.size and picked.max() <= length
        assert not shorter or picked.min() > max(shorter)


def test_weights_are_stored_once(graphs):
    full = fb.load_model(graphs[FULL])
    bucketed = fb.load_model(
        dispatch.dispatching_model(graphs[FULL], {b: graphs[b] for b in BUCKETS})
    )

    def data_bytes(model):
        return sum(len(b.data) for b in model.buffers if b.data is not None)

    added = data_bytes(bucketed) - data_bytes(full)
    assert 0 <= added <= 512, added  # slice bounds and the bucket table, no weight copies
    buckets = _bucket_table(bucketed)[1]
    full_graph = bucketed.subgraphs[buckets[-1]]
    weights = {
        t.buffer
        for t in full_graph.tensors
        if fb.is_quantized(t) and fb.constant_bytes(bucketed, t)
    }
    for index in buckets[:-1]:
        graph = bucketed.subgraphs[index]
        used = {
            t.buffer for t in graph.tensors if fb.is_quantized(t) and fb.constant_bytes(bucketed, t)
        }
        assert used == weights  # the position table included: a shared prefix
    raw = dispatch.dispatching_model(graphs[FULL], {b: graphs[b] for b in BUCKETS})
    root = fb.schema_fb.Model.GetRootAsModel(raw, 0)
    for i in range(root.BuffersLength()):
        buffer = root.Buffers(i)
        if buffer.DataLength():
            assert buffer._tab.Vector(buffer._tab.Offset(4)) % 16 == 0  # aligned as TFLite does


def test_bucket_entries_share_weights_and_run_each_bucket_alone(graphs, inputs, reference):
    data, offsets = lb.bucket_model_array(graphs[FULL], {b: graphs[b] for b in BUCKETS})
    assert offsets[FULL] == 0 and all(o % 16 == 0 for o in offsets.values())
    assert len(data) < len(graphs[FULL]) + sum(len(graphs[b]) for b in BUCKETS) // 4
    chosen = lb.bucket_for(inputs["token_ids"], offsets)
    for length, offset in offsets.items():
        rows = chosen == length
        short = {k: v[rows][:, :length] for k, v in inputs.items()}
        np.testing.assert_array_equal(run_tflm(data[offset:], short).raw, reference[rows])
    smallest = measure_arena_bytes(data[offsets[BUCKETS[0]] :])["minimum"]
    assert smallest < measure_arena_bytes(data)["minimum"]


def test_topology_mismatch_raises_one_line(graphs, tiny_tokenizer):
    keras.utils.set_random_seed(0)
    other = build_classifier(tiny_config(num_layers=1), 3)
    calibration, _ = encode(tiny_tokenizer, _sentences(8, seed=0), BUCKETS[0])
    with pytest.raises(ValueError, match=r"^topology differs") as error:
        lb.graph_at_length(graphs[FULL], to_int8_tflite(other, BUCKETS[0], calibration))
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="exceeds the full graph's length"):
        lb.graph_at_length(graphs[BUCKETS[0]], graphs[FULL])
    with pytest.raises(ValueError, match="is a graph of length"):
        dispatch.dispatching_model(graphs[FULL], {12: graphs[BUCKETS[0]]})


def test_rewrite_hook_sees_every_bucket_once(graphs):
    seen = []

    def rewrite(model, index):
        seen.append(lb.sequence_length(model, index))

    dispatch.dispatching_model_t(graphs[FULL], {b: graphs[b] for b in BUCKETS}, rewrite=rewrite)
    assert seen == list(BUCKETS) + [FULL]


def test_lean_rewrite_per_bucket_keeps_the_logits(graphs, inputs, reference):
    """tflm_embbert.graph.lean_graph's per-subgraph rewrite run on every bucket after assembly."""
    from tflm_embbert.graph.lean_graph import LeanOptions, lean_subgraph

    def rewrite(model, index):
        lean_subgraph(model, index, LeanOptions(chunk_rows=4))

    model = dispatch.dispatching_model(
        graphs[FULL], {b: graphs[b] for b in BUCKETS}, rewrite=rewrite
    )
    dispatch.check_dispatching_model(model)
    np.testing.assert_array_equal(run_tflm(model, inputs).raw, reference)
    data, offsets = lb.bucket_model_array(graphs[FULL], {BUCKETS[0]: graphs[BUCKETS[0]]}, rewrite)
    rows = lb.bucket_for(inputs["token_ids"], offsets) == BUCKETS[0]
    short = {k: v[rows][:, : BUCKETS[0]] for k, v in inputs.items()}
    np.testing.assert_array_equal(run_tflm(data[offsets[BUCKETS[0]] :], short).raw, reference[rows])


# ----------------------------------------------------------------------------------------------
# export.buckets: the buckets of an exported int8 graph, checked against it on a test split


def _task():
    from tflm_embbert.data.examples import TaskData

    def labelled(examples):
        return [Example(e.text_a, None, i % 3) for i, e in enumerate(examples)]

    return TaskData(
        name="toy",
        train=labelled(_sentences(48, seed=0)),
        validation=[],
        test=labelled(_sentences(40, seed=2)),
        label_names=["a", "b", "c"],
        metric="accuracy",
        test_split="test",
    )


@pytest.fixture(scope="module")
def exported(tiny_tokenizer):
    """int8_under_tflm's graph at L=32 (the lean choice measured, as the export makes it) and
    export.buckets' 8/16/32 model array built from it."""
    from export import buckets
    from tflm_embbert.tflm.int8_eval import int8_under_tflm

    keras.utils.set_random_seed(0)
    model = build_classifier(tiny_config(), 3)
    task = _task()
    converted = int8_under_tflm(model, task, tiny_tokenizer, FULL, progress=lambda line: None)
    built = buckets.build_buckets(
        model,
        task,
        tiny_tokenizer,
        FULL,
        [*BUCKETS, FULL],
        converted.tflite,
        converted.lean,
        progress=lambda line: None,
    )
    return {
        "model": model,
        "task": task,
        "single": converted.tflite,
        "lean": converted.lean,
        "buckets": built,
    }


def test_exported_buckets_give_the_single_graphs_logits(exported, inputs):
    """Every bucket, on every input it holds (1 to Lb real tokens), gives the logits of the
    exported graph; each root is a plain one-subgraph model at its offset."""
    built, single = exported["buckets"], exported["single"]
    reference = run_tflm(single, inputs).raw
    real = _lengths(inputs)
    assert built.lengths == [*BUCKETS, FULL] and built.offsets[-1] == 0
    assert built.data[: len(b"TFL3") + 4][4:] == b"TFL3"  # a .tflite: the full model's root
    for length, offset in zip(built.lengths, built.offsets, strict=True):
        assert offset % 16 == 0
        fits = real <= length
        short = {k: v[fits][:, :length] for k, v in inputs.items()}
        np.testing.assert_array_equal(run_tflm(built.data[offset:], short).raw, reference[fits])
        assert lb.sequence_length(fb.load_model(built.data[offset:])) == length


def test_exported_buckets_report(exported, tiny_tokenizer):
    built = exported["buckets"]
    report = built.report
    test_x, _ = encode(tiny_tokenizer, exported["task"].test, FULL)
    chosen = lb.bucket_for(test_x["token_ids"], built.lengths)
    assert [b["test_examples"] for b in report["buckets"]] == [
        int(np.sum(chosen == length)) for length in built.lengths
    ]
    assert sum(b["test_examples"] for b in report["buckets"]) == len(exported["task"].test)
    assert report["max_lsb"] == 0 and report["bytes"] == len(built.data)
    assert report["flash_growth"] == (len(built.data) - len(exported["single"])) / len(
        exported["single"]
    )
    for bucket, arena in zip(report["buckets"], built.arena_bytes, strict=True):
        assert bucket["arena"]["minimum"] == arena
        assert bucket["macs"] == count_macs(built.data[bucket["offset"] :])["total"]
        assert bucket["verified_examples"] >= min(8, bucket["test_examples"])
    assert built.arena_measured_bytes == max(built.arena_bytes)
    macs = {b["length"]: b["macs"] for b in report["buckets"]}
    assert macs[8] < macs[16] < macs[32]
    mean = np.mean([macs[length] for length in chosen])
    single_macs = count_macs(exported["single"])["total"]
    assert report["mean_macs_ratio"] == pytest.approx(mean / single_macs)
    assert 0 < report["mean_macs_ratio"] < 1


def _perturb_bucket(length):
    """A bucket_model_array rewrite that negates the classifier weights of bucket `length` (the full
    graph and the other buckets untouched)."""

    def rewrite(model, index):
        if lb.sequence_length(model, index) != length:
            return
        graph = model.subgraphs[index]
        head = graph.operators[-1]  # FULLY_CONNECTED (x, weights, ...)
        weights = graph.tensors[int(head.inputs[1])]
        negated = np.clip(-fb.constant_array(model, weights).astype(np.int16), -127, 127).astype(
            np.int8
        )
        copy = fb.new_tensor(
            "negated_weights", weights.type, fb.tensor_shape(weights), like=weights
        )
        copy.buffer = _new_buffer(model, negated)
        graph.tensors.append(copy)
        head.inputs = np.asarray(
            [head.inputs[0], len(graph.tensors) - 1, *head.inputs[2:]], np.int32
        )

    return rewrite


def test_verify_refuses_a_bucket_that_differs(graphs, exported, tiny_tokenizer):
    from export import buckets

    data, offsets = lb.bucket_model_array(
        graphs[FULL], {b: graphs[b] for b in BUCKETS}, rewrite=_perturb_bucket(16)
    )
    with pytest.raises(buckets.BucketError) as error:
        buckets.verify_buckets(
            data, offsets, graphs[FULL], exported["task"], tiny_tokenizer, FULL, lambda line: None
        )
    message = str(error.value)
    assert message.startswith("length buckets: bucket L=16 gives logits") and "\n" not in message
    assert "--length_buckets=none" in message
    unchanged, offsets = lb.bucket_model_array(graphs[FULL], {b: graphs[b] for b in BUCKETS})
    buckets.verify_buckets(
        unchanged, offsets, graphs[FULL], exported["task"], tiny_tokenizer, FULL, lambda line: None
    )


def test_build_refuses_a_graph_it_cannot_reproduce(exported, tiny_tokenizer):
    from export import buckets

    other = exported["single"][:-16] + bytes(16)  # not what converting the model gives
    with pytest.raises(buckets.BucketError, match="did not reproduce the exported int8 graph"):
        buckets.build_buckets(
            exported["model"],
            exported["task"],
            tiny_tokenizer,
            FULL,
            [16, FULL],
            other,
            exported["lean"],
            progress=lambda line: None,
        )


@pytest.mark.parametrize(
    ("values", "seq_len", "expected"),
    [
        (["auto"], 256, [16, 32, 64, 128, 256]),
        (["auto"], 48, [16, 32, 48]),
        (["auto"], 16, []),
        (["none"], 64, []),
        ([], 64, []),
        ([""], 64, []),
        (["16", "32"], 64, [16, 32, 64]),
        (["8", "64"], 64, [8, 64]),
        (["64"], 64, []),
    ],
)
def test_parse_lengths(values, seq_len, expected):
    from export.bucket_lengths import parse_lengths

    assert parse_lengths(values, seq_len) == expected


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["0", "16"], "must be positive"),
        (["32", "16"], "strictly increasing"),
        (["16", "16"], "strictly increasing"),
        (["16", "128"], "exceeds the sequence length L=64"),
        (["sixteen"], "expected 'auto', 'none' or positive integers"),
        (["-8"], "expected 'auto', 'none' or positive integers"),
    ],
)
def test_parse_lengths_refuses(values, message):
    from export.bucket_lengths import parse_lengths

    with pytest.raises(ValueError, match=message) as error:
        parse_lengths(values, 64)
    assert str(error.value).startswith("--length_buckets: ") and "\n" not in str(error.value)

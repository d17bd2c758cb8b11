"""The length-bucketed Arduino library: the lean int8 graph check, the bucket tables beside the
model array, the latency estimate per bucket, every bucket in the settings arena, the C++ bucket
choice, and the generated API and sketch against TFLM's API stubs."""

import json
import re
import subprocess

import numpy as np
import pytest

from export import cpp_sources
from export.tflm_profiles import add_method
from keras_models.backend import keras
from keras_models.models import build_classifier
from tests.conftest import WORDS, tiny_config
from tests.export_fixtures import BUCKETS, GXX, LABELS, SEQ_LEN, examples, varied
from tflm_embbert.data.encoding import encode
from tflm_embbert.graph.flatbuffer import inspect_tflite
from tflm_embbert.tflm.check import run_tflm


def test_int8_under_tflm_checks_the_lean_graph_and_drops_the_mask_bias_on_a_difference(
    tiny_tokenizer, monkeypatch
):
    from tflm_embbert.data.examples import TaskData
    from tflm_embbert.tflm import int8_eval
    from tflm_embbert.tflm.settings import Int8Settings

    keras.utils.set_random_seed(0)
    model = build_classifier(tiny_config(), len(LABELS))
    task = TaskData(name="toy", train=examples(64, 0), validation=[], test=varied(40, 3),
                    label_names=LABELS, metric="accuracy", test_split="test")

    def run(**kwargs):
        return int8_eval.int8_under_tflm(model, task, tiny_tokenizer, SEQ_LEN,
                                         Int8Settings(chunk_rows=(0, 8), **kwargs),
                                         measure_arena=False, progress=lambda line: None)

    converted = run()
    assert converted.lean["mask_bias"] is True
    assert converted.lean_check == {"examples": 40, "max_lsb": 0, "same_class": 1.0}
    compare = int8_eval.compare_graphs
    calls = []

    def differs_with_bias(reference, graph, inputs, count, seed):
        calls.append(1)
        found = compare(reference, graph, inputs, count, seed)
        return {**found, "max_lsb": 3} if len(calls) == 1 else found

    monkeypatch.setattr(int8_eval, "compare_graphs", differs_with_bias)
    fallback = run()
    assert fallback.lean["mask_bias"] is False and fallback.lean_check["max_lsb"] == 0
    monkeypatch.setattr(int8_eval, "compare_graphs", lambda *a: {"examples": 1, "max_lsb": 2,
                                                                 "same_class": 1.0})
    with pytest.raises(ValueError, match="lean graph: its int8 logits differ .* up to 2 LSB"):
        run()


def _settings_array(settings, name):
    found = re.search(rf"{name}\[kNumBuckets\] = \{{([^}}]*)\}};", settings)
    return [int(v) for v in found.group(1).split(",")]


def _model_array(folder):
    source = (folder / "src" / "tiny_intents_model_data.cpp").read_text()
    body = source.split("{", 1)[1].split("}", 1)[0]
    return bytes(int(token, 16) for token in re.findall(r"0x([0-9a-f]{2})", body))


def test_bucket_tables_match_the_model_array(bucketed):
    folder, built, report = bucketed["folder"], bucketed["buckets"], bucketed["report"]
    settings = (folder / "src" / "tiny_intents_model_settings.h").read_text()
    data = _model_array(folder)
    assert data == built.data == (bucketed["out"] / "model.tflite").read_bytes()
    assert "alignas(16) const unsigned char g_tiny_intents_model_data[]" in (
        folder / "src" / "tiny_intents_model_data.cpp"
    ).read_text()
    assert f"constexpr int kNumBuckets = {len(BUCKETS)};" in settings
    lengths = _settings_array(settings, "kBucketLengths")
    offsets = _settings_array(settings, "kBucketOffsets")
    arenas = _settings_array(settings, "kBucketArenaMeasuredBytes")
    assert lengths == BUCKETS and offsets == built.offsets and offsets[-1] == 0
    assert arenas == built.arena_bytes
    for length, offset in zip(lengths, offsets, strict=True):
        assert offset % 16 == 0
        root = inspect_tflite(data[offset:])
        assert [t.shape for t in root.inputs] == [(1, length)] * 2
    own = report["arena"]["own_kernels_bytes"]  # the own kernels' tables (see test above)
    arena = cpp_sources.arena_with_margin(max(arenas), 0.10, 2048 + own)
    assert f"kArenaBytes = {arena};" in settings and report["arena"]["bytes"] == arena
    assert f"kArenaMeasuredBytes = {max(arenas)};" in settings
    assert report["length_buckets"] == json.loads(json.dumps(built.report))
    assert report["model_bytes"] == len(data) and report["model_sha256"] in settings
    assert "## Length buckets 8/16" in (bucketed["out"] / "export_report.md").read_text()
    assert "Length buckets 8/16" in (folder / "README.md").read_text()
    assert "(`bucket: L=8 of 16`)" in (folder / "README.md").read_text()
    # The op resolver registers the ops of every bucket.
    header = (folder / "src" / "tiny_intents_op_resolver.h").read_text()
    ops = {op.name for offset in offsets for op in inspect_tflite(data[offset:]).ops}
    assert sorted(re.findall(r"resolver\.(Add\w+)\(", header)) == sorted(map(add_method, ops))


def test_report_has_the_latency_estimate_of_every_bucket(bucketed):
    """export_report.json/.md and latency.png: per bucket, the Cortex-M4 estimate of that
    bucket's graph with TFLM + CMSIS-NN kernels and with the library's own kernels (the
    default tflm_tree library registers its own)."""
    from tflm_embbert.tflm import latency

    built, report, out = bucketed["buckets"], bucketed["report"], bucketed["out"]
    section = report["latency"]
    assert section["library"] == "own" and set(section["own_ops"]) == set(cpp_sources.OWN_KERNELS)
    assert list(section["buckets"]) == [str(n) for n in BUCKETS]
    for length, offset in zip(built.lengths, built.offsets, strict=True):
        graph = built.data[offset:]
        both = section["buckets"][str(length)]
        plain = latency.estimate_tflite(graph)
        own = latency.estimate_tflite(graph, frozenset(cpp_sources.OWN_KERNELS))
        assert both["tflm"]["instructions"] == round(plain.instructions)
        assert both["own"]["instructions"] == round(own.instructions)
        assert both["own"]["ms"]["cpi_1.5"] == round(own.instructions * 1.5 / 64e3, 1)
    assert section["buckets"]["8"]["tflm"]["instructions"] < section["buckets"]["16"]["tflm"][
        "instructions"
    ]
    text = (out / "export_report.md").read_text()
    assert "## Latency on the Cortex-M4 (estimate)" in text and "(this library)" in text
    assert (out / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_bucket_runs_in_the_settings_arena(bucketed, tiny_tokenizer):
    built = bucketed["buckets"]
    arena = bucketed["report"]["arena"]["bytes"]
    test_x, _ = encode(tiny_tokenizer, bucketed["task"].test, SEQ_LEN)
    reference = run_tflm(bucketed["single"], test_x).raw
    real = (test_x["token_ids"] != 0).sum(1)
    assert (real <= BUCKETS[0]).any() and (real > BUCKETS[0]).any()
    for length, offset in zip(built.lengths, built.offsets, strict=True):
        fits = real <= length
        cut = {k: v[fits][:, :length] for k, v in test_x.items()}
        got = run_tflm(built.data[offset:], cut, arena_size=arena).raw
        np.testing.assert_array_equal(got, reference[fits])


def test_single_model_library_has_one_bucket(library):
    settings = (library["folder"] / "src" / "tiny_intents_model_settings.h").read_text()
    assert "constexpr int kNumBuckets = 1;" in settings
    assert _settings_array(settings, "kBucketLengths") == [SEQ_LEN]
    assert _settings_array(settings, "kBucketOffsets") == [0]
    assert library["report"]["length_buckets"]["enabled"] is False
    readme = (library["folder"] / "README.md").read_text()
    assert f"(`bucket: L={SEQ_LEN} of {SEQ_LEN}`)" in readme and "of 64" not in readme


_CHOICE_MAIN = r"""
#include <stdio.h>
#include <string.h>
#include "tiny_intents_model_settings.h"
#include "embbert_tokenizer.h"
#include "embbert_tokenizer_data.h"

// One line of text per input line -> "<tokens> <bucket length>", as the library's classify()
// tokenizes at the full length and picks the bucket.
int main() {
  static char line[4096];
  int32_t ids[tiny_intents::kSequenceLength];
  const embbert::WordPieceTokenizer tokenizer(embbert_tokenizer_data);
  while (fgets(line, sizeof(line), stdin) != nullptr) {
    size_t length = strlen(line);
    if (length > 0 && line[length - 1] == '\n') line[--length] = '\0';
    const int tokens = tokenizer.Encode(line, length, ids, tiny_intents::kSequenceLength);
    printf("%d %d\n", tokens, tiny_intents::kBucketLengths[tiny_intents::BucketFor(tokens)]);
  }
  return 0;
}
"""


@pytest.mark.skipif(GXX is None, reason="g++ not installed")
def test_cpp_bucket_choice_matches_chosen_length(bucketed, tiny_tokenizer, tmp_path):
    """The generated BucketFor on the C++ tokenizer's count picks what
    length_buckets.bucket_for picks on the Python token ids."""
    from tflm_embbert.graph import length_buckets as lb

    src = bucketed["folder"] / "src"
    main = tmp_path / "choice.cpp"
    main.write_text(_CHOICE_MAIN)
    binary = tmp_path / "choice"
    done = subprocess.run(
        [GXX, "-std=c++14", "-O1", "-Wall", "-Wextra", "-Werror", "-I", str(src), str(main),
         str(src / "embbert_tokenizer.cpp"), str(src / "embbert_tokenizer_data.cpp"),
         "-o", str(binary)], capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    texts = [e.text_a for e in bucketed["task"].test + varied(200, 7)]
    texts += ["", "fox", " ".join(WORDS), " ".join(WORDS[:3])]
    ran = subprocess.run([str(binary)], input="\n".join(texts) + "\n", capture_output=True,
                         text=True, check=True).stdout.split("\n")[:-1]
    ids, _ = tiny_tokenizer.encode_batch(texts, seq_len=SEQ_LEN)
    ids = np.asarray(ids)
    expected = lb.bucket_for(ids, BUCKETS)
    got = np.asarray([[int(v) for v in row.split()] for row in ran])
    np.testing.assert_array_equal(got[:, 0], (ids != 0).sum(1))
    np.testing.assert_array_equal(got[:, 1], expected)
    assert set(expected) == set(BUCKETS)


_TFLM_STUBS = {
    # Declarations shaped like the TFLM and Arduino APIs the generated code calls (a syntax check
    # of the generated code against the API as documented; the real headers are not here).
    "Arduino.h": """#pragma once
#include <stddef.h>
#include <stdint.h>
uint32_t millis();
struct SerialStub {
  void begin(long);
  explicit operator bool() const;
  int available();
  int read();
  template <class T> void print(T);
  template <class T> void print(T, int);
  template <class T> void println(T);
  template <class T> void println(T, int);
};
extern SerialStub Serial;
""",
    "tensorflow/lite/micro/micro_interpreter.h": """#pragma once
#include <stddef.h>
#include <stdint.h>
#define TFLITE_SCHEMA_VERSION (3)
enum TfLiteStatus { kTfLiteOk = 0, kTfLiteError = 1 };
struct TfLiteTensor { union { int32_t* i32; int8_t* int8; } data; };
namespace tflite {
class Model { public: uint32_t version() const; };
const Model* GetModel(const void* buf);
class MicroOpResolver {};
class MicroInterpreter {
 public:
  MicroInterpreter(const Model* model, const MicroOpResolver& op_resolver, uint8_t* tensor_arena,
                   size_t tensor_arena_size, void* resource_variables = nullptr,
                   void* profiler = nullptr, bool preserve_all_tensors = false);
  ~MicroInterpreter();
  TfLiteStatus AllocateTensors();
  TfLiteStatus Invoke();
  TfLiteTensor* input(size_t index);
  TfLiteTensor* output(size_t index);
  size_t arena_used_bytes() const;
};
}  // namespace tflite
""",
    "tensorflow/lite/micro/system_setup.h": "#pragma once\nnamespace tflite {\n"
    "void InitializeTarget();\n}\n",
    "tensorflow/lite/schema/schema_generated.h": "#pragma once\n",
}


def _stub_tree(root, op_resolver_header):
    for name, text in _TFLM_STUBS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    methods = sorted(set(re.findall(r"resolver\.(Add\w+)\(", op_resolver_header)))
    # Since tflite-micro PR #3178 every Add<Op> takes a registration, defaulting to TFLM's.
    (root / "tensorflow/lite/micro/micro_common.h").write_text(
        "#pragma once\nstruct TFLMRegistration { void* (*init)(void*, const char*, unsigned); };\n"
    )
    (root / "tensorflow/lite/micro/micro_mutable_op_resolver.h").write_text(
        '#pragma once\n#include "tensorflow/lite/micro/micro_interpreter.h"\n'
        '#include "tensorflow/lite/micro/micro_common.h"\nnamespace tflite {\n'
        "template <unsigned int N> class MicroMutableOpResolver : public MicroOpResolver {\n"
        " public:\n"
        + "".join(
            f"  TfLiteStatus {m}(const TFLMRegistration& r = TFLMRegistration());\n"
            for m in methods
        )
        + "};\n}\n"
    )


@pytest.mark.skipif(GXX is None, reason="g++ not installed")
@pytest.mark.parametrize("which", ["library", "bucketed"])
def test_generated_api_and_sketch_compile_against_api_stubs(which, request, tmp_path):
    folder = request.getfixturevalue(which)["folder"]
    src = folder / "src"
    _stub_tree(tmp_path, (src / "tiny_intents_op_resolver.h").read_text())
    sketch = folder / "examples" / "TinyIntentsClassify" / "TinyIntentsClassify.ino"
    for source, extra in ((src / "TinyIntents.cpp", []),
                          (sketch, ["-x", "c++", "-include", "Arduino.h"])):
        done = subprocess.run(
            [GXX, "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-I",
             str(tmp_path), "-I", str(src), *extra, str(source)], capture_output=True, text=True,
        )
        assert done.returncode == 0, f"{source.name}: {done.stderr[-3000:]}"
    sketch_text = sketch.read_text()
    assert 'Serial.print(", bucket: L=");' in sketch_text
    assert "result.bucket_length" in sketch_text

"""The Arduino library export: layout, generated C++ (op resolver, model array, settings), the op
profile check, the board-fit check, TFLM-tree vendoring and the export_tflite command."""

import json
import re
import subprocess
import sys
import zipfile

import pytest

from export import boards, cpp_sources, tflm_profiles, tflm_tree
from export.library import export_library
from export.tflm_profiles import ExportError, add_method
from keras_models.backend import keras
from keras_models.models import build_classifier
from tests.conftest import subprocess_env, tiny_config
from tests.export_fixtures import GXX, LABELS, SEQ_LEN, examples, make_request
from tflm_embbert.graph.flatbuffer import inspect_tflite
from tflm_embbert.tflm.check import run_tflm


def test_add_method_names():
    assert add_method("DEPTHWISE_CONV_2D") == "AddDepthwiseConv2D"
    assert add_method("BATCH_MATMUL") == "AddBatchMatMul"
    assert add_method("FULLY_CONNECTED") == "AddFullyConnected"
    assert add_method("REDUCE_MIN") == "AddReduceMin"
    assert add_method("SELECT_V2") == "AddSelectV2"
    assert add_method("L2_POOL_2D") == "AddL2Pool2D"


def test_library_layout_follows_the_spec(library):
    folder = library["folder"]
    expected = {
        "library.properties", "README.md", "src/TinyIntents.h", "src/TinyIntents.cpp",
        "src/tiny_intents_model_data.h", "src/tiny_intents_model_data.cpp",
        "src/tiny_intents_model_settings.h", "src/tiny_intents_op_resolver.h",
        "src/embbert_tokenizer.h", "src/embbert_tokenizer.cpp",
        "src/embbert_tokenizer_data.h", "src/embbert_tokenizer_data.cpp",
        "src/tflm_embbert_tflm_config.h", "src/embbert_lut.h", "src/embbert_kernels.h",
        "src/embbert_kernels.cpp", "src/embbert_int8_ops.h", "src/embbert_int8_ops.cpp",
        "src/embbert_int8_matmul.cpp", "src/embbert_matmul_kernels.cpp",
        "src/embbert_int8_conv.cpp", "src/embbert_simd.h",
        "examples/TinyIntentsClassify/TinyIntentsClassify.ino",
    }
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert files == expected
    assert not list(folder.rglob("*.cc")), "Arduino compiles .cpp, not .cc"
    properties = dict(
        line.split("=", 1) for line in (folder / "library.properties").read_text().splitlines()
    )
    for key in ("name", "version", "author", "maintainer", "sentence", "paragraph", "category",
                "url", "architectures", "includes"):
        assert properties.get(key), f"library.properties lacks {key}"
    assert properties["name"] == "TinyIntents" and properties["includes"] == "TinyIntents.h"
    assert re.fullmatch(r"\d+\.\d+\.\d+", properties["version"])
    assert properties["category"] in {
        "Display", "Communication", "Signal Input/Output", "Sensors", "Device Control", "Timing",
        "Data Storage", "Data Processing", "Other"}
    assert "depends" not in properties  # the default TFLM profile is a vendored tree
    out = library["out"]
    with zipfile.ZipFile(out / "TinyIntents.zip") as archive:
        zipped = {name for name in archive.namelist() if not name.endswith("/")}
    assert zipped == {f"TinyIntents/{name}" for name in expected}
    assert not (out.parent / "lib.tmp").exists()


def test_report_and_settings_carry_the_measured_figures(library, tiny_int8):
    report = library["report"]
    out = library["out"]
    assert json.loads((out / "export_report.json").read_text()) == report
    assert (out / "model.tflite").read_bytes() == tiny_int8["tflite"]
    assert report["arena"]["measured_bytes"] == tiny_int8["arena"]
    arena = report["arena"]["bytes"]
    own = report["arena"]["own_kernels_bytes"]
    graph = inspect_tflite(tiny_int8["tflite"])
    ops = [op.name for op in graph.ops]
    assert own == cpp_sources.own_kernel_extra_arena(graph) > 0  # the own kernels' tables
    assert own >= 1024 * ops.count("SOFTMAX") + 256 * ops.count("LOGISTIC")
    assert arena >= tiny_int8["arena"] * 1.1 + own and arena % 16 == 0
    settings = (library["folder"] / "src" / "tiny_intents_model_settings.h").read_text()
    assert f"kArenaBytes = {arena};" in settings
    assert f"kArenaMeasuredBytes = {tiny_int8['arena']};" in settings
    assert f"kSequenceLength = {SEQ_LEN};" in settings
    assert report["model_sha256"] in settings
    output = inspect_tflite(tiny_int8["tflite"]).outputs[0]
    assert f"kOutputZeroPoint = {output.zero_point};" in settings
    # The arena the settings give is enough for the TFLM runtime.
    first = {k: v[:1] for k, v in tiny_int8["inputs"].items()}
    run_tflm(tiny_int8["tflite"], first, arena_size=arena)
    assert report["budget"]["flash"]["model_bytes"] == len(tiny_int8["tflite"])
    assert report["budget"]["ram"]["arena_bytes"] == arena
    assert "| flash |" in (out / "export_report.md").read_text()


def test_op_resolver_lists_exactly_the_models_ops(library, tiny_int8):
    header = (library["folder"] / "src" / "tiny_intents_op_resolver.h").read_text()
    model_ops = {op.name for op in inspect_tflite(tiny_int8["tflite"]).ops}
    added = re.findall(r"resolver\.(Add\w+)\(([^)]*\)?)\) != kTfLiteOk", header)
    assert sorted(m for m, _ in added) == sorted(add_method(op) for op in model_ops)
    # The library's own kernels replace TFLM's for the ops that have one (the tree profile).
    assert "LOGISTIC" in model_ops and "SOFTMAX" in model_ops
    own = {add_method(op): reg for op, reg in cpp_sources.OWN_KERNELS.items() if op in model_ops}
    assert ("AddLogistic", "embbert::Register_LOGISTIC_INT8_TABLE()") in added
    assert ("AddSoftmax", "embbert::Register_SOFTMAX_INT8_TABLE()") in added
    assert all(arg == own.get(m, "") for m, arg in added)
    assert '#include "embbert_kernels.h"' in header
    plain = cpp_sources.op_resolver_header("x", sorted(model_ops), own_kernels=False)
    assert "embbert::" not in plain and "resolver.AddLogistic() != kTfLiteOk" in plain
    assert f"constexpr unsigned int kOpCount = {len(model_ops)};" in header
    assert header.count("return false;") == len(model_ops)  # every status is checked


def test_model_array_holds_the_model(library, tiny_int8):
    source = (library["folder"] / "src" / "tiny_intents_model_data.cpp").read_text()
    assert "alignas(16) const unsigned char g_tiny_intents_model_data[]" in source
    body = source.split("{", 1)[1].split("}", 1)[0]
    data = bytes(int(token, 16) for token in re.findall(r"0x([0-9a-f]{2})", body))
    assert data == tiny_int8["tflite"]
    assert f"g_tiny_intents_model_data_len = {len(data)};" in source


@pytest.mark.skipif(GXX is None, reason="g++ not installed")
def test_generated_cpp_without_tflm_compiles(library, tmp_path):
    src = library["folder"] / "src"
    check = tmp_path / "check.cpp"
    check.write_text(
        '#include "tiny_intents_model_settings.h"\n#include "tiny_intents_model_data.h"\n'
        '#include "embbert_tokenizer.h"\n#include "embbert_tokenizer_data.h"\n'
        "int main() {\n"
        "  int32_t ids[tiny_intents::kSequenceLength];\n"
        "  embbert::WordPieceTokenizer tokenizer(embbert_tokenizer_data);\n"
        "  int n = tokenizer.Encode(\"hi\", 2, ids, tiny_intents::kSequenceLength);\n"
        "  return n + tiny_intents::kLabels[0][0] + g_tiny_intents_model_data_len;\n}\n"
    )
    for source in [check, *sorted(src.glob("*_data.cpp")), src / "embbert_tokenizer.cpp"]:
        done = subprocess.run(
            [GXX, "-std=c++14", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-I", str(src),
             str(source)], capture_output=True, text=True,
        )
        assert done.returncode == 0, f"{source.name}: {done.stderr[-2000:]}"


def test_refuses_an_op_missing_from_the_chosen_tflm(tiny_int8, tiny_tokenizer, tmp_path):
    out = tmp_path / "lib"
    request = make_request(tiny_int8, tiny_tokenizer, tflm="arduino_tensorflowlite")
    with pytest.raises(ExportError) as error:
        export_library(request, out)
    message = str(error.value)
    assert "BATCH_MATMUL" in message and "--tflm=tflm_tree" in message
    assert "Didn't find op" in message and "\n" not in message
    assert not out.exists() and not (tmp_path / "lib.tmp").exists()


def test_refuses_an_over_budget_model_unless_forced(tiny_int8, tiny_tokenizer, tmp_path):
    small = boards.custom_board(
        flash_bytes=2_000_000, ram_bytes=64 * 1024, code_flash_bytes=0, code_ram_bytes=60 * 1024
    )
    out = tmp_path / "lib"
    with pytest.raises(ExportError) as error:
        export_library(make_request(tiny_int8, tiny_tokenizer, board=small), out)
    message = str(error.value)
    assert "RAM" in message and "--seq_len" in message and "--force" in message
    assert f"{64 * 1024:,}" in message and "\n" not in message
    assert not out.exists() and not (tmp_path / "lib.tmp").exists()
    report = export_library(make_request(tiny_int8, tiny_tokenizer, board=small, force=True), out)
    assert report["budget"]["forced"] and not report["budget"]["ram"]["fits"]
    assert (out / "TinyIntents.zip").is_file()


def test_nano_fit_counts_flash_and_ram():
    nano = boards.BOARDS["nano33ble"]
    budget = boards.fit(nano, model_bytes=400_000, tokenizer_bytes=60_000, arena_bytes=100_000,
                        buffer_bytes=600, seq_len=128)
    assert budget["flash"]["total_bytes"] == 400_000 + 60_000 + nano.code_flash_bytes
    assert budget["ram"]["total_bytes"] == 100_000 + 600 + nano.code_ram_bytes
    with pytest.raises(ExportError, match="flash"):
        boards.fit(nano, model_bytes=900_000, tokenizer_bytes=0, arena_bytes=0, buffer_bytes=0,
                   seq_len=128)


def _fake_tree(root, ops):
    """A folder shaped like create_tflm_tree.py's output, registering `ops`."""
    micro = root / "tensorflow" / "lite" / "micro"
    micro.mkdir(parents=True)
    (micro / "micro_mutable_op_resolver.h").write_text(
        "\n".join(f"// AddBuiltin(BuiltinOperator_{op}, ...);" for op in ops) + "\n"
    )
    (micro / "micro_interpreter.cc").write_text('#include "flatbuffers/flatbuffers.h"\n')
    (micro / "micro_interpreter_test.cc").write_text("// a test, left out\n")
    flat = root / "third_party" / "flatbuffers" / "include" / "flatbuffers"
    flat.mkdir(parents=True)
    (flat / "flatbuffers.h").write_text('#include "flatbuffers/base.h"\n')
    (flat / "base.h").write_text("// base\n")
    (root / "examples" / "hello").mkdir(parents=True)
    (root / "examples" / "hello" / "main.cc").write_text("int main() {}\n")
    (micro / "cortex_m_generic").mkdir()
    (micro / "cortex_m_generic" / "micro_time.cc").write_text(
        "#include CMSIS_DEVICE_ARM_CORTEX_M_XX_HEADER_FILE\n"
    )
    (micro / "kernels" / "cmsis_nn").mkdir(parents=True)
    (micro / "kernels" / "cmsis_nn" / "fully_connected.cc").write_text(
        "void f() {\n      TFLITE_DCHECK_GE(data.buffer_conv_1x1_idx, 4);\n}\n"
    )
    (root / "third_party" / "cmsis_nn").mkdir()
    (root / "third_party" / "cmsis_nn" / "arm_x.c").write_text("int x;\n")
    return root


def test_vendors_a_tflm_tree(tiny_int8, tiny_tokenizer, tmp_path):
    ops = {op.name for op in inspect_tflite(tiny_int8["tflite"]).ops}
    tree = _fake_tree(tmp_path / "tree", ops | {"CONV_2D"})
    out = tmp_path / "lib"
    report = export_library(make_request(tiny_int8, tiny_tokenizer, tflm_tree=tree), out)
    src = out / "TinyIntents" / "src"
    interpreter = src / "tensorflow" / "lite" / "micro" / "micro_interpreter.cpp"
    config = f'#include "{tflm_tree.CONFIG_HEADER}"  // tflm_embbert: TFLM\'s defines\n'
    assert interpreter.read_text() == (
        config + '#include "third_party/flatbuffers/include/flatbuffers/flatbuffers.h"\n'
    )
    # Every C and C++ translation unit gets TFLM's defines first; headers are left as they are.
    assert (src / "third_party" / "cmsis_nn" / "arm_x.c").read_text() == config + "int x;\n"
    assert (src / "third_party/flatbuffers/include/flatbuffers/base.h").read_text() == "// base\n"
    defines = (src / tflm_tree.CONFIG_HEADER).read_text()
    for name in ("TF_LITE_STATIC_MEMORY", "CMSIS_NN", "KERNELS_OPTIMIZED_FOR_SPEED"):
        assert f"#ifndef {name}\n#define {name}\n#endif" in defines
    assert "NDEBUG" not in defines.replace("NDEBUG is left to the build", "")
    library_cpp = (src / "TinyIntents.cpp").read_text()
    assert library_cpp.index(tflm_tree.CONFIG_HEADER) < library_cpp.index("micro_interpreter.h")
    # micro_time without a CMSIS device header; the CMSIS-NN handle check fixed.
    micro_time = (src / "tensorflow/lite/micro/cortex_m_generic/micro_time.cpp").read_text()
    assert "CMSIS_DEVICE" not in micro_time and "0xE0001004u" in micro_time
    fully_connected = (src / "tensorflow/lite/micro/kernels/cmsis_nn/fully_connected.cpp")
    assert "TFLITE_DCHECK_GE(data.buffer_conv_1x1_idx, 0);" in fully_connected.read_text()
    assert report["tflm"]["vendored"]["cmsis_nn"] is True
    assert len(report["tflm"]["vendored"]["patched"]) == 1
    assert report["tflm"]["vendored"]["replaced"] == [
        "tensorflow/lite/micro/cortex_m_generic/micro_time.cpp"
    ]
    assert not (src / "tensorflow" / "lite" / "micro" / "micro_interpreter_test.cpp").exists()
    assert not (src / "examples").exists()
    assert report["tflm"]["vendored"]["rewritten_includes"] == 2
    readme = (out / "TinyIntents" / "README.md").read_text()
    assert "-std=gnu++17" in readme
    assert "arm-none-eabi-g++ -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 " in readme
    assert "-fno-exceptions" in readme and "-D" not in readme.split("```sh")[1].split("```")[0]


def test_refuses_a_tree_without_the_models_ops(tiny_int8, tiny_tokenizer, tmp_path):
    tree = _fake_tree(tmp_path / "tree", ["ADD", "FULLY_CONNECTED"])
    with pytest.raises(ExportError, match="BATCH_MATMUL.*TFLM tree"):
        export_library(make_request(tiny_int8, tiny_tokenizer, tflm_tree=tree), tmp_path / "lib")
    with pytest.raises(ExportError, match="not a TFLM tree"):
        export_library(make_request(tiny_int8, tiny_tokenizer, tflm_tree=tmp_path), tmp_path / "l2")


def test_name_and_labels_are_checked(tiny_int8, tiny_tokenizer, tmp_path):
    with pytest.raises(ValueError, match="--name"):
        export_library(make_request(tiny_int8, tiny_tokenizer, name="3bad-name"), tmp_path / "a")
    with pytest.raises(ExportError, match="labels"):
        export_library(make_request(tiny_int8, tiny_tokenizer, labels=["a", "b"]), tmp_path / "b")
    assert cpp_sources.snake_case("SnipsIntents") == "snips_intents"
    assert cpp_sources.snake_case("EmbBERTClassifier") == "emb_bert_classifier"
    assert cpp_sources.c_string('a"b\\é?') == '"a\\"b\\\\\\303\\251\\077"'


def test_profiles_know_the_arduino_distributions():
    for name in ("arduino_tensorflowlite", "chirale"):
        profile = tflm_profiles.PROFILES[name]
        assert "BATCH_MATMUL" not in profile.ops and "FULLY_CONNECTED" in profile.ops
        assert profile.library
    assert "BATCH_MATMUL" in tflm_profiles.PROFILES["tflm_tree"].ops


def _write_csv(folder, name, examples):
    lines = ["text,label"] + [f"{e.text_a},{LABELS[e.label].split()[0]}" for e in examples]
    (folder / name).write_text("\n".join(lines) + "\n")


def test_export_tflite_command(tiny_tokenizer, tiny_tokenizer_dir, tmp_path):
    keras.utils.set_random_seed(0)
    model = build_classifier(tiny_config(), 3)
    model.save(tmp_path / "model.keras")
    _write_csv(tmp_path, "train.csv", examples(90, 1))
    _write_csv(tmp_path, "test.csv", examples(30, 2))
    base = [sys.executable, "-m", "export.export_tflite", "--model", str(tmp_path / "model.keras"),
            "--tokenizer", str(tiny_tokenizer_dir), "--train_file", str(tmp_path / "train.csv"),
            "--test_file", str(tmp_path / "test.csv"), "--seq_len", str(SEQ_LEN)]
    out = tmp_path / "lib"
    done = subprocess.run(base + ["--name", "CliModel", "--out", str(out),
                                  "--length_buckets", "8"],
                          env=subprocess_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "export_report.json").read_text())
    assert report["labels"] == ["music", "naïve", "weather"]
    assert 0.0 <= report["tflm_test"]["accuracy"] <= 1.0
    assert 0.0 <= report["tflm_agreement"]["keras"] <= 1.0
    assert (out / "CliModel.zip").is_file() and "## Fit on nano33ble" in done.stdout
    buckets = report["length_buckets"]
    assert buckets["enabled"] and buckets["lengths"] == [8, SEQ_LEN] and buckets["max_lsb"] == 0
    assert [b["offset"] for b in buckets["buckets"]][-1] == 0
    assert sum(b["test_examples"] for b in buckets["buckets"]) == 30
    assert report["model_bytes"] == buckets["bytes"] == (out / "model.tflite").stat().st_size
    assert "## Length buckets 8/16" in done.stdout

    refused = subprocess.run(base + ["--name", "CliModel", "--out", str(tmp_path / "x"),
                                     "--tflm", "chirale", "--length_buckets", "none"],
                             env=subprocess_env(), capture_output=True, text=True)
    assert refused.returncode == 2
    assert "export_tflite: --tflm=chirale: the model uses BATCH_MATMUL" in refused.stderr
    assert not (tmp_path / "x").exists()

    bad = subprocess.run(base + ["--out", str(tmp_path / "y"), "--length_buckets", "8,32"],
                         env=subprocess_env(), capture_output=True, text=True)
    assert bad.returncode == 2 and not (tmp_path / "y").exists()
    assert bad.stderr == "export_tflite: --length_buckets: 32 exceeds the sequence length L=16\n"

    # An explicit bucket list whose logits differ from the full graph's (bucket 8's classifier
    # negated, in the export process) is refused in one line and nothing is written.
    tampered = subprocess.run(
        [sys.executable, "-c", _TAMPERED_EXPORT, *base[3:], "--name", "CliModel", "--out",
         str(tmp_path / "z"), "--length_buckets", "8"],
        env=subprocess_env(), capture_output=True, text=True,
    )
    assert tampered.returncode == 2, tampered.stderr[-2000:]
    last = tampered.stderr.strip().splitlines()[-1]
    assert last.startswith("export_tflite: length buckets: bucket L=8 gives logits")
    assert not (tmp_path / "z").exists() and not (tmp_path / "z.tmp").exists()


_TAMPERED_EXPORT = """
import sys
from tflm_embbert.graph import length_buckets as lb
from tests.test_length_buckets import _perturb_bucket

original = lb.bucket_model_array


def tampered(full, shaped, rewrite=None, root_metadata=None):
    perturb = _perturb_bucket(8)

    def both(model, index):
        if rewrite is not None:
            rewrite(model, index)
        perturb(model, index)

    return original(full, shaped, both, root_metadata)


lb.bucket_model_array = tampered
from export.export_tflite import run

sys.argv = ["export_tflite", *sys.argv[1:]]
run()
"""


def test_default_buckets_fall_back_and_explicit_ones_refuse():
    from export import buckets

    def failing():
        raise buckets.BucketError("length buckets: bucket L=8 gives logits up to 3 LSB away")

    built, note = buckets.build_or_fall_back(failing, False, 16, lambda line: None)
    assert built is None and note["enabled"] is False
    assert note["reason"].startswith("length buckets: bucket L=8 gives logits")
    with pytest.raises(buckets.BucketError):
        buckets.build_or_fall_back(failing, True, 16, lambda line: None)

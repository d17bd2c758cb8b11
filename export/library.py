"""Writes the Arduino library (spec 2.2) for an int8 .tflite and its tokenizer, after the checks.

    <out>/model.tflite             the model array's bytes (with length buckets: every bucket's
                                   root, the full-length model's at offset 0, so still a .tflite)
    <out>/export_report.json, export_report.md
    <out>/latency.png              estimated Cortex-M4 instructions per bucket (latency_report)
    <out>/<Name>/                  the library folder
        library.properties, README.md
        src/<Name>.h, src/<Name>.cpp                   the API: begin(), classify()
        src/<prefix>_model_data.h/.cpp                 the model array (alignas(16))
        src/<prefix>_model_settings.h                  arena, L, buckets, labels, quantization, hash
        src/<prefix>_op_resolver.h                     MicroMutableOpResolver<N> of the model's ops
        src/embbert_tokenizer.h/.cpp                   WordPiece in C++ (arduino/src)
        src/embbert_tokenizer_data.h/.cpp              vocabulary + Unicode tables as const data
        src/tensorflow/, src/third_party/, ...         only with --tflm_tree (vendored TFLM)
        examples/<Name>Classify/<Name>Classify.ino
    <out>/<Name>.zip              the same folder, for "Sketch > Include Library > Add .ZIP Library"

Nothing is written before the op check and the board check pass; everything is staged in
`<out>.tmp` and renamed when complete.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING

from export import boards, cpp_sources, latency_report, tflm_profiles, tflm_tree
from export.report_md import report_markdown
from export.tokenizer_data import write_tokenizer_data
from tflm_embbert.common.files import publish, staging_dir
from tflm_embbert.data.tokenizer import Tokenizer
from tflm_embbert.graph.int8_check import check_int8_graph

if TYPE_CHECKING:
    from export.buckets import LengthBuckets

DEFAULT_ARENA_MARGIN = 0.10  # of the measured arena ...
ARENA_EXTRA_BYTES = 2048  # ... plus this, for optimized kernels' scratch buffers
_TOKENIZER_SOURCES = ("embbert_tokenizer.h", "embbert_tokenizer.cpp")
DEFAULT_URL = "https://github.com/tensorflow/tflite-micro"
# The flags the vendored library was compiled with for the Nano 33 BLE's Cortex-M4F (no -D, no -I
# but src/; the generated README gives them).
CORTEX_M4_FLAGS = "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16"
CXX_FLAGS = "-std=gnu++17 -fno-exceptions -fno-rtti -Os"
C_FLAGS = "-std=gnu11 -Os"


def tool_version() -> str:
    try:
        return package_version("tflm_embbert")
    except PackageNotFoundError:
        return "0.0.0"


@dataclass(frozen=True)
class LibraryOptions:
    """How the library is named, checked and described; every default is defined here."""

    name: str = "EmbBERTClassifier"  # library folder and C++ class (an identifier)
    board: boards.Board = boards.BOARDS["nano33ble"]
    tflm: str = "tflm_tree"  # the TFLM distribution the library builds on (tflm_profiles)
    tflm_tree: Path | None = None  # a TFLM tree to vendor into src/ (with tflm="tflm_tree")
    arena_margin: float = DEFAULT_ARENA_MARGIN
    force: bool = False  # write the library even when it does not fit the board
    url: str = DEFAULT_URL
    maintainer: str = "tflm_embbert user"


@dataclass
class LibraryRequest:
    """What the library is built from (the .tflite already converted and measured)."""

    tflite: bytes
    tokenizer: Tokenizer
    labels: list[str]
    seq_len: int
    arena_measured_bytes: int  # smallest arena that ran under the TFLM runtime
    options: LibraryOptions = LibraryOptions()
    task: str = "custom"
    source: str = "model.tflite"
    extra_report: dict = field(default_factory=dict)  # e.g. accuracy under TFLM
    # Length buckets (export.buckets): `tflite` is then their model array (buckets.data) and
    # arena_measured_bytes the largest bucket's.
    buckets: LengthBuckets | None = None

    def bucket_table(self) -> tuple[list[int], list[int], list[int]]:
        """(lengths, offsets, measured arenas) of the buckets; one bucket without them."""
        if self.buckets is None:
            return [self.seq_len], [0], [self.arena_measured_bytes]
        return self.buckets.lengths, self.buckets.offsets, self.buckets.arena_bytes


def _checks(request: LibraryRequest) -> tuple:
    cpp_sources.check_name(request.options.name)
    if request.options.tflm not in tflm_profiles.PROFILES:
        raise tflm_profiles.ExportError(
            f"--tflm: expected one of {', '.join(tflm_profiles.PROFILES)}, "
            f"got {request.options.tflm!r}"
        )
    if request.options.tflm_tree is not None and request.options.tflm != "tflm_tree":
        raise tflm_profiles.ExportError("--tflm_tree needs --tflm=tflm_tree")
    if request.options.tflm_tree is not None and not Path(request.options.tflm_tree).is_dir():
        raise tflm_profiles.ExportError(f"--tflm_tree: {request.options.tflm_tree} is not a folder")
    report = check_int8_graph(request.tflite)
    if len(report.outputs) != 1 or report.outputs[0].shape[-1] != len(request.labels):
        raise tflm_profiles.ExportError(
            f"labels: the model has output shape {report.outputs[0].shape}, expected "
            f"{len(request.labels)} logits (one per label); a regression model is not exported"
        )
    if [t.shape for t in report.inputs] != [(1, request.seq_len)] * 2:
        raise tflm_profiles.ExportError(
            f"seq_len: the model's inputs are {[t.shape for t in report.inputs]}, expected two "
            f"(1, {request.seq_len})"
        )
    ops = {op.name for op in report.ops}
    for length, offset in _bucket_roots(request):
        bucket = check_int8_graph(request.tflite[offset:])
        if [t.name for t in bucket.inputs] != [t.name for t in report.inputs] or [
            t.shape for t in bucket.inputs
        ] != [(1, length)] * 2:
            raise tflm_profiles.ExportError(
                f"length buckets: the root at offset {offset} has inputs "
                f"{[(t.name, t.shape) for t in bucket.inputs]}, expected the full model's at "
                f"(1, {length})"
            )
        ops |= {op.name for op in bucket.ops}
    profile = tflm_profiles.PROFILES[request.options.tflm]
    ops = sorted(ops)
    tflm_profiles.check_ops(ops, profile, request.options.tflm_tree)
    return report, profile, ops


def _bucket_roots(request: LibraryRequest) -> list[tuple[int, int]]:
    """(length, offset) of every bucket root but the full model's (offset 0), after checking the
    bucket table against the model array."""
    lengths, offsets, arenas = request.bucket_table()
    if request.buckets is None:
        return []
    if request.buckets.data != request.tflite:
        raise tflm_profiles.ExportError("length buckets: tflite is not the buckets' model array")
    if not (
        len(lengths) == len(offsets) == len(arenas) >= 2
        and lengths == sorted(set(lengths))
        and lengths[-1] == request.seq_len
        and offsets[-1] == 0
        and all(offset % 16 == 0 and 0 <= offset < len(request.tflite) for offset in offsets)
        and request.arena_measured_bytes == max(arenas)
    ):
        raise tflm_profiles.ExportError(
            f"length buckets: inconsistent table (lengths {lengths}, offsets {offsets}, arenas "
            f"{arenas}, L={request.seq_len}, arena {request.arena_measured_bytes})"
        )
    return list(zip(lengths[:-1], offsets[:-1], strict=True))


def export_library(request: LibraryRequest, out: str | Path) -> dict:
    """Checks, writes `out` (see the module docstring) and returns the report dict. Raises
    ExportError (one line) without writing anything when a check fails."""
    report, profile, ops = _checks(request)
    version = tool_version()
    prefix = cpp_sources.snake_case(request.options.name)
    # the own kernels' persistent tables (full model: the largest bucket's arena)
    own_bytes = (
        cpp_sources.own_kernel_extra_arena(report) if request.options.tflm == "tflm_tree" else 0
    )
    arena = cpp_sources.arena_with_margin(
        request.arena_measured_bytes, request.options.arena_margin, ARENA_EXTRA_BYTES + own_bytes
    )
    margin_text = f"{request.options.arena_margin:.0%} + {ARENA_EXTRA_BYTES} B margin" + (
        f" + {own_bytes} B for this library's own kernels' tables" if own_bytes else ""
    )
    staging = staging_dir(out)
    try:
        library = staging / request.options.name
        src = library / "src"
        src.mkdir(parents=True)
        tokenizer_info = write_tokenizer_data(request.tokenizer, src)
        budget = boards.fit(
            request.options.board,
            model_bytes=len(request.tflite),
            tokenizer_bytes=tokenizer_info["flash_bytes"],
            arena_bytes=arena,
            buffer_bytes=cpp_sources.buffer_bytes(request.seq_len, len(request.labels)),
            seq_len=request.seq_len,
            force=request.options.force,
        )
        _write_sources(request, src, prefix, version, report, ops, arena, margin_text)
        vendored = None
        if request.options.tflm == "tflm_tree":  # the defines, also before a tree is vendored
            (src / tflm_tree.CONFIG_HEADER).write_text(tflm_tree.config_header(cmsis_nn=False))
        if request.options.tflm_tree is not None:
            vendored = tflm_tree.vendor_tree(request.options.tflm_tree, src)
            tflm_tree.copy_tree_license(request.options.tflm_tree, library)
        _write_library_files(
            request,
            library,
            prefix,
            version,
            profile,
            arena,
            margin_text,
            tokenizer_info["flash_bytes"],
        )
        (staging / "model.tflite").write_bytes(request.tflite)
        _zip(library, staging / f"{request.options.name}.zip")
        latency = latency_report.latency_report(
            request.tflite, *request.bucket_table()[:2], request.options.tflm == "tflm_tree"
        )
        latency_report.latency_picture(latency, staging / latency_report.PICTURE)
        result = {
            "name": request.options.name,
            "tool_version": version,
            "task": request.task,
            "source": request.source,
            "seq_len": request.seq_len,
            "labels": request.labels,
            "model_sha256": cpp_sources.sha256(request.tflite),
            "model_bytes": len(request.tflite),
            "ops": {op: sum(o.name == op for o in report.ops) for op in ops},
            "op_resolver_size": len(ops),
            "tflm_note": _tflm_note(request, profile),
            "tflm": {
                "profile": profile.name,
                "description": profile.description,
                "tree": str(request.options.tflm_tree) if request.options.tflm_tree else None,
                "vendored": vendored,
                "needs_cpp17": profile.cpp17,
            },
            "arena": {
                "measured_bytes": request.arena_measured_bytes,
                "bytes": arena,
                "margin": margin_text,
                "own_kernels_bytes": own_bytes,
            },
            "length_buckets": request.buckets.report
            if request.buckets is not None
            else {"enabled": False, "reason": "not asked for"},
            "tokenizer": tokenizer_info
            | {"files": [Path(f).name for f in tokenizer_info["files"]]},
            "budget": budget,
            "latency": latency,
            "files": _file_sizes(staging),
            **request.extra_report,
        }
        (staging / "export_report.json").write_text(json.dumps(result, indent=2) + "\n")
        (staging / "export_report.md").write_text(report_markdown(result))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    publish(staging, out)
    return result


def _write_sources(request, src, prefix, version, report, ops, arena, margin_text) -> None:
    files = cpp_sources.model_data_files(prefix, request.tflite)
    files[f"{prefix}_model_settings.h"] = cpp_sources.settings_header(
        prefix,
        version=version,
        tflite=request.tflite,
        report=report,
        seq_len=request.seq_len,
        labels=request.labels,
        vocab_size=request.tokenizer.vocab_size,
        arena_measured=request.arena_measured_bytes,
        arena_bytes=arena,
        margin_text=margin_text,
        buckets=request.bucket_table(),
    )
    # current TFLM: Add<Op>(registration) overloads
    own_kernels = request.options.tflm == "tflm_tree"
    files[f"{prefix}_op_resolver.h"] = cpp_sources.op_resolver_header(prefix, ops, own_kernels)
    profile = tflm_profiles.PROFILES[request.options.tflm]
    values = {
        "NAME": request.options.name,
        "PREFIX": prefix,
        "GUARD": prefix.upper(),
        "VERSION": version,
        "TFLM_INCLUDE": f"#include <{profile.include}>\n"
        if profile.include
        else (f'#include "{tflm_tree.CONFIG_HEADER}"\n' if own_kernels else ""),
    }
    files[f"{request.options.name}.h"] = cpp_sources.render("Library.h.in", **values)
    files[f"{request.options.name}.cpp"] = cpp_sources.render("Library.cpp.in", **values)
    for name, text in files.items():
        (src / name).write_text(text)
    for name in _TOKENIZER_SOURCES + (cpp_sources.OWN_KERNEL_SOURCES if own_kernels else ()):
        (src / name).write_bytes((cpp_sources.ARDUINO_SRC_DIR / name).read_bytes())


def _tflm_note(request, profile) -> str:
    if profile.library:
        return f"depends on {profile.library} from the Library Manager"
    if request.options.tflm_tree is not None:
        return f"TFLM vendored into src/ from {request.options.tflm_tree}"
    return (
        "no TFLM vendored yet: make a tree with create_tflm_tree.py and export again with "
        "--tflm_tree (steps in the library's README.md)"
    )


def _install_steps(request, profile, prefix) -> str:
    cpp17 = "--build-property compiler.cpp.extra_flags=-std=gnu++17"
    compile_line = (
        f"arduino-cli compile --fqbn {request.options.board.fqbn or '<your FQBN>'} "
        + (f"{cpp17} " if profile.cpp17 else "")
        + f"examples/{request.options.name}Classify"
    )
    if profile.library:
        return (
            f"1. Install `{profile.library}` from the Library Manager (this library depends on "
            "it).\n2. `Sketch > Include Library > Add .ZIP Library` and pick "
            f"`{request.options.name}.zip`."
            f"\n3. Or from a shell: `{compile_line}`."
        )
    if request.options.tflm_tree is not None:
        return (
            "TFLM is vendored in `src/` (from the tree given to --tflm_tree). Its defines "
            f"(TF_LITE_STATIC_MEMORY, CMSIS_NN, ...) are in `src/{tflm_tree.CONFIG_HEADER}`, which "
            "every TFLM source includes first, so no -D flag is needed. Current TFLM needs C++17; "
            "the mbed core defaults to gnu++14.\n\n"
            "1. `Sketch > Include Library > Add .ZIP Library` and pick "
            f"`{request.options.name}.zip`.\n"
            f"2. Compile with C++17: `{compile_line}` (in the IDE, add `-std=gnu++17` to "
            "`compiler.cpp.extra_flags` in a platform.local.txt next to the core's "
            "platform.txt).\n\n"
            "Outside Arduino (any Cortex-M4F), every .cpp and .c under `src/` compiles with only "
            "`src/` on the include path:\n\n"
            f"```sh\narm-none-eabi-g++ {CORTEX_M4_FLAGS} {CXX_FLAGS} -Isrc -c file.cpp\n"
            f"arm-none-eabi-gcc {CORTEX_M4_FLAGS} {C_FLAGS} -Isrc -c file.c\n```\n\n"
            "`-std=gnu++17` and `-fno-exceptions` are required (with exceptions TFLM's "
            "placement-new of its memory planner does not compile: add it if your core does not "
            "pass it); `-DNDEBUG` is optional (the library runs without it).\n"
        )
    return (
        "This library needs a current TFLM (the Library-Manager builds lack BATCH_MATMUL). Make a "
        "TFLM tree on your machine and export again with it, so it is vendored in `src/`:\n\n"
        "```sh\ngit clone https://github.com/tensorflow/tflite-micro && cd tflite-micro\n"
        "python3 tensorflow/lite/micro/tools/project_generation/create_tflm_tree.py \\\n"
        '    --makefile_options="TARGET=cortex_m_generic TARGET_ARCH=cortex-m4+fp '
        'OPTIMIZED_KERNEL_DIR=cmsis_nn" /tmp/tflm_tree\n'
        "export_tflite ... --tflm=tflm_tree --tflm_tree=/tmp/tflm_tree\n```\n\n"
        "The Makefile downloads an Arm toolchain unless the options add "
        "`TARGET_TOOLCHAIN_ROOT=/usr/bin/` with an installed arm-none-eabi-gcc. "
        "(export again rather than copying the tree by hand: the export renames `.cc` to `.cpp`, "
        "fixes the includes and adds TFLM's defines). Then compile with C++17: "
        f"`{compile_line}`."
    )


def _write_library_files(
    request, library, prefix, version, profile, arena, margin_text, tokenizer_bytes
) -> None:
    values = {
        "NAME": request.options.name,
        "PREFIX": prefix,
        "VERSION": version,
        "TASK": request.task,
        "NUM_LABELS": len(request.labels),
        "LABELS": ", ".join(request.labels),
        "SEQ_LEN": request.seq_len,
        "BUCKETS_TEXT": _buckets_text(request),
        "BUCKET_EXAMPLE": _bucket_example(request),
        "ARENA_BYTES": arena,
        "ARENA_MEASURED": request.arena_measured_bytes,
        "MARGIN_TEXT": margin_text,
        "MODEL_BYTES": len(request.tflite),
        "TOKENIZER_BYTES": tokenizer_bytes,
        "SOURCE": request.source,
        "SHA256": cpp_sources.sha256(request.tflite),
        "TFLM_DESCRIPTION": profile.description,
        "INSTALL_STEPS": _install_steps(request, profile, prefix),
        "URL": request.options.url,
        "MAINTAINER": request.options.maintainer,
        "ARCHITECTURES": "mbed_nano,mbed" if request.options.board.name == "nano33ble" else "*",
        "DEPENDS": profile.library or "",
    }
    properties = cpp_sources.render("library.properties.in", **values)
    properties = "".join(line for line in properties.splitlines(True) if not line.endswith("=\n"))
    (library / "library.properties").write_text(properties)
    (library / "README.md").write_text(cpp_sources.render("README.md.in", **values))
    example = library / "examples" / f"{request.options.name}Classify"
    example.mkdir(parents=True)
    (example / f"{request.options.name}Classify.ino").write_text(
        cpp_sources.render("Classify.ino.in", **values)
    )


def _buckets_text(request: LibraryRequest) -> str:
    lengths, _, arenas = request.bucket_table()
    if request.buckets is None:
        return "Length buckets: none (one model at L)."
    report = request.buckets.report
    return (
        f"Length buckets {'/'.join(map(str, lengths))}: the model array holds one model per "
        "length sharing the weights, and `classify()` runs the shortest that holds the input's "
        "tokens (same logits as the full model: checked on the test split). Over that split the "
        f"mean MACs were {report['mean_macs_ratio']:.3f}x of the single L={request.seq_len} "
        f"model's; the arena is the largest bucket's ({max(arenas)} B measured)."
    )


def _bucket_example(request: LibraryRequest) -> str:
    """What the sketch prints for the shortest input: 'bucket: L=<shortest bucket> of <L>'."""
    lengths, _, _ = request.bucket_table()
    return f"bucket: L={min(lengths)} of {request.seq_len}"


def _zip(library: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(library.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(library.parent).as_posix())


def _file_sizes(staging: Path) -> dict:
    return {
        path.relative_to(staging).as_posix(): path.stat().st_size
        for path in sorted(staging.rglob("*"))
        if path.is_file()
        and "/src/tensorflow/" not in path.as_posix()
        and "/src/third_party/" not in path.as_posix()
    }

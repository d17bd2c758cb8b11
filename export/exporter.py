"""The one export: a trained Keras classifier -> int8 .tflite checked under TFLM -> length
buckets -> the Arduino library. `export_tflite` (the command) and the demo are thin callers.

    result = export_model(model, task, tokenizer, seq_len, "runs/lib", ExportSettings())

Stages, each announced through `progress`: (1) int8 conversion of `model` and the whole test
split under the TFLM runtime (`tflm.int8_eval.int8_under_tflm`), unless the caller already has
that result (`int8=`, e.g. from the training pipeline); (2) length buckets (`export.buckets`:
one model per length sharing the weights, each checked bit for bit against the full graph on the
test split; the default 'auto' falls back to one model where they are not exact, an explicit
list refuses); (3) the library (`export.library`: op and board checks, model array, op resolver,
C++ tokenizer, sketch, zip), staged and renamed when complete.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from export import bucket_lengths, buckets
from export.library import LibraryOptions, LibraryRequest, export_library
from tflm_embbert.data.examples import TaskData
from tflm_embbert.data.tokenizer import Tokenizer
from tflm_embbert.tflm.int8_eval import Int8Result, int8_under_tflm
from tflm_embbert.tflm.settings import Int8Settings


@dataclass(frozen=True)
class ExportSettings:
    """Everything `export_model` does that is not data; each default is defined once, in the
    class it belongs to."""

    library: LibraryOptions = field(default_factory=LibraryOptions)
    int8: Int8Settings = field(default_factory=Int8Settings)
    length_buckets: tuple[str, ...] = ("auto",)  # 'auto', 'none' or lengths (see FLAG_HELP)
    buckets_asked: bool = False  # the lengths were asked for: refuse instead of falling back


@dataclass
class ExportResult:
    int8: Int8Result  # the single full-length int8 graph and its TFLM figures
    buckets: buckets.LengthBuckets | None  # None: one model (see report["length_buckets"])
    report: dict  # export_report.json


def export_model(
    model,
    task: TaskData,
    tokenizer: Tokenizer,
    seq_len: int,
    out,
    settings: ExportSettings | None = None,
    *,
    int8: Int8Result | None = None,
    source: str = "",
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Writes the library of `model` (float or QAT Keras) at `seq_len` to `out` (see the module
    docstring). ValueError (one line: conversion, int8 check, lean check, board or op check) or
    buckets.BucketError (explicit buckets that are not exact) without writing anything."""
    settings = settings or ExportSettings()
    say = progress or (lambda line: print(line, flush=True))
    lengths = bucket_lengths.parse_lengths(list(settings.length_buckets), seq_len)
    if int8 is None:
        say(f"[1/3] int8 conversion (L={seq_len}) + {task.name} test split under TFLM")
        int8 = int8_under_tflm(
            model,
            task,
            tokenizer,
            seq_len,
            settings.int8,
            references={"keras": model},
            progress=say,
        )
    else:
        say(f"[1/3] int8 graph at L={seq_len}: converted and checked under TFLM already")
    say(f"[2/3] length buckets ({'/'.join(map(str, lengths)) or 'none'})")
    bucketed, note = None, bucket_lengths.off_note(list(settings.length_buckets), seq_len)
    if lengths:
        bucketed, note = buckets.build_or_fall_back(
            lambda: buckets.build_buckets(
                model,
                task,
                tokenizer,
                seq_len,
                lengths,
                int8.tflite,
                int8.lean,
                settings.int8,
                progress=say,
            ),
            explicit=settings.buckets_asked,
            seq_len=seq_len,
            say=say,
        )
    options = settings.library
    say(f"[3/3] Arduino library {options.name} for {options.board.name} (TFLM: {options.tflm})")
    request = LibraryRequest(
        tflite=bucketed.data if bucketed else int8.tflite,
        tokenizer=tokenizer,
        labels=list(task.label_names),
        seq_len=seq_len,
        arena_measured_bytes=(
            bucketed.arena_measured_bytes if bucketed else int8.memory["ram_arena_bytes"]
        ),
        options=options,
        task=task.name,
        source=source,
        extra_report={
            "tflm_test": int8.test,
            "tflm_agreement": int8.agreement,
            "test_split": task.test_split,
            "lean_graph": int8.lean,
            **({"length_buckets": note} if note else {}),
        },
        buckets=bucketed,
    )
    return ExportResult(int8=int8, buckets=bucketed, report=export_library(request, out))

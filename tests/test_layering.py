"""The pipeline runs one way: every import in the project goes to an earlier layer, never back up.

Layers, lowest first: keras_models; tflm_embbert.common; the stages data, training, quantize,
graph, tflm, report; tflm_embbert's top-level modules (pipeline, train, run_record); export; bench.
A module may import its own layer and any layer below it. Imports inside functions count too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = [
    "keras_models",
    "tflm_embbert.common",
    "tflm_embbert.data",
    "tflm_embbert.training",
    "tflm_embbert.quantize",
    "tflm_embbert.graph",
    "tflm_embbert.tflm",
    "tflm_embbert.report",  # predictions, pictures, report.md: after the TFLM check
    "tflm_embbert",  # pipeline.py, train.py, run_record.py: the stages run in order
    "export",
    "bench",
]
STAGES = ("common", "data", "training", "quantize", "graph", "tflm", "report")


def layer_of(module: str) -> int | None:
    """Index in LAYERS of a project module name ('tflm_embbert.data.tokenizer' -> 2)."""
    parts = module.split(".")
    if parts[0] == "tflm_embbert" and len(parts) > 1 and parts[1] in STAGES:
        return LAYERS.index(f"tflm_embbert.{parts[1]}")
    if parts[0] in LAYERS:
        return LAYERS.index(parts[0])
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.AST, package: str) -> list[tuple[int, list[str]]]:
    """(line, names) of every import statement; `from x import y` names x and x.y (y may be a
    module, as in `from tflm_embbert import pipeline`)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, [alias.name]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.append((node.lineno, [base] + [f"{base}.{a.name}" for a in node.names]))
    return found


def violations(paths) -> list[str]:
    found = []
    for path in paths:
        name = module_name(path)
        own = layer_of(name)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), str(path))
        for line, names in sorted(imported_modules(tree, package)):
            layers = [(layer_of(n), n) for n in names if layer_of(n) is not None]
            if own is None or not layers:
                continue
            target_layer, target = max(layers)
            if target_layer > own:
                found.append(
                    f"{path.relative_to(ROOT)}:{line}: {name} ({LAYERS[own]}) imports {target} "
                    f"({LAYERS[target_layer]}), a later layer"
                )
    return found


def project_files():
    for top in ("keras_models", "tflm_embbert", "export", "bench"):
        yield from sorted((ROOT / top).rglob("*.py"))


def test_no_import_runs_back_up_the_pipeline():
    assert violations(project_files()) == []


def test_checker_catches_an_import_that_runs_back_up():
    stage = ROOT / "tflm_embbert" / "data"
    bad = stage / "_layering_probe.py"
    source = (
        "from tflm_embbert.tflm.check import run_tflm\n"
        "def f():\n    from export import library\n"
        "from tflm_embbert import pipeline\n"
    )
    bad.write_text(source)
    try:
        found = violations([bad])
    finally:
        bad.unlink()
    assert len(found) == 3, found
    assert "imports tflm_embbert.tflm.check.run_tflm (tflm_embbert.tflm)" in found[0]
    assert "imports export.library (export)" in found[1]
    assert "imports tflm_embbert.pipeline (tflm_embbert)" in found[2]


def test_every_stage_is_a_package_with_a_docstring():
    for stage in STAGES:
        init = ROOT / "tflm_embbert" / stage / "__init__.py"
        assert init.is_file(), init
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init}: no docstring"


@pytest.mark.parametrize("stage", ["tflm_embbert.graph", "tflm_embbert.data"])
def test_stage_loads_without_tensorflow(stage):
    """Reading a graph needs only the schema; text needs only the tokenizer. One process per
    module (the command-line modules each define their absl flags)."""
    for path in sorted((ROOT / stage.replace(".", "/")).glob("*.py")):
        script = (
            f"import sys, {module_name(path)}\n"
            "print(sorted(m for m in ('tensorflow', 'tf_keras', 'tensorflow_model_optimization')"
            " if m in sys.modules))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "[]", f"{module_name(path)} loads {out.stdout.strip()}"

"""Vendoring a TFLM tree (made by tflite-micro's create_tflm_tree.py) into a library's src/.

Arduino compiles every .c/.cpp under src/ with only src/ on the include path. So the tree's .cc
files become .cpp, tests and examples are left out, and an #include that only resolves through
the tree's own -I flags (e.g. "flatbuffers/flatbuffers.h" in third_party/flatbuffers/include) is
rewritten to its path from src/.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from export.tflm_profiles import ExportError

_SOURCE_SUFFIXES = {".c", ".cc", ".cpp", ".h", ".hpp", ".inc", ".S"}
_INCLUDE = re.compile(r'^(\s*#\s*include\s*)"([^"]+)"', re.MULTILINE)
_SKIPPED_DIRS = {"examples", "test", "tests", "testing"}


def _wanted(relative: Path) -> bool:
    if relative.suffix not in _SOURCE_SUFFIXES or set(relative.parts[:-1]) & _SKIPPED_DIRS:
        return False
    return not relative.stem.endswith("_test")


def vendor_tree(tree: Path, src: Path) -> dict:
    """Copies the wanted files of `tree` under `src`; returns {"files": n, "bytes": size,
    "rewritten_includes": n}."""
    tree = Path(tree)
    files = sorted(p.relative_to(tree) for p in tree.rglob("*") if p.is_file())
    files = [f for f in files if _wanted(f)]
    if not files:
        raise ExportError(f"--tflm_tree: {tree} holds no C/C++ sources")
    targets = {f: f.with_suffix(".cpp") if f.suffix == ".cc" else f for f in files}
    present = {t.as_posix() for t in targets.values()}
    by_tail: dict[str, list[str]] = {}
    for path in present:
        parts = path.split("/")
        for i in range(1, len(parts)):
            by_tail.setdefault("/".join(parts[i:]), []).append(path)

    def resolve(including: Path, name: str) -> str:
        sibling = (including.parent / name).as_posix()
        if name in present or sibling in present:
            return name
        candidates = by_tail.get(name, [])
        return min(candidates, key=len) if candidates else name  # else: a system/core header

    rewritten = size = 0
    for source, target in targets.items():
        data = (tree / source).read_bytes()
        if target.suffix != ".S":
            text = data.decode("utf-8", errors="surrogateescape")

            def fix(match, target=target):
                nonlocal rewritten
                new = resolve(target, match.group(2))
                rewritten += new != match.group(2)
                return f'{match.group(1)}"{new}"'

            data = _INCLUDE.sub(fix, text).encode("utf-8", errors="surrogateescape")
        out = src / target
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        size += len(data)
    return {"files": len(targets), "bytes": size, "rewritten_includes": rewritten}


def copy_tree_license(tree: Path, library: Path) -> None:
    for name in ("LICENSE", "LICENSE.txt"):
        if (Path(tree) / name).is_file():
            shutil.copy(Path(tree) / name, library / "LICENSE-tflite-micro")
            return

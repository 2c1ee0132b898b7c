"""The package's shape (docs/architecture.md): no import runs back up the layers, no module is
over 400 lines and no function over 60 unless its docstring says why ("Long because ...")."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "hvrnn"
LAYERS = {
    "": 0, "errors": 1, "io": 1, "log": 1,
    "config": 2,
    "distributions": 3, "objective": 3, "layers": 3,
    "model": 4,
    "sampling": 5, "checkpoint": 5, "pretrained": 5, "distributed": 5, "data": 5, "metrics": 5,
    "weights": 5, "viz": 5, "accel": 5,
    "training": 6, "train": 6, "evaluation": 6, "evaluate": 6, "sample_files": 6, "info": 6,
    "demo": 6,
    "cli": 7,
}


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text())) for p in sorted(SRC.rglob("*.py"))]


def _component(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, imported hvrnn module) for every import outside ``if TYPE_CHECKING:`` blocks."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for n in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "hvrnn" else \
                [f"hvrnn.{a.name}" for a in node.names]
            found += [(node.lineno, n) for n in names if n.startswith("hvrnn")]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("hvrnn")]
    return found


def test_no_import_runs_back_up_the_layers():
    wrong = []
    for path, tree in _modules():
        rel = path.relative_to(SRC.parent).with_suffix("")
        own = _component(".".join(rel.parts))
        if path.name == "__init__.py" and path.parent == SRC:
            continue  # the package root re-exports lazily
        for line, name in _imports(tree):
            other = _component(name)
            if other in LAYERS and LAYERS[other] > LAYERS[own]:
                wrong.append(f"{path.relative_to(SRC)}:{line} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_modules_and_functions_stay_short():
    long = []
    for path, tree in _modules():
        lines = len(path.read_text().splitlines())
        if lines > 400:
            long.append(f"{path.relative_to(SRC)}: {lines} lines")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 60 and "Long because" not in (ast.get_docstring(node) or ""):
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}: {length}")
    assert not long, "\n".join(long)


def test_every_component_has_a_layer():
    components = {p.stem if p.parent == SRC else p.relative_to(SRC).parts[0]
                  for p in SRC.rglob("*.py")} - {"__init__"}
    assert components <= set(LAYERS), components - set(LAYERS)

"""The package's shape (docs/architecture.md): no import runs back up the layers, no import
cycle, no private name imported from another module, no module over 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "hvrnn"
LAYERS = {
    "": 0, "errors": 1, "io": 1, "log": 1,
    "config": 2,
    "distributions": 3, "objective": 3, "layers": 3,
    "model": 4,
    "sampling": 5, "rng": 5, "checkpoint": 5, "pretrained": 5, "sources": 5, "distributed": 5,
    "data": 5, "metrics": 5, "weights": 5, "viz": 5, "accel": 5, "memory": 5,
    "training": 6, "train": 6, "evaluation": 6, "evaluate": 6, "outputs": 6, "sample_files": 6,
    "info": 6, "demo": 6,
    "cli": 7,
}


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text())) for p in sorted(SRC.rglob("*.py"))]


def _component(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else ""


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.Module, modules: frozenset[str] = frozenset()
             ) -> list[tuple[int, str]]:
    """(line, imported hvrnn module) for every import outside ``if TYPE_CHECKING:`` blocks;
    ``from package import name`` counts as an import of ``package.name`` when that is one of
    ``modules``."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for n in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules or
                     node.module == "hvrnn" else node.module for a in node.names]
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


def test_modules_stay_short():
    """A module over 400 lines holds more than one idea; a function is as long as its job."""
    long = [f"{path.relative_to(SRC)}: {n} lines" for path, _ in _modules()
            if (n := len(path.read_text().splitlines())) > 400]
    assert not long, "\n".join(long)


def test_every_component_has_a_layer():
    components = {p.stem if p.parent == SRC else p.relative_to(SRC).parts[0]
                  for p in SRC.rglob("*.py")} - {"__init__"}
    assert components <= set(LAYERS), components - set(LAYERS)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (at load time or inside a function), without
    the package root, which only re-exports on first use."""
    trees = {_module_name(p): tree for p, tree in _modules()}
    modules = frozenset(trees)
    return {name: {m for _, m in _imports(tree, modules) if m in modules and m != "hvrnn"}
            for name, tree in trees.items() if name != "hvrnn"}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycle():
    cycles = _cycles(_import_graph())
    assert not cycles, "\n".join(" <-> ".join(c) for c in cycles)


def test_no_private_name_is_imported_from_another_module():
    wrong = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hvrnn"):
                wrong += [f"{path.relative_to(SRC)}:{node.lineno} imports {node.module}.{a.name}"
                          for a in node.names if a.name.startswith("_")
                          and a.name != "__version__"]
    assert not wrong, "\n".join(wrong)

"""The import graph of mlxsft: no circles, and each layer imports only from the layers below it.

Read from the source with ``ast`` (every ``import``, at module level or inside a function, except those
under ``if TYPE_CHECKING:``), so a lazy import counts as much as a top-level one.
"""

from __future__ import annotations

import ast
import io
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# where each top-level source folder installs (pyproject.toml: cli/ is mlxsft.cli)
SOURCES = {"mlxsft": ROOT / "mlxsft", "mlxsft.cli": ROOT / "cli"}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for prefix, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([prefix, *parts])
            if prefix == "mlxsft" and parts[:1] == ["cli"]:
                continue
            found[name] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skipped |= {id(n) for child in node.body for n in ast.walk(child)}
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                     for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:  # `import mlxsft.backends.mlx.generate`: that module
                name = name.rpartition(".")[0]
            if name.startswith("mlxsft"):
                out.add(name)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_is_read_from_the_source():
    graph = import_graph()
    assert "mlxsft.train" in graph and "mlxsft.cli.train" in graph
    assert "mlxsft.backends.registry" in graph["mlxsft.train"]  # a lazy import inside run_training counts
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles():
    assert _cycles(import_graph()) == []


def test_the_data_layer_imports_no_model_code():
    graph = import_graph()
    below = ("mlxsft.backends", "mlxsft.models", "mlxsft.curate", "mlxsft.export", "mlxsft.train",
             "mlxsft.chat", "mlxsft.evaluate", "mlxsft.cli")
    wrong = {m: sorted(d for d in deps if d.startswith(below))
             for m, deps in graph.items() if m.startswith("mlxsft.data")}
    assert {m: d for m, d in wrong.items() if d} == {}
    for name, path in _modules().items():  # and no framework either, not even lazily
        if name.startswith("mlxsft.data"):
            tree = ast.parse(path.read_text())
            frameworks = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            frameworks |= {n.module.split(".")[0] for n in ast.walk(tree)
                           if isinstance(n, ast.ImportFrom) and n.module and n.level == 0}
            assert not frameworks & {"mlx", "mlx_lm", "torch", "peft"}, name


def test_curation_reaches_models_only_through_the_backend_registry():
    for name, path in _modules().items():
        if name.startswith("mlxsft.curate"):
            tree = ast.parse(path.read_text())
            used = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            used |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and n.level == 0}
            direct = {m for m in used if m.split(".")[0] in ("mlx", "mlx_lm", "torch", "peft")
                      or m.startswith(("mlxsft.backends.mlx", "mlxsft.backends.torch"))}
            assert not direct, (name, direct)


def test_only_the_cli_imports_the_cli():
    graph = import_graph()
    assert {m: sorted(d) for m, deps in graph.items() if not m.startswith(("mlxsft.cli", "mlxsft.__main__"))
            for d in [{x for x in deps if x.startswith("mlxsft.cli")}] if d} == {}


def test_the_source_is_pyflakes_clean():
    """No unused import, undefined name or shadowed variable in mlxsft/ and cli/ (``python -m pyflakes mlxsft cli``)."""
    from pyflakes.api import checkRecursive
    from pyflakes.reporter import Reporter

    out, err = io.StringIO(), io.StringIO()
    found = checkRecursive([str(ROOT / "mlxsft"), str(ROOT / "cli")], Reporter(out, err))
    assert found == 0, out.getvalue() + err.getvalue()


def test_experiments_sit_on_top_and_reach_models_only_through_training_and_scoring():
    """mlxsft.experiments uses train / evaluate / curate / data; only the CLI imports it, and it imports no
    framework or backend package itself."""
    graph = import_graph()
    users = {m for m, deps in graph.items() if any(d.startswith("mlxsft.experiments") for d in deps)
             and not m.startswith(("mlxsft.experiments", "mlxsft.cli"))}
    assert users == set()
    for name, path in _modules().items():
        if name.startswith("mlxsft.experiments"):
            tree = ast.parse(path.read_text())
            used = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            used |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and n.level == 0}
            direct = {m for m in used if m.split(".")[0] in ("mlx", "mlx_lm", "torch", "peft", "transformers")
                      or m.startswith(("mlxsft.backends.mlx", "mlxsft.backends.torch"))}
            assert not direct, (name, direct)

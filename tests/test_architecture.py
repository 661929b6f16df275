"""The architecture written in docs/architecture.md holds: import-linter's contracts (pyproject.toml) pass, no
module imports another that imports it back (counting imports inside functions), no function is longer than 60
lines, and the README's layout and the architecture document name every module there is."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "convnp"
MAX_FUNCTION_LINES = 60

grimp = pytest.importorskip("grimp", reason="import-linter is not installed (pip install 'convnp[test]')")


def test_import_linter_contracts_hold():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint_imports), "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert f"Contracts: {len(contracts)} kept, 0 broken." in done.stdout


def import_cycles(graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    adjacency = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in sorted(graph.modules)}
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []
    for root in adjacency:
        if root in index:
            continue
        work = [(root, iter(adjacency[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(adjacency[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_no_import_cycle_counting_imports_inside_functions():
    graph = grimp.build_graph("convnp")  # grimp reads every import statement, function bodies included
    assert "convnp.data.datasets" in graph.find_modules_directly_imported_by("convnp.parallel.mpi")  # one such
    assert import_cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    class Graph:
        modules = {"a", "b", "c", "d"}
        edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}

        def find_modules_directly_imported_by(self, m):
            return self.edges[m]

    assert import_cycles(Graph()) == [["a", "b", "c"]]


def long_functions(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_is_longer_than_60_lines():
    assert long_functions(SRC) == []


def modules_of_the_tree() -> list[str]:
    """Every module and package under src/convnp, as ``name.py`` or ``name/`` (no __init__/__main__)."""
    names = []
    for path in sorted(SRC.rglob("*")):
        if "__pycache__" in path.parts or path.name.startswith(("__init__", "__main__")):
            continue
        if path.is_dir() and (path / "__init__.py").exists():
            names.append(f"{path.name}/")
        elif path.suffix == ".py":
            names.append(path.name)
    return names


def test_the_readme_layout_names_every_module():
    readme = (ROOT / "README.md").read_text()
    layout = re.search(r"## Layout\n\n```\n(.*?)```", readme, flags=re.S).group(1)
    words = set(re.findall(r"[\w.]+/?", layout))
    missing = [name for name in modules_of_the_tree()
               if name not in words and name.removesuffix(".py") not in words and name.rstrip("/") not in words]
    assert missing == [], f"README's layout does not mention {missing}"


def test_the_architecture_document_names_every_layer_of_the_contract():
    document = (ROOT / "docs" / "architecture.md").read_text()
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers")["layers"]
    for layer in layers:
        for module in layer.split("|"):
            name = module.strip().removeprefix("convnp.")
            assert f"`{name}`" in document or f"`{name}/`" in document or f"`{name}.py`" in document, name

"""The package's layers: engine ← adapters ← analysis ← widgets; no layer imports a higher one or the package root."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "devinterp_viz"
LAYERS = ["engine", "adapters", "analysis", "widgets"]  # each may import only itself and the ones before it
LEAVES = ["_version", "plotting"]  # modules any layer may use: they import nothing of the package


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a file, lazy ones inside functions included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def layer_files(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_imports_neither_higher_layers_nor_the_package_root(layer):
    allowed = {f"devinterp_viz.{name}" for name in LAYERS[: LAYERS.index(layer) + 1] + LEAVES}
    offending = []
    for path in layer_files(layer):
        for line, module in imported_modules(path):
            if module != "devinterp_viz" and not module.startswith("devinterp_viz."):
                continue
            if not any(module == ok or module.startswith(ok + ".") for ok in allowed):
                offending.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}")
    assert not offending, "\n".join(offending)


@pytest.mark.parametrize("leaf", LEAVES)
def test_leaves_import_nothing_of_the_package(leaf):
    modules = [m for _, m in imported_modules(PACKAGE / f"{leaf}.py") if m.split(".")[0] == "devinterp_viz"]
    assert not modules, modules


def test_the_checker_sees_lazy_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    import devinterp_viz as dvz\n    from devinterp_viz.widgets import x\n")
    assert imported_modules(source) == [(2, "devinterp_viz"), (3, "devinterp_viz.widgets")]


def test_no_test_double_ships_in_the_package():
    names = [p.relative_to(PACKAGE) for p in PACKAGE.rglob("*.py") if "fake" in p.stem.lower() or "testing" in p.stem.lower()]
    assert not names, names
    for path in PACKAGE.rglob("*.py"):
        assert "class Fake" not in path.read_text(), path


def test_no_python_module_is_longer_than_a_reader_can_hold():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 600}
    assert not long, long


def module_graph() -> dict[str, set[str]]:
    """Every package module's imports of other package modules (lazy ones included)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        deps = set()
        for _, module in imported_modules(path):
            while module and module not in modules:  # "from package.module import name"
                module = module.rpartition(".")[0]
            if module and module != name:
                deps.add(module)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in graph.get(node, ()):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                found.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the finder finds one
    assert not cycles(module_graph()), cycles(module_graph())


def test_the_widget_layer_declares_sampler_settings_in_one_module_only():
    """Traits, validators and lists of sampler settings live in widgets/_settings.py (made from SamplerSettings)."""
    from devinterp_viz.engine.settings import SamplerSettings

    names = set(SamplerSettings.names())
    offending = []
    for path in layer_files("widgets"):
        if path.name == "_settings.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ClassDef):
                assigned = [t.id for stmt in node.body if isinstance(stmt, (ast.Assign, ast.AnnAssign))
                            for t in (stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target])
                            if isinstance(t, ast.Name) and t.id in names]
                offending += [f"{path.name}: class {node.name} declares trait {name}" for name in assigned]
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "validate":
                args = [a.value for a in node.args if isinstance(a, ast.Constant) and a.value in names]
                offending += [f"{path.name}:{node.lineno} validates {name}" for name in args]
            elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                listed = [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in names]
                if len(listed) >= 2:
                    offending.append(f"{path.name}:{node.lineno} lists settings {listed}")
    assert not offending, "\n".join(offending)


def test_no_js_file_is_over_450_lines():
    root = PACKAGE.parent / "js" / "src"
    long = {str(p.relative_to(root)): n for p in root.rglob("*.js") if (n := len(p.read_text().splitlines())) > 450}
    assert not long, long

"""The shape of the code: imports point one way, ``hashee`` never imports ``baselines``, small modules and functions.

Imports are read from the source with ``ast`` (nothing is imported): every ``import`` and ``from ... import``
anywhere in a module counts, at module level, inside functions and methods, and under ``try`` or ``if``,
and so does a runtime import of a literal name (``importlib.import_module("hashee.x")``, ``__import__``).
Only imports guarded by ``if TYPE_CHECKING:`` are left out (they never run); there are none today.
``from package import name`` is an import of the module ``package.name`` when that module exists, else of
``package`` itself. Package ``__init__`` modules hold no imports (checked below), so importing a module
of a package never runs code of another module.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hashee", "baselines")
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60
# The layers of the project, bottom to top: a module imports only modules of its own package or of a lower
# layer; packages on one layer never import each other. hashee's top-level modules (the package docstring,
# the ``python -m hashee.assets`` command) sit on top.
LAYERS = (
    ("hashee.core",),
    ("hashee.hashes", "hashee.tasks"),
    ("hashee.data",),
    ("hashee.seq2seq",),
    ("hashee.methods",),
    ("baselines",),
    ("hashee.runs",),
    ("hashee.experiments", "hashee.reports"),
    ("hashee.cli",),
    ("hashee",),
)


def module_files() -> dict[str, Path]:
    """``{dotted module name: path}`` of every module of the project's packages."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = module_files()


def is_type_checking_guard(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def imported_names(tree: ast.AST, module: str) -> list[str]:
    """Every module name ``module`` imports, with the ``from package import name`` rule of the module docstring."""
    names: list[str] = []
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if is_type_checking_guard(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                names.append(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and (getattr(node.func, "attr", None) == "import_module" or getattr(node.func, "id", None) in
                   ("import_module", "__import__"))):
            names.append(node.args[0].value)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def project_imports() -> dict[str, set[str]]:
    """``{module: modules of the project it imports}``."""
    graph = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[module] = {name for name in imported_names(tree, module) if name in MODULES and name != module}
    return graph


GRAPH = project_imports()


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (``[a, b, ..., a]``), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def layer_of(module: str) -> tuple[int, str]:
    """``(layer index, package)`` of a module: its longest matching package in :data:`LAYERS`."""
    best = None
    for index, packages in enumerate(LAYERS):
        for package in packages:
            if (module == package or module.startswith(package + ".")) and (best is None or len(package) > len(best[1])):
                best = (index, package)
    assert best is not None, f"{module} is in no layer of LAYERS"
    return best


def test_the_import_graph_is_read():
    assert "hashee.core.encoder" in GRAPH["hashee.seq2seq.network"]  # module level
    assert "hashee.reports.build" in GRAPH["hashee.cli.sweep"]  # inside a function
    assert "hashee.core.errors" in GRAPH["baselines.static"]
    tree = ast.parse("import importlib\nimportlib.import_module('hashee.core.cost')\n"
                     "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from hashee.core import stats\n")
    names = imported_names(tree, "hashee.core.errors")
    assert "hashee.core.cost" in names and "hashee.core.stats" not in names


def test_no_import_cycles():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_hashee_never_imports_baselines():
    wrong = sorted(f"{module} -> {target}" for module, targets in GRAPH.items() if module.split(".")[0] == "hashee"
                   for target in targets if target.split(".")[0] == "baselines")
    assert not wrong, "hashee imports baselines (wire them in with a Hydra _target_ instead): " + ", ".join(wrong)


def test_imports_point_down_the_layers():
    wrong = []
    for module, targets in GRAPH.items():
        level, package = layer_of(module)
        for target in targets:
            target_level, target_package = layer_of(target)
            if target_package != package and target_level >= level:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the layers: " + ", ".join(sorted(wrong))


def test_package_inits_hold_no_code():
    for module, path in MODULES.items():
        if path.name == "__init__.py":
            body = [node for node in ast.parse(path.read_text()).body
                    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
            assigned = [n for n in body if isinstance(n, ast.Assign)
                        and [t.id for t in n.targets if isinstance(t, ast.Name)] == ["__version__"]]
            assert body == assigned, f"{path}: a package __init__ holds only its docstring (and __version__)"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_and_functions_are_small(module):
    path = MODULES[module]
    text = path.read_text()
    lines = len(text.splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path}: {lines} lines (at most {MAX_MODULE_LINES})"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            length = node.end_lineno - first + 1
            assert length <= MAX_FUNCTION_LINES, f"{path}:{first} {node.name}: {length} lines (at most {MAX_FUNCTION_LINES})"


def test_pyproject_lists_every_package():
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {module for module, path in MODULES.items() if path.name == "__init__.py"}
    assert packages <= listed, f"packages missing from pyproject.toml: {sorted(packages - listed)}"


def test_one_layout_table_serves_both_roles():
    """Encoder-only and encoder-decoder layouts live in one table (hashee/core/layouts.py), keyed by role and
    ``config.model_type``; no other module keeps a table of its own."""
    import hashee.seq2seq.layouts  # noqa: F401 - registers the seq2seq layouts
    from hashee.core import encoder, layouts

    assert layouts.layout_for("encoder", "mpnet") is encoder.MPNetLayout
    assert layouts.layout_for("encoder", "roberta") is encoder.BertLayout  # a family without its own runs as BERT's
    assert layouts.families("seq2seq") == ["bart", "bert"] and layouts.layout_for("seq2seq", "mpnet") is None
    tables = [name for name, path in MODULES.items() if name != "hashee.core.layouts"
              and re.search(r"^LAYOUTS\b", path.read_text(), re.MULTILINE)]
    assert tables == []
    from hashee.core.errors import ConfigError

    with pytest.raises(ConfigError, match="generation needs a checkpoint of model_type bart or bert, got 'mpnet'"):
        hashee.seq2seq.layouts.seq2seq_layout("mpnet", "mpnet_base")

"""The package's import graph has no circles, the command line lists the library's own names
(issue 24).

Built with ``ast`` from the top-level imports of every module of ``src/pneumozoo`` (those under
``if``/``try`` at module level included, ``TYPE_CHECKING`` too); imports inside functions are
left out: they are the ones deferred for start-up time. A circle that comes back fails here
with the modules that form it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "pneumozoo"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _top_level_imports(node: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    todo: list[ast.stmt] = list(node.body)
    while todo:
        stmt = todo.pop()
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            found.append(stmt)
        elif isinstance(stmt, ast.If):
            todo.extend(stmt.body + stmt.orelse)
        elif isinstance(stmt, ast.Try):
            todo.extend(stmt.body + stmt.orelse + stmt.finalbody)
            for handler in stmt.handlers:
                todo.extend(handler.body)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports at top level."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for stmt in _top_level_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(stmt, ast.Import):
                targets = [alias.name for alias in stmt.names]
            else:
                if stmt.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[:len(base) - stmt.level + 1]
                    prefix = ".".join(base + ([stmt.module] if stmt.module else []))
                else:
                    prefix = stmt.module or ""
                targets = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in modules
                           else prefix for alias in stmt.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
                # Importing pneumozoo.a.b runs pneumozoo/a/__init__.py first: a circle through a
                # subpackage's __init__ is a circle too (the package root, which names the
                # whole API lazily, is left out).
                parent = target.rpartition(".")[0]
                own = name if is_package else name.rpartition(".")[0]
                if parent.count(".") >= 1 and parent in modules and not own.startswith(parent):
                    graph[name].add(parent)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read() -> None:
    graph = import_graph()
    assert "pneumozoo.run" in graph["pneumozoo.cli"] or "pneumozoo.run" in graph
    assert "pneumozoo.recipe" in graph["pneumozoo.train"]
    assert "pneumozoo.rules" in graph["pneumozoo.models.head"]


def test_no_import_circles() -> None:
    assert cycles(import_graph()) == []


def test_a_circle_would_be_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_lowest_rooms_import_nothing_of_the_package() -> None:
    graph = import_graph()
    for low in ("pneumozoo.errors", "pneumozoo._version"):
        assert graph[low] == set(), (low, graph[low])
    assert graph["pneumozoo.rules"] == set()
    assert graph["pneumozoo.recipe"] <= {"pneumozoo.errors", "pneumozoo.rules"}


def test_the_command_line_lists_the_library_s_own_names() -> None:
    """Every choice list of the CLI is a constant of the library (no copy that can drift),
    and building the parser loads no Keras."""
    import importlib
    import subprocess
    import sys

    from pneumozoo.cli import build_parser

    constants = {}
    for name in ("recipe", "guard", "adapt", "explain", "export", "rules", "augment"):
        module = importlib.import_module(f"pneumozoo.{name}")
        for attr in getattr(module, "__all__", []):
            value = getattr(module, attr)
            if isinstance(value, (tuple, list, dict, frozenset)):
                constants[id(value)] = f"pneumozoo.{name}.{attr}"
    checked = []
    sub = next(a for a in build_parser()._actions if isinstance(a.choices, dict))
    for command, parser in sub.choices.items():
        for action in parser._actions:
            if action.choices is not None and not isinstance(action.choices, dict):
                assert id(action.choices) in constants, (
                    f"pneumozoo {command} {action.option_strings}: choices {action.choices!r} are "
                    "typed in the CLI; import the library's constant")
                checked.append(constants[id(action.choices)])
    assert {"pneumozoo.recipe.STRATEGY_NAMES", "pneumozoo.export.EXPORT_FORMATS",
            "pneumozoo.adapt.ADAPT_METHODS"} <= set(checked)
    probe = ("import sys; from pneumozoo.cli import build_parser; build_parser(); "
             "sys.exit('keras' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0


def test_every_import_inside_a_function_says_why() -> None:
    """Imports sit at the top of their module unless they buy start-up time or keep a
    backend's library out of the others' processes; those say so in a ``# lazy:`` comment on
    the import or just above its block."""
    import re

    silent = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        tree = ast.parse("\n".join(lines))
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for stmt in ast.walk(func):
                if not isinstance(stmt, (ast.Import, ast.ImportFrom)):
                    continue
                above = stmt.lineno - 2
                while above >= 0 and re.match(r"\s*(import |from \S+ import )", lines[above]):
                    above -= 1
                said = "# lazy:" in lines[stmt.lineno - 1] or (
                    above >= 0 and lines[above].strip().startswith("# lazy:"))
                if not said:
                    silent.append(f"{path.relative_to(PACKAGE.parent)}:{stmt.lineno}")
    assert not silent, "imports inside functions without a '# lazy:' reason: " + ", ".join(silent)

"""Audit the docstrings of pneumozoo's public API (what the API reference renders).

Reads the source statically with griffe (the library mkdocstrings uses), so nothing is
imported and TensorFlow never loads. The public API is every top-level ``pneumozoo`` name
(``pneumozoo._EXPORTS``) and every name in the ``__all__`` of the modules documented in the
API reference (:data:`hooks.API_MODULES`, those that exist). For each function and class:

* ``missing``: no docstring;
* ``args``: takes parameters but has no ``Args:`` section (classes: no ``Args:`` or
  ``Attributes:``), or an ``Args:`` section that leaves a parameter out;
* ``returns``: returns something (annotation other than ``None``) but has no ``Returns:``
  or ``Yields:`` section;
* ``raises``: its body raises but it has no ``Raises:`` section;
* ``example``: no ``Example:``/``Examples:`` section.

Public methods of public classes are checked for ``missing`` and ``args`` only (Keras
overrides such as ``call`` and ``get_config`` are skipped).

    python docs/check_docstrings.py            # list every gap
    python docs/check_docstrings.py --strict   # exit 1 on missing/args/returns gaps
"""

from __future__ import annotations

import ast
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SRC = ROOT / "src"

#: Gaps that fail ``--strict`` and ``tests/test_docs.py``; the others are reported.
HARD = ("missing", "args", "returns")
SOFT = ("raises", "example")
_KERAS_OVERRIDES = {"call", "build", "get_config", "from_config", "compute_output_shape",
                    "update_state", "result", "reset_state", "on_epoch_end", "on_train_begin",
                    "make_predict_function", "make_test_function", "make_train_function",
                    "train_step", "test_step", "predict_step"}


@dataclass(frozen=True, order=True)
class Gap:
    """One docstring problem: where (canonical path) and which kind."""

    path: str
    kind: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.path}: {self.kind}" + (f" ({self.detail})" if self.detail else "")


def _sections(obj: Any) -> dict[str, Any]:
    from griffe import DocstringSectionKind

    text = obj.docstring.value if obj.docstring else ""
    # Like docs/griffe_ext.py: the codebase writes "Example:", griffe wants "Examples:".
    text = "\n".join("Examples:" if line.strip() == "Example:" else line
                     for line in text.splitlines())
    import griffe

    doc = griffe.Docstring(text, parent=obj)
    out: dict[str, Any] = {}
    for section in doc.parse("google", warnings=False):
        kind = section.kind
        if kind == DocstringSectionKind.admonition:
            title = (section.title or "").lower()
            out.setdefault(f"admonition:{title}", section)
        else:
            out.setdefault(kind.value, section)
    return out


def _params(func: Any) -> list[str]:
    names = []
    for p in func.parameters:
        if p.name in ("self", "cls") or p.kind.value in ("variadic positional",
                                                          "variadic keyword"):
            continue
        names.append(p.name)
    return names


def _returns_something(func: Any) -> bool:
    ret = func.returns
    if ret is None:
        return False
    text = str(ret)
    return text not in ("None", "NoReturn", "Never")


def _raises(func: Any) -> bool:
    """True if the function's own body has a ``raise X`` (bare re-raises do not count)."""
    try:
        lines = func.lines
    except Exception:
        return False
    source = "\n".join(lines)
    try:
        tree = ast.parse(_dedent(source))
    except SyntaxError:
        return False
    body = tree.body[0] if tree.body else None
    if body is None:
        return False

    def walk(node: ast.AST) -> Iterator[ast.AST]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                                  ast.ClassDef)):
                continue
            yield child
            yield from walk(child)

    return any(isinstance(n, ast.Raise) and n.exc is not None for n in walk(body))


def _dedent(source: str) -> str:
    import textwrap

    return textwrap.dedent(source)


def _check_function(func: Any, path: str, *, method: bool = False) -> list[Gap]:
    if not func.docstring or not func.docstring.value.strip():
        return [Gap(path, "missing")]
    sections = _sections(func)
    gaps = []
    params = _params(func)
    if params and "property" not in func.labels:
        documented = sections.get("parameters")
        if documented is None:
            gaps.append(Gap(path, "args", ", ".join(params)))
        else:
            names = {p.name for p in documented.value}
            left = [p for p in params if p not in names]
            if left:
                gaps.append(Gap(path, "args", "undocumented: " + ", ".join(left)))
    if method:
        return gaps
    if _returns_something(func) and "property" not in func.labels and not (
            "returns" in sections or "yields" in sections):
        gaps.append(Gap(path, "returns", str(func.returns)))
    if _raises(func) and "raises" not in sections:
        gaps.append(Gap(path, "raises"))
    if "examples" not in sections:
        gaps.append(Gap(path, "example"))
    return gaps


def _is_exception(cls: Any) -> bool:
    try:
        return any(str(b).endswith(("Error", "Exception")) for b in cls.bases) or any(
            _is_exception(b) for b in cls.resolved_bases)
    except Exception:
        return False


def _check_class(cls: Any, path: str) -> list[Gap]:
    if not cls.docstring or not cls.docstring.value.strip():
        return [Gap(path, "missing")]
    sections = _sections(cls)
    gaps = []
    init = cls.members.get("__init__")
    params: list[str] = []
    if init is not None and not init.is_alias and init.is_function:
        params = _params(init)
    elif "dataclass" in cls.labels:
        params = [n for n, m in cls.members.items() if m.is_attribute and not n.startswith("_")
                  and "instance-attribute" in m.labels]
    if params and "parameters" not in sections and "attributes" not in sections:
        gaps.append(Gap(path, "args", ", ".join(params)))
    if not _is_exception(cls) and "examples" not in sections:
        gaps.append(Gap(path, "example"))
    for name, member in cls.members.items():
        if name.startswith("_") or member.is_alias or name in _KERAS_OVERRIDES:
            continue
        if member.is_function:
            gaps += _check_function(member, f"{path}.{name}", method=True)
    return gaps


def public_objects() -> dict[str, Any]:
    """Canonical path -> griffe object of every public function and class."""
    import griffe

    sys.path.insert(0, str(HERE))
    import hooks  # docs/hooks.py: the list of documented modules

    logging.getLogger("griffe").setLevel(logging.ERROR)
    pkg = griffe.load("pneumozoo", search_paths=[str(SRC)], docstring_parser="google")
    found: dict[str, Any] = {}

    def add(obj: Any) -> None:
        try:
            target = obj.final_target if obj.is_alias else obj
        except Exception:  # an alias to something that does not exist (yet)
            return
        if target.is_function or target.is_class:
            found.setdefault(target.path, target)

    exports = _top_level_exports()
    for name, module in exports.items():
        if name == "augment" or not hooks.module_exists(module):
            continue
        mod = pkg.get_member(module.removeprefix("pneumozoo.")) if module != "pneumozoo" else pkg
        if name in mod.members:
            add(mod.members[name])
    for module, _ in hooks.api_modules():
        mod = pkg.get_member(module.removeprefix("pneumozoo.")) if module != "pneumozoo" else pkg
        names = [str(n) for n in (mod.exports or [])]
        if not names:
            names = [n for n, m in mod.members.items() if not n.startswith("_") and not m.is_alias]
        for name in names:
            if name in mod.members:
                add(mod.members[name])
    return found


def _top_level_exports() -> dict[str, str]:
    """``pneumozoo._EXPORTS``, read from the source (no import)."""
    tree = ast.parse((SRC / "pneumozoo" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "_EXPORTS" and node.value is not None:
            return dict(ast.literal_eval(node.value))
    return {}


def audit() -> list[Gap]:
    """Every docstring gap of the public API, sorted."""
    gaps: list[Gap] = []
    for path, obj in sorted(public_objects().items()):
        gaps += _check_class(obj, path) if obj.is_class else _check_function(obj, path)
    return sorted(set(gaps))


def main(argv: list[str]) -> int:
    gaps = audit()
    for kind in (*HARD, *SOFT):
        of_kind = [g for g in gaps if g.kind == kind]
        print(f"== {kind}: {len(of_kind)}")
        for g in of_kind:
            print(f"  {g}")
    hard = [g for g in gaps if g.kind in HARD]
    return 1 if "--strict" in argv and hard else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

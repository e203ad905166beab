"""Griffe extension used by the docs build (see ``mkdocs.yml``).

Two conventions of pneumozoo's source that griffe does not read by itself:

* docstrings write Google-style ``Example:`` (singular) sections. Griffe reads only
  ``Examples:`` as an examples section (rendered as code); a singular ``Example:`` becomes an
  admonition whose ``>>>`` lines would be parsed as Markdown (block quotes, and ``[...]``
  doctest outputs taken for cross-references). The heading is renamed before parsing.
* cross-references are written with Sphinx roles (``:func:`pneumozoo.read_xray```,
  ``:class:`~pneumozoo.errors.DataError```), which Markdown would show verbatim. They become
  code spans (``~`` keeps the last component only, as in Sphinx).
* module constants are documented by a ``#:`` comment above them (the Sphinx convention),
  e.g. ``#: Largest image accepted, in pixels.`` These comments become their docstrings.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
_DOC_COMMENT = re.compile(r"^\s*#:\s?(.*)$")
_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|exc|obj|const|ref):`(~?)([^`]+)`")


def _role(m: re.Match[str]) -> str:
    target = m.group(2).strip()
    if "<" in target and target.endswith(">"):  # :func:`title <target>`
        target = target[: target.index("<")].strip()
    return f"`{target.rsplit('.', 1)[-1] if m.group(1) else target}`"


class ExampleSections(griffe.Extension):
    """Treat ``Example:`` as ``Examples:``; turn ``#:`` comments into attribute docstrings."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        docstring = getattr(obj, "docstring", None)
        if docstring is None:
            return
        value = _ROLE.sub(_role, docstring.value)
        docstring.value = _EXAMPLE.sub(r"\1Examples:", value) if "Example:" in value else value

    def on_attribute_instance(self, *, attr: Any, **kwargs: Any) -> None:
        if attr.docstring is not None or not attr.lineno:
            return
        try:
            lines = attr.parent.module.lines if attr.parent is not None else []
        except Exception:
            return
        comment: list[str] = []
        i = attr.lineno - 2  # the line above the assignment (lineno is 1-based)
        while 0 <= i < len(lines):
            m = _DOC_COMMENT.match(lines[i])
            if not m:
                break
            comment.insert(0, m.group(1))
            i -= 1
        if comment:
            attr.docstring = griffe.Docstring(_ROLE.sub(_role, "\n".join(comment)), lineno=i + 2,
                                              endlineno=attr.lineno - 1, parent=attr)

"""Griffe extension used by the docs build (see ``mkdocs.yml``).

pneumozoo's docstrings write Google-style ``Example:`` (singular) sections. Griffe reads only
``Examples:`` as an examples section (rendered as code); a singular ``Example:`` becomes an
admonition whose ``>>>`` lines would be parsed as Markdown (block quotes, and ``[...]`` doctest
outputs taken for cross-references). This extension renames the heading before parsing.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Treat ``Example:`` as ``Examples:`` in every docstring."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        docstring = getattr(obj, "docstring", None)
        if docstring is not None and "Example:" in docstring.value:
            docstring.value = _EXAMPLE.sub(r"\1Examples:", docstring.value)

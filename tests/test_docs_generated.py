"""The generated sections of the docs are checked in, and up to date.

``docs/hooks.py`` writes every ``<!-- gen:NAME -->`` section (tables, the command line
reference, the common mistakes...) into the Markdown source, between ``<!-- gen:NAME -->`` and
``<!-- /gen:NAME -->``, so the sources read like the site. This test regenerates them and fails
when the checked-in text differs from what the code generates now.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS))
import hooks  # noqa: E402


def test_generated_sections_are_up_to_date() -> None:
    stale = hooks.stale_pages(write=False)
    assert not stale, (f"generated docs sections are stale in {', '.join(stale)}; "
                       f"run `{hooks.WRITE_COMMAND}` and commit the result")


def test_every_section_is_checked_in_unless_build_only() -> None:
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for m in re.finditer(r"^<!-- gen:([a-z-]+)(?: [^>]*?)? -->$", text, re.MULTILINE):
            name = m.group(1)
            if name in hooks.BUILD_ONLY:
                continue
            assert f"<!-- /gen:{name} -->" in text[m.end():], (
                f"{page.relative_to(ROOT)}: section {name!r} is not checked in; "
                f"run `{hooks.WRITE_COMMAND}`")


def test_render_and_write_agree() -> None:
    page = "<!-- gen:architectures -->\n\nold text\n\n<!-- /gen:architectures -->\n"
    fresh = hooks.architectures_table()
    assert hooks.render_markers(page, "x.md") == fresh + "\n"
    written = hooks.written_markers(page, "x.md")
    assert written == f"<!-- gen:architectures -->\n\n{fresh}\n\n<!-- /gen:architectures -->\n"
    assert hooks.written_markers(written, "x.md") == written  # idempotent
    lone = "<!-- gen:architectures -->\n"
    assert hooks.written_markers(lone, "x.md") == written
    assert hooks.written_markers("<!-- gen:changelog -->\n", "x.md") == "<!-- gen:changelog -->\n"

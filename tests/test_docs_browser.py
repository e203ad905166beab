"""The docs read in full in a real browser (issue 23): at 1280 and 1920 px no code block is
cut off, no table hides columns behind a scrollbar, no model name is broken over lines; and
the built site does not ship the docs build scripts.

The slow test builds the site with mkdocs and renders the pages in headless Chromium
(``docs/check_browser.py``, DevTools protocol over a pipe); it skips where no Chromium is
installed (``apt-get install chromium``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS))
import check_browser  # noqa: E402


def _config() -> dict:
    return dict(yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=yaml.BaseLoader))


def test_the_build_scripts_are_excluded_and_the_stylesheet_is_used() -> None:
    import pathspec  # a dependency of mkdocs

    config = _config()
    spec = pathspec.GitIgnoreSpec.from_lines(config.get("exclude_docs", "").splitlines())
    scripts = [p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.py")]
    assert scripts and all(spec.match_file(s) for s in scripts), config.get("exclude_docs")
    for css in config.get("extra_css", []):
        assert (DOCS / css).is_file(), css
    assert "stylesheets/extra.css" in config.get("extra_css", [])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "-q", "-d", str(out)],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.slow
def test_the_built_site_ships_no_build_scripts(site: Path) -> None:
    assert not sorted(p.name for p in site.rglob("*.py"))


@pytest.mark.slow
def test_pages_read_in_full_in_a_browser_at_1280_and_1920_px(site: Path) -> None:
    if check_browser.find_browser() is None:
        pytest.skip("no Chromium installed (apt-get install chromium)")
    problems = check_browser.check_site(site, widths=(1280, 1920))
    assert not problems, "cut off in the browser:\n" + "\n".join(problems)


@pytest.mark.slow
def test_the_check_sees_what_the_issue_saw(site: Path, tmp_path: Path) -> None:
    """Without the stylesheet, the checker finds the cut-off messages and hidden columns."""
    if check_browser.find_browser() is None:
        pytest.skip("no Chromium installed (apt-get install chromium)")
    import shutil

    bare = tmp_path / "site"
    shutil.copytree(site, bare)
    (bare / "stylesheets" / "extra.css").write_text("/* removed */\n", encoding="utf-8")
    problems = check_browser.check_site(bare, ["guide/mistakes/index.html", "zoo/index.html"])
    assert any("code block cut off" in p and "mistakes" in p for p in problems)
    assert any("table cut off" in p and "zoo" in p for p in problems)

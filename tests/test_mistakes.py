"""Every common mistake of ``docs/mistakes.py`` gets pneumozoo's own one-line error.

The same cases feed ``docs/guide/mistakes.md`` (``<!-- gen:mistakes -->``): a Python mistake
raises a :class:`~pneumozoo.errors.PneumozooError` subclass (or, for one bad film among
others, gives that film's prediction an ``error``); a command exits with the documented
status and prints exactly one line on stderr. Every message is one non-empty line.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("pneumozoo_docs_mistakes", ROOT / "docs" / "mistakes.py")
assert _spec is not None and _spec.loader is not None
mistakes = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = mistakes
_spec.loader.exec_module(mistakes)


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Any]:
    return {case.title: outcome for case, outcome in mistakes.run_all()}


def test_cases_are_well_formed() -> None:
    titles = [c.title for c in mistakes.CASES]
    assert len(titles) == len(set(titles)) >= 13
    for case in mistakes.CASES:
        assert case.expect in mistakes.EXPECTATIONS, case.title
        assert case.is_cli == (case.run is None), case.title
        assert case.fix.strip(), case.title


@pytest.mark.parametrize("case", mistakes.CASES, ids=lambda c: c.title)
def test_mistake_gets_pneumozoos_own_error(case: Any, outcomes: dict[str, Any]) -> None:
    from pneumozoo.errors import PneumozooError

    outcome = outcomes[case.title]
    assert outcome.kind == case.expect, (case.title, outcome)
    message = outcome.message
    assert message.strip() and "\n" not in message, (case.title, message)
    if case.expect == "error":
        assert outcome.error_type is not None and issubclass(outcome.error_type, PneumozooError)
        assert "Traceback" not in message
    elif case.is_cli:
        lines = outcome.stderr.splitlines()
        assert len(lines) == 1, (case.title, lines)
        assert lines[0].startswith("pneumozoo: error: "), lines[0]
        assert outcome.exit_code == int(case.expect.split()[1])
    elif case.expect == "works":
        assert message == "True", (case.title, message)


def test_a_command_case_as_a_real_process(tmp_path: Path) -> None:
    """The in-process CLI runs above stand for the real command: one of them, for real."""
    case = next(c for c in mistakes.CASES if c.argv == ("predict", "/missing/path"))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-m", "pneumozoo", *case.argv], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == int(case.expect.split()[1])
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("pneumozoo: error: ")


def test_the_page_shows_the_cases() -> None:
    page = (ROOT / "docs" / "guide" / "mistakes.md").read_text(encoding="utf-8")
    assert "<!-- gen:mistakes -->" in page and "<!-- /gen:mistakes -->" in page
    for case in mistakes.CASES:
        assert f"### {case.title}" in page, case.title

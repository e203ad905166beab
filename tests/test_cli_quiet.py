"""A quiet, fast command line: no TensorFlow for commands that need no model, no TensorFlow
start-up noise, plain help text with defaults, and the exit statuses the docs promise."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pneumozoo.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "kermany"


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a child ``pneumozoo``, without any TensorFlow log setting of ours."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}
    env.update(HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", **extra)
    return env


def pneumozoo(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pneumozoo", *args], capture_output=True,
                          text=True, env=cli_env(**env), timeout=600, cwd=ROOT)


def test_commands_without_a_model_import_no_tensorflow() -> None:
    code = r"""
import runpy, sys
commands = [["--help"], ["--version"], ["models"], ["models", "--json"], ["data", "--help"],
            ["data", "download", "--help"], ["predict", "--batch-size", "0", "x.png"]]
for argv in commands:
    sys.argv = ["pneumozoo", *argv]
    try:
        runpy.run_module("pneumozoo", run_name="__main__", alter_sys=True)
    except SystemExit as e:
        assert e.code in (0, 2, None), (argv, e.code)
    heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
    assert not heavy, (argv, heavy)
print("TF-FREE", file=sys.stderr)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=cli_env(), timeout=300, cwd=ROOT)
    assert proc.returncode == 0 and "TF-FREE" in proc.stderr, proc.stderr[-3000:]


def help_texts() -> dict[str, str]:
    parser = build_parser()
    texts = {"pneumozoo": parser.format_help()}
    for action in parser._actions:
        if hasattr(action, "choices") and isinstance(action.choices, dict):
            for name, sub in action.choices.items():
                texts[name] = sub.format_help()
                for sub_action in sub._actions:
                    if hasattr(sub_action, "choices") and isinstance(sub_action.choices, dict):
                        for inner, leaf in sub_action.choices.items():
                            texts[f"{name} {inner}"] = leaf.format_help()
    return texts


def test_help_is_plain_words_and_shows_defaults() -> None:
    texts = help_texts()
    assert {"predict", "evaluate", "train", "models", "explain", "hub push", "data download"} <= set(texts)
    for name, text in texts.items():
        assert "``" not in text and "`" not in text, (name, text)
        assert ":func:" not in text and ":class:" not in text, name
        assert "%(default)" not in text, name
    assert "exit status" in texts["pneumozoo"]
    assert "(default: 32)" in texts["predict"] and "(default: 1000)" in texts["evaluate"]
    for flag, default in (("--epochs", "30"), ("--val-fraction", "0.15"), ("--arch", "xraynet"),
                          ("--seed", "0")):
        options = texts["train"].split("options:", 1)[1]
        block = options.split(f"\n  {flag}", 1)[1].split("\n  --", 1)[0]
        assert f"(default: {default})" in " ".join(block.split()), (flag, block)
    assert "(default: None)" not in "".join(texts.values())
    assert "(default: False)" not in "".join(texts.values())


def test_verbose_leaves_tensorflow_logging_alone(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    meta_path = list(sys.meta_path)
    assert main(["--verbose", "models", "--json"]) == 0
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    assert main(["models", "--verbose", "--json"]) == 0  # after the command too
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    assert main(["models", "--json"]) == 0
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
    assert sys.meta_path == meta_path  # no import hook, ever (issue 21)
    capsys.readouterr()


# A child that imports the CLI with nothing preloaded: no site module (``-S``), so no .pth
# file or other package has imported ``importlib.util`` before pneumozoo runs, as in a fresh
# virtual environment. The old import hook recursed forever there (RecursionError).
_BARE_CHILD = r"""
import sys
sys.path[:0] = PATHS
assert "importlib.util" not in sys.modules, "the child is not bare"
from pneumozoo.cli import main
status = main(ARGV)
print("STATUS", status)
"""


def _bare_child(argv: list[str]) -> subprocess.CompletedProcess[str]:
    import site

    import pneumozoo

    src = str(Path(pneumozoo.__file__).resolve().parent.parent)
    paths = [src, *site.getsitepackages()]
    code = _BARE_CHILD.replace("PATHS", repr(paths)).replace("ARGV", repr(argv))
    return subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          env=cli_env(), timeout=600, cwd=ROOT)


def test_cli_runs_in_a_bare_interpreter() -> None:
    """Regression (issue 21): ``pneumozoo predict`` in an interpreter that has not loaded
    ``importlib.util``; fails with RecursionError on the old TensorFlow import hook."""
    proc = _bare_child(["predict", str(ROOT / "examples" / "xrays")])
    assert "RecursionError" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "STATUS 0" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-3000:]
    films = sorted(p.name for p in (ROOT / "examples" / "xrays").iterdir() if p.suffix == ".jpeg")
    assert films and all(name in proc.stdout for name in films), proc.stdout


def test_a_fatal_error_is_one_line_and_status_2(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 23: an error that is not the user's (here a crashing loader) prints one line and
    exits 2, no table header and no traceback."""
    import pneumozoo.cli as cli

    def boom(*args: object, **kwargs: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(cli, "load_pretrained", boom)
    status = main(["predict", str(ROOT / "examples" / "xrays")])
    out, err = capsys.readouterr()
    assert status == 2, (out, err)
    assert out == "", out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pneumozoo: error: fatal: RecursionError"), err


def exit_status_table() -> dict[int, str]:
    """``status -> meaning`` from the command-line guide's table (the docs' promise)."""
    text = (ROOT / "docs" / "guide" / "cli.md").read_text(encoding="utf-8")
    section = text.split("## Exit status", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\|\s*`(\d+)`\s*\|\s*(.+?)\s*\|\s*$", section, flags=re.M)
    return {int(code): meaning for code, meaning in rows}


def test_exit_statuses_are_the_documented_ones(tmp_path: Path) -> None:
    table = exit_status_table()
    assert set(table) == {0, 1, 2}, table
    assert "succeeded" in table[0] and "could not be read" in table[1] and "usage" in table[2]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert all(f"`{code}`" in readme.split("Exit status", 1)[1][:400] for code in table)

    # 0: everything succeeded
    proc = pneumozoo("models")
    assert proc.returncode == 0 and "xraynet-binary-v2" in proc.stdout, proc.stderr
    # 2: usage and fatal errors, one line on stderr, before any model loads
    for args in (["predict", "/missing/path"], ["predict", "--batch-size", "0", "x.png"],
                 ["train", str(tmp_path), "--epochs", "0", "--out", str(tmp_path / "o")],
                 ["no-such-command"]):
        proc = pneumozoo(*args)
        lines = proc.stderr.splitlines()
        assert proc.returncode == 2 and proc.stdout == "", (args, proc.stderr)
        assert len(lines) == 1 and lines[0].startswith("pneumozoo: error: "), (args, lines)
    # 1: some inputs could not be read; the others are predicted. With an ASCII-only stdout
    # and a non-ASCII file name; TensorFlow loads without a word on stderr.
    good = tmp_path / "r\u00f6ntgen.jpeg"
    shutil.copy(sorted((FIXTURES / "test" / "NORMAL").iterdir())[0], good)
    bad = tmp_path / "broken.jpeg"
    bad.write_bytes(b"\xff\xd8\xff not really")
    proc = pneumozoo("predict", str(good), str(bad), PYTHONIOENCODING="ascii")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    # The film may be one the domain guard flags (about 7% of Kermany test films are):
    # then its one-line warning is the only other line.
    assert lines[-1] == "pneumozoo: 1 of 2 input(s) could not be read", proc.stderr[-3000:]
    assert all(line.startswith("pneumozoo: warning: 1 of 2 film(s) are unlike") for line in lines[:-1])
    assert len(lines) <= 2, proc.stderr[-3000:]
    rows = proc.stdout.splitlines()
    assert len(rows) == 3 and "r\\xf6ntgen.jpeg" in proc.stdout
    assert any("ERROR" in row and "broken.jpeg" in row for row in rows)

"""Command-line arguments are range-checked when parsed (exit status 2, one line), ``train``
locks its output folder, and outputs are strict: JSON without NaN, ASCII-safe, atomic files.

All in-process and fast: no model is loaded here."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pneumozoo.cli import _dumps, _shorten, build_parser, main
from pneumozoo.errors import PneumozooError
from pneumozoo.run import LOCK_FILE
from pneumozoo.run import output_lock as _output_lock

TinyDataset = Callable[..., Path]
TINY = "tiny.png"  # never read: every case below fails while parsing


def usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``argv``; it must exit 2 with exactly one line on stderr and nothing on stdout."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert out == "" and len(lines) == 1, err
    assert lines[0].startswith("pneumozoo: error: ") and "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(("argv", "words"), [
    (["predict", "--batch-size", "-1", TINY], ("--batch-size", "at least 1", "-1")),
    (["predict", "--batch-size", "0", TINY], ("--batch-size", "at least 1")),
    (["predict", "--batch-size", "two", TINY], ("--batch-size", "whole number")),
    (["predict", "--threshold", "1.5", TINY], ("--threshold", "[0, 1]")),
    (["predict", "--threshold", "-0.1", TINY], ("--threshold", "[0, 1]")),
    (["predict", "--threshold", "nan", TINY], ("--threshold", "finite")),
    (["predict", "--threshold", "inf", TINY], ("--threshold", "finite")),
    (["predict", "--threshold=-inf", TINY], ("--threshold", "finite")),
    (["evaluate", "data", "--batch-size", "0"], ("--batch-size",)),
    (["evaluate", "data", "--n-boot", "0"], ("--n-boot", "at least 1")),
    (["evaluate", "data", "--threshold", "2"], ("--threshold",)),
    (["train", "data", "--out", "o", "--batch-size", "0"], ("--batch-size",)),
    (["train", "data", "--out", "o", "--epochs", "0"], ("--epochs", "at least 1")),
    (["train", "data", "--out", "o", "--val-fraction", "1.5"], ("--val-fraction", "(0, 1)")),
    (["train", "data", "--out", "o", "--val-fraction", "0"], ("--val-fraction",)),
    (["train", "data", "--out", "o", "--learning-rate", "0"], ("--learning-rate",)),
    (["train", "data", "--out", "o", "--learning-rate", "nan"], ("--learning-rate", "finite")),
    (["train", "data", "--out", "o", "--label-smoothing", "1"], ("--label-smoothing",)),
    (["train", "data", "--out", "o", "--seed", "-3"], ("--seed",)),
    (["train", "data", "--out", "o", "--input-size", "0"], ("--input-size",)),
    (["explain", TINY, "--alpha", "1.2"], ("--alpha",)),
    (["export", "m", "--format", "tflite", "--out", "x", "--calibration-images", "0"],
     ("--calibration-images",)),
    (["predict"], ("paths", "pneumozoo predict --help")),
    (["no-such-command"], ("no-such-command",)),
])
def test_bad_values_are_refused_when_parsed(argv: list[str], words: tuple[str, ...],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    line = usage_error(argv, capsys)
    for word in words:
        assert word in line, (word, line)


def test_good_edge_values_are_accepted() -> None:
    parser = build_parser()
    args = parser.parse_args(["predict", "--threshold", "0", "--batch-size", "1", TINY])
    assert args.threshold == 0.0 and args.batch_size == 1
    assert parser.parse_args(["predict", "--threshold", "1", TINY]).threshold == 1.0
    args = parser.parse_args(["train", "d", "--out", "o", "--epochs", "1",
                              "--val-fraction", "0.5", "--label-smoothing", "0"])
    assert (args.epochs, args.val_fraction, args.label_smoothing) == (1, 0.5, 0.0)


def test_train_out_must_be_a_folder_that_can_be_made(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    line = usage_error(["train", "data", "--out", str(a_file)], capsys)
    assert "is a file, not a folder" in line
    line = usage_error(["train", "data", "--out", str(a_file / "run")], capsys)
    assert "cannot be created" in line and str(a_file) in line


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_train_out_in_a_read_only_folder_is_refused(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        line = usage_error(["train", "data", "--out", str(locked / "run")], capsys)
        assert "read-only" in line
        line = usage_error(["train", "data", "--out", str(locked)], capsys)
        assert "read-only" in line
    finally:
        locked.chmod(0o755)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_output_lock_is_taken_released_and_taken_over_when_stale(tmp_path: Path) -> None:
    out = tmp_path / "run"
    lock = out / LOCK_FILE
    with _output_lock(out):
        assert out.is_dir()
        assert lock.read_text().split()[0] == str(os.getpid())
    assert not lock.exists()

    lock.write_text(f"{_dead_pid()}\n{socket.gethostname()}\n")
    with _output_lock(out):  # a stale lock of a dead process is taken over
        assert lock.read_text().split()[0] == str(os.getpid())
    assert not lock.exists()

    lock.write_text("garbage")  # half-written by a crashed run: stale too
    with _output_lock(out):
        pass

    with pytest.raises(RuntimeError), _output_lock(out):  # released on errors as well
        raise RuntimeError("boom")
    assert not lock.exists()


def test_a_second_writer_is_refused(tmp_path: Path, tiny_dataset: TinyDataset,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    (out / "checkpoint").mkdir(parents=True)
    lock = out / "checkpoint" / LOCK_FILE  # a run holds its checkpoint folder
    lock.write_text(f"{os.getppid()}\n{socket.gethostname()}\n")  # a live process holds it
    with pytest.raises(PneumozooError, match="another 'pneumozoo train'"), _output_lock(lock.parent):
        pass
    assert lock.exists()  # someone else's lock is left alone

    root = tiny_dataset(4, 4)
    code = main(["train", str(root), "--arch", "cnn4", "--input-size", "32", "--epochs", "1",
                 "--out", str(out)])
    _, err = capsys.readouterr()
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "another 'pneumozoo train'" in lines[0], err
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint"]  # nothing was trained
    assert sorted(p.name for p in lock.parent.iterdir()) == [LOCK_FILE]


def test_json_is_strict_and_ascii() -> None:
    value = {"auc": float("nan"), "x": [1.0, float("inf"), -float("inf")], "n": np.float32(0.5),
             "nan32": np.float64("nan"), "path": "dir/new\nline \u00e9.png", "ok": True}
    text = _dumps(value)
    assert text.isascii() and "NaN" not in text and "Infinity" not in text
    back = json.loads(text)
    assert back == {"auc": None, "x": [1.0, None, None], "n": 0.5, "nan32": None,
                    "path": "dir/new\nline \u00e9.png", "ok": True}
    assert "\n" not in text


def test_long_paths_are_shortened_from_the_left() -> None:
    assert _shorten("a.png") == "a.png" + " " * 55
    long = "/data/" + "x" * 80 + "/film.jpeg"
    shown = _shorten(long)
    assert len(shown) == 60 and shown.startswith("...") and shown.endswith("/film.jpeg")


def test_figures_and_pngs_are_written_atomically(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from pneumozoo.explain import _save_png

    target = tmp_path / "sub" / "cam.png"
    assert _save_png(np.full((8, 8, 3), 100, np.uint8), target) == target
    assert Image.open(target).size == (8, 8)
    assert [p.name for p in target.parent.iterdir()] == ["cam.png"]
    before = target.read_bytes()

    def broken_save(self: object, fp: object, *args: object, **kwargs: object) -> None:
        fp.write(b"half a PNG")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(PneumozooError, match="disk full"):
        _save_png(np.zeros((8, 8, 3), np.uint8), target)
    assert target.read_bytes() == before  # the old file is intact
    assert [p.name for p in target.parent.iterdir()] == ["cam.png"]  # no temporary left


def test_plot_figures_are_written_beside_where_asked(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    from pneumozoo.plot import plot_history

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    out = tmp_path / "figs" / "curves.svg"
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, math.nan]}
    assert plot_history(history, out) == out
    assert out.read_bytes().lstrip().startswith(b"<?xml")  # the format follows the suffix
    assert [p.name for p in out.parent.iterdir()] == ["curves.svg"]
    assert list(work.iterdir()) == []
    with pytest.raises(PneumozooError, match="cannot write figure"):
        plot_history(history, tmp_path / "figs" / "curves.nosuchformat")
    assert [p.name for p in out.parent.iterdir()] == ["curves.svg"]

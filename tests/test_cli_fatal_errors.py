"""A fatal error in ``pneumozoo predict`` (e.g. the backend crashing on the first batch) prints
no table header: stdout stays empty and the error is one line on stderr, exit status 2, as the
docs' table of exit statuses says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import pneumozoo

FILM = Path(__file__).resolve().parents[1] / "examples" / "xrays" / "normal-IM-0133-0001.jpeg"


@pytest.fixture()
def crashing(monkeypatch: pytest.MonkeyPatch) -> Any:
    model = pneumozoo.build_model("cnn4", input_size=48)

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("backend crashed: could not create a primitive")

    monkeypatch.setattr(type(model), "scores", crash)
    monkeypatch.setattr("pneumozoo.cli._load", lambda args: model)
    return model


def test_a_working_run_still_prints_the_header_first(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from pneumozoo.cli import main

    model = pneumozoo.build_model("cnn4", input_size=48)
    monkeypatch.setattr("pneumozoo.cli._load", lambda args: model)
    assert main(["predict", str(FILM)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("path") and "P(pneumonia)" in lines[0] and len(lines) == 2


def test_a_fatal_error_prints_no_header_one_line_and_exits_2(crashing: Any,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from pneumozoo.cli import main

    assert main(["predict", str(FILM)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no table header before the model ran
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pneumozoo: error:") and "backend crashed" in err[0]

"""``adapt_unlabelled`` / ``pneumozoo adapt --unlabelled`` never silently writes a model that is
built on an estimate EM could not make: non-convergence, an estimate at 0 or 1, posteriors too
uninformative to separate the site's films, films out of the model's domain, or a threshold
that labels every film alike. Each is an error (nothing written) unless forced, and a loud
warning when forced.

The checks are exercised on synthetic posteriors (``predict`` replaced), then on the real
default model with the Kermany fixture films (in its domain: no false alarm) and the same
films inverted (out of its domain: refused).
"""

from __future__ import annotations

import glob
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pneumozoo
from pneumozoo.adapt import adapt_unlabelled, estimate_prevalence, expected_auc
from pneumozoo.errors import PneumozooError
from pneumozoo.prediction import Prediction

FIXTURES = Path(__file__).parent / "fixtures" / "kermany"


@pytest.fixture(scope="module")
def model() -> Any:
    m = pneumozoo.build_model("cnn4", input_size=48)
    m.head.prior = 0.25
    m.threshold = 0.5
    return m


def _fake_predict(monkeypatch: pytest.MonkeyPatch, scores: np.ndarray,
                  in_domain: np.ndarray | None = None) -> None:
    """``pneumozoo.predict`` returning these P(pneumonia) (and guard verdicts)."""
    flags = np.ones(len(scores), bool) if in_domain is None else in_domain

    def fake(model: Any, films: Any, **_: Any) -> list[Prediction]:
        return [Prediction(source=f"film{i}", label="pneumonia" if p >= 0.5 else "normal",
                           probability=float(p), threshold=0.5, in_domain=bool(ok),
                           domain_score=0.5 if ok else 2.0)
                for i, (p, ok) in enumerate(zip(scores, flags, strict=True))]

    monkeypatch.setattr("pneumozoo.prediction.predict", fake)


def _informative(prevalence: float, n: int = 400, seed: int = 0) -> np.ndarray:
    """Posteriors calibrated at prior 0.25 of films with the given pneumonia prevalence."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < prevalence
    x = np.where(y, rng.normal(1.5, 1.0, n), rng.normal(-1.5, 1.0, n))
    logit = 3.0 * x + np.log(0.25 / 0.75)  # the likelihood ratio, at the 0.25 prior
    return np.asarray(1.0 / (1.0 + np.exp(-logit)))


def test_the_issue_case_is_refused_and_nothing_written(model: Any, monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    # What the issue saw: calibrated P spanning only 0.45-0.56 on 80 films, prior 0.25.
    scores = np.random.default_rng(0).uniform(0.45, 0.56, 80)
    est = estimate_prevalence(scores, 0.25, n_boot=0)
    assert not est["converged"] and est["iterations"] == 1000 and est["prevalence"] > 0.99
    _fake_predict(monkeypatch, scores)
    out = tmp_path / "prev"
    with pytest.raises(PneumozooError) as e:
        adapt_unlabelled(model, "films/", out=out, n_boot=20)
    msg = str(e.value)
    for words in ("did not converge", "at the boundary", "barely differ", "every film pneumonia",
                  "force=True"):
        assert words in msg, words
    assert not out.exists()


def test_forcing_writes_it_with_loud_warnings_and_the_problems_in_the_card(
        model: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_predict(monkeypatch, np.random.default_rng(0).uniform(0.45, 0.56, 80))
    out = tmp_path / "forced"
    with pytest.warns(UserWarning, match="did not converge"):
        result = adapt_unlabelled(model, "films/", out=out, n_boot=20, force=True)
    assert len(result["problems"]) >= 4 and result["pneumonia_fraction"] == 1.0
    config = pneumozoo.pretrained.PretrainedConfig.read(out)
    assert config.metrics["site_prevalence"]["problems"] == result["problems"]


def test_without_out_it_warns_and_still_reports(model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_predict(monkeypatch, np.full(50, 0.2))  # every film the same: nothing to estimate from
    with pytest.warns(UserWarning, match="barely differ"):
        result = adapt_unlabelled(model, "films/", n_boot=10)
    assert result["expected_auc"] == pytest.approx(0.5)


def test_films_out_of_the_domain_stop_it(model: Any, monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    scores = _informative(0.4)
    flags = np.arange(len(scores)) % 10 == 0  # the guard flags 90%
    _fake_predict(monkeypatch, scores, flags)
    with pytest.raises(PneumozooError, match="domain guard flags 90% of the films"):
        adapt_unlabelled(model, "films/", out=tmp_path / "ood", n_boot=20)
    assert not (tmp_path / "ood").exists()


@pytest.mark.parametrize("prevalence", [0.1, 0.4, 0.7])
def test_an_estimate_that_passes_every_check_is_written_silently(
        model: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, prevalence: float) -> None:
    _fake_predict(monkeypatch, _informative(prevalence))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        result = adapt_unlabelled(model, "films/", out=tmp_path / "ok", n_boot=50)
    assert result["problems"] == [] and result["converged"]
    assert abs(result["prevalence"] - prevalence) < 0.08
    assert 0.0 < result["pneumonia_fraction"] < 1.0
    assert pneumozoo.load_pretrained(tmp_path / "ok").threshold == pytest.approx(result["threshold"])


def test_expected_auc() -> None:
    assert expected_auc(np.full(10, 0.3)) == pytest.approx(0.5)
    assert expected_auc(np.array([0.0, 0.0, 1.0, 1.0])) == pytest.approx(1.0)
    assert expected_auc(_informative(0.3)) > 0.9
    assert np.isnan(expected_auc(np.zeros(5)))


def test_cli_refuses_with_one_line_and_force_writes(model: Any, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from pneumozoo.cli import main

    monkeypatch.setattr("pneumozoo.cli._load", lambda args: model)
    _fake_predict(monkeypatch, np.random.default_rng(0).uniform(0.45, 0.56, 80))
    films = tmp_path / "films"
    films.mkdir()
    out = tmp_path / "cli-out"
    assert main(["adapt", str(films), "--unlabelled", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no model written" in err and "--force" in err and not out.exists()
    assert main(["adapt", str(films), "--unlabelled", "--out", str(out), "--force"]) == 0
    captured = capsys.readouterr()
    assert "warning: EM did not converge" in captured.err and (out / "pneumozoo.json").exists()


def _fixture_films() -> list[str]:
    return sorted(glob.glob(str(FIXTURES / "*" / "*" / "*.jpeg")))


@pytest.fixture(scope="module")
def default_model() -> Any:
    return pneumozoo.load_pretrained()


def test_real_default_model_in_domain_films_pass(default_model: Any, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        result = adapt_unlabelled(default_model, _fixture_films(), out=tmp_path / "k", n_boot=50)
    assert result["problems"] == [] and result["expected_auc"] > 0.9


def test_real_default_model_out_of_domain_films_are_refused(default_model: Any,
                                                            tmp_path: Path) -> None:
    films = [255 - pneumozoo.read_xray(f) for f in _fixture_films()]  # negatives: not its films
    with pytest.raises(PneumozooError, match="domain guard flags"):
        adapt_unlabelled(default_model, films, out=tmp_path / "inv", n_boot=20)

"""Site adaptation (``pneumozoo.adapt``), the prevalence EM, and the guard in evaluate / CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pneumozoo
from conftest import TinyDataset, kermany_names, synthetic_xray
from pneumozoo.adapt import adapt, adapt_unlabelled, estimate_prevalence, shifted_threshold
from pneumozoo.errors import PneumozooError


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A labelled "site": 20 normal and 20 pneumonia synthetic films, Kermany names."""
    from PIL import Image

    root = tmp_path_factory.mktemp("site")
    rng = np.random.default_rng(1)
    normals, sick = kermany_names(20, 20)
    for cls, label, stems in (("NORMAL", 0, normals), ("PNEUMONIA", 1, sick)):
        (root / cls).mkdir()
        for stem in stems:
            Image.fromarray(synthetic_xray(rng, 64, label)).save(root / cls / f"{stem}.png")
    return root


@pytest.fixture(scope="module")
def base() -> pneumozoo.PneumoniaClassifier:
    return pneumozoo.build_model("cnn4", input_size=48)


def test_adapt_cross_validates_and_writes_a_loadable_folder(base: pneumozoo.PneumoniaClassifier,
                                                            site: Path, tmp_path: Path) -> None:
    out = tmp_path / "adapted"
    result = adapt(base, site, out=out, name="cnn4-site", method="auto", folds=3, grid=(),
                   log=lambda _: None)
    assert set(result.cv) == {"recalibrate", "probe C=0.01", "probe C=0.1"}
    for metrics in result.cv.values():  # every film scored out of fold, with patient CIs
        assert metrics["n"] == 40
        lo, hi = metrics["confidence_intervals"]["auc"]
        assert lo <= metrics["auc"] <= hi
    # The synthetic pneumonia opacity is easy: the probe of frozen features finds it.
    assert max(m["auc"] for m in result.cv.values()) > 0.8
    assert (result.films["films"], result.films["pneumonia"], result.films["normal"]) == (40, 20, 20)
    assert result.films["patients"] < 40  # some patients have two films
    loaded = pneumozoo.load_pretrained(str(out))
    assert loaded.has_guard and loaded.head.prior == pytest.approx(0.5)
    config = pneumozoo.pretrained.PretrainedConfig.read(out)
    assert config.metrics["site"]["method"] in result.cv
    assert config.training["films"] == 40 and config.training["adapted_from"]
    # The site's own films are in the adapted model's domain (mostly).
    preds = pneumozoo.predict(loaded, site)
    assert np.mean([p.in_domain for p in preds]) >= 0.7


def test_adapt_fine_tunes_with_its_settings_chosen_by_cross_validation(
        base: pneumozoo.PneumoniaClassifier, site: Path) -> None:
    result = adapt(base, site, method="finetune", folds=2,
                   grid=({"learning_rate": 1e-3, "epochs": 1},), log=lambda _: None)
    assert result.method == "finetune" and result.settings == {"learning_rate": 1e-3, "epochs": 1}
    assert result.model is not base and result.model.has_guard


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "magic"}, "method must be one of"),
    ({"folds": 1}, "folds must be"),
    ({"folds": 30}, "for 30-fold cross-validation"),
])
def test_adapt_refuses_bad_arguments(base: pneumozoo.PneumoniaClassifier, site: Path,
                                     kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(PneumozooError, match=message):
        adapt(base, site, log=lambda _: None, **kwargs)  # type: ignore[arg-type]


def test_em_recovers_a_known_prevalence() -> None:
    # Posteriors calibrated at prior 0.5 of a population with prevalence 0.2.
    rng = np.random.default_rng(0)
    y = rng.random(4000) < 0.2
    # Scores N(+1.5, 1) and N(-1.5, 1): the log-likelihood ratio at x is 3x, so the posterior
    # under a 0.5 prior is sigmoid(3x).
    x = np.where(y, rng.normal(1.5, 1.0, y.size), rng.normal(-1.5, 1.0, y.size))
    posterior = 1.0 / (1.0 + np.exp(-3.0 * x))
    est = estimate_prevalence(posterior, 0.5, n_boot=200)
    assert abs(est["prevalence"] - 0.2) < 0.03
    assert est["ci"][0] < est["prevalence"] < est["ci"][1]
    assert est["ci"][0] < 0.2 + 0.03 and est["ci"][1] > 0.2 - 0.03


def test_the_threshold_moves_with_the_prevalence() -> None:
    assert shifted_threshold(0.3, 0.5, 0.5) == pytest.approx(0.3)
    # Rarer disease at the site: the same evidence must clear a higher bar on raw posteriors.
    assert shifted_threshold(0.3, 0.5, 0.2) > 0.3
    assert shifted_threshold(0.3, 0.5, 0.8) < 0.3


def test_adapt_unlabelled_needs_a_prior_and_writes_a_moved_threshold(
        base: pneumozoo.PneumoniaClassifier, site: Path, tmp_path: Path) -> None:
    with pytest.raises(PneumozooError, match="prior"):
        adapt_unlabelled(base, site, n_boot=10)
    model = type(base).from_config(base.get_config())
    model.set_weights(base.get_weights())
    model.head.prior = 0.5
    # An untrained model's posteriors barely differ: refused unless forced (issue 23).
    with pytest.raises(PneumozooError, match="no model written"):
        adapt_unlabelled(model, site, out=tmp_path / "prev", n_boot=20)
    with pytest.warns(UserWarning):
        result = adapt_unlabelled(model, site, out=tmp_path / "prev", n_boot=20, force=True)
    assert 0.0 <= result["prevalence"] <= 1.0 and result["films"] == 40 and result["problems"]
    loaded = pneumozoo.load_pretrained(str(tmp_path / "prev"))
    assert loaded.threshold == pytest.approx(result["threshold"])


def test_evaluate_reports_out_of_domain_films_and_scores_3class_on_binary_folders(
        tiny_dataset: TinyDataset) -> None:
    from pneumozoo.guard import fit_guard

    root = tiny_dataset(12, 12, size=48, name="eval") / "train"
    model = pneumozoo.build_model("cnn4", num_classes=3, input_size=48)
    feats = model.features(np.random.default_rng(0).integers(90, 110, (30, 48, 48, 3)).astype("float32"))
    fit_guard(model, feats[:20], feats[20:], quantile=0.9)  # fitted on flat grey frames
    # NORMAL/PNEUMONIA names without bacteria/virus in them: scored normal vs pneumonia.
    for f in (root / "PNEUMONIA").iterdir():
        f.rename(f.with_name(f.name.replace("_bacteria", "").replace("_virus", "")))
    report = pneumozoo.evaluate(model, root, ci=False)
    assert report.n == 24 and "scored_as" in report.extra
    assert report.out_of_domain_fraction is not None and report.out_of_domain_fraction > 0.5
    data = json.loads(report.to_json())
    assert "out_of_domain_fraction" in data
    skipped = pneumozoo.evaluate(model, root, ci=False, on_out_of_domain="skip") \
        if report.out_of_domain_fraction < 1 else None
    if skipped is not None:
        assert skipped.n < 24
    with pytest.raises(pneumozoo.OutOfDomainError):
        pneumozoo.evaluate(model, root, ci=False, on_out_of_domain="fail")


@pytest.mark.slow
def test_cli_adapt_and_predict_json_carry_the_guard(site: Path, tmp_path: Path, tf_env: dict[str, str]) -> None:
    base = pneumozoo.build_model("cnn4", input_size=48)
    from pneumozoo.pretrained.folder import save_folder
    from pneumozoo.zoo.config import PretrainedConfig

    save_folder(base, tmp_path / "base", PretrainedConfig.from_model(base, name="base"))
    out = tmp_path / "adapted"
    run = subprocess.run([sys.executable, "-m", "pneumozoo", "adapt", str(site), "--model",
                          str(tmp_path / "base"), "--out", str(out), "--method", "recalibrate",
                          "--folds", "2"], capture_output=True, text=True, env=tf_env, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "out of fold" in run.stdout and (out / "pneumozoo.json").is_file()
    run = subprocess.run([sys.executable, "-m", "pneumozoo", "predict", "--json", "--model",
                          str(out), str(site / "NORMAL")], capture_output=True, text=True,
                         env=tf_env, timeout=600)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(lines) == 20 and all({"in_domain", "domain_score"} <= set(d) for d in lines)

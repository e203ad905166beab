"""Issue #17: seeded, repeatable runs; the ``calibrated`` threshold rule; the run-to-run
spread (bench_seeds), its place in model cards, and bench_reproduce's two-way judgement."""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from pneumozoo.evaluation.metrics import binary_metrics
from pneumozoo.evaluation.thresholds import choose_threshold
from pneumozoo.models import build_model
from pneumozoo.pretrained.folder import save_folder
from pneumozoo.pretrained.release import update_release
from pneumozoo.zoo.card import model_card
from pneumozoo.zoo.config import PretrainedConfig

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "kermany"
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "recipes"))
bench_seeds = importlib.import_module("bench_seeds")
bench_reproduce = importlib.import_module("bench_reproduce")


# -- the calibrated rule ----------------------------------------------------------------------

@pytest.mark.parametrize("scores", [
    [0.1, 0.2, 0.6, 0.7, 0.8],     # both sides of 0.5
    [0.1, 0.5, 0.5, 0.9, 0.3],     # ties at 0.5 count as pneumonia
    [0.1, 0.2, 0.3, 0.4, 0.45],    # nothing reaches 0.5
    [0.6, 0.7, 0.8, 0.9, 0.95],    # everything does
])
def test_calibrated_rule_is_half_and_reports_its_decisions(scores: list[float]) -> None:
    y = [0, 0, 1, 1, 0]
    op = choose_threshold(y, np.asarray(scores), method="calibrated")
    at = binary_metrics(y, np.asarray(scores), 0.5)
    assert op.threshold == 0.5 and op.method == "calibrated" and op.target is None
    assert (op.sensitivity, op.specificity) == (at["sensitivity"], at["specificity"])


def test_calibrated_rule_ignores_the_data() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    assert {choose_threshold(y, rng.random(200), method="calibrated").threshold
            for _ in range(5)} == {0.5}


# -- seeded, repeatable runs --------------------------------------------------------------------

_RUN = """
import hashlib, json, sys
from pneumozoo.recipe import Recipe
from pneumozoo.run import deterministic_ops, run_recipe
if sys.argv[3] == "deterministic":
    deterministic_ops()
outs = {}
for tag, seed in (("a", 3), ("b", 3), ("c", 4)):
    r = Recipe(name="tiny", arch="cnn4", input_size=48, epochs=1, batch_size=8, augment="xray",
               val_fraction=0.3, seed=seed)
    m, _ = run_recipe(r, sys.argv[1], out=sys.argv[2] + "/" + tag, verbose=0, log=lambda *a: None)
    digest = hashlib.sha256(b"".join(w.tobytes() for w in m.get_weights())).hexdigest()
    outs[tag] = [digest, m.threshold, m.temperature]
print("RUNS " + json.dumps(outs))
"""


@pytest.mark.timeout(300)
def test_same_seed_same_model_other_seed_other_model(tmp_path: Path) -> None:
    # A fresh process: op determinism is process-wide (the entry points turn it on). Without
    # it, two runs of one seed differed in a loaded CI run (thread scheduling of reductions).
    ops = "deterministic"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_RUN), str(FIXTURES), str(tmp_path), ops],
                          capture_output=True, text=True, timeout=280, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RUNS ")]
    assert proc.returncode == 0 and lines, proc.stderr[-2000:]
    runs = json.loads(lines[-1][5:])
    assert runs["a"] == runs["b"]            # weights, threshold and temperature repeat
    assert runs["a"][0] != runs["c"][0]      # another seed is another run
    card = json.loads((tmp_path / "a" / "pneumozoo.json").read_text())
    assert card["training"]["recipe"]["seed"] == 3


def test_recipe_script_takes_a_seed(tmp_path: Path) -> None:
    from pneumozoo import run

    script = importlib.import_module("_script")  # recipes/_script.py, what recipes/<name>.py run
    seen: dict[str, Any] = {}

    def fake_run(r: Any, *a: Any, **k: Any) -> None:  # no training, no process-wide determinism
        seen.update(recipe=r, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(run, "run_recipe", fake_run)
        script.main("cnn4-binary", ["--data", str(FIXTURES), "--out", str(tmp_path), "--seed", "7"])
    assert seen["recipe"].seed == 7 and seen["recipe"].name == "cnn4-binary"
    assert seen["deterministic"] is True and seen["test"] is True
    assert seen["out"] == tmp_path / "cnn4-binary"


# -- bench_seeds: spread and the declared choice ---------------------------------------------------

def test_prediction_interval_is_wider_than_the_range_for_few_runs() -> None:
    s = bench_seeds.spread([0.30, 0.35, 0.40])
    assert s["mean"] == pytest.approx(0.35) and s["sd"] == pytest.approx(0.05)
    lo, hi = s["prediction_interval"]
    # mean +- t(0.975, 2) * sd * sqrt(1 + 1/3)
    assert hi - s["mean"] == pytest.approx(4.303 * 0.05 * math.sqrt(4 / 3))
    assert lo < s["min"] and hi > s["max"]
    assert bench_seeds.spread([0.97, 0.99, 1.0])["prediction_interval"][1] == 1.0  # a proportion


def _run(seed: int, val_p: list[float], test_p: list[float]) -> dict[str, Any]:
    return {"seed": seed, "val": {"y": [0, 0, 0, 1, 1, 1], "p": val_p},
            "test": {"y": [0, 0, 0, 1, 1, 1], "p": test_p}}


def test_choice_is_made_on_validation_only() -> None:
    # Separable validation sets whose gap sits in different places: Youden's thresholds move
    # with the gap; 0.5 does not move and keeps validation perfect.
    runs = [_run(1, [0.05, 0.1, 0.2, 0.6, 0.9, 0.95], [0.1, 0.3, 0.55, 0.6, 0.8, 0.9]),
            _run(2, [0.1, 0.3, 0.45, 0.55, 0.8, 0.9], [0.2, 0.4, 0.6, 0.5, 0.7, 0.9]),
            _run(3, [0.02, 0.04, 0.4, 0.7, 0.75, 0.99], [0.1, 0.2, 0.45, 0.65, 0.7, 0.95])]
    result = bench_seeds.analyse(runs)
    assert result["chosen"] == "calibrated"
    assert result["rules"]["calibrated"]["summary"]["threshold_logit_sd"] == 0
    # The test numbers do not enter the choice: flipping every test label changes none of it.
    flipped = [{**r, "test": {"y": [1 - v for v in r["test"]["y"]], "p": r["test"]["p"]}}
               for r in runs]
    assert bench_seeds.analyse(flipped)["chosen"] == result["chosen"]


def test_a_rule_that_breaks_validation_is_not_eligible() -> None:
    # 0.5 misclassifies half of every validation set: steady threshold, unstable decisions.
    runs = [_run(s, [0.55, 0.6, 0.1, 0.7 + s / 100, 0.8, 0.9], [0.5] * 6) for s in (1, 2, 3)]
    runs[1]["val"]["p"] = [0.1, 0.2, 0.1, 0.7, 0.8, 0.9]
    result = bench_seeds.analyse(runs)
    assert "calibrated" not in result["eligible"] and result["chosen"] != "calibrated"


# -- bench_reproduce: bootstrap interval or seed spread ----------------------------------------

def test_reproduce_judges_by_either_interval() -> None:
    released = {"specificity": 0.40, "auc": 0.93,
                "confidence_intervals": {"specificity": [0.34, 0.46], "auc": [0.91, 0.95]}}
    spread = {"metrics": {"specificity": {"prediction_interval": [0.20, 0.60]}}}
    rows = {r["metric"]: r for r in bench_reproduce.compare(
        released, {"specificity": 0.30, "auc": 0.93}, spread)}
    assert rows["specificity"]["verdict"] == "seed spread"
    assert rows["auc"]["verdict"] == "bootstrap"  # no spread recorded for it
    rows = {r["metric"]: r for r in bench_reproduce.compare(
        released, {"specificity": 0.10, "auc": 0.80}, spread)}
    assert rows["specificity"]["verdict"] == "neither" and rows["auc"]["verdict"] == "neither"
    assert bench_reproduce.compare(released, {"specificity": 0.4, "auc": 0.92}, spread)[0]["verdict"] == "both"


# -- model cards -------------------------------------------------------------------------------------

def _config(spread: dict[str, Any] | None) -> PretrainedConfig:
    metrics: dict[str, Any] = {"test": {"n": 8, "threshold": 0.5, "accuracy": 0.8, "auc": 0.9}}
    if spread is not None:
        metrics["seed_spread"] = spread
    return PretrainedConfig(name="tiny", architecture="cnn4", task="binary",
                            class_names=("normal", "pneumonia"), input_size=48, metrics=metrics)


def test_card_shows_the_spread_or_why_not() -> None:
    row = {"mean": 0.7, "sd": 0.05, "min": 0.65, "max": 0.75, "prediction_interval": [0.5, 0.9]}
    card = model_card(_config({"rule": "calibrated", "seeds": [1, 2, 3],
                               "metrics": {"specificity": row}}))
    assert "## Run-to-run spread" in card and "| Specificity | 0.700 | 0.050 | 0.650 – 0.750 | 0.500 – 0.900 |" in card
    assert "`calibrated`" in card and "3 other seeds" in card
    card = model_card(_config({"reason": "too costly on 2 cores"}))
    assert "Not measured: too costly on 2 cores." in card
    assert "Run-to-run" not in model_card(_config(None))


def test_update_release_keeps_extra_files_and_notes(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    model = build_model("cnn4", input_size=48)
    folder = tmp_path / "m"
    config = save_folder(model, folder, _config(None))
    (folder / "README.md").write_text(model_card(config) + "\n## Notes by hand\n", encoding="utf-8")
    (folder / "reference_predictions.json").write_text("{}", encoding="utf-8")
    new = _config({"reason": "not run"})
    update_release(model, new, folder)
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "Not measured: not run." in card and card.endswith("\n## Notes by hand\n")
    assert (folder / "reference_predictions.json").read_text(encoding="utf-8") == "{}"
    assert PretrainedConfig.read(folder).metrics["seed_spread"] == {"reason": "not run"}


def test_update_release_keeps_the_notes_of_a_folder_written_before_the_settings_moved(
        tmp_path: Path) -> None:
    """A 0.3 folder's card was generated from its pneumozoo.json, whose preprocessing wording
    differs from the model's own: its hand-written sections still survive a rewrite."""
    import json
    import shutil

    from pneumozoo.pretrained import BUNDLED_DIR, load_pretrained

    folder = Path(shutil.copytree(BUNDLED_DIR / "cnn4-binary", tmp_path / "m"))
    config = PretrainedConfig.read(folder)
    stale = {"input": "RGB (grayscale is repeated), uint8 or float, 0..255, any size"}
    old = json.loads((folder / "pneumozoo.json").read_text(encoding="utf-8"))
    old.update(task=config.task, class_names=list(config.class_names), threshold=config.threshold,
               input_size=config.input_size, preprocessing=stale)  # as 0.3 wrote it
    (folder / "pneumozoo.json").write_text(json.dumps(old), encoding="utf-8")
    from dataclasses import replace

    old_card = model_card(replace(config, preprocessing=stale))
    (folder / "README.md").write_text(old_card + "\n## Notes by hand\n", encoding="utf-8")
    model = load_pretrained(folder)
    model.threshold = 0.3
    update_release(model, config, folder)
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert card.endswith("\n## Notes by hand\n") and "RGB (grayscale is repeated)" not in card
    assert PretrainedConfig.read(folder).threshold == 0.3


def test_every_bundled_card_is_its_config_s_card() -> None:
    from pneumozoo.pretrained import BUNDLED_DIR

    for folder in sorted(p for p in BUNDLED_DIR.iterdir() if p.is_dir()):
        card = (folder / "README.md").read_text(encoding="utf-8")
        assert card.startswith(model_card(PretrainedConfig.read(folder))), folder.name


def test_card_quotes_the_speed_against_the_peer() -> None:
    config = _config(None)
    speed = {"images_per_s": 1946.0, "ratio_vs_peer": 4.249, "peer": "pneumonia-model-package==0.1.0",
             "peer_images_per_s": 443.0, "peer_test_auc": 0.927, "method": "alternating rounds",
             "cpu": "a CPU", "date": "2026-12-02", "source": "benchmarks/bench_peer.py"}
    card = model_card(PretrainedConfig(**{**config.to_dict(), "metrics": {"speed": speed}}))
    assert "## Speed" in card and "**4.25x** the published peer `pneumonia-model-package==0.1.0`" in card
    assert "## Speed" not in model_card(config)

"""The bundled zoo: every listed model loads offline, and the default model's outputs on the
example X-rays match the reference predictions stored with it (golden test), so a change in
reading, resizing or normalisation cannot slip through unnoticed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pneumozoo.pretrained import BUNDLED_DIR, DEFAULT_MODEL, list_pretrained, load_pretrained

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "xrays"
CONFIGS = list_pretrained()


def test_default_model_is_bundled() -> None:
    names = [c.name for c in CONFIGS]
    assert DEFAULT_MODEL in names, f"{DEFAULT_MODEL} missing from {BUNDLED_DIR}"
    assert names[0] == DEFAULT_MODEL


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_every_listed_model_loads_and_matches_its_golden_predictions(config) -> None:
    model = load_pretrained(config.name)
    assert model.class_names == tuple(config.class_names)
    assert model.input_size == config.input_size
    assert model.threshold == pytest.approx(config.threshold, abs=1e-6)
    assert model.output_shape[-1] == len(config.class_names)
    assert 0.0 < config.threshold < 1.0
    # Pediatric models report the Kermany test split; the adult model its cross-validated
    # site metrics (it was adapted on every film of its data set).
    measured = config.metrics["site" if "adult" in config.name else "test"]
    for key in ("accuracy", "sensitivity", "specificity", "auc"):
        assert isinstance(measured[key], float)
    assert model.has_guard
    reference = json.loads((BUNDLED_DIR / config.name / "reference_predictions.json").read_text())
    files = [EXAMPLES / r["file"] for r in reference]
    assert files and all(f.is_file() for f in files)

    import pneumozoo

    got = pneumozoo.predict(model, files)
    for ref, pred in zip(reference, got, strict=True):
        want = np.array([ref["probabilities"][n] for n in config.class_names])
        have = np.array([pred.probabilities[n] for n in config.class_names])
        np.testing.assert_allclose(have, want, atol=2e-4, err_msg=ref["file"])
        assert pred.label == ref["label"], ref["file"]


def test_model_predict_needs_no_preprocessing() -> None:
    """`model.predict` on raw films equals `pneumozoo.predict` (resize + normalise in-graph)."""
    import pneumozoo

    model = load_pretrained()
    film = pneumozoo.read_xray(sorted(EXAMPLES.glob("*.jpeg"))[0])
    size = model.input_size
    pixels = model.prepare(film)  # as predict feeds
    assert pixels.dtype == np.uint8 and pixels.shape[:2] == (size, size)
    rgb = np.repeat(pixels, 3 // pixels.shape[-1], axis=-1)
    direct = model.predict(rgb[None].astype("float32"), verbose=0)[0]
    raw = model.predict(film[None].astype("float32"), verbose=0)[0]  # any size, in-graph resize
    one = model.predict(film, verbose=0)[0]  # a single raw film
    via_api = pneumozoo.predict(model, film)[0]
    np.testing.assert_allclose(direct[1:].sum(), via_api.probability, atol=1e-5)
    np.testing.assert_allclose(one[1:].sum(), via_api.probability, atol=1e-5)
    np.testing.assert_allclose(raw, direct, atol=1e-4)  # the graph rounds like the pipeline


def test_cli_predicts_the_examples_offline(capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from pneumozoo.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["predict", str(EXAMPLES), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == len(list(EXAMPLES.glob("*.jpeg")))
    for line in lines:
        assert line["label"] in ("normal", "pneumonia")
        assert 0.0 <= line["probability"] <= 1.0


def test_models_json_lists_typed_configs(capsys: pytest.CaptureFixture[str]) -> None:
    from pneumozoo.cli import main

    assert main(["models", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in data] == [c.name for c in CONFIGS]
    for entry in data:
        assert {"name", "class_names", "input_size", "threshold", "metrics"} <= set(entry)


def test_every_pediatric_card_reports_external_validation_and_its_guard() -> None:
    pediatric = [c for c in CONFIGS if "adult" not in c.name]
    assert pediatric
    for config in pediatric:
        nih = config.metrics["external"]["nih-adult-dev"]
        assert nih["n"] == 572 and set(nih["confidence_intervals"]) >= {"auc", "accuracy"}
        flagged = config.metrics["guard"]["flagged"]
        assert {"kermany_test", "nih_adult_dev"} <= set(flagged)
        assert all(0.0 <= v <= 1.0 for v in flagged.values())
        card = (BUNDLED_DIR / config.name / "README.md").read_text(encoding="utf-8")
        assert "## External validation" in card and "domain guard" in card


def test_the_zoo_has_an_adult_model_with_cross_validated_site_metrics() -> None:
    adult = [c for c in CONFIGS if "adult" in c.name]
    assert len(adult) == 1
    site = adult[0].metrics["site"]
    lo, hi = site["confidence_intervals"]["auc"]
    assert lo <= site["auc"] <= hi and site["n"] == 572
    assert adult[0].training["films"] == 572
    assert CONFIGS[0].name == "xraynet-binary-v2"  # the default stays first

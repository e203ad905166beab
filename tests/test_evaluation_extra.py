"""Bootstrap CIs, operating points, calibration (ECE, temperature scaling), TTA, and
``evaluate``/``pneumozoo evaluate`` with them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pneumozoo.errors import UnknownNameError
from pneumozoo.evaluation import (
    OperatingPoint,
    binary_metrics,
    bootstrap_ci,
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
    operating_points,
    reliability_curve,
)
from pneumozoo.evaluation.bootstrap import _weighted_metrics, bootstrap_distribution

FIXTURES = Path(__file__).parent / "fixtures" / "kermany"
METRICS = ("accuracy", "sensitivity", "specificity", "precision", "f1", "auc", "pr_auc")


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and informative-but-imperfect P(pneumonia) scores."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = 1.0 / (1.0 + np.exp(-(1.6 * (2 * y - 1) + rng.normal(0, 1.3, n))))
    return y, s


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# --- bootstrap ---------------------------------------------------------------------------
def test_weighted_resample_metrics_equal_metrics_of_the_resampled_data() -> None:
    y, s = synthetic(300, seed=1)
    s = np.round(s, 2)  # ties, which the rank metrics must handle like scikit-learn
    idx = np.random.default_rng(5).integers(0, len(y), len(y))
    weights = np.bincount(idx, minlength=len(y)).astype(float)[None]
    got = _weighted_metrics(weights, y.astype(float), s, 0.5)
    want = binary_metrics(y[idx], s[idx], 0.5)
    for key in (*METRICS, "npv"):
        assert got[key][0] == pytest.approx(want[key], abs=1e-12), key


def test_ci_contains_point_estimate_and_is_ordered() -> None:
    y, s = synthetic(400)
    point = binary_metrics(y, s, 0.5)
    ci = bootstrap_ci(y, s, threshold=0.5, n_boot=500)
    assert set(METRICS) <= set(ci)
    for key in METRICS:
        low, high = ci[key]
        assert 0.0 <= low < high <= 1.0, key
        assert low <= point[key] <= high, key


def test_ci_narrows_with_more_data() -> None:
    small = bootstrap_ci(*synthetic(100, seed=2), threshold=0.5, n_boot=400)
    large = bootstrap_ci(*synthetic(2000, seed=2), threshold=0.5, n_boot=400)
    for key in ("accuracy", "sensitivity", "auc"):
        width_small = small[key][1] - small[key][0]
        width_large = large[key][1] - large[key][0]
        assert width_large < 0.5 * width_small, key  # ~sqrt(20) narrower in theory


def test_patient_resampling_widens_intervals_for_correlated_images() -> None:
    # 60 patients with 5 films each; a patient's films are all right or all wrong.
    rng = np.random.default_rng(3)
    patients = np.repeat(np.arange(60), 5)
    y = np.repeat(rng.integers(0, 2, 60), 5)
    correct = np.repeat(rng.random(60) < 0.8, 5)
    s = np.where(correct == (y == 1), 0.9, 0.1)
    by_image = bootstrap_ci(y, s, threshold=0.5, n_boot=1000, seed=0)
    by_patient = bootstrap_ci(y, s, threshold=0.5, patient_ids=[f"p{i}" for i in patients],
                              n_boot=1000, seed=0)
    w_image = by_image["accuracy"][1] - by_image["accuracy"][0]
    w_patient = by_patient["accuracy"][1] - by_patient["accuracy"][0]
    assert w_patient > 1.5 * w_image  # ~sqrt(5) in theory


def test_bootstrap_is_reproducible_by_seed() -> None:
    y, s = synthetic(200)
    assert bootstrap_ci(y, s, threshold=0.5, n_boot=300, seed=7) == bootstrap_ci(
        y, s, threshold=0.5, n_boot=300, seed=7)
    assert bootstrap_ci(y, s, threshold=0.5, n_boot=300, seed=7) != bootstrap_ci(
        y, s, threshold=0.5, n_boot=300, seed=8)


def test_bootstrap_accepts_softmax_rows_and_level() -> None:
    y, s = synthetic(300)
    probs = np.stack([1.0 - s, s], axis=1)
    assert bootstrap_ci(y, probs, threshold=0.5, n_boot=200) == bootstrap_ci(
        y, s, threshold=0.5, n_boot=200)
    wide = bootstrap_ci(y, s, threshold=0.5, n_boot=400, level=0.99)["auc"]
    narrow = bootstrap_ci(y, s, threshold=0.5, n_boot=400, level=0.80)["auc"]
    assert wide[0] < narrow[0] and narrow[1] < wide[1]


def test_bootstrap_undefined_resamples_are_nan_not_errors() -> None:
    dist = bootstrap_distribution([0, 1], [0.2, 0.8], threshold=0.5, n_boot=200, seed=0)
    # Some resamples draw the same film twice: one class only, AUC undefined.
    assert np.isnan(dist["auc"]).any() and (dist["auc"] == 1.0).any()
    ci = bootstrap_ci([1, 1, 1], [0.9, 0.8, 0.3], threshold=0.5, n_boot=100)
    assert all(math.isnan(v) for v in ci["specificity"])


@pytest.mark.timeout(60)  # a hang fails the test; slowness does not
def test_bootstrap_1000_resamples_of_624_images_is_fast() -> None:
    y, s = synthetic(624)
    bootstrap_ci(y, s, threshold=0.5, patient_ids=[str(i // 2) for i in range(624)], n_boot=1000)


@pytest.mark.parametrize("kwargs", [
    {"y_true": [0, 1], "probabilities": [0.1, 0.2, 0.3]},
    {"y_true": [0, 1], "probabilities": [0.1, 0.2], "patient_ids": ["a"]},
    {"y_true": [0, 1], "probabilities": [0.1, 0.2], "n_boot": 0},
    {"y_true": [0, 1], "probabilities": [0.1, 0.2], "level": 1.0},
    {"y_true": [], "probabilities": []},
])
def test_bootstrap_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        bootstrap_ci(threshold=0.5, **kwargs)


# --- thresholds --------------------------------------------------------------------------
NEG = [0.1, 0.2, 0.3, 0.4, 0.5]
POS = [0.35, 0.45, 0.55, 0.65, 0.75]
Y = [0] * 5 + [1] * 5
S = NEG + POS


def test_threshold_for_target_sensitivity_is_the_highest_reaching_it() -> None:
    op = choose_threshold(Y, S, method="sensitivity", target=0.8)
    assert op == OperatingPoint(threshold=0.45, sensitivity=0.8, specificity=0.8,
                                method="sensitivity", target=0.8)
    assert choose_threshold(Y, S, method="sensitivity", target=1.0).threshold == 0.35
    none = choose_threshold(Y, S, method="sensitivity", target=0.0)
    assert none.threshold > 0.75 and none.sensitivity == 0.0 and none.specificity == 1.0


def test_threshold_for_target_specificity_is_the_lowest_reaching_it() -> None:
    op = choose_threshold(Y, S, method="specificity", target=1.0)
    assert (op.threshold, op.sensitivity, op.specificity) == (0.55, 0.6, 1.0)
    op = choose_threshold(Y, S, method="specificity", target=0.6)
    assert (op.threshold, op.sensitivity, op.specificity) == (0.35, 1.0, 0.6)


def test_youden_maximises_j_and_breaks_ties_towards_sensitivity() -> None:
    op = choose_threshold(Y, S)
    # J = 0.6 at thresholds 0.55, 0.45 and 0.35; the lowest (most sensitive) wins.
    assert (op.threshold, op.sensitivity, op.specificity, op.target) == (0.35, 1.0, 0.6, None)
    assert op.youden_j == pytest.approx(0.6)


def test_chosen_threshold_reproduces_its_metrics() -> None:
    y, s = synthetic(500, seed=4)
    for method, target in (("sensitivity", 0.95), ("specificity", 0.9), ("youden", None)):
        op = choose_threshold(y, s, method=method, target=target)
        m = binary_metrics(y, s, op.threshold)
        assert m["sensitivity"] == pytest.approx(op.sensitivity)
        assert m["specificity"] == pytest.approx(op.specificity)
        if method == "sensitivity":
            assert op.sensitivity >= 0.95
            above = s[s > op.threshold]  # any higher threshold misses the target
            assert binary_metrics(y, s, above.min())["sensitivity"] < 0.95
        if method == "specificity":
            assert op.specificity >= 0.9


def test_thresholds_from_softmax_rows_and_table() -> None:
    probs = np.stack([1.0 - np.array(S), np.array(S)], axis=1)
    assert choose_threshold(Y, probs, method="sensitivity", target=0.8).threshold == pytest.approx(0.45)
    table = operating_points(Y, S, targets=(0.8, 1.0))
    assert [p.method for p in table] == ["youden", "sensitivity", "sensitivity",
                                         "specificity", "specificity"]
    assert [p.target for p in table[1:]] == [0.8, 1.0, 0.8, 1.0]
    assert table[0].to_dict()["threshold"] == 0.35


def test_threshold_errors() -> None:
    with pytest.raises(UnknownNameError, match="youden"):
        choose_threshold(Y, S, method="f1")
    with pytest.raises(ValueError, match="target"):
        choose_threshold(Y, S, method="sensitivity")
    with pytest.raises(ValueError, match="target"):
        choose_threshold(Y, S, method="specificity", target=95)
    with pytest.raises(ValueError, match="both"):
        choose_threshold([1, 1], [0.2, 0.3])


# --- calibration -------------------------------------------------------------------------
def test_ece_is_zero_for_perfectly_calibrated_scores() -> None:
    # Each predicted probability matches the observed rate of its group exactly.
    groups = [(0.1, 10, 1), (0.25, 8, 2), (0.6, 5, 3), (0.9, 10, 9)]
    s = np.concatenate([[p] * n for p, n, _ in groups])
    y = np.concatenate([[1] * k + [0] * (n - k) for _, n, k in groups])
    assert expected_calibration_error(y, s) == pytest.approx(0.0, abs=1e-12)
    probs = np.stack([1.0 - s, s], axis=1)
    assert expected_calibration_error(y, probs) == pytest.approx(0.0, abs=1e-12)


def test_ece_measures_overconfidence() -> None:
    y = np.array([0, 1] * 50)
    assert expected_calibration_error(y, np.full(100, 0.99)) == pytest.approx(0.49)
    # Top-label view for 3 classes: confidence 0.7, right half the time.
    probs = np.tile([0.2, 0.7, 0.1], (10, 1))
    labels = np.array([1, 0] * 5)
    assert expected_calibration_error(labels, probs) == pytest.approx(0.2)
    # Binary view: P(pneumonia) 0.8, observed pneumonia rate 0.5.
    assert expected_calibration_error(labels, probs, mode="binary") == pytest.approx(0.3)


def test_reliability_curve_bins() -> None:
    conf, acc, counts = reliability_curve([0, 1, 1, 0], [0.05, 0.12, 0.95, 1.0], n_bins=10)
    assert counts.tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert acc[9] == 0.5 and conf[9] == pytest.approx(0.975)
    assert np.isnan(conf[4]) and np.isnan(acc[4])
    with pytest.raises(ValueError):
        reliability_curve([0, 1], [0.5], n_bins=10)


@pytest.mark.parametrize("true_t", [0.5, 2.5])
def test_fit_temperature_recovers_a_known_temperature(true_t: float) -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, size=(4000, 3))
    y = np.array([rng.choice(3, p=row) for row in softmax(z / true_t)])
    assert fit_temperature(z, y) == pytest.approx(true_t, rel=0.1)
    # From the uncalibrated probabilities (log p are the logits up to a shift).
    assert fit_temperature(softmax(z), y) == pytest.approx(true_t, rel=0.1)


def test_fit_temperature_errors() -> None:
    with pytest.raises(ValueError):
        fit_temperature(np.zeros((3, 2)), [0, 1])
    with pytest.raises(ValueError, match="labels"):
        fit_temperature(np.zeros((2, 2)), [0, 2])


# --- with a model ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model():
    import keras

    from pneumozoo.models import build_model

    keras.utils.set_random_seed(0)
    return build_model("cnn4", input_size=64)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 80, size=(6, 64, 64, 3))
    x[:, 20:44, 10:30] += 150
    x[3:, 20:44, 34:54] += 100
    return x.astype(np.float32)


def test_apply_temperature_rescales_the_logits_and_survives_save_load(model, images, tmp_path) -> None:
    from pneumozoo.evaluation import apply_temperature, temperature_of
    from pneumozoo.prediction import predict
    from pneumozoo.pretrained import PretrainedConfig, load_folder, save_folder

    before = np.asarray(model.predict_on_batch(images), dtype=np.float64)
    calibrated = apply_temperature(model, 2.0)
    after = np.asarray(calibrated.predict_on_batch(images), dtype=np.float64)
    np.testing.assert_allclose(after, softmax(np.log(before) / 2.0), atol=1e-5)
    assert (after.argmax(1) == before.argmax(1)).all()
    assert np.abs(after - 0.5).max() < np.abs(before - 0.5).max()  # softer
    assert temperature_of(model) == 1.0 and temperature_of(calibrated) == 2.0

    cfg = PretrainedConfig(name="t", architecture="cnn4", task="binary",
                           class_names=("normal", "pneumonia"), input_size=64)
    save_folder(calibrated, tmp_path / "m", cfg)
    loaded = load_folder(tmp_path / "m")
    assert temperature_of(loaded) == 2.0
    np.testing.assert_allclose(loaded.predict_on_batch(images), after, atol=1e-6)
    pred = predict(loaded, images[0].astype(np.uint8))[0]
    direct = calibrated.predict_on_batch(images[:1].astype(np.uint8).astype(np.float32))[0]
    assert pred.probability == pytest.approx(1.0 - float(direct[0]), abs=1e-5)


def test_apply_temperature_keeps_decisions_of_a_shipped_threshold(model, images) -> None:
    from pneumozoo.evaluation import apply_temperature
    from pneumozoo.prediction import predict

    shipped = apply_temperature(model, 1.0)  # a copy with a shipped threshold of 0.3
    shipped.threshold = 0.3
    calibrated = apply_temperature(shipped, 3.0)
    expected = 1.0 / (1.0 + math.exp(-math.log(0.3 / 0.7) / 3.0))
    assert calibrated.threshold == pytest.approx(expected)
    assert shipped.threshold == 0.3 and model.threshold == 0.5
    p_old = 1.0 - shipped.predict_on_batch(images)[:, 0]
    p_new = 1.0 - calibrated.predict_on_batch(images)[:, 0]
    assert ((p_old >= 0.3) == (p_new >= calibrated.threshold)).all()
    labels = [p.label for p in predict(shipped, list(images))]
    assert labels == [p.label for p in predict(calibrated, list(images))]
    with pytest.raises(ValueError):
        apply_temperature(model, 0.0)


def test_tta_gives_valid_probabilities_close_to_plain_prediction(model, images) -> None:
    from pneumozoo.evaluation import predict_tta

    plain = np.asarray(model.predict_on_batch(images), dtype=np.float64)
    tta = predict_tta(model, images)
    assert tta.shape == plain.shape
    assert np.all((tta >= 0) & (tta <= 1))
    np.testing.assert_allclose(tta.sum(axis=1), 1.0, atol=1e-5)
    diff = np.abs(tta - plain).max()
    assert 0.0 < diff < 0.2
    np.testing.assert_allclose(predict_tta(model, images, views="identity"), plain, atol=1e-6)
    # Flips: the mirror changes the answer only when asked for.
    with_flip = predict_tta(model, images, views=["identity"], hflip=True)
    flipped = np.asarray(model.predict_on_batch(images[:, :, ::-1].copy()), dtype=np.float64)
    np.testing.assert_allclose(with_flip, (plain + flipped) / 2, atol=1e-6)
    with pytest.raises(UnknownNameError):
        predict_tta(model, images, views=["vflip"])


def test_tta_views_move_the_film_a_few_percent() -> None:
    from pneumozoo.tta import VIEW_PRESETS, make_view

    batch = np.zeros((1, 50, 100, 3), dtype=np.float32)
    batch[0, 20, 40] = 255
    right = make_view(batch, "shift_right")  # 4% of 100 px
    assert right.shape == batch.shape and right[0, 20, 44, 0] == 255
    down = make_view(batch, "shift_down")  # 4% of 50 px
    assert down[0, 22, 40, 0] == 255
    zoom = make_view(batch, "zoom_in")
    assert zoom.shape == (1, 46, 92, 3)
    assert "hflip" not in VIEW_PRESETS["shift"]


def test_evaluate_with_ci_calibration_and_tta(model) -> None:
    from pneumozoo.evaluation import evaluate

    report = evaluate(model, FIXTURES / "test", n_boot=200, tta=True)
    assert report.n == 8 and report.extra["tta"] is True
    for key in ("accuracy", "sensitivity", "specificity", "auc"):
        low, high = report.confidence_intervals[key]
        assert low <= getattr(report, key) <= high
    assert report.extra["bootstrap"]["resampled"] == "patients"
    assert report.extra["bootstrap"]["units"] == 8  # one film per patient in the fixture
    calibration = report.extra["calibration"]
    assert 0.0 <= calibration["ece"] <= 1.0 and calibration["temperature"] == 1.0
    assert "ece_uncalibrated" not in calibration
    data = json.loads(report.to_json())
    assert data["confidence_intervals"]["auc"] == report.confidence_intervals["auc"]
    text = report.summary()
    assert text == report.to_text() == str(report)
    assert "95% CI" in text and f"[{low:.3f}, {high:.3f}]" in text
    assert "calibration error (ECE) " in text and "no temperature scaling" in text
    assert "patients" in text and "threshold" in text and "the model's own threshold" in text

    plain = evaluate(model, FIXTURES / "test", ci=False)
    assert plain.confidence_intervals == {} and plain.extra["tta"] is False


def test_evaluate_reports_ece_before_and_after_temperature(model) -> None:
    from pneumozoo.data import scan_folder
    from pneumozoo.evaluation import apply_temperature, evaluate, expected_calibration_error
    from pneumozoo.evaluation.scoring import predict_records

    records = scan_folder(FIXTURES / "test")
    raw = predict_records(model, records)
    y = [r.label for r in records]
    report = evaluate(apply_temperature(model, 0.5), records, ci=False)
    calibration = report.extra["calibration"]
    assert calibration["temperature"] == 0.5
    assert calibration["ece_uncalibrated"] == pytest.approx(expected_calibration_error(y, raw), abs=1e-5)
    before = calibration["ece_uncalibrated"]
    assert (f"calibration error (ECE) {calibration['ece']:.3f} after temperature scaling "
            f"(T=0.50), {before:.3f} before") in report.to_text()


def test_cli_evaluate_json_has_confidence_intervals(model, tmp_path, capsys) -> None:
    from pneumozoo.cli import main
    from pneumozoo.pretrained import PretrainedConfig, save_folder

    cfg = PretrainedConfig(name="t", architecture="cnn4", task="binary",
                           class_names=("normal", "pneumonia"), input_size=64)
    save_folder(model, tmp_path / "m", cfg)
    rc = main(["evaluate", str(FIXTURES / "test"), "--model", str(tmp_path / "m"), "--json",
               "--n-boot", "100"])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0 and len(out) == 1
    data = json.loads(out[0])
    assert {"n", "accuracy", "sensitivity", "specificity", "auc"} <= set(data)
    assert len(data["confidence_intervals"]["accuracy"]) == 2
    rc = main(["evaluate", str(FIXTURES / "test"), "--model", str(tmp_path / "m"), "--json",
               "--no-ci"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["confidence_intervals"] == {}

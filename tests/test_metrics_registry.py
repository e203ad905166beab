"""One definition per binary metric (the registry), shared by point estimates, the bootstrap,
thresholds and the report; one P(pneumonia); the report's text table."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from pneumozoo.evaluation import (
    binary_metrics,
    bootstrap_ci,
    multiclass_metrics,
    report_from_predictions,
)
from pneumozoo.evaluation.bootstrap import (
    BOOTSTRAP_METRICS,
    _weighted_metrics,
    bootstrap_distribution,
)
from pneumozoo.evaluation.metrics import (
    BINARY_METRICS,
    BinaryMetric,
    Counts,
    _metric,
    binary_metric_values,
    pneumonia_probability,
    pneumonia_scores,
)
from pneumozoo.evaluation.report import EvaluationReport


def random_case(seed: int, n: int = 250, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Labels 0..k-1 and informative softmax outputs with tied scores."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    z = rng.normal(0, 1.2, (n, k))
    z[np.arange(n), y] += 1.3
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return y, np.round(p, 2) / np.round(p, 2).sum(axis=1, keepdims=True)


# --- the registry ------------------------------------------------------------------------
def test_registry_lists_each_metric_once_in_report_order() -> None:
    names = list(BINARY_METRICS)
    assert names == ["accuracy", "sensitivity", "specificity", "precision", "npv", "f1", "auc",
                     "pr_auc"]
    assert len(set(names)) == len(names)
    assert tuple(names) == BOOTSTRAP_METRICS
    assert len({id(m.formula) for m in BINARY_METRICS.values()}) == len(names)
    assert len({m.label for m in BINARY_METRICS.values()}) == len(names)
    for name, metric in BINARY_METRICS.items():
        assert metric.name == name and metric.uses in ("counts", "scores") and metric.description
    with pytest.raises(ValueError, match="twice"):
        _metric("f1", "F1 again", "counts", "a second F1")(lambda c: c.tp)


def test_every_registered_metric_reaches_point_bootstrap_and_report() -> None:
    y, p = random_case(0)
    point = binary_metrics(y, pneumonia_scores(p), 0.5)
    ci = bootstrap_ci(y, p, threshold=0.5, n_boot=50)
    report = report_from_predictions(y, p, ["normal", "pneumonia"])
    fields = EvaluationReport.__dataclass_fields__
    for name in BINARY_METRICS:
        assert name in point and name in ci and name in fields, name
        assert report.metric(name) == point[name]


def test_a_new_metric_is_added_in_one_place(monkeypatch: pytest.MonkeyPatch) -> None:
    youden = BinaryMetric("youden", "Youden's J", "counts",
                          lambda c: BINARY_METRICS["sensitivity"].formula(c)
                          + BINARY_METRICS["specificity"].formula(c) - 1.0, "sens + spec - 1")
    monkeypatch.setitem(BINARY_METRICS, "youden", youden)
    y, p = random_case(1)
    point = binary_metrics(y, p, 0.5)
    assert point["youden"] == pytest.approx(point["sensitivity"] + point["specificity"] - 1.0)
    assert "youden" in bootstrap_ci(y, p, threshold=0.5, n_boot=50)
    report = report_from_predictions(y, p, ["normal", "pneumonia"])
    assert report.extra["metrics"]["youden"] == point["youden"]
    assert report.metric("youden") == point["youden"]
    assert "Youden's J" in report.to_text()
    assert youden(y, p, 0.5) == point["youden"]


# --- point == bootstrap ------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.8, 1.01])
def test_point_estimate_equals_the_bootstraps_all_ones_resample(seed: int, threshold: float) -> None:
    y, p = random_case(seed, k=3 if seed % 2 else 2)
    s = pneumonia_scores(p)
    point = binary_metrics(y, p, threshold)
    boot = _weighted_metrics(np.ones((1, len(y))), (y > 0).astype(float), s, threshold)
    assert set(boot) == set(BINARY_METRICS)
    for name in BINARY_METRICS:
        a, b = point[name], float(boot[name][0])
        assert (math.isnan(a) and math.isnan(b)) or a == b, (name, a, b)


@pytest.mark.parametrize("seed", range(3))
def test_each_bootstrap_resample_equals_the_point_estimate_of_that_resample(seed: int) -> None:
    y, p = random_case(seed, n=120)
    s = pneumonia_scores(p)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), size=(20, len(y)))
    weights = np.stack([np.bincount(row, minlength=len(y)) for row in idx]).astype(float)
    for threshold in (0.2, 0.5, 0.97):
        boot = _weighted_metrics(weights, (y > 0).astype(float), s, threshold)
        for r in range(len(idx)):
            want = binary_metrics(y[idx[r]], s[idx[r]], threshold)
            for name in BINARY_METRICS:
                got = float(boot[name][r])
                assert (math.isnan(got) and math.isnan(want[name])) or got == pytest.approx(
                    want[name], abs=1e-12), (name, r, threshold)


@pytest.mark.parametrize("seed", range(3))
def test_point_estimates_agree_with_scikit_learn(seed: int) -> None:
    y, p = random_case(seed)
    s = pneumonia_scores(p)
    yb = (y > 0).astype(int)
    pred = (s >= 0.5).astype(int)
    m = binary_metrics(y, s, 0.5)
    assert m["accuracy"] == pytest.approx(accuracy_score(yb, pred))
    assert m["sensitivity"] == pytest.approx(recall_score(yb, pred))
    assert m["specificity"] == pytest.approx(recall_score(1 - yb, 1 - pred))
    assert m["precision"] == pytest.approx(precision_score(yb, pred))
    assert m["npv"] == pytest.approx(precision_score(1 - yb, 1 - pred))
    assert m["f1"] == pytest.approx(f1_score(yb, pred))
    assert m["auc"] == pytest.approx(roc_auc_score(yb, s), abs=1e-12)
    assert m["pr_auc"] == pytest.approx(average_precision_score(yb, s), abs=1e-12)


# --- edge cases: one rule, everywhere -----------------------------------------------------
def test_f1_is_zero_without_true_positives_in_point_and_bootstrap() -> None:
    y = np.array([0, 0, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.35, 0.4])  # threshold 0.5: everything called normal
    point = binary_metrics(y, s, 0.5)
    assert point["f1"] == 0.0 and point["sensitivity"] == 0.0 and math.isnan(point["precision"])
    assert point["f1"] == f1_score((y > 0).astype(int), (s >= 0.5).astype(int), zero_division=0)
    dist = bootstrap_distribution(y, s, threshold=0.5, n_boot=300)
    has_pos = ~np.isnan(dist["sensitivity"])
    assert has_pos.any() and (dist["f1"][has_pos] == 0.0).all()
    assert np.isnan(dist["precision"]).all()
    assert bootstrap_ci(y, s, threshold=0.5, n_boot=300)["f1"] == [0.0, 0.0]
    # The same rule per class of a multi-class report.
    m = multiclass_metrics([0, 1, 2], [[.8, .1, .1], [.1, .8, .1], [.1, .8, .1]], ["a", "b", "c"])
    assert m["per_class"]["c"]["f1"] == 0.0 and math.isnan(m["per_class"]["c"]["precision"])
    assert m["macro_f1"] == pytest.approx((1.0 + 2 / 3 + 0.0) / 3)


def test_undefined_metrics_are_nan_and_null_in_json() -> None:
    # Only normal films, all called normal: nothing about pneumonia is defined.
    point = binary_metrics([0, 0, 0], [0.1, 0.2, 0.3], 0.5)
    for name in ("sensitivity", "precision", "f1", "auc", "pr_auc"):
        assert math.isnan(point[name]), name
    assert point["specificity"] == 1.0 and point["accuracy"] == 1.0 and point["npv"] == 1.0
    assert all(math.isnan(v) for v in bootstrap_ci([0, 0, 0], [0.1, 0.2, 0.3], threshold=0.5,
                                                    n_boot=20)["f1"])
    report = report_from_predictions([0, 0, 0], [[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]],
                                     ["normal", "pneumonia"])
    data = json.loads(report.to_json())
    assert data["f1"] is None and data["sensitivity"] is None and data["specificity"] == 1.0
    assert "n/a" in report.to_text()
    empty = binary_metrics([], [], 0.5)
    assert empty["n"] == 0 and all(math.isnan(empty[k]) for k in BINARY_METRICS)


def test_thresholds_use_the_registered_formulas() -> None:
    from pneumozoo.evaluation.thresholds import _curve

    y, p = random_case(2)
    s = pneumonia_scores(p)
    thresholds, sens, spec = _curve(y, s)
    for i in (0, 5, len(thresholds) // 2, len(thresholds) - 1):
        m = binary_metrics(y, s, float(thresholds[i]))
        assert (sens[i], spec[i]) == (m["sensitivity"], m["specificity"])
    c = Counts(*(np.array([v]) for v in (3.0, 1.0, 4.0, 2.0)))
    assert BINARY_METRICS["sensitivity"].formula(c)[0] == 3 / 5


def test_binary_metric_values_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="match"):
        binary_metric_values([0, 1], [0.5], 0.5)
    with pytest.raises(ValueError, match="weights"):
        binary_metric_values([0, 1], [0.2, 0.8], 0.5, np.ones((2, 3)))
    with pytest.raises(ValueError, match="unknown"):
        binary_metric_values([0, 1], [0.2, 0.8], 0.5, names=["kappa"])


# --- P(pneumonia) ------------------------------------------------------------------------
def test_one_pneumonia_probability() -> None:
    import pneumozoo.keras_metrics

    assert pneumozoo.keras_metrics.pneumonia_probability is pneumonia_probability
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    np.testing.assert_allclose(pneumonia_probability(probs), [0.3, 0.9])
    np.testing.assert_allclose(pneumonia_probability(probs.tolist()), [0.3, 0.9])
    np.testing.assert_allclose(pneumonia_scores(probs), [0.3, 0.9])
    np.testing.assert_allclose(pneumonia_scores([0.3, 0.9]), [0.3, 0.9])
    from keras import ops

    tensor = pneumonia_probability(ops.convert_to_tensor(probs.astype("float32")))
    np.testing.assert_allclose(ops.convert_to_numpy(tensor), [0.3, 0.9], atol=1e-6)


# --- the text table ----------------------------------------------------------------------
def test_text_table_for_a_binary_model() -> None:
    y, p = random_case(3, n=300)
    report = report_from_predictions(y, p, ["normal", "pneumonia"], threshold=0.5)
    report.confidence_intervals = bootstrap_ci(y, p, threshold=0.5, n_boot=100)
    report.extra["bootstrap"] = {"n_boot": 100, "level": 0.95, "resampled": "images", "units": 300}
    report.extra["threshold_source"] = "given"
    report.extra["calibration"] = {"ece": 0.0342, "temperature": 0.8, "ece_uncalibrated": 0.0612,
                                   "view": "binary"}
    text = report.to_text()
    assert report.summary() == text
    lines = text.splitlines()
    assert lines[0] == f"300 films: {int((y == 0).sum())} normal, {int((y > 0).sum())} pneumonia"
    assert lines[1] == "threshold 0.500 on P(pneumonia), as given"
    for name, metric in BINARY_METRICS.items():
        low, high = report.confidence_intervals[name]
        row = next(line for line in lines if line.startswith(metric.label + " "))
        assert f"{getattr(report, name):.3f}" in row and f"[{low:.3f}, {high:.3f}]" in row
    assert "(95% CIs: percentile bootstrap, 100 resamples of 300 images)" in lines
    assert ("calibration error (ECE) 0.034 after temperature scaling (T=0.80), 0.061 before"
            in lines)
    assert "classes (arg-max)" not in text and "warning" not in text
    # The JSON still has every field.
    data = report.to_dict()
    for key in ("n", "threshold", *BINARY_METRICS, "confusion_matrix", "class_names",
                "class_accuracy", "macro_f1", "per_class", "class_confusion_matrix",
                "confidence_intervals", "extra"):
        assert key in data, key


def test_text_table_for_a_3_class_model_without_intervals() -> None:
    y, p = random_case(4, k=3)
    report = report_from_predictions(y, p, ["normal", "bacteria", "virus"])
    report.extra["calibration"] = {"ece": 0.05, "temperature": 1.0, "view": "top_label"}
    text = report.to_text()
    assert "normal, " in text.splitlines()[0] and "pneumonia (bacteria + virus)" in text
    assert f"all 3 classes (arg-max): accuracy {report.class_accuracy:.3f}" in text
    assert "F1 per class: normal" in text
    assert "CI" not in text and "[" not in text
    assert "calibration error (ECE top-label) 0.050, no temperature scaling" in text


@pytest.mark.parametrize(("threshold", "what"), [
    (0.999, "calls every film normal (sensitivity 0)"),
    (0.0, "calls every film pneumonia (specificity 0)"),
])
def test_text_warns_when_the_threshold_puts_every_film_in_one_class(threshold: float, what: str) -> None:
    y, p = random_case(5)
    p = 0.01 + 0.98 * p  # no score reaches 0.999
    report = report_from_predictions(y, p, ["normal", "pneumonia"], threshold=threshold)
    assert report.auc > 0.7
    text = report.to_text()
    assert what in text and "pneumozoo.evaluation.choose_threshold" in text
    # No warning when the scores do not separate the classes either.
    flat = report_from_predictions(y, np.full_like(p, 0.5), ["normal", "pneumonia"],
                                   threshold=threshold)
    assert "warning" not in flat.to_text()


def test_text_reports_the_domain_guard_and_the_in_domain_metrics() -> None:
    y, p = random_case(6)
    report = report_from_predictions(y, p, ["normal", "pneumonia"])
    report.out_of_domain_fraction = 0.125
    report.extra.update(on_out_of_domain="flag", in_domain={
        "n": 219, "accuracy": 0.91, "sensitivity": 0.9, "specificity": float("nan"), "auc": 0.95})
    text = report.to_text()
    assert "domain guard: 12.5% of films flagged out of domain, counted above" in text
    assert ("in-domain films alone (219): accuracy 0.910, sensitivity 0.900, specificity n/a, "
            "ROC AUC 0.950") in text

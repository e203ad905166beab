"""Calibration: expected calibration error, reliability curves and temperature scaling.

Two views of calibration:

- **binary** (default for models with 2 outputs, or for a 1-D array of scores): the
  predicted P(pneumonia) = 1 - P(normal) against the binary label. This is the probability
  a clinician reads and thresholds.
- **top-label** (default for 3-class models): the confidence of the arg-max class against
  whether that class is right.

Temperature scaling divides the logits by one scalar ``T`` fitted on validation data by
minimising the negative log-likelihood; it changes confidence, never the arg-max. The fitted
temperature lives in the model's ``ClassifierHead`` (see :func:`apply_temperature`),
so it is saved with the model and ``model.predict`` returns calibrated probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from scipy.optimize import minimize_scalar

from pneumozoo.data.records import targets
from pneumozoo.errors import PneumozooError, UnknownNameError
from pneumozoo.evaluation.metrics import pneumonia_scores
from pneumozoo.evaluation.scoring import FilmScores, predict_records, score_films, with_temperature
from pneumozoo.evaluation.thresholds import choose_threshold
from pneumozoo.guard import DEFAULT_QUANTILE, fit_guard
from pneumozoo.rules import TEMPERATURE_RANGE

__all__ = [
    "apply_temperature",
    "calibrate",
    "expected_calibration_error",
    "fit_temperature",
    "recalibrate",
    "reliability_curve",
    "set_temperature",
    "temperature_of",
    "uncalibrated",
]

Mode = Literal["auto", "binary", "top_label"]
_MODES = ("auto", "binary", "top_label")


def _confidence_and_outcome(y_true: Sequence[int] | np.ndarray, probabilities: np.ndarray,
                            mode: str) -> tuple[np.ndarray, np.ndarray]:
    if mode not in _MODES:
        raise UnknownNameError("calibration mode", mode, list(_MODES))
    y = np.asarray(y_true).reshape(-1).astype(int)
    p = np.asarray(probabilities, dtype=np.float64)
    if p.shape[0] != len(y):
        raise ValueError(f"{len(y)} labels but {p.shape[0]} predictions; they must match one to one")
    if p.ndim == 1:
        if mode == "top_label":
            raise ValueError("top-label calibration needs the full (n, k) softmax outputs")
        return p, (y > 0).astype(np.float64)
    if mode == "binary" or (mode == "auto" and p.shape[1] == 2):
        return pneumonia_scores(p), (y > 0).astype(np.float64)
    return p.max(axis=1), (p.argmax(axis=1) == y).astype(np.float64)


def reliability_curve(
    y_true: Sequence[int] | np.ndarray,
    probabilities: np.ndarray,
    *,
    n_bins: int = 15,
    mode: Mode | str = "auto",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean predicted probability and observed frequency in equal-width probability bins.

    Args:
        y_true: Class labels (0 normal).
        probabilities: Softmax outputs ``(n, k)`` or P(pneumonia) ``(n,)``.
        n_bins: Number of equal-width bins on [0, 1].
        mode: ``binary`` (P(pneumonia) vs label), ``top_label`` (arg-max confidence vs
            correctness) or ``auto`` (binary for 2 outputs or 1-D scores, else top-label).

    Returns:
        ``(bin_confidence, bin_accuracy, bin_counts)``, each of length ``n_bins``; empty bins
        have NaN confidence and accuracy and a count of 0.

    Raises:
        ValueError: If lengths differ or ``n_bins < 1``.

    Example:
        >>> conf, acc, counts = reliability_curve([0, 1, 1, 1], [0.2, 0.2, 0.9, 0.9], n_bins=5)
        >>> counts.tolist(), float(acc[1]), float(acc[4])
        ([0, 2, 0, 0, 2], 0.5, 1.0)
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    conf, outcome = _confidence_and_outcome(y_true, probabilities, str(mode))
    idx = np.minimum((np.clip(conf, 0.0, 1.0) * n_bins).astype(int), n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        bin_conf = np.bincount(idx, weights=conf, minlength=n_bins) / counts
        bin_acc = np.bincount(idx, weights=outcome, minlength=n_bins) / counts
    return bin_conf, bin_acc, counts


def expected_calibration_error(
    y_true: Sequence[int] | np.ndarray,
    probabilities: np.ndarray,
    n_bins: int = 15,
    *,
    mode: Mode | str = "auto",
) -> float:
    """Expected calibration error: the count-weighted mean gap of the reliability curve.

    ``ECE = sum_b (n_b / n) * |mean confidence_b - observed frequency_b|`` over equal-width
    bins. For binary models (and 1-D scores) it is computed on P(pneumonia) against the
    pneumonia label; for 3-class models on the top-label confidence (see ``mode``).

    Args:
        y_true: Class labels (0 normal).
        probabilities: Softmax outputs ``(n, k)`` or P(pneumonia) ``(n,)``.
        n_bins: Number of equal-width bins.
        mode: ``auto``, ``binary`` or ``top_label`` (as :func:`reliability_curve`).

    Returns:
        The ECE in [0, 1]; 0 is perfect calibration.

    Raises:
        ValueError: If lengths differ or the input is empty.

    Example:
        >>> expected_calibration_error([0, 1, 1, 1], [0.5, 0.5, 1.0, 1.0], n_bins=10)
        0.0
    """
    conf, acc, counts = reliability_curve(y_true, probabilities, n_bins=n_bins, mode=mode)
    total = counts.sum()
    if total == 0:
        raise ValueError("cannot compute a calibration error without predictions")
    used = counts > 0
    return float(np.sum(counts[used] * np.abs(conf[used] - acc[used])) / total)


def _as_logits(values: np.ndarray, kind: str) -> np.ndarray:
    z = np.asarray(values, dtype=np.float64)
    if z.ndim == 1:  # P(pneumonia) scores
        z = np.stack([1.0 - z, z], axis=1)
        kind = "probabilities" if kind == "auto" else kind
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f"expected (n, k>=2) logits or probabilities, got shape {z.shape}")
    if kind == "auto":
        looks_like_probs = bool(np.all(z >= 0) and np.all(z <= 1)
                                and np.allclose(z.sum(axis=1), 1.0, atol=1e-3))
        kind = "probabilities" if looks_like_probs else "logits"
    if kind == "probabilities":
        # Softmax is shift invariant: log(p) are logits up to a per-row constant.
        return np.log(np.clip(z, 1e-12, 1.0))
    if kind != "logits":
        raise UnknownNameError("input kind", kind, ["auto", "logits", "probabilities"])
    return z


def _nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(y)), y]))


def fit_temperature(
    logits_or_probs: np.ndarray,
    y_true: Sequence[int] | np.ndarray,
    *,
    kind: Literal["auto", "logits", "probabilities"] | str = "auto",
    bounds: tuple[float, float] = (0.05, 20.0),
) -> float:
    """Fit the softmax temperature minimising the negative log-likelihood on validation data.

    Logits are best (take them from the model's ``logits`` layer); probabilities work too,
    through ``log(p)`` (exact, as softmax is shift invariant), but a model that already has a
    temperature ``T0`` then yields a *relative* temperature: the absolute one is ``T0 * T``
    (:func:`calibrate` does that for you).

    Args:
        logits_or_probs: ``(n, k)`` logits or softmax outputs, or ``(n,)`` P(pneumonia).
        y_true: Class labels ``0..k-1``.
        kind: ``auto`` (probabilities when every row is in [0, 1] and sums to 1), ``logits``
            or ``probabilities``.
        bounds: Search range of the temperature. On separable data the NLL keeps falling as
            ``T`` shrinks and the lower bound is returned.

    Returns:
        The temperature ``T > 0`` (``> 1`` softens an over-confident model).

    Raises:
        ValueError: If shapes disagree or a label is out of range.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=(2000, 2)) * 3
        >>> p = np.exp(z / 2) / np.exp(z / 2).sum(1, keepdims=True)  # true temperature 2
        >>> y = (rng.random(2000) < p[:, 1]).astype(int)
        >>> abs(fit_temperature(z, y, kind="logits") - 2) < 0.4
        True
    """
    z = _as_logits(logits_or_probs, str(kind))
    y = np.asarray(y_true).reshape(-1).astype(int)
    if len(y) != len(z):
        raise ValueError(f"{len(y)} labels but {len(z)} predictions; they must match one to one")
    if len(y) == 0:
        raise ValueError("cannot fit a temperature without validation predictions")
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise ValueError(f"labels must be in 0..{z.shape[1] - 1} for {z.shape[1]} classes")
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    res = minimize_scalar(lambda log_t: _nll(z, y, math.exp(log_t)), bounds=(lo, hi),
                          method="bounded", options={"xatol": 1e-5})
    return float(math.exp(float(res.x)))


def temperature_of(model: Any) -> float:
    """The softmax temperature stored in a zoo model (1.0 for an uncalibrated model).

    Raises:
        PneumozooError: If ``model`` is not a pneumozoo model.
    """
    from pneumozoo.models.classifier import as_classifier  # lazy: loads Keras

    return as_classifier(model).temperature


def uncalibrated(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Undo a temperature: the probabilities the model would give with ``T = 1``.

    ``softmax(z / T) -> softmax(z)`` through ``log(p) * T`` (exact up to float rounding).

    Example:
        >>> import numpy as np
        >>> uncalibrated(np.array([[0.5, 0.5]]), 2.0).tolist()
        [[0.5, 0.5]]
    """
    return with_temperature(probabilities, temperature, 1.0)


def apply_temperature(model: Any, temperature: float) -> Any:
    """A copy of ``model`` whose softmax uses ``temperature`` (the absolute value, not a factor).

    The temperature lives in the model's :class:`~pneumozoo.models.ClassifierHead`, so it is
    saved with the model and ``model.predict`` and :func:`pneumozoo.predict` return
    calibrated probabilities. For a binary model the threshold is moved so that every
    decision stays the same (for 3-class models it is kept; choose it again on calibrated
    validation outputs). The original model is left unchanged.

    Args:
        model: A pneumozoo model.
        temperature: The new temperature (see :data:`~pneumozoo.models.head.TEMPERATURE_RANGE`).

    Returns:
        The calibrated copy.

    Raises:
        ModelConfigError: If ``temperature`` is out of range or not finite.
        PneumozooError: If ``model`` is not a pneumozoo model.

    Example:
        >>> calibrated = apply_temperature(model, 1.7)  # doctest: +SKIP
        >>> temperature_of(calibrated)  # doctest: +SKIP
        1.7
    """
    from pneumozoo.models.classifier import as_classifier  # lazy: loads Keras

    clf = as_classifier(model)
    new = type(clf).from_config(clf.get_config())
    new.set_weights(clf.get_weights())
    set_temperature(new, temperature)
    return new


def set_temperature(model: Any, temperature: float) -> None:
    """Set a model's temperature in place, moving a binary model's threshold with it so that
    every decision stays the same (what :func:`apply_temperature` does to its copy).

    Args:
        model: A pneumozoo model (changed in place).
        temperature: The new absolute temperature.

    Raises:
        ModelConfigError: If ``temperature`` is out of range or not finite.
    """
    # lazy: the model classes load Keras
    from pneumozoo.models.classifier import as_classifier
    from pneumozoo.models.head import check_temperature

    clf = as_classifier(model)
    head = clf.head
    old = head.temperature
    new = check_temperature(temperature)
    threshold = head.threshold
    if clf.task == "binary" and 0.0 < threshold < 1.0:
        # P = sigmoid(d / T): keep d = T_old * logit(threshold) on the boundary.
        d = old * math.log(threshold / (1.0 - threshold))
        threshold = 1.0 / (1.0 + math.exp(-d / new))
    head.temperature = new
    head.threshold = threshold


def calibrate(model: Any, records: Sequence[Any], *, batch_size: int = 32) -> Any:
    """Fit a temperature on validation records and return the calibrated model.

    Args:
        model: A zoo model (its current temperature is taken into account).
        records: Labelled validation :class:`pneumozoo.data.Record` s, never the test set.
        batch_size: Inference batch size.

    Returns:
        :func:`apply_temperature` of the fitted absolute temperature (a calibrated copy).

    Example:
        >>> calibrated = calibrate(model, val_records)  # doctest: +SKIP
    """
    from pneumozoo.models.classifier import as_classifier  # lazy: loads Keras

    task = as_classifier(model).task
    probs = predict_records(model, records, batch_size=batch_size)
    relative = fit_temperature(probs, targets(records, task), kind="probabilities")
    return apply_temperature(model, temperature_of(model) * relative)


def recalibrate(
    model: Any,
    validation: Sequence[Any],
    *,
    train: Sequence[Any] | None = None,
    threshold_rule: str = "youden-margin",
    guard_quantile: float | None = None,
    batch_size: int = 32,
    scores: FilmScores | None = None,
) -> dict[str, Any]:
    """Refit a model's temperature, threshold and domain guard on data, in place.

    Every trained or fine-tuned model ends here (:func:`pneumozoo.fit` calls it when given
    validation records), so no model keeps the stale settings of the model it started from:

    1. the softmax temperature minimising the validation NLL;
    2. the decision threshold, by ``threshold_rule`` on the calibrated validation scores
       (see :func:`pneumozoo.evaluation.choose_threshold`);
    3. the domain guard (:func:`pneumozoo.guard.fit_guard`), fitted on ``train``'s features
       with its cut-off at ``guard_quantile`` of the validation films' distances (without
       ``train``: fitted on the validation films themselves).

    Args:
        model: A pneumozoo model.
        validation: Labelled validation records (never the test split).
        train: The records the model was trained on, for the guard.
        threshold_rule: The declared threshold rule.
        guard_quantile: The guard's cut-off quantile (default
            :data:`pneumozoo.guard.DEFAULT_QUANTILE`).
        batch_size: Inference batch size.
        scores: The validation films' :class:`~pneumozoo.evaluation.scoring.FilmScores` by
            this model's current weights, when the caller has them (:func:`pneumozoo.run.run_recipe`
            scores them once and passes them to every consumer); otherwise they are scored
            here, once.

    Returns:
        What was fitted: ``temperature``, ``threshold``, ``threshold_rule``, ``guard`` and
        the validation ``ece`` before and after.

    Example:
        >>> fitted = recalibrate(model, val_records, train=train_records)  # doctest: +SKIP
        >>> fitted["threshold"], model.threshold  # doctest: +SKIP
    """
    from pneumozoo.models.classifier import as_classifier  # lazy: loads Keras

    clf = as_classifier(model)
    if not validation:
        raise PneumozooError("recalibrate needs labelled validation records")
    y: np.ndarray = np.asarray(targets(validation, clf.task))
    if scores is None:
        scores = score_films(clf, validation, batch_size=batch_size)
    if len(scores.probabilities) != len(y):
        raise PneumozooError(f"{len(scores.probabilities)} validation scores for {len(y)} films")
    raw = scores.at_temperature(clf.temperature)
    # Relative to the model's current temperature; kept inside the head's range (a separable
    # validation set drives the fitted temperature to the search bound).
    lo, hi = TEMPERATURE_RANGE
    temperature = clf.temperature * fit_temperature(raw, y, kind="probabilities")
    set_temperature(clf, min(max(temperature, lo), hi))
    calibrated = scores.at_temperature(clf.temperature)  # no second pass through the model
    op = choose_threshold(y, pneumonia_scores(calibrated), method=threshold_rule)
    clf.threshold = float(op.threshold)
    clf.head.prior = float(np.clip(np.mean(y > 0), 0.01, 0.99))
    val_features = scores.features  # the temperature does not change them
    fit_features = (score_films(clf, train, batch_size=batch_size).features if train
                    else val_features)
    guard = fit_guard(clf, fit_features, val_features,
                      quantile=guard_quantile or DEFAULT_QUANTILE,
                      fitted_on=f"{len(fit_features)} training films; cut-off on "
                                f"{len(val_features)} validation films")
    return {"temperature": clf.temperature, "threshold": clf.threshold, "prior": clf.head.prior,
            "threshold_rule": f"{op.method} on validation", "guard": guard,
            "ece": expected_calibration_error(y, calibrated),
            "ece_uncalibrated": expected_calibration_error(y, raw)}

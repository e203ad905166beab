"""Operating points: choose the decision threshold on P(pneumonia) from validation data.

A model predicts pneumonia when ``score >= threshold``. Candidate thresholds are the
distinct scores themselves (plus one just above the largest, which predicts no pneumonia),
so the sensitivity and specificity reported for a chosen threshold are exactly those
measured on the data it was chosen on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from pneumozoo.errors import UnknownNameError
from pneumozoo.evaluation.metrics import BINARY_METRICS, Counts, pneumonia_scores

__all__ = ["THRESHOLD_METHODS", "OperatingPoint", "choose_threshold", "operating_points"]

Method = Literal["youden", "youden-margin", "calibrated", "sensitivity", "specificity"]
#: Methods :func:`choose_threshold` knows.
THRESHOLD_METHODS: tuple[str, ...] = ("youden", "youden-margin", "calibrated", "sensitivity",
                                      "specificity")


@dataclass(frozen=True)
class OperatingPoint:
    """A decision threshold and what it achieves on the data it was chosen on.

    Attributes:
        threshold: Predict pneumonia when P(pneumonia) >= threshold.
        sensitivity: Share of pneumonia cases predicted pneumonia at that threshold.
        specificity: Share of normal cases predicted normal at that threshold.
        method: ``youden``, ``youden-margin``, ``calibrated``, ``sensitivity`` or
            ``specificity``.
        target: The asked sensitivity or specificity (``None`` for ``youden``).
    """

    threshold: float
    sensitivity: float
    specificity: float
    method: str
    target: float | None = None

    @property
    def youden_j(self) -> float:
        """Youden's J statistic: sensitivity + specificity - 1."""
        return self.sensitivity + self.specificity - 1.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _curve(y_true: Sequence[int] | np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate thresholds (descending) with the sensitivity and specificity of each."""
    y = np.asarray(y_true).reshape(-1) > 0
    s = pneumonia_scores(np.asarray(scores, dtype=np.float64)).reshape(-1)
    if len(y) != len(s):
        raise ValueError(f"{len(y)} labels but {len(s)} scores; they must match one to one")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("choosing a threshold needs both normal and pneumonia cases "
                         f"(got {n_neg} normal, {n_pos} pneumonia)")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinite values")
    uniq = np.unique(s)[::-1]  # descending
    above_max = np.nextafter(uniq[0], np.inf)
    thresholds = np.r_[above_max, uniq]
    # Counts of scores >= t for every candidate t, by class.
    pos_sorted = np.sort(s[y])
    neg_sorted = np.sort(s[~y])
    tp = (n_pos - np.searchsorted(pos_sorted, thresholds, side="left")).astype(np.float64)
    fp = (n_neg - np.searchsorted(neg_sorted, thresholds, side="left")).astype(np.float64)
    # One "resample" per candidate threshold, through the registered formulas.
    counts = Counts(tp=tp, fp=fp, tn=n_neg - fp, fn=n_pos - tp)
    return (thresholds, BINARY_METRICS["sensitivity"].formula(counts),
            BINARY_METRICS["specificity"].formula(counts))


def _margin_threshold(thresholds: np.ndarray, i: int) -> float:
    """Halfway, in logit space, between candidate ``i`` and the next lower score."""
    if i + 1 >= len(thresholds):
        return float(thresholds[i])
    hi, lo = float(thresholds[i]), float(thresholds[i + 1])  # descending candidates
    eps = 1e-7
    logit = lambda p: float(np.log(np.clip(p, eps, 1 - eps) / np.clip(1 - p, eps, 1 - eps)))  # noqa: E731
    mid = 0.5 * (logit(hi) + logit(lo))
    t = float(1.0 / (1.0 + np.exp(-mid)))
    # Keep the decisions made on the data: lo < t <= hi.
    return min(max(t, float(np.nextafter(lo, np.inf))), hi)


def choose_threshold(
    y_true: Sequence[int] | np.ndarray,
    scores: np.ndarray,
    *,
    method: Method | str = "youden",
    target: float | None = None,
) -> OperatingPoint:
    """Pick a decision threshold on validation data.

    - ``"sensitivity"``: the highest threshold whose sensitivity is at least ``target``
      (the most specific model that still finds ``target`` of the pneumonia cases).
    - ``"specificity"``: the lowest threshold whose specificity is at least ``target``
      (the most sensitive model that still clears ``target`` of the normal films).
    - ``"youden"``: the threshold maximising sensitivity + specificity - 1; ties go to the
      lower threshold (higher sensitivity: a missed pneumonia costs more than a recall).
    - ``"youden-margin"``: maximise J too, but take the middle of the maximising thresholds
      and put the threshold halfway (in logit space) between the scores on either side of
      it: the same decisions on this data, with the largest margin for new data. Near-perfect
      validation sets leave a wide range of equally good thresholds; this picks its centre
      instead of its edge.
    - ``"calibrated"``: 0.5 on the temperature-calibrated P(pneumonia), chosen on no data:
      pneumonia whenever it is the more probable class at the prevalence the model was
      calibrated under (its validation split's, recorded as ``model.head.prior``; move it to
      another stated prevalence with :func:`pneumozoo.adapt.shifted_threshold`). The data
      only measure what it gives.

    Args:
        y_true: Labels: 0 normal, anything else pneumonia.
        scores: P(pneumonia) ``(n,)`` or softmax outputs ``(n, k)`` (class 0 normal).
        method: ``youden``, ``youden-margin``, ``calibrated``, ``sensitivity`` or
            ``specificity``.
        target: Required sensitivity or specificity in [0, 1] for those methods.

    Returns:
        The :class:`OperatingPoint` with the sensitivity and specificity it reaches here.

    Raises:
        UnknownNameError: For an unknown method.
        ValueError: If ``target`` is missing or outside [0, 1], lengths differ, or a class
            is absent.

    Example:
        >>> y = [0, 0, 0, 1, 1, 1, 1]
        >>> s = [0.1, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9]
        >>> choose_threshold(y, s, method="sensitivity", target=0.75).threshold
        0.7
    """
    if method not in THRESHOLD_METHODS:
        raise UnknownNameError("threshold method", str(method), list(THRESHOLD_METHODS))
    if method not in ("youden", "youden-margin", "calibrated"):
        if target is None:
            raise ValueError(f"method={method!r} needs a target {method} in [0, 1]")
        if not 0.0 <= target <= 1.0:
            raise ValueError(f"target {method} must be in [0, 1], got {target}")
    thresholds, sens, spec = _curve(y_true, scores)
    goal = float(target) if target is not None else 0.0
    if method == "calibrated":
        # Candidates descend: the lowest one >= 0.5 makes the decisions of 0.5 itself; with
        # none, candidate 0 (above every score) predicts no pneumonia, as 0.5 does.
        at_or_above = np.flatnonzero(thresholds >= 0.5)
        i = int(at_or_above[-1]) if len(at_or_above) else 0
        return OperatingPoint(threshold=0.5, sensitivity=float(sens[i]),
                              specificity=float(spec[i]), method="calibrated")
    if method == "sensitivity":
        # Sensitivity grows as the threshold falls: first (highest) one reaching the target.
        i = int(np.argmax(sens >= goal - 1e-12))
    elif method == "specificity":
        # Specificity falls with the threshold: last (lowest) one still reaching the target.
        i = int(np.flatnonzero(spec >= goal - 1e-12)[-1])
    else:
        j = sens + spec - 1.0
        best = np.flatnonzero(j >= j.max() - 1e-12)
        i = int(best[-1]) if method == "youden" else int(best[len(best) // 2])
        if method == "youden-margin":
            return OperatingPoint(threshold=_margin_threshold(thresholds, i), sensitivity=float(sens[i]),
                                  specificity=float(spec[i]), method=str(method))
    return OperatingPoint(threshold=float(thresholds[i]), sensitivity=float(sens[i]),
                          specificity=float(spec[i]), method=str(method),
                          target=None if target is None or method.startswith("youden") else float(target))


def operating_points(
    y_true: Sequence[int] | np.ndarray,
    scores: np.ndarray,
    *,
    targets: Sequence[float] = (0.90, 0.95, 0.99),
) -> list[OperatingPoint]:
    """A table of operating points: Youden's, then each target sensitivity and specificity.

    Args:
        y_true: Labels: 0 normal, anything else pneumonia.
        scores: P(pneumonia) ``(n,)`` or softmax outputs ``(n, k)``.
        targets: Sensitivities and specificities to reach.

    Returns:
        ``1 + 2 * len(targets)`` operating points.

    Raises:
        ValueError: As :func:`choose_threshold`.

    Example:
        >>> pts = operating_points([0, 0, 1, 1], [0.2, 0.6, 0.5, 0.9], targets=[1.0])
        >>> [(p.method, p.threshold) for p in pts]
        [('youden', 0.5), ('sensitivity', 0.5), ('specificity', 0.9)]
    """
    points = [choose_threshold(y_true, scores, method="youden")]
    for kind in ("sensitivity", "specificity"):
        points.extend(choose_threshold(y_true, scores, method=kind, target=t) for t in targets)
    return points

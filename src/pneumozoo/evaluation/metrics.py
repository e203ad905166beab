"""Classification metrics from labels and probabilities (no Keras, no TensorFlow).

**One definition per metric.** Every binary metric (normal vs pneumonia) is registered once,
in :data:`BINARY_METRICS`, as a formula of *weighted* counts with one row of weights per
resample. The point estimate (:func:`binary_metrics`) is the one resample whose weights are
all 1; the bootstrap (:mod:`pneumozoo.evaluation.bootstrap`) passes one row of weights per
resample (how often each film was drawn). Point estimates and intervals therefore compute
the same thing by construction. To add a metric, decorate its formula with ``@_metric`` below:
it then appears in :func:`binary_metrics`, in the bootstrap intervals and in the report's
table (as ``extra["metrics"]`` in the JSON until :class:`~pneumozoo.evaluation.EvaluationReport`
gets a field of that name).

**Undefined metrics are NaN, never 0.** A metric whose denominator is zero - sensitivity
without pneumonia cases, precision when no film is called pneumonia, ROC/PR AUC with one
class only - is ``nan`` (``null`` in JSON reports), in point estimates and in every bootstrap
resample alike (undefined resamples are left out of an interval). F1 is
``2 TP / (2 TP + FP + FN)``: it is 0 when there are pneumonia cases or pneumonia calls but no
true positive (even though precision may then be undefined), and NaN only when there are
neither.

**P(pneumonia)** of softmax outputs is ``1 - P(normal)`` (class 0 is normal), computed by
:func:`pneumonia_probability` alone; :func:`pneumonia_scores` is its NumPy front end that
also passes 1-D scores through.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
from sklearn.metrics import confusion_matrix

from pneumozoo.rules import decide, pneumonia_probability, pneumonia_scores

__all__ = [
    "BINARY_METRICS",
    "BinaryMetric",
    "Counts",
    "ScoreGroups",
    "binary_metric_values",
    "binary_metrics",
    "multiclass_metrics",
    "pneumonia_probability",
    "pneumonia_scores",
]


# --- P(pneumonia) --------------------------------------------------------------------------
# --- weighted counts -----------------------------------------------------------------------
class Counts(NamedTuple):
    """Weighted confusion counts at a threshold, one entry per resample (shape ``(b,)``)."""

    tp: np.ndarray
    fp: np.ndarray
    tn: np.ndarray
    fn: np.ndarray

    @property
    def n(self) -> np.ndarray:
        """Total weight (number of films) per resample."""
        return self.tp + self.fp + self.tn + self.fn


class ScoreGroups(NamedTuple):
    """Weighted pneumonia (``pos``) and normal (``neg``) counts per distinct score.

    Both are ``(b, groups)``, groups in ascending score order (tied scores form one group).
    """

    pos: np.ndarray
    neg: np.ndarray


def _div(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """``a / b``, NaN where ``b`` is 0 (an undefined metric)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


def _counts(y: np.ndarray, pred: np.ndarray, w: np.ndarray) -> Counts:
    y, pred = y.astype(np.float64), pred.astype(np.float64)
    return Counts(tp=w @ (y * pred), fp=w @ ((1.0 - y) * pred),
                  tn=w @ ((1.0 - y) * (1.0 - pred)), fn=w @ (y * (1.0 - pred)))


def _score_groups(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> ScoreGroups:
    if len(s) == 0:
        empty = np.zeros((w.shape[0], 0))
        return ScoreGroups(empty, empty)
    order = np.argsort(s, kind="mergesort")
    s_sorted = s[order]
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    yo = y[order].astype(np.float64)
    pos = np.add.reduceat(w[:, order] * yo, starts, axis=1)
    neg = np.add.reduceat(w[:, order] * (1.0 - yo), starts, axis=1)
    return ScoreGroups(pos, neg)


# --- the registry --------------------------------------------------------------------------
@dataclass(frozen=True)
class BinaryMetric:
    """One registered binary metric (normal vs pneumonia).

    Attributes:
        name: Key in reports, JSON and :data:`BINARY_METRICS` (e.g. ``"sensitivity"``).
        label: How the report's text table names it (e.g. ``"precision (PPV)"``).
        uses: ``"counts"``: a formula of the confusion counts at the threshold;
            ``"scores"``: a rank metric of the scores (threshold-free).
        formula: :class:`Counts` or :class:`ScoreGroups` -> one value per resample.
        description: One line saying what it measures and when it is undefined.
    """

    name: str
    label: str
    uses: Literal["counts", "scores"]
    formula: Callable[[Any], np.ndarray]
    description: str

    def __call__(self, y_true: Sequence[int] | np.ndarray, scores: np.ndarray | Sequence[float],
                 threshold: float = 0.5) -> float:
        """The metric of one set of predictions.

        Args:
            y_true: Labels: 0 normal, anything else pneumonia.
            scores: P(pneumonia) ``(n,)`` or softmax outputs ``(n, k)``.
            threshold: Predict pneumonia when ``score >= threshold`` (unused by rank metrics).

        Returns:
            The value, ``nan`` when undefined.
        """
        return float(binary_metric_values(y_true, scores, threshold, names=[self.name])[self.name][0])


#: Every binary metric, by name, in report order. Filled by ``@_metric`` below only.
BINARY_METRICS: dict[str, BinaryMetric] = {}


def _metric(name: str, label: str, uses: Literal["counts", "scores"],
            description: str) -> Callable[[Callable[[Any], np.ndarray]], Callable[[Any], np.ndarray]]:
    def register(formula: Callable[[Any], np.ndarray]) -> Callable[[Any], np.ndarray]:
        if name in BINARY_METRICS:
            raise ValueError(f"binary metric {name!r} is registered twice")
        BINARY_METRICS[name] = BinaryMetric(name, label, uses, formula, description)
        return formula

    return register


@_metric("accuracy", "accuracy", "counts", "share of films classified right; NaN without films")
def _accuracy(c: Counts) -> np.ndarray:
    return _div(c.tp + c.tn, c.n)


@_metric("sensitivity", "sensitivity", "counts",
         "share of pneumonia cases called pneumonia (recall); NaN without pneumonia cases")
def _sensitivity(c: Counts) -> np.ndarray:
    return _div(c.tp, c.tp + c.fn)


@_metric("specificity", "specificity", "counts",
         "share of normal films called normal; NaN without normal films")
def _specificity(c: Counts) -> np.ndarray:
    return _div(c.tn, c.tn + c.fp)


@_metric("precision", "precision (PPV)", "counts",
         "share of pneumonia calls that are pneumonia; NaN when nothing is called pneumonia")
def _precision(c: Counts) -> np.ndarray:
    return _div(c.tp, c.tp + c.fp)


@_metric("npv", "NPV", "counts",
         "share of normal calls that are normal; NaN when nothing is called normal")
def _npv(c: Counts) -> np.ndarray:
    return _div(c.tn, c.tn + c.fn)


@_metric("f1", "F1", "counts",
         "2TP / (2TP + FP + FN); 0 without true positives, NaN without pneumonia cases or calls")
def _f1(c: Counts) -> np.ndarray:
    return _div(2.0 * c.tp, 2.0 * c.tp + c.fp + c.fn)


@_metric("auc", "ROC AUC", "scores",
         "area under the ROC curve (ties count half); NaN unless both classes are present")
def _roc_auc(g: ScoreGroups) -> np.ndarray:
    # Weighted Mann-Whitney: each pneumonia case beats the normals scored lower, ties half.
    total_pos, total_neg = g.pos.sum(axis=1), g.neg.sum(axis=1)
    neg_below = np.cumsum(g.neg, axis=1) - g.neg
    return _div(np.sum(g.pos * (neg_below + 0.5 * g.neg), axis=1), total_pos * total_neg)


@_metric("pr_auc", "PR AUC", "scores",
         "average precision (as scikit-learn); NaN unless both classes are present")
def _average_precision(g: ScoreGroups) -> np.ndarray:
    # Descending thresholds; the precision at each score group weighted by its recall gain.
    pos_desc, neg_desc = g.pos[:, ::-1], g.neg[:, ::-1]
    tp, fp = np.cumsum(pos_desc, axis=1), np.cumsum(neg_desc, axis=1)
    gain = np.nan_to_num(pos_desc * _div(tp, tp + fp))
    ap = _div(gain.sum(axis=1), g.pos.sum(axis=1))
    return np.where(g.neg.sum(axis=1) > 0, ap, np.nan)


# --- computing them ------------------------------------------------------------------------
def binary_metric_values(
    y_true: Sequence[int] | np.ndarray,
    scores: np.ndarray | Sequence[float],
    threshold: float,
    weights: np.ndarray | None = None,
    *,
    names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Registered binary metrics for each row of a weight matrix (vectorised bootstrap core).

    Args:
        y_true: Labels ``(n,)``: 0 normal, anything else pneumonia.
        scores: P(pneumonia) ``(n,)`` or softmax outputs ``(n, k)``.
        threshold: Predict pneumonia when ``score >= threshold``.
        weights: ``(b, n)`` weights (how often each film counts, per resample); ``None`` is
            one resample of weight 1 per film, i.e. the point estimate.
        names: Metrics to compute (default: all of :data:`BINARY_METRICS`, in order).

    Returns:
        Metric name -> ``(b,)`` values, NaN where undefined.

    Raises:
        ValueError: If lengths differ or a name is not registered.

    Example:
        >>> binary_metric_values([0, 1, 1], [0.2, 0.4, 0.9], 0.5)["sensitivity"].tolist()
        [0.5]
    """
    y = np.asarray(y_true).reshape(-1) > 0
    s = pneumonia_scores(scores).reshape(-1)
    if len(y) != len(s):
        raise ValueError(f"{len(y)} labels but {len(s)} scores; they must match one to one")
    w = np.ones((1, len(y))) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != len(y):
        raise ValueError(f"weights must be (resamples, {len(y)}), got shape {w.shape}")
    selected = list(BINARY_METRICS) if names is None else list(names)
    unknown = [k for k in selected if k not in BINARY_METRICS]
    if unknown:
        raise ValueError(f"unknown binary metric(s) {unknown}; known: {list(BINARY_METRICS)}")
    metrics = [BINARY_METRICS[k] for k in selected]
    counts = _counts(y, decide(s, threshold), w) if any(m.uses == "counts" for m in metrics) else None
    groups = _score_groups(y, s, w) if any(m.uses == "scores" for m in metrics) else None
    return {m.name: np.asarray(m.formula(counts if m.uses == "counts" else groups), dtype=np.float64)
            for m in metrics}


def binary_metrics(y_true: Sequence[int] | np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """Normal-vs-pneumonia metrics at ``threshold`` on P(pneumonia).

    Every metric of :data:`BINARY_METRICS`, computed by the same formulas as the bootstrap;
    undefined ones are NaN (see the module docstring).

    Args:
        y_true: 0 normal, anything else pneumonia.
        scores: P(pneumonia) per sample (or softmax outputs ``(n, k)``).
        threshold: Predict pneumonia when ``score >= threshold``.

    Returns:
        ``n``, ``threshold``, ``accuracy``, ``sensitivity`` (recall of pneumonia),
        ``specificity``, ``precision``, ``npv``, ``f1``, ``auc`` (ROC), ``pr_auc`` and
        ``confusion_matrix`` (rows true normal/pneumonia, columns predicted).

    Example:
        >>> m = binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], 0.5)
        >>> m["sensitivity"], m["f1"], m["confusion_matrix"]
        (0.5, 0.5, [[1, 1], [1, 1]])
    """
    y = np.asarray(y_true).reshape(-1) > 0
    s = pneumonia_scores(scores).reshape(-1)
    values = binary_metric_values(y, s, threshold)
    c = _counts(y, decide(s, threshold), np.ones((1, len(y))))
    tn, fp, fn, tp = (round(float(v[0])) for v in (c.tn, c.fp, c.fn, c.tp))
    return {
        "n": len(y),
        "threshold": float(threshold),
        **{name: float(v[0]) for name, v in values.items()},
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }


def multiclass_metrics(y_true: Sequence[int] | np.ndarray, probabilities: np.ndarray,
                       class_names: Sequence[str]) -> dict[str, Any]:
    """Arg-max metrics over all classes: accuracy, macro F1, per-class report, confusion matrix.

    Per class (one vs rest), precision, recall (sensitivity), F1 and AUC are the registered
    :data:`BINARY_METRICS`, with their rules for undefined values; ``macro_f1`` is the mean
    over the classes whose F1 is defined.

    Args:
        y_true: Class labels ``0..k-1``.
        probabilities: Softmax outputs ``(n, k)``.
        class_names: The ``k`` class names.

    Returns:
        ``accuracy``, ``macro_f1``, ``per_class`` (name -> ``precision``, ``recall``, ``f1``,
        ``support``, ``auc``) and the k x k ``confusion_matrix`` (rows true, columns predicted).

    Example:
        >>> m = multiclass_metrics([0, 1, 2], [[.8, .1, .1], [.1, .8, .1], [.1, .8, .1]], "abc")
        >>> m["accuracy"], m["per_class"]["c"]["f1"]
        (0.6666666666666666, 0.0)
    """
    y = np.asarray(y_true, dtype=int)
    p = np.asarray(probabilities, dtype=np.float64)
    pred = p.argmax(axis=1)
    k = len(class_names)
    cm = confusion_matrix(y, pred, labels=list(range(k)))
    total = float(cm.sum())
    per_class: dict[str, dict[str, float]] = {}
    f1s = []
    for i, name in enumerate(class_names):
        tp = float(cm[i, i])
        fn, fp = float(cm[i].sum()) - tp, float(cm[:, i].sum()) - tp
        c = Counts(*(np.array([v]) for v in (tp, fp, total - tp - fn - fp, fn)))
        prec, rec, f1 = (float(BINARY_METRICS[key].formula(c)[0])
                         for key in ("precision", "sensitivity", "f1"))
        f1s.append(f1)
        auc = BINARY_METRICS["auc"](y == i, p[:, i])
        per_class[name] = {"precision": prec, "recall": rec, "f1": f1, "support": int(tp + fn),
                           "auc": auc}
    defined = [f for f in f1s if not np.isnan(f)]
    return {
        "accuracy": float(_div(np.trace(cm), total)),
        "macro_f1": float(np.mean(defined)) if defined else float("nan"),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
    }

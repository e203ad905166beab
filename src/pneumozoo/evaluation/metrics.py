"""Classification metrics from labels and probabilities (no Keras, no TensorFlow)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score

__all__ = ["binary_metrics", "multiclass_metrics", "pneumonia_scores"]


def pneumonia_scores(probabilities: np.ndarray) -> np.ndarray:
    """P(pneumonia) per row of softmax outputs: ``1 - P(normal)`` (class 0 is normal)."""
    p = np.asarray(probabilities, dtype=np.float64)
    return 1.0 - p[:, 0] if p.ndim == 2 else p


def _safe_div(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


def binary_metrics(y_true: Sequence[int] | np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """Normal-vs-pneumonia metrics at ``threshold`` on P(pneumonia).

    Args:
        y_true: 0 normal, anything else pneumonia.
        scores: P(pneumonia) per sample.
        threshold: Predict pneumonia when ``score >= threshold``.

    Returns:
        ``n``, ``accuracy``, ``sensitivity`` (recall of pneumonia), ``specificity``,
        ``precision``, ``npv``, ``f1``, ``auc`` (ROC), ``pr_auc``, ``confusion_matrix``
        (rows true normal/pneumonia, columns predicted) and ``threshold``.
    """
    y = (np.asarray(y_true) > 0).astype(int)
    s = np.asarray(scores, dtype=np.float64)
    pred = (s >= threshold).astype(int)
    cm = confusion_matrix(y, pred, labels=[0, 1])
    tn, fp, fn, tp = (int(v) for v in cm.ravel())
    sens = _safe_div(tp, tp + fn)
    spec = _safe_div(tn, tn + fp)
    prec = _safe_div(tp, tp + fp)
    both = len(np.unique(y)) == 2
    return {
        "n": len(y),
        "threshold": float(threshold),
        "accuracy": _safe_div(tp + tn, len(y)),
        "sensitivity": sens,
        "specificity": spec,
        "precision": prec,
        "npv": _safe_div(tn, tn + fn),
        "f1": _safe_div(2 * prec * sens, prec + sens) if prec == prec and sens == sens else float("nan"),
        "auc": float(roc_auc_score(y, s)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, s)) if both else float("nan"),
        "confusion_matrix": cm.tolist(),
    }


def multiclass_metrics(y_true: Sequence[int] | np.ndarray, probabilities: np.ndarray,
                       class_names: Sequence[str]) -> dict[str, Any]:
    """Arg-max metrics over all classes: accuracy, macro F1, per-class report, confusion matrix."""
    y = np.asarray(y_true, dtype=int)
    p = np.asarray(probabilities, dtype=np.float64)
    pred = p.argmax(axis=1)
    k = len(class_names)
    cm = confusion_matrix(y, pred, labels=list(range(k)))
    per_class: dict[str, dict[str, float]] = {}
    f1s = []
    for i, name in enumerate(class_names):
        tp = float(cm[i, i])
        support = float(cm[i].sum())
        predicted = float(cm[:, i].sum())
        prec = _safe_div(tp, predicted)
        rec = _safe_div(tp, support)
        f1 = _safe_div(2 * prec * rec, prec + rec) if prec == prec and rec == rec else float("nan")
        f1s.append(f1)
        auc = float("nan")
        if 0 < (y == i).sum() < len(y):
            auc = float(roc_auc_score((y == i).astype(int), p[:, i]))
        per_class[name] = {"precision": prec, "recall": rec, "f1": f1, "support": int(support), "auc": auc}
    return {
        "accuracy": _safe_div(float(np.trace(cm)), float(cm.sum())),
        "macro_f1": float(np.nanmean(f1s)) if f1s else float("nan"),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
    }

"""Scoring: a model's softmax outputs and domain scores for records, in order.

The one path by which evaluation, calibration, adaptation and release score films: the model's
own pipeline (:func:`pneumozoo.data.make_dataset`) and its :meth:`scores` method.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pneumozoo.data.records import Record, Task
from pneumozoo.evaluation.tta import predict_tta

__all__ = ["predict_records", "score_records"]


def score_records(model: Any, records: Sequence[Record], *, batch_size: int = 32,
                  tta: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Softmax outputs and domain-guard scores (distance / cut-off; ``None`` without a guard)
    of ``model`` for ``records``, in order, streamed through the model's own pipeline.

    Args:
        model: A pneumozoo model.
        records: The films.
        batch_size: Films per forward pass.
        tta: Average over test-time augmentations
            (:func:`pneumozoo.evaluation.tta.predict_tta`).

    Returns:
        ``(probabilities (n, classes), domain scores (n,) or None)``.

    Example:
        >>> probs, domain = score_records(model, records)  # doctest: +SKIP
    """
    # keras-heavy: the pipeline and the model class load Keras (and its backend)
    from pneumozoo.data.pipeline import make_dataset
    from pneumozoo.models.classifier import as_classifier

    clf = as_classifier(model)
    ds = make_dataset(records, clf, batch_size=batch_size, training=False, cache=False)
    probs, scores = [], []
    for x, _ in ds:
        batch = np.asarray(x)
        p, d = clf.scores(batch)
        if tta:
            p = np.asarray(predict_tta(clf, batch), dtype=np.float64)
        probs.append(p)
        if d is not None:
            scores.append(d)  # the head's domain score: 1.0 at the cut-off
    k = len(clf.class_names)
    return (np.concatenate(probs) if probs else np.zeros((0, k)),
            np.concatenate(scores) if scores else None)


def predict_records(model: Any, records: Sequence[Record], *, batch_size: int = 32,
                    task: Task | None = None, tta: bool = False) -> np.ndarray:
    """Softmax outputs of ``model`` for ``records``, in order (streamed in batches).

    With ``tta=True`` each batch goes through
    :func:`pneumozoo.evaluation.tta.predict_tta` (the default shift/zoom views).
    ``task`` is ignored (the model knows its own).

    Args:
        model: A pneumozoo model.
        records: The films.
        batch_size: Films per forward pass.
        task: Ignored.
        tta: Average over test-time augmentations.

    Returns:
        ``(n, classes)`` softmax outputs.

    Example:
        >>> probs = predict_records(model, records)  # doctest: +SKIP
    """
    return score_records(model, records, batch_size=batch_size, tta=tta)[0]

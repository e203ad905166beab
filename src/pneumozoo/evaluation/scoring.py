"""Scoring: a model's softmax outputs and domain scores for records, in order.

The one path by which evaluation, calibration, adaptation and release score films: the films
as the model sees them (:func:`pneumozoo.data.load_films`, uint8) through the model's
:meth:`~pneumozoo.models.PneumoniaClassifier.predict_prepared`, as :func:`pneumozoo.predict`
does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from pneumozoo.data.records import Record, Task
from pneumozoo.rules import in_domain
from pneumozoo.tta import predict_tta

__all__ = ["FilmScores", "RecordScores", "predict_records", "score_films", "score_records",
           "with_temperature"]


class RecordScores(NamedTuple):
    """What :func:`score_records` gives per film, in the records' order."""

    #: ``(n, classes)`` softmax outputs.
    probabilities: np.ndarray
    #: ``(n,)`` domain-guard scores (distance / cut-off, 1.0 at the cut-off); None without a guard.
    domain_scores: np.ndarray | None
    #: ``(n,)`` whether each file is a colour picture (:func:`pneumozoo.rules.is_colour_picture`).
    colour: np.ndarray

    @property
    def in_domain(self) -> np.ndarray | None:
        """Per film, in the model's domain (:func:`pneumozoo.rules.in_domain`: the guard's
        score and the colour check, as :func:`pneumozoo.predict` decides); None without a guard."""
        return None if self.domain_scores is None else in_domain(self.domain_scores, self.colour)


def _films(clf: Any, records: Sequence[Record], colour: np.ndarray | None = None) -> np.ndarray:
    """The films as the model sees them (:func:`pneumozoo.data.load_films`, the one pixel path)."""
    from pneumozoo.data.pipeline import load_films  # lazy: loads Keras

    return load_films(list(records), clf, cache=False, colour=colour)


def score_records(model: Any, records: Sequence[Record], *, batch_size: int = 32,
                  tta: bool = False) -> RecordScores:
    """Softmax outputs, domain-guard scores and the colour check of ``model`` for ``records``.

    The films are read once (:func:`pneumozoo.data.load_films`, uint8 as the model sees them)
    and go through :meth:`~pneumozoo.models.PneumoniaClassifier.predict_prepared` in batches.

    Args:
        model: A pneumozoo model.
        records: The films.
        batch_size: Films per forward pass.
        tta: Average over test-time augmentations
            (:func:`pneumozoo.tta.predict_tta`).

    Returns:
        A :class:`RecordScores` (``probabilities, domain_scores, colour``).

    Example:
        >>> probs, domain, colour = score_records(model, records)  # doctest: +SKIP
    """
    from pneumozoo.models.classifier import as_classifier  # lazy: loads Keras

    clf = as_classifier(model)
    colour = np.zeros(len(records), dtype=bool)
    films = _films(clf, records, colour)
    probs, scores = [], []
    for start in range(0, len(films), batch_size):
        batch = films[start:start + batch_size]
        p, d = clf.scores(batch)
        if tta:
            p = np.asarray(predict_tta(clf, batch), dtype=np.float64)
        probs.append(p)
        if d is not None:
            scores.append(d)  # the head's domain score: 1.0 at the cut-off
    k = len(clf.class_names)
    return RecordScores(np.concatenate(probs) if probs else np.zeros((0, k)),
                        np.concatenate(scores) if scores else None, colour)


def with_temperature(probabilities: np.ndarray, old: float, new: float) -> np.ndarray:
    """Softmax outputs computed at temperature ``old`` as they are at ``new``, without the model.

    ``softmax(z / old) -> softmax(z / new)`` through ``log(p) * old / new`` (exact up to float
    rounding).

    Args:
        probabilities: ``(n, classes)`` softmax outputs computed at ``old``.
        old: The temperature they were computed at.
        new: The temperature wanted.

    Returns:
        ``(n, classes)`` float64 softmax outputs at ``new``.

    Example:
        >>> import numpy as np
        >>> with_temperature(np.array([[0.5, 0.5]]), 1.0, 2.0).tolist()
        [[0.5, 0.5]]
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if old == new:
        return p
    z = np.log(np.clip(p, 1e-300, 1.0)) * (old / new)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


@dataclass(frozen=True)
class FilmScores:
    """What one pass of films through a model gives: softmax outputs and guard features.

    Everything fitted on validation after training (temperature, threshold, guard cut-off)
    and the validation metrics read these, so the validation films go through the trained
    model once (:func:`score_films`). The guard features do not depend on the temperature, and
    the probabilities at another temperature follow from :meth:`at_temperature`; the scores
    hold only while the model's weights stay as they were.

    Attributes:
        probabilities: ``(n, classes)`` softmax outputs at ``temperature``.
        features: ``(n, D)`` guard features (the head's input).
        temperature: The model's temperature when the films were scored.
    """

    probabilities: np.ndarray
    features: np.ndarray
    temperature: float

    def at_temperature(self, temperature: float) -> np.ndarray:
        """The softmax outputs as the model gives them at ``temperature``.

        Args:
            temperature: The model's (new) absolute temperature.

        Returns:
            ``(n, classes)`` float64 softmax outputs.
        """
        return with_temperature(self.probabilities, self.temperature, temperature)


def score_films(model: Any, records: Sequence[Record], *, batch_size: int = 32) -> FilmScores:
    """Softmax outputs and guard features of ``model`` for ``records``, in one pass.

    Args:
        model: A pneumozoo model.
        records: The films.
        batch_size: Films per forward pass.

    Returns:
        The :class:`FilmScores`, in the records' order.

    Example:
        >>> val_scores = score_films(model, val_records)  # doctest: +SKIP
    """
    from pneumozoo.models.classifier import as_classifier  # lazy: loads Keras

    clf = as_classifier(model)
    films = _films(clf, records)
    probs, feats = [], []
    for start in range(0, len(films), batch_size):
        p, f = clf.predict_prepared(films[start:start + batch_size])
        probs.append(p)
        feats.append(f)
    k = len(clf.class_names)
    return FilmScores(np.concatenate(probs) if probs else np.zeros((0, k)),
                      np.concatenate(feats) if feats else np.zeros((0, 0)), clf.temperature)


def predict_records(model: Any, records: Sequence[Record], *, batch_size: int = 32,
                    task: Task | None = None, tta: bool = False) -> np.ndarray:
    """Softmax outputs of ``model`` for ``records``, in order (streamed in batches).

    With ``tta=True`` each batch goes through
    :func:`pneumozoo.tta.predict_tta` (the default shift/zoom views).
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

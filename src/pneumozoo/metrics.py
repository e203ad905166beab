"""Keras metrics that read "pneumonia" off any zoo model's softmax."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

__all__ = ["PneumoniaAUC", "pneumonia_probability"]


def pneumonia_probability(probabilities: Any) -> Any:
    """P(pneumonia) from softmax outputs: 1 - P(normal), with class 0 being ``normal``.

    For a binary model this is the pneumonia column; for normal/bacteria/virus it is
    bacteria + virus.
    """
    return 1.0 - probabilities[..., 0]


@keras.saving.register_keras_serializable(package="pneumozoo")
class PneumoniaAUC(keras.metrics.AUC):
    """ROC AUC of normal vs pneumonia, for sparse labels and softmax outputs of any width.

    Label 0 is normal, any other label is pneumonia; the score is ``1 - P(normal)``.
    """

    def __init__(self, name: str = "auc", **kwargs: Any) -> None:
        kwargs.setdefault("num_thresholds", 500)
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        y = ops.cast(ops.reshape(y_true, (-1,)) > 0, "float32")
        score = ops.reshape(pneumonia_probability(ops.cast(y_pred, "float32")), (-1,))
        return super().update_state(y, score, sample_weight=sample_weight)

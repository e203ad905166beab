"""Keras metrics and losses for the zoo's softmax outputs and sparse labels (what training
compiles; the evaluation's NumPy metrics are :mod:`pneumozoo.evaluation.metrics`)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

# The one definition of P(pneumonia) = 1 - P(normal), re-exported here for Keras code.
from pneumozoo.rules import pneumonia_probability

__all__ = ["PneumoniaAUC", "SmoothedSparseCrossentropy", "pneumonia_probability"]


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


@keras.saving.register_keras_serializable(package="pneumozoo")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of softmax outputs against integer labels, with label smoothing.

    Keras's ``SparseCategoricalCrossentropy`` has no ``label_smoothing``; this one-hot
    encodes the labels and uses the categorical loss, which has.

    Args:
        label_smoothing: Mass moved from the true class to all classes evenly, in [0, 1).

    Example:
        >>> import numpy as np
        >>> loss = SmoothedSparseCrossentropy(0.1)
        >>> round(float(loss(np.array([1]), np.array([[0.5, 0.5]]))), 4)
        0.6931
    """

    def __init__(self, label_smoothing: float = 0.1, name: str = "smoothed_crossentropy",
                 **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        depth = y_pred.shape[-1]
        onehot = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), depth)
        return keras.losses.categorical_crossentropy(
            onehot, ops.reshape(y_pred, (-1, depth)), label_smoothing=self.label_smoothing)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}

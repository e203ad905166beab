"""The custom layers that travel inside every pneumozoo model.

They are registered with Keras, so saved models load with ``safe_mode=True`` and need no
``custom_objects``: importing :mod:`pneumozoo` is enough.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

__all__ = ["NORMALIZATIONS", "ClassifierOutput", "Normalize"]

# Per-channel (mean, std) in 0..255 units, in the RGB order the models receive.
_IMAGENET_MEAN = (123.675, 116.28, 103.53)
_IMAGENET_STD = (58.395, 57.12, 57.375)
NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "unit": ((0.0, 0.0, 0.0), (255.0, 255.0, 255.0)),  # -> [0, 1]
    "symmetric": ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5)),  # -> [-1, 1] ("tf" mode)
    "imagenet": (_IMAGENET_MEAN, _IMAGENET_STD),  # "torch" mode
    "caffe": ((103.939, 116.779, 123.68), (1.0, 1.0, 1.0)),  # BGR, mean only (VGG, ResNet50)
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),  # the backbone rescales itself
}


@keras.saving.register_keras_serializable(package="pneumozoo")
class Normalize(keras.layers.Layer):
    """Map raw pixels (0..255, RGB) to what a backbone expects, inside the graph.

    Args:
        mode: One of ``unit``, ``symmetric``, ``imagenet``, ``caffe`` (BGR), ``none``.
    """

    def __init__(self, mode: str = "unit", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {mode!r}; valid: {', '.join(NORMALIZATIONS)}")
        self.mode = mode
        mean, std = NORMALIZATIONS[mode]
        self._mean = mean
        self._scale = tuple(1.0 / s for s in std)

    def call(self, inputs: Any) -> Any:
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "caffe":
            x = ops.flip(x, axis=-1)
        mean = ops.convert_to_tensor(self._mean, dtype=self.compute_dtype)
        scale = ops.convert_to_tensor(self._scale, dtype=self.compute_dtype)
        return (x - mean) * scale

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="pneumozoo")
class ClassifierOutput(keras.layers.Layer):
    """Softmax over the logits, in float32, carrying the class names in its config.

    Being the last layer, it makes every saved model self-describing: the class names and
    their order travel with the weights (see :func:`pneumozoo.models.class_names_of`).

    It also holds the softmax temperature fitted on validation data (temperature scaling),
    so ``model.predict`` returns calibrated probabilities with no extra step.

    Args:
        class_names: Names of the outputs, in order; the first is the "normal" class.
        temperature: Logits are divided by it before the softmax (1.0: uncalibrated).
    """

    def __init__(
        self,
        class_names: Sequence[str] = ("normal", "pneumonia"),
        temperature: float = 1.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("dtype", "float32")  # softmax in float32 under mixed precision
        super().__init__(**kwargs)
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.class_names = [str(c) for c in class_names]
        self.temperature = float(temperature)

    def call(self, inputs: Any) -> Any:
        logits = ops.cast(inputs, "float32")
        if self.temperature != 1.0:
            logits = logits / self.temperature
        return ops.softmax(logits, axis=-1)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "class_names": list(self.class_names),
            "temperature": self.temperature,
        }

"""The layers of pneumozoo 0.1 models (``Resizing``, ``Normalize``, ``ClassifierOutput``).

Models are now built from :class:`~pneumozoo.models.XrayPreprocessor` and
:class:`~pneumozoo.models.ClassifierHead`; these stay registered so folders saved by
pneumozoo 0.1 still load (:func:`pneumozoo.pretrained.load_folder` upgrades them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

__all__ = ["NORMALIZATIONS", "ClassifierOutput", "Normalize", "Resizing"]

from pneumozoo.models.preprocessor import NORMALIZATIONS, normalize_pixels
from pneumozoo.rules import BINARY_CLASSES


@keras.saving.register_keras_serializable(package="pneumozoo")
class Resizing(keras.layers.Resizing):
    """``keras.layers.Resizing`` that lets images already at the target size through untouched.

    Resizing to the same size with the antialiased bilinear filter is the identity, yet it
    costs a full resampling pass (about a quarter of xraynet's forward time at 192 px on CPU)
    and its op (``ScaleAndTranslate``) has no XLA kernel. Batches whose static height and
    width already match (every batch of :func:`pneumozoo.data.make_dataset` and of
    :func:`pneumozoo.predict`, which resize beforehand) skip it, so training and inference
    pay nothing and ``jit_compile=True`` works; any other size is resized exactly as by
    ``keras.layers.Resizing``. The class keeps Keras's name, so code that looks layers up
    by class name still finds it.

    It also fixes a Keras 3 trap: ``Resizing.call`` defaults to ``training=True``, and Keras
    hands a layer's default on to the layers after it, so ``model(x)`` without
    ``training=False`` ran every BatchNorm in training mode (batch statistics, moving
    averages overwritten), as did ``model.export()``. Here the default is ``None``.
    """

    def call(self, data: Any, training: bool | None = None) -> Any:
        # Resizing is deterministic: `training` changes nothing here, but its default must
        # not be True, or Keras passes training=True on to the rest of the model.
        return super().call(data, training=bool(training))

    def transform_images(self, images: Any, transformation: Any = None,
                         training: bool = True) -> Any:
        shape = getattr(images, "shape", None)
        if (shape is not None and len(shape) == 4 and not self.crop_to_aspect_ratio
                and not self.pad_to_aspect_ratio and shape[self.height_axis] == self.height
                and shape[self.width_axis] == self.width):
            return images
        return super().transform_images(images, transformation=transformation, training=training)


@keras.saving.register_keras_serializable(package="pneumozoo")
class Normalize(keras.layers.Layer):
    """Map raw pixels (0..255, RGB) to what a backbone expects, inside the graph.

    Args:
        mode: One of ``unit``, ``symmetric``, ``imagenet``, ``caffe`` (BGR), ``none`` or
            ``per-image`` (each image to zero mean and unit standard deviation).

    Example:
        >>> import numpy as np
        >>> Normalize("symmetric")(np.array([[[[0.0, 127.5, 255.0]]]])).numpy().tolist()
        [[[[-1.0, 0.0, 1.0]]]]
    """

    def __init__(self, mode: str = "unit", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {mode!r}; valid: {', '.join(NORMALIZATIONS)}")
        self.mode = mode

    def call(self, inputs: Any) -> Any:
        return normalize_pixels(inputs, self.mode, self.compute_dtype)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="pneumozoo")
class ClassifierOutput(keras.layers.Layer):
    """Softmax over the logits, in float32, carrying the class names in its config.

    Being the last layer, it makes every saved model self-describing: the class names and
    their order travel with the weights .

    It also holds the softmax temperature fitted on validation data (temperature scaling),
    so ``model.predict`` returns calibrated probabilities with no extra step.

    Args:
        class_names: Names of the outputs, in order; the first is the "normal" class.
        temperature: Logits are divided by it before the softmax (1.0: uncalibrated).

    Example:
        >>> import numpy as np
        >>> out = ClassifierOutput(("normal", "pneumonia"), temperature=2.0)
        >>> [round(float(p), 3) for p in out(np.array([[0.0, 2.0]]))[0]]
        [0.269, 0.731]
    """

    def __init__(
        self,
        class_names: Sequence[str] = BINARY_CLASSES,
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

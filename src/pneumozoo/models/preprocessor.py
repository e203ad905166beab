"""The one preprocessor: colour policy, resize, rounding and normalisation of raw films.

Every path that feeds a model goes through :class:`XrayPreprocessor`: the layer at the start of
every pneumozoo model (so ``model.predict`` takes raw films), the ``tf.data`` training and
evaluation pipeline (:meth:`XrayPreprocessor.to_pixels` before the cache), :func:`pneumozoo.predict`,
Grad-CAM, export and the TFLite wrapper (:meth:`XrayPreprocessor.prepare` on the host). They all
run the same TensorFlow ops, so training and serving see the same pixels.
"""

from __future__ import annotations

import weakref
from typing import Any

import keras
import numpy as np
import tensorflow as tf

__all__ = [
    "COLOR_POLICIES",
    "MAX_INPUT_SIZE",
    "MIN_INPUT_SIZE",
    "NORMALIZATIONS",
    "XrayPreprocessor",
    "normalize_pixels",
]

#: ``luminance``: one grey channel per film (radiographs are grey; a colour file becomes PIL's
#: ``L`` luma, exactly), repeated to RGB for the backbone. ``rgb``: keep the file's colours.
COLOR_POLICIES = ("luminance", "rgb")
#: Range of square input sizes a model may declare (a 30000 px resize would need 10 GB a film).
MIN_INPUT_SIZE, MAX_INPUT_SIZE = 16, 2048

# Per-channel (mean, std) in 0..255 units, in the RGB order the models receive.
_IMAGENET_MEAN = (123.675, 116.28, 103.53)
_IMAGENET_STD = (58.395, 57.12, 57.375)
NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "unit": ((0.0, 0.0, 0.0), (255.0, 255.0, 255.0)),  # -> [0, 1]
    "symmetric": ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5)),  # -> [-1, 1] ("tf" mode)
    "imagenet": (_IMAGENET_MEAN, _IMAGENET_STD),  # "torch" mode
    "caffe": ((103.939, 116.779, 123.68), (1.0, 1.0, 1.0)),  # BGR, mean only (VGG, ResNet50)
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),  # the backbone rescales itself
    # Each film to zero mean, unit variance (the (0, 1) entry is unused): removes the exposure
    # and contrast differences between X-ray machines and settings.
    "per-image": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}


# preprocessor -> compiled host functions; not an attribute, which Keras would track.
_HOST_FNS: weakref.WeakKeyDictionary[Any, dict[tuple[int, str], Any]] = weakref.WeakKeyDictionary()


def normalize_pixels(x: Any, mode: str, dtype: str = "float32") -> Any:
    """Map RGB pixels in 0..255 to what a backbone expects (see :data:`NORMALIZATIONS`).

    Example:
        >>> import numpy as np
        >>> normalize_pixels(np.array([[[[0.0, 127.5, 255.0]]]]), "symmetric").numpy().tolist()
        [[[[-1.0, 0.0, 1.0]]]]
    """
    ops = keras.ops
    if mode == "per-image":
        # Statistics in float32 (a 192 px film sums ~110k values; float16 would overflow).
        x32 = ops.cast(x, "float32") / 255.0
        mean = ops.mean(x32, axis=(1, 2, 3), keepdims=True)
        std = ops.std(x32, axis=(1, 2, 3), keepdims=True)
        # A flat image (std 0) maps to zeros instead of NaN.
        return ops.cast((x32 - mean) / ops.maximum(std, 1.0 / 255.0), dtype)
    mean, std = NORMALIZATIONS[mode]
    x = ops.cast(x, dtype)
    if mode == "caffe":
        x = ops.flip(x, axis=-1)
    m = ops.convert_to_tensor(mean, dtype=dtype)
    s = ops.convert_to_tensor(tuple(1.0 / v for v in std), dtype=dtype)
    return (x - m) * s


def _luminance(x: tf.Tensor) -> tf.Tensor:
    """PIL's ``convert("L")``, exactly, on integer-valued float32 RGB (``(N, H, W, 3)``).

    ``L = (19595 R + 38470 G + 7471 B + 2**15) >> 16``: every intermediate is an integer below
    2**24, so float32 computes it exactly, and R = G = B gives the grey value back unchanged.
    """
    w = tf.constant([19595.0, 38470.0, 7471.0], tf.float32)
    return tf.floor((tf.reduce_sum(x * w, axis=-1, keepdims=True) + 32768.0) / 65536.0)


@keras.saving.register_keras_serializable(package="pneumozoo")
class XrayPreprocessor(keras.layers.Layer):
    """Raw films (0..255, any size, grey or RGB) -> the backbone's normalised input.

    In order: the colour policy (one grey channel, or RGB), antialiased bilinear resize to
    ``input_size`` (skipped when the film already has that size), rounding to whole pixel
    values (what an 8-bit cache holds), repeat to three channels, normalisation.

    Args:
        input_size: Side of the square the backbone sees (16..2048).
        normalization: One of :data:`NORMALIZATIONS`.
        color: One of :data:`COLOR_POLICIES`.

    Example:
        >>> import numpy as np
        >>> pre = XrayPreprocessor(64, "unit")
        >>> pre.prepare(np.full((300, 200), 255, np.uint8)).shape
        (64, 64, 1)
        >>> float(pre(np.full((1, 300, 200, 3), 255.0)).numpy().max())
        1.0
    """

    def __init__(self, input_size: int, normalization: str = "unit", color: str = "luminance",
                 **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")  # resize and rounding in float32 under any policy
        kwargs.setdefault("name", "preprocessor")
        super().__init__(**kwargs)
        from pneumozoo.errors import ModelConfigError

        if isinstance(input_size, bool) or not isinstance(input_size, (int, np.integer)) or not (
                MIN_INPUT_SIZE <= int(input_size) <= MAX_INPUT_SIZE):
            raise ModelConfigError(f"input_size must be an integer in {MIN_INPUT_SIZE}.."
                                   f"{MAX_INPUT_SIZE}, got {input_size!r}")
        if normalization not in NORMALIZATIONS:
            raise ModelConfigError(f"unknown normalization {normalization!r}; valid: "
                                   + ", ".join(NORMALIZATIONS))
        if color not in COLOR_POLICIES:
            raise ModelConfigError(f"unknown color policy {color!r}; valid: " + ", ".join(COLOR_POLICIES))
        self.input_size = int(input_size)
        self.normalization = normalization
        self.color = color

    @property
    def channels(self) -> int:
        """Channels of :meth:`to_pixels`' output: 1 for ``luminance``, 3 for ``rgb``."""
        return 1 if self.color == "luminance" else 3

    def to_pixels(self, images: Any) -> tf.Tensor:
        """Colour policy, resize and rounding of a ``(N, H, W, C)`` batch (C = 1 or 3).

        Args:
            images: ``(N, H, W, 1 | 3)`` pixels in 0..255, any size.

        Returns:
            float32 whole numbers in 0..255, ``(N, size, size, channels)``: what the
            training cache keeps and what the model's graph computes before normalising.
        """
        x = tf.cast(images, tf.float32)
        c = x.shape[-1]
        if c == 3 and self.color == "luminance":
            x = _luminance(tf.round(tf.clip_by_value(x, 0.0, 255.0)))
        elif c == 1 and self.color == "rgb":
            x = tf.repeat(x, 3, axis=-1)
        elif c not in (1, 3):
            raise ValueError(f"expected 1 or 3 channels, got {c}")
        size = self.input_size
        if not (x.shape[1] == size and x.shape[2] == size):
            x = tf.image.resize(x, (size, size), method="bilinear", antialias=True)
        return tf.round(tf.clip_by_value(x, 0.0, 255.0))

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """One film on the host: ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` -> ``uint8
        (size, size, channels)``, by the same ops as the graph (used to batch films of
        different sizes).

        Args:
            image: One film in 0..255, any size.

        Returns:
            ``uint8 (input_size, input_size, channels)`` pixels.
        """
        a = np.asarray(image)
        if a.ndim == 2:
            a = a[..., None]
        return np.asarray(self._host_fn(a.shape[-1], a.dtype)(a[None])[0], dtype=np.uint8)

    def _host_fn(self, channels: int, dtype: Any) -> Any:
        """``to_pixels`` compiled once per channel count and dtype for single films of any size
        (half the per-film cost of running its ops eagerly, the same pixels)."""
        cache = _HOST_FNS.setdefault(self, {})
        key = (int(channels), np.dtype(dtype).name)
        if key not in cache:
            spec = tf.TensorSpec((1, None, None, channels), tf.as_dtype(np.dtype(dtype)))
            cache[key] = tf.function(self.to_pixels, input_signature=[spec], autograph=False)
        return cache[key]

    def call(self, inputs: Any) -> Any:
        x = self.to_pixels(inputs)
        if x.shape[-1] == 1:
            x = tf.repeat(x, 3, axis=-1)
        return normalize_pixels(x, self.normalization, "float32")

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (input_shape[0], self.input_size, self.input_size, 3)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "input_size": self.input_size,
                "normalization": self.normalization, "color": self.color}

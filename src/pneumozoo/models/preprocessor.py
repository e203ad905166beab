"""The one preprocessor: colour policy, resize, rounding and normalisation of raw films.

Every path that feeds a model goes through :class:`XrayPreprocessor`: the layer at the start of
every pneumozoo model (so ``model.predict`` takes raw films), the training and evaluation
pipeline, :func:`pneumozoo.predict`, Grad-CAM, export and the TFLite wrapper. Two
implementations of the same arithmetic, on every Keras backend:

- in the graph (:meth:`XrayPreprocessor.to_pixels`, :meth:`XrayPreprocessor.call`):
  ``keras.ops`` only, so the model runs on TensorFlow, JAX and PyTorch;
- on the host (:meth:`XrayPreprocessor.prepare`, :func:`resize_pixels`): numpy only, one
  implementation for every backend, so every backend gets identical pixels. Its resize is
  TensorFlow's and JAX's antialiased bilinear resize (the triangle-kernel
  ``scale_and_translate`` of ``tf.image.resize(antialias=True)`` and ``jax.image.resize``)
  written as two weight matrices, ``out = Wy @ image @ Wx.T`` in float32: after rounding to
  whole pixels it gives TensorFlow's pixels (``tests/test_backends.py`` measures how exactly).
"""

from __future__ import annotations

import functools
from typing import Any

import keras
import numpy as np
import scipy.sparse
from PIL import Image

from pneumozoo.errors import ModelConfigError
from pneumozoo.rules import INPUT_SIZE_RANGE, INPUT_SIZE_RULE, is_input_size

__all__ = [
    "COLOR_POLICIES",
    "MAX_INPUT_SIZE",
    "MIN_INPUT_SIZE",
    "NORMALIZATIONS",
    "XrayPreprocessor",
    "luminance_uint8",
    "normalize_pixels",
    "resize_pixels",
    "resize_weights",
]

#: ``luminance``: one grey channel per film (radiographs are grey; a colour file becomes PIL's
#: ``L`` luma, exactly), repeated to RGB for the backbone. ``rgb``: keep the file's colours.
COLOR_POLICIES = ("luminance", "rgb")
#: Range of square input sizes a model may declare (a 30000 px resize would need 10 GB a film).
MIN_INPUT_SIZE, MAX_INPUT_SIZE = INPUT_SIZE_RANGE

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

# PIL's ``convert("L")`` weights: L = (19595 R + 38470 G + 7471 B + 2**15) >> 16.
_LUMA = (19595, 38470, 7471)


def normalize_pixels(x: Any, mode: str, dtype: str = "float32") -> Any:
    """Map RGB pixels in 0..255 to what a backbone expects (see :data:`NORMALIZATIONS`).

    Example:
        >>> import numpy as np
        >>> keras.ops.convert_to_numpy(normalize_pixels(np.array([[[[0.0, 127.5, 255.0]]]]), "symmetric")).tolist()
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


def _luminance(x: Any) -> Any:
    """PIL's ``convert("L")``, exactly, on integer-valued float32 RGB (``(N, H, W, 3)``), in
    ``keras.ops``.

    ``L = (19595 R + 38470 G + 7471 B + 2**15) >> 16``: every intermediate is an integer below
    2**24, so float32 computes it exactly, and R = G = B gives the grey value back unchanged.
    """
    ops = keras.ops
    w = ops.convert_to_tensor([float(v) for v in _LUMA], dtype="float32")
    return ops.floor((ops.sum(x * w, axis=-1, keepdims=True) + 32768.0) / 65536.0)


def luminance_uint8(image: np.ndarray) -> np.ndarray:
    """PIL's ``convert("L")`` of ``(..., 3)`` pixels in 0..255 (rounded and clipped first),
    exactly, on the host: ``uint8 (..., 1)``.

    Example:
        >>> luminance_uint8(np.array([[[255, 0, 0]]], np.uint8)).ravel().tolist()
        [76]
    """
    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = np.clip(np.round(a.astype(np.float32)), 0.0, 255.0).astype(np.uint8)
    if a.ndim == 3:  # PIL's own C loop: the same formula, 5-10x faster than numpy's
        grey = np.asarray(Image.fromarray(np.ascontiguousarray(a), "RGB").convert("L"))
        return grey[..., None]
    w = np.asarray(_LUMA, np.uint32)
    return ((a.astype(np.uint32) @ w + 32768) >> 16).astype(np.uint8)[..., None]


@functools.lru_cache(maxsize=256)
def resize_weights(in_size: int, out_size: int) -> np.ndarray:
    """The ``(out_size, in_size)`` float32 matrix of TensorFlow's antialiased bilinear resize
    along one axis (``tf.image.resize(..., antialias=True)``, ``jax.image.resize``).

    TensorFlow's ``ScaleAndTranslate`` kernel with the triangle filter, zero translation and
    ``scale = out / in``: output pixel ``i`` samples the input at ``(i + 0.5) / scale``; the
    filter is stretched by ``1 / scale`` when shrinking (the antialiasing) and not when
    enlarging; each row's weights sum to 1. Computed in float32 as TensorFlow does.

    Example:
        >>> (resize_weights(4, 2) * 7).round(4).tolist()
        [[3.0, 3.0, 1.0, 0.0], [0.0, 1.0, 3.0, 3.0]]
    """
    f32 = np.float32
    scale = f32(out_size) / f32(in_size)
    inv_scale = f32(1.0 / float(scale))
    kernel_scale = max(inv_scale, f32(1.0))
    sample = (np.arange(out_size, dtype=f32) + f32(0.5)) * inv_scale
    pos = np.arange(in_size, dtype=f32) + f32(0.5)
    w = np.maximum(f32(0.0), f32(1.0) - np.abs((pos[None, :] - sample[:, None]) / kernel_scale))
    total = w.sum(axis=1, keepdims=True, dtype=f32)
    ok = np.abs(total) >= f32(1000.0) * np.finfo(f32).tiny
    w = np.where(ok, w * (f32(1.0) / np.where(ok, total, f32(1.0))), f32(0.0)).astype(f32)
    w.setflags(write=False)
    return w


@functools.lru_cache(maxsize=256)
def _sparse_weights(in_size: int, out_size: int) -> Any:
    """:func:`resize_weights` as a scipy CSR matrix: a triangle filter touches only a few
    input pixels per output pixel, so the sparse product is 4-5x faster than the dense one."""
    return scipy.sparse.csr_matrix(resize_weights(in_size, out_size))


def resize_pixels(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Antialiased bilinear resize of ``(H, W)`` or ``(H, W, C)`` pixels, on the host, float32.

    The same filter as the model's graph (``keras.ops.image.resize(..., antialias=True)``):
    ``Wy @ image @ Wx.T`` with the :func:`resize_weights` matrices (as sparse matrices), per
    channel, the height first as TensorFlow does.

    Args:
        image: Pixels, any dtype.
        size: Output side, or ``(height, width)``.

    Returns:
        float32 ``(height, width)`` or ``(height, width, C)``, not rounded.

    Example:
        >>> resize_pixels(np.full((300, 200), 7, np.uint8), 64).shape
        (64, 64)
    """
    oh, ow = (int(size), int(size)) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    a = np.asarray(image)
    h, w = int(a.shape[0]), int(a.shape[1])
    c = int(a.shape[2]) if a.ndim == 3 else 1
    x = a.reshape(h, w * c).astype(np.float32, copy=False)
    rows = np.asarray(_sparse_weights(h, oh) @ x, dtype=np.float32)  # (oh, w * c)
    cols = rows.reshape(oh, w, c).transpose(1, 0, 2).reshape(w, oh * c)
    out = np.asarray(_sparse_weights(w, ow) @ cols, dtype=np.float32)  # (ow, oh * c)
    out = out.reshape(ow, oh, c).transpose(1, 0, 2)
    return np.ascontiguousarray(out if a.ndim == 3 else out[..., 0])


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
        >>> float(keras.ops.max(pre(np.full((1, 300, 200, 3), 255.0))))
        1.0
    """

    def __init__(self, input_size: int, normalization: str = "unit", color: str = "luminance",
                 **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")  # resize and rounding in float32 under any policy
        kwargs.setdefault("name", "preprocessor")
        super().__init__(**kwargs)

        if not is_input_size(input_size):
            raise ModelConfigError(f"input_size must be {INPUT_SIZE_RULE}, got {input_size!r}")
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

    def to_pixels(self, images: Any) -> Any:
        """Colour policy, resize and rounding of a ``(N, H, W, C)`` batch (C = 1 or 3), in the
        graph (``keras.ops``, any backend).

        Args:
            images: ``(N, H, W, 1 | 3)`` pixels in 0..255, any size.

        Returns:
            float32 whole numbers in 0..255, ``(N, size, size, channels)``: what
            :meth:`prepare` gives on the host and what the model's graph computes before
            normalising.
        """
        ops = keras.ops
        x = ops.cast(images, "float32")
        c = x.shape[-1]
        if c is None:  # TensorFlow relaxes the shape after batches of both kinds: 1 -> 3, 3 -> 3
            n = ops.shape(x)[-1]
            x = ops.take(x, ops.stack([0, n // 2, n - 1]), axis=-1)  # RGB as is, grey to R=G=B
            c = 3
        if c == 3 and self.color == "luminance":
            x = _luminance(ops.round(ops.clip(x, 0.0, 255.0)))
        elif c == 1 and self.color == "rgb":
            x = ops.repeat(x, 3, axis=-1)
        elif c not in (1, 3):
            raise ValueError(f"expected 1 or 3 channels, got {c}")
        size = self.input_size
        if not (x.shape[1] == size and x.shape[2] == size):
            x = ops.image.resize(x, (size, size), interpolation="bilinear", antialias=True,
                                 data_format="channels_last")
        return ops.round(ops.clip(x, 0.0, 255.0))

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """One film on the host: ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` -> ``uint8
        (size, size, channels)``, numpy only (the same pixels on every backend).

        The arithmetic of :meth:`to_pixels`: PIL's luminance, TensorFlow's antialiased
        bilinear resize (:func:`resize_pixels`) when the size differs, rounding half to even.

        Args:
            image: One film in 0..255, any size and dtype.

        Returns:
            ``uint8 (input_size, input_size, channels)`` pixels.
        """
        a = np.asarray(image)
        if a.ndim == 2:
            a = a[..., None]
        if a.ndim != 3 or a.shape[-1] not in (1, 3):
            raise ValueError(f"expected one film (H, W), (H, W, 1) or (H, W, 3), got shape {a.shape}")
        if a.shape[-1] == 3 and self.color == "luminance":
            a = luminance_uint8(a)
        elif a.shape[-1] == 1 and self.color == "rgb":
            a = np.repeat(a, 3, axis=-1)
        size = self.input_size
        if a.shape[0] != size or a.shape[1] != size:
            a = resize_pixels(a[..., 0] if a.shape[-1] == 1 else a, size).reshape(size, size, -1)
        if a.dtype == np.uint8:
            return a if a is not image else a.copy()
        return np.clip(np.round(a.astype(np.float32, copy=False)), 0.0, 255.0).astype(np.uint8)

    def prepare_batch(self, images: Any) -> np.ndarray:
        """Films of any sizes (a list, or an ``(N, H, W, C)`` array) -> one ``uint8
        (N, size, size, channels)`` batch, by :meth:`prepare`.

        Args:
            images: Films in 0..255, each ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``.

        Returns:
            ``uint8 (N, input_size, input_size, channels)`` (``N`` = 0 for no films).

        Raises:
            ValueError: If a film has another shape.

        Example:
            >>> XrayPreprocessor(32).prepare_batch([np.zeros((40, 50), np.uint8)] * 2).shape
            (2, 32, 32, 1)
        """
        films = list(images)
        if not films:
            return np.zeros((0, self.input_size, self.input_size, self.channels), np.uint8)
        return np.stack([self.prepare(f) for f in films])

    def call(self, inputs: Any) -> Any:
        x = self.to_pixels(inputs)
        if x.shape[-1] == 1:
            x = keras.ops.repeat(x, 3, axis=-1)
        return normalize_pixels(x, self.normalization, "float32")

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (input_shape[0], self.input_size, self.input_size, 3)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "input_size": self.input_size,
                "normalization": self.normalization, "color": self.color}

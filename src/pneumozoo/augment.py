"""Augmentation presets as Keras 3 preprocessing layers.

Each preset reproduces the recipe of one published project (see the docs' references), now
that Keras 3 has no ``ImageDataGenerator``; ``xray`` is the recommended one. Presets take and
return raw pixels (0..255), so they sit between the data pipeline and the model, and are only
applied to training batches.

Example:
    >>> aug = get_preset("xray", seed=0)
    >>> list_presets()[:2]
    ['affine-sharpen', 'heavy']
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
from keras import layers, ops

from pneumozoo.errors import UnknownNameError

__all__ = ["Preset", "RandomAffine", "RandomGamma", "get_preset", "list_presets", "preset_info"]


@dataclass(frozen=True)
class Preset:
    """A named augmentation recipe.

    Attributes:
        name: Registry name.
        source: Where the recipe comes from.
        description: What it does, in words.
        factory: Builds the preset's layers for a seed (use :func:`get_preset` instead).

    Example:
        >>> preset_info("zoom-vflip").source
        '001 (ImageDataGenerator)'
    """

    name: str
    source: str
    description: str
    factory: Callable[[int | None], list[keras.layers.Layer]]


@keras.saving.register_keras_serializable(package="pneumozoo")
class RandomAffine(keras.layers.Layer):
    """Random rotation, zoom, shear, translation and flips as ONE affine resampling.

    Chaining ``RandomRotation``, ``RandomZoom``, ``RandomShear`` and ``RandomTranslation``
    resamples the image once per layer; composing the matrices first does it once, which is
    both faster (the augmentation runs on the same 2 CPU cores as training) and sharper.

    Args:
        rotation: Maximum rotation in degrees (uniform in +/-).
        zoom: Maximum relative scale change (uniform in ``1 +/- zoom``).
        independent_zoom: Sample the x and y scale independently (``ImageDataGenerator`` and
            imgaug do).
        shear: Maximum shear angle in degrees (x direction).
        translate: Maximum shift as a fraction of the side (x and y independently).
        horizontal_flip: Mirror left-right with probability 0.5.
        vertical_flip: Mirror top-bottom with probability 0.5.
        fill_mode: ``constant`` (black), ``nearest``, ``reflect`` or ``wrap``.
        seed: Random seed.

    Example:
        >>> import numpy as np
        >>> layer = RandomAffine(rotation=10, zoom=0.1, horizontal_flip=True, seed=0)
        >>> layer(np.zeros((2, 32, 32, 3)), training=True).shape
        TensorShape([2, 32, 32, 3])
    """

    def __init__(
        self,
        rotation: float = 0.0,
        zoom: float = 0.0,
        independent_zoom: bool = True,
        shear: float = 0.0,
        translate: float = 0.0,
        horizontal_flip: bool = False,
        vertical_flip: bool = False,
        fill_mode: str = "constant",
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.rotation = float(rotation)
        self.zoom = float(zoom)
        self.independent_zoom = bool(independent_zoom)
        self.shear = float(shear)
        self.translate = float(translate)
        self.horizontal_flip = bool(horizontal_flip)
        self.vertical_flip = bool(vertical_flip)
        self.fill_mode = fill_mode
        self.seed = seed
        self._rng = keras.random.SeedGenerator(seed)
        self.supports_masking = False

    def _uniform(self, n: Any, limit: float) -> Any:
        return keras.random.uniform((n,), -limit, limit, seed=self._rng)

    def _flip(self, n: Any, enabled: bool) -> Any:
        if not enabled:
            return ops.ones((n,))
        coin = keras.random.uniform((n,), 0.0, 1.0, seed=self._rng)
        return ops.where(coin < 0.5, -1.0, 1.0)

    def call(self, images: Any, training: bool = True) -> Any:
        if not training:
            return images
        x = ops.cast(images, "float32")
        shape = ops.shape(x)
        n = shape[0]
        h = ops.cast(shape[1], "float32")
        w = ops.cast(shape[2], "float32")
        theta = self._uniform(n, math.radians(self.rotation))
        zx = 1.0 + self._uniform(n, self.zoom)
        zy = 1.0 + self._uniform(n, self.zoom) if self.independent_zoom else zx
        sh = ops.tan(self._uniform(n, math.radians(self.shear)))
        fx = self._flip(n, self.horizontal_flip)
        fy = self._flip(n, self.vertical_flip)
        tx = self._uniform(n, self.translate) * w
        ty = self._uniform(n, self.translate) * h
        cos, sin = ops.cos(theta), ops.sin(theta)
        # Output -> input map about the centre: flip, scale, shear, rotate, shift.
        a00 = (cos) * fx / zx
        a01 = (cos * sh - sin) * fy / zy
        a10 = (sin) * fx / zx
        a11 = (sin * sh + cos) * fy / zy
        cx, cy = (w - 1.0) / 2.0, (h - 1.0) / 2.0
        a02 = cx - a00 * cx - a01 * cy + tx
        a12 = cy - a10 * cx - a11 * cy + ty
        zeros = ops.zeros_like(a00)
        transform = ops.stack([a00, a01, a02, a10, a11, a12, zeros, zeros], axis=1)
        return ops.image.affine_transform(
            x, transform, interpolation="bilinear", fill_mode=self.fill_mode, fill_value=0.0
        )

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "rotation": self.rotation,
            "zoom": self.zoom,
            "independent_zoom": self.independent_zoom,
            "shear": self.shear,
            "translate": self.translate,
            "horizontal_flip": self.horizontal_flip,
            "vertical_flip": self.vertical_flip,
            "fill_mode": self.fill_mode,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="pneumozoo")
class RandomGamma(keras.layers.Layer):
    """Random gamma curve ``255 * (x / 255) ** g`` per image, ``log g`` uniform in ``+/- log(max_gamma)``.

    Brightness and contrast are linear; films from other machines or processing software
    differ in their tone curve too, which only a non-linear change imitates.

    Args:
        max_gamma: Largest gamma (the smallest is its inverse); must be >= 1.
        seed: Random seed.

    Example:
        >>> import numpy as np
        >>> RandomGamma(1.5, seed=0)(np.full((2, 4, 4, 3), 255.0), training=True).numpy().max()
        255.0
    """

    def __init__(self, max_gamma: float = 1.5, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if max_gamma < 1.0:
            raise ValueError(f"max_gamma must be >= 1, got {max_gamma}")
        self.max_gamma = float(max_gamma)
        self.seed = seed
        self._rng = keras.random.SeedGenerator(seed)

    def call(self, images: Any, training: bool = True) -> Any:
        if not training or self.max_gamma == 1.0:
            return images
        x = ops.clip(ops.cast(images, "float32") / 255.0, 0.0, 1.0)
        limit = math.log(self.max_gamma)
        log_g = keras.random.uniform((ops.shape(x)[0], 1, 1, 1), -limit, limit, seed=self._rng)
        return 255.0 * ops.power(x, ops.exp(log_g))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "max_gamma": self.max_gamma, "seed": self.seed}


_PRESETS: dict[str, Preset] = {}


def _register(name: str, source: str, description: str) -> Callable[
    [Callable[[int | None], list[keras.layers.Layer]]],
    Callable[[int | None], list[keras.layers.Layer]],
]:
    def deco(fn: Callable[[int | None], list[keras.layers.Layer]]) -> Callable[[int | None], list[keras.layers.Layer]]:
        _PRESETS[name] = Preset(name, source, description, fn)
        return fn

    return deco


@_register(
    "affine-sharpen",
    "000 (imgaug)",
    "horizontal flip p=0.5, shear +/-16 deg, scale 0.8-1.2 on x and y, translate +/-20 px "
    "(10% of the 200 px input), sharpening",
)
def _affine_sharpen(seed: int | None) -> list[keras.layers.Layer]:
    return [
        RandomAffine(shear=16, zoom=0.2, translate=0.1, horizontal_flip=True, seed=seed),
        layers.RandomSharpness((0.6, 0.8), value_range=(0, 255), seed=seed),
    ]


@_register("zoom-vflip", "001 (ImageDataGenerator)", "zoom 0.3 (x and y independently), vertical flip")
def _zoom_vflip(seed: int | None) -> list[keras.layers.Layer]:
    return [RandomAffine(zoom=0.3, vertical_flip=True, fill_mode="nearest", seed=seed)]


@_register(
    "heavy",
    "002 (ImageDataGenerator)",
    "rotation 40 deg, width/height shift 0.2, shear 0.2, zoom 0.2, horizontal flip, nearest fill",
)
def _heavy(seed: int | None) -> list[keras.layers.Layer]:
    # ImageDataGenerator reads shear_range in degrees, so 0.2 means a 0.2 degree shear.
    return [
        RandomAffine(rotation=40, translate=0.2, shear=0.2, zoom=0.2, horizontal_flip=True,
                     fill_mode="nearest", seed=seed)
    ]


@_register(
    "rotate-zoom-shift",
    "003 (ImageDataGenerator, with oversampling)",
    "rotation 10 deg, zoom 0.1, width/height shift 0.1",
)
def _rotate_zoom_shift(seed: int | None) -> list[keras.layers.Layer]:
    return [RandomAffine(rotation=10, zoom=0.1, translate=0.1, fill_mode="nearest", seed=seed)]


@_register(
    "xray",
    "pneumozoo (recommended)",
    "rotation 7 deg, zoom 0.1, translation 0.06, brightness and contrast 0.1; no flips "
    "(the heart is on the left and films are never upside down)",
)
def _xray(seed: int | None) -> list[keras.layers.Layer]:
    return [
        RandomAffine(rotation=7, zoom=0.1, translate=0.06, seed=seed),
        layers.RandomBrightness(0.1, value_range=(0, 255), seed=seed),
        layers.RandomContrast(0.1, value_range=(0, 255), seed=seed),
    ]


@_register(
    "xray-strong",
    "pneumozoo (robust default model)",
    "rotation 10 deg, zoom 0.15, translation 0.08, brightness 0.2, contrast 0.3, gamma "
    "0.67-1.5; no flips. Wider photometric changes imitate other machines and exposures",
)
def _xray_strong(seed: int | None) -> list[keras.layers.Layer]:
    return [
        RandomAffine(rotation=10, zoom=0.15, translate=0.08, seed=seed),
        layers.RandomBrightness(0.2, value_range=(0, 255), seed=seed),
        layers.RandomContrast(0.3, value_range=(0, 255), seed=seed),
        RandomGamma(1.5, seed=seed),
    ]


@_register("none", "-", "no augmentation")
def _none(seed: int | None) -> list[keras.layers.Layer]:
    return [layers.Identity()]


def list_presets() -> list[str]:
    """Names of every augmentation preset, sorted.

    Returns:
        The registry names, for :func:`get_preset` and ``fit(augment=...)``.

    Example:
        >>> "xray" in list_presets()
        True
    """
    return sorted(_PRESETS)


def preset_info(name: str) -> Preset:
    """The :class:`Preset` record of ``name`` (source and description).

    Args:
        name: One of :func:`list_presets`.

    Returns:
        The registry entry.

    Raises:
        UnknownNameError: If no preset has that name; the message lists the valid ones.

    Example:
        >>> preset_info("xray").source
        'pneumozoo (recommended)'
    """
    try:
        return _PRESETS[name]
    except KeyError:
        raise UnknownNameError("augmentation preset", name, list(_PRESETS)) from None


def get_preset(name: str, *, seed: int | None = None) -> keras.Sequential:
    """Build the augmentation preset ``name`` as one Keras layer.

    The layer takes a batch of raw-pixel images ``(N, H, W, 3)`` in 0..255 and returns a
    batch of the same shape; it augments when called with ``training=True`` (as ``tf.data``
    pipelines built by pneumozoo do) and is the identity with ``training=False`` (as in
    ``model.predict`` and ``model.evaluate``). Like Keras's own random layers, a direct
    call without ``training`` augments.

    Args:
        name: One of :func:`list_presets`.
        seed: Seed for reproducible augmentation.

    Returns:
        A ``keras.Sequential`` named ``augment_<name>``.

    Raises:
        UnknownNameError: If no preset has that name; the message lists the valid ones.

    Example:
        >>> import numpy as np
        >>> get_preset("zoom-vflip", seed=1)(np.zeros((2, 32, 32, 3)), training=True).shape
        TensorShape([2, 32, 32, 3])
    """
    preset = preset_info(name)
    return keras.Sequential(preset.factory(seed), name=f"augment_{name.replace('-', '_')}")

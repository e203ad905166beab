"""The ``tf.data`` pipeline: decode -> resize -> (cache) -> shuffle -> batch -> augment -> prefetch.

Decoding goes through :func:`pneumozoo.read_xray`, the same reader ``predict`` uses, so
training and inference see identical pixels (EXIF, 16-bit, palette, DICOM included); resizing
uses :func:`resize_images`, which the models also use in their graph. Training pipelines
carry one channel per film (radiographs are grayscale) and hand the model RGB at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from pneumozoo.data.records import Record, Task, targets
from pneumozoo.io import read_xray
from pneumozoo.models.classifier import as_classifier
from pneumozoo.models.preprocessor import XrayPreprocessor

__all__ = ["decode_resize", "load_pixels", "make_dataset", "resize_images"]


def resize_images(images: Any, size: int) -> tf.Tensor:
    """Deprecated: models resize inside their graph; use ``model.prepare(film)`` for one film.

    Resizes ``(H, W, 3)`` or ``(N, H, W, 3)`` images to ``size x size`` (antialiased
    bilinear, float32 0..255, not rounded).

    Args:
        images: ``(H, W, 3)`` or ``(N, H, W, 3)`` pixels in 0..255.
        size: Side of the square output.

    Returns:
        The resized float32 images (a ``DeprecationWarning`` is issued).

    Example:
        >>> import numpy as np
        >>> resize_images(np.zeros((300, 200, 3)), 64).shape  # doctest: +SKIP
        TensorShape([64, 64, 3])
    """
    import warnings

    warnings.warn("resize_images is deprecated; use model.prepare(film) or "
                  "XrayPreprocessor.prepare", DeprecationWarning, stacklevel=2)
    x = tf.cast(tf.convert_to_tensor(images), tf.float32)
    return tf.image.resize(x, (size, size), method="bilinear", antialias=True)


def _preprocessor(model_or_preprocessor: Any = None, input_size: int | None = None,
                  color: bool = False) -> XrayPreprocessor:
    """The preprocessor of a model, a preprocessor, or (for callers without a model) one
    built from a size and the colour flag."""
    if isinstance(model_or_preprocessor, XrayPreprocessor):
        return model_or_preprocessor
    if model_or_preprocessor is not None:
        return as_classifier(model_or_preprocessor).preprocessor
    if input_size is None:
        raise TypeError("make_dataset needs a model (or preprocessor) or an input_size")
    return XrayPreprocessor(int(input_size), color="rgb" if color else "luminance")


def load_pixels(path: str | Path, preprocessor: XrayPreprocessor) -> np.ndarray:
    """Read one file and prepare it as the model sees it (``uint8 (size, size, C)``).

    Raises:
        InvalidImageError: If the file cannot be read.
    """
    return preprocessor.prepare(read_xray(path))


def decode_resize(path: str | Path, size: int) -> np.ndarray:
    """Read one file and prepare it for a ``size`` px luminance model, as training does.

    Args:
        path: An image file (anything :func:`pneumozoo.read_xray` reads).
        size: Side of the square output.

    Returns:
        A ``uint8`` array ``(size, size, 3)``.

    Raises:
        InvalidImageError: If the file cannot be read.

    Example:
        >>> decode_resize("examples/xrays/test224-normal-IM-0001-0001.jpeg", 96).shape
        (96, 96, 3)
    """
    return np.repeat(load_pixels(path, XrayPreprocessor(size)), 3, axis=-1)


def _load(path: tf.Tensor, pre: XrayPreprocessor) -> tf.Tensor:
    def py_read(p: bytes) -> np.ndarray:
        # Reduced JPEG decoding, as pneumozoo.predict reads a film: same pixels in training
        # and serving, and original-resolution films cost a fraction of a full decode.
        return read_xray(p.decode("utf-8"), min_side=pre.input_size)

    # Decoding in Python (PIL releases the GIL) keeps one reader for every format; the
    # preprocessor's colour policy, resize and rounding run in the graph, in parallel.
    image = tf.numpy_function(py_read, [path], tf.uint8, stateful=False)
    image.set_shape((None, None, 3))
    return tf.cast(pre.to_pixels(image[None])[0], tf.uint8)


def make_dataset(
    records: Sequence[Record],
    model: Any = None,
    *,
    input_size: int | None = None,
    task: Task = "binary",
    batch_size: int = 32,
    training: bool = False,
    augment: str | Any | None = None,
    cache: bool | str | Path = True,
    shuffle_buffer: int | None = None,
    seed: int = 0,
    drop_remainder: bool = False,
    repeat: bool = False,
    color: bool = False,
) -> tf.data.Dataset:
    """A batched ``tf.data.Dataset`` of ``(images, labels)`` for training or evaluation.

    Images are float32 ``(N, size, size, 3)`` in 0..255, prepared by the model's
    :class:`~pneumozoo.models.XrayPreprocessor` (colour policy, resize, rounding) exactly as
    ``model.predict`` and :func:`pneumozoo.predict` prepare a film; the model normalises them.
    Labels are int32 class indices for ``task``.

    Args:
        records: What to load (see :func:`pneumozoo.data.scan_split`).
        model: The model (or its preprocessor) the data is for.
        input_size: Without a model: the side of the square images.
        task: ``"binary"`` or ``"3class"``.
        batch_size: Images per batch; under a ``tf.distribute`` strategy that is the global
            batch (:func:`pneumozoo.fit` passes its per-replica ``batch_size`` x replicas).
        training: Shuffle every epoch and apply ``augment``; evaluation pipelines keep
            the input order and never augment.
        augment: A preset name (see :func:`pneumozoo.augment.list_presets`) or a Keras layer;
            only used when ``training`` is true.
        cache: ``True`` keeps decoded, resized ``uint8`` images in memory after the first
            epoch; a path caches them on disk in files starting with that path;
            ``False`` decodes every epoch.
        shuffle_buffer: Shuffle buffer size; defaults to the whole set.
        seed: Seed for shuffling and augmentation.
        drop_remainder: Drop the last partial batch (needed by some distribution setups).
        repeat: Repeat forever (pair with ``steps_per_epoch``).
        color: Without a model: keep colour (the ``rgb`` policy) instead of one grey
            channel. With the ``luminance`` policy (the default) pipelines keep one channel
            per film through the cache and augmentation and repeat it to RGB at the end:
            radiographs are grey (R = G = B, kept exactly), and one channel is a third of the
            memory and of the augmentation work.

    Returns:
        The dataset; it reads files lazily, in parallel, and prefetches.

    Raises:
        DataError: For ``task="3class"`` if a pneumonia file name says neither bacteria nor
            virus.
        UnknownNameError: For an unknown augmentation preset.

    Example:
        >>> ds = make_dataset(records, input_size=192, batch_size=32, training=True,
        ...                   augment="xray")  # doctest: +SKIP
        >>> images, labels = next(iter(ds))  # doctest: +SKIP
        >>> images.shape, labels.dtype  # doctest: +SKIP
        (TensorShape([32, 192, 192, 3]), tf.int32)
    """
    pre = _preprocessor(model, input_size, color)
    y = np.asarray(targets(records, task), dtype=np.int32)
    paths = [str(r.path) for r in records]
    channels = pre.channels
    ds = tf.data.Dataset.from_tensor_slices((paths, y))
    ds = ds.map(lambda p, label: (_load(p, pre), label),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache is True:
        ds = ds.cache()
    elif cache:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        ds = ds.cache(f"{cache}-{channels}ch")  # a cache of the other layout is not reused
    if training:
        ds = ds.shuffle(shuffle_buffer or max(len(paths), 1), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    layer = _augment_layer(augment, seed) if training else None
    preset = isinstance(augment, str)
    ds = ds.map(lambda x, label: (_to_model_input(x, layer, preset), label),
                num_parallel_calls=tf.data.AUTOTUNE)
    # Under tf.distribute, shard by element, never by file: the source is a tensor of file
    # names, not a file-reading dataset, so FILE sharding cannot apply (AUTO would try it and
    # fall back with a warning), and DATA gives every worker the same number of batches.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def _to_model_input(images: tf.Tensor, layer: Any, channel_agnostic: bool) -> tf.Tensor:
    """A uint8 batch of one or three channels -> augmented float32 RGB.

    The presets draw one transform per image, not per channel, so a one-channel batch is
    augmented before it is repeated to RGB (the same pixels for a third of the work: the
    augmentation is what an epoch from the cache costs). A layer passed by the user may be
    colour-specific, so it sees the RGB batch.
    """
    x = tf.cast(images, tf.float32)
    if layer is not None and channel_agnostic:
        x = layer(x, training=True)
    if x.shape[-1] == 1:
        x = tf.repeat(x, 3, axis=-1)
    if layer is not None and not channel_agnostic:
        x = layer(x, training=True)
    return x


def _augment_layer(augment: Any, seed: int) -> Any:
    if augment is None:
        return None
    if isinstance(augment, str):
        if augment == "none":
            return None
        from pneumozoo.augment import get_preset

        return get_preset(augment, seed=seed)
    return augment

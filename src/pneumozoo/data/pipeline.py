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
from PIL import Image

from pneumozoo.data.records import Record, Task, targets
from pneumozoo.io import read_xray

__all__ = ["decode_resize", "make_dataset", "resize_images"]


def resize_images(images: Any, size: int) -> tf.Tensor:
    """Resize ``(H, W, 3)`` or ``(N, H, W, 3)`` images to ``size x size``, as the models do.

    Bilinear with antialiasing (an area-like filter when shrinking), output float32 0..255.

    Args:
        images: One image or a batch, any numeric dtype, values 0..255.
        size: Side of the square output.

    Returns:
        A float32 tensor ``(size, size, 3)`` or ``(N, size, size, 3)``.

    Example:
        >>> import numpy as np
        >>> resize_images(np.zeros((300, 200, 3), np.uint8), 64).shape
        TensorShape([64, 64, 3])
    """
    x = tf.convert_to_tensor(images)
    x = tf.cast(x, tf.float32)
    return tf.image.resize(x, (size, size), method="bilinear", antialias=True)


def decode_resize(path: str | Path, size: int) -> np.ndarray:
    """Read one file and resize it to ``size``, as the training pipeline does.

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
    image = read_xray(path)
    out = resize_images(image, size)
    return np.asarray(tf.cast(tf.round(tf.clip_by_value(out, 0.0, 255.0)), tf.uint8))


def _luminance(image: np.ndarray) -> np.ndarray:
    """One channel: the film itself when R = G = B, else ITU-R 601 luma (PIL's ``L``)."""
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    if np.array_equal(r, g) and np.array_equal(r, b):
        return image[..., :1]
    return np.asarray(Image.fromarray(image).convert("L"))[..., None]


def _load(path: tf.Tensor, size: int, channels: int) -> tf.Tensor:
    def py_read(p: bytes) -> np.ndarray:
        image = read_xray(p.decode("utf-8"))
        return _luminance(image) if channels == 1 else image

    # Decoding in Python (PIL releases the GIL) keeps one reader for every format;
    # resizing stays in the graph, where it runs in parallel without the GIL.
    image = tf.numpy_function(py_read, [path], tf.uint8, stateful=False)
    image.set_shape((None, None, channels))
    resized = tf.image.resize(image, (size, size), method="bilinear", antialias=True)
    return tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8)


def make_dataset(
    records: Sequence[Record],
    *,
    input_size: int,
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

    Images are float32 ``(N, input_size, input_size, 3)`` in 0..255 (the models normalise
    them); labels are int32 class indices for ``task``.

    Args:
        records: What to load (see :func:`pneumozoo.data.scan_split`).
        input_size: Side of the square images the model takes.
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
        color: Keep colour in a training pipeline. By default training pipelines keep one
            channel per film through the cache and augmentation and repeat it to RGB at
            the end: radiographs are grayscale (R = G = B, kept exactly), and one channel is
            a third of the memory and of the augmentation work. Colour files, if any, are
            then converted to luminance (PIL's ``L``). Evaluation pipelines always keep the
            file's colours, as :func:`pneumozoo.predict` does.

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
    y = np.asarray(targets(records, task), dtype=np.int32)
    paths = [str(r.path) for r in records]
    channels = 1 if training and not color else 3
    ds = tf.data.Dataset.from_tensor_slices((paths, y))
    ds = ds.map(lambda p, label: (_load(p, input_size, channels), label),
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

"""The ``tf.data`` pipeline: decode -> resize -> (cache) -> shuffle -> batch -> augment -> prefetch.

Decoding goes through :func:`pneumozoo.read_xray`, the same reader ``predict`` uses, so
training and inference see identical pixels (EXIF, 16-bit, palette, DICOM included); resizing
uses :func:`resize_images`, which the models also use in their graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

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


def _load(path: tf.Tensor, size: int) -> tf.Tensor:
    def py_read(p: bytes) -> np.ndarray:
        return read_xray(p.decode("utf-8"))

    # Decoding in Python (PIL releases the GIL) keeps one reader for every format;
    # resizing stays in the graph, where it runs in parallel without the GIL.
    image = tf.numpy_function(py_read, [path], tf.uint8, stateful=False)
    image.set_shape((None, None, 3))
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
            epoch; a path caches them on disk there; ``False`` decodes every epoch.
        shuffle_buffer: Shuffle buffer size; defaults to the whole set.
        seed: Seed for shuffling and augmentation.
        drop_remainder: Drop the last partial batch (needed by some distribution setups).
        repeat: Repeat forever (pair with ``steps_per_epoch``).

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
    ds = tf.data.Dataset.from_tensor_slices((paths, y))
    ds = ds.map(lambda p, label: (_load(p, input_size), label),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache is True:
        ds = ds.cache()
    elif cache:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        ds = ds.cache(str(cache))
    if training:
        ds = ds.shuffle(shuffle_buffer or max(len(paths), 1), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(lambda x, label: (tf.cast(x, tf.float32), label), num_parallel_calls=tf.data.AUTOTUNE)
    if training and augment is not None:
        layer = _augment_layer(augment, seed)
        if layer is not None:
            preset = isinstance(augment, str)  # presets treat every channel alike
            ds = ds.map(lambda x, label: (_augment_batch(layer, x, preset), label),
                        num_parallel_calls=tf.data.AUTOTUNE)
    # Under tf.distribute, shard by element, never by file: the source is a tensor of file
    # names, not a file-reading dataset, so FILE sharding cannot apply (AUTO would try it and
    # fall back with a warning), and DATA gives every worker the same number of batches.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def _augment_batch(layer: Any, images: tf.Tensor, channel_agnostic: bool) -> tf.Tensor:
    """Augment a float batch; grayscale batches of a preset run on one channel.

    Films read by :func:`pneumozoo.read_xray` are grayscale (R = G = B), and the presets
    draw one transform per image, not per channel, so augmenting the first channel and
    tiling it back gives the same pixels for a third of the work (augmentation is what an
    epoch from the cache costs). Colour batches, and layers passed by the user (which may
    be colour-specific), take the ordinary path.
    """
    if not channel_agnostic:
        return layer(images, training=True)
    gray = tf.reduce_all(tf.equal(images[..., :1], images))
    return tf.cond(gray,
                   lambda: tf.repeat(layer(images[..., :1], training=True), 3, axis=-1),
                   lambda: layer(images, training=True))


def _augment_layer(augment: Any, seed: int) -> Any:
    if isinstance(augment, str):
        if augment == "none":
            return None
        from pneumozoo.augment import get_preset

        return get_preset(augment, seed=seed)
    return augment

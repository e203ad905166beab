"""The input pipeline, one for every Keras backend: decode -> resize -> cache uint8 -> shuffle, batch.

The host side does only what must happen on the host: it reads every film once with
:func:`pneumozoo.read_xray` (the reader ``predict`` uses: EXIF, 16-bit, palette, DICOM), prepares
it with the model's own :meth:`XrayPreprocessor.prepare` (colour policy, resize, rounding: the
pixels ``model.predict`` sees) in parallel threads (PIL releases the GIL), and keeps the result as
one ``uint8 (N, size, size, channels)`` array in memory (optionally in a ``.npy`` file cache). Each
epoch is then a seeded shuffle and batches of that array: the model gets uint8 one-channel films
and does the cast, augmentation (``training=True`` only, see :func:`pneumozoo.fit`), channel
repeat and normalisation itself, on the device.

That is one path for pixels (:func:`load_films`) and two ways to hand batches over, chosen by
measurement (``benchmarks/bench_pipeline.py``): :class:`FilmBatches`, a ``keras.utils.PyDataset``,
on every backend (no TensorFlow import), and on the TensorFlow backend a ``tf.data`` pipeline
over the same cached array (``from_tensor_slices``, with ``tf.distribute`` sharding), which
feeds TensorFlow's own loop without a Python generator.

:func:`make_dataset` keeps its old contract (float32 RGB batches, optional augmentation on the
host) for code that feeds models itself.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import keras
import numpy as np

from pneumozoo.augment import get_preset
from pneumozoo.data.records import Record, Task, targets
from pneumozoo.io import read_xray
from pneumozoo.models.classifier import as_classifier
from pneumozoo.models.preprocessor import XrayPreprocessor
from pneumozoo.rules import is_colour_picture

__all__ = ["FilmBatches", "decode_resize", "load_films", "load_pixels", "make_batches",
           "make_dataset", "resize_images"]


def resize_images(images: Any, size: int) -> Any:
    """Deprecated: models resize inside their graph; use ``model.prepare(film)`` for one film.

    Resizes ``(H, W, 3)`` or ``(N, H, W, 3)`` images to ``size x size`` (antialiased
    bilinear, float32 0..255, not rounded), with ``keras.ops`` on any backend. Warns with a
    ``DeprecationWarning``.

    Args:
        images: One ``(H, W, C)`` image or a batch ``(N, H, W, C)``, 0..255.
        size: Side of the square output.

    Returns:
        A float32 backend tensor (not a NumPy array), ``(size, size, C)`` or
        ``(N, size, size, C)``.

    Example:
        >>> import numpy as np
        >>> resize_images(np.zeros((300, 200, 3)), 64).shape  # doctest: +SKIP
        (64, 64, 3)
    """

    warnings.warn("resize_images is deprecated; use model.prepare(film) or "
                  "XrayPreprocessor.prepare", DeprecationWarning, stacklevel=2)
    x = keras.ops.cast(keras.ops.convert_to_tensor(images), "float32")
    return keras.ops.image.resize(x, (size, size), interpolation="bilinear", antialias=True)


def _preprocessor(model_or_preprocessor: Any = None, input_size: int | None = None,
                  color: bool = False) -> XrayPreprocessor:
    """The preprocessor of a model, a preprocessor, or (for callers without a model) one
    built from a size and the colour flag."""
    if isinstance(model_or_preprocessor, XrayPreprocessor):
        return model_or_preprocessor
    if model_or_preprocessor is not None:
        return as_classifier(model_or_preprocessor).preprocessor
    if input_size is None:
        raise TypeError("a model (or its preprocessor) or an input_size is needed to prepare films")
    return XrayPreprocessor(int(input_size), color="rgb" if color else "luminance")


def load_pixels(path: str | Path, preprocessor: XrayPreprocessor) -> np.ndarray:
    """Read one file and prepare it as the model sees it (``uint8 (size, size, C)``).

    A full decode, as :func:`pneumozoo.predict` reads a film: the same pixels in training,
    evaluation and serving, whatever the film's size (reduced JPEG decoding is an explicit
    option of :func:`pneumozoo.read_xray`, never a default).

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


def _threads() -> int:
    return max(2, min(16, 2 * (os.cpu_count() or 1)))


def _cache_file(cache: str | Path, paths: Sequence[str], pre: XrayPreprocessor) -> Path:
    """``<cache>-<size>px-<C>ch-<digest>.npy``: the digest covers the files (path, size,
    mtime) and the preprocessor, so a cache of other films or another layout is never reused."""
    h = hashlib.sha256(f"{pre.input_size}|{pre.color}".encode())
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}|missing\n".encode())
    return Path(f"{cache}-{pre.input_size}px-{pre.channels}ch-{h.hexdigest()[:16]}.npy")


def load_films(records: Sequence[Record] | Sequence[str | Path], model: Any = None, *,
               input_size: int | None = None, color: bool = False,
               cache: bool | str | Path = True, threads: int | None = None,
               colour: np.ndarray | None = None) -> np.ndarray:
    """Every film read and prepared as the model sees it: ``uint8 (N, size, size, C)``.

    The one pixel path of training and evaluation: each film read with
    :func:`pneumozoo.read_xray` and prepared with the model's :meth:`XrayPreprocessor.prepare`
    (what :func:`load_pixels` does for one file), in ``threads`` parallel threads, in the records' order. ``C`` is 1 for the ``luminance``
    policy (radiographs are grey: a third of the memory), 3 for ``rgb``.

    Args:
        records: Records (or paths) to read.
        model: The model (or its preprocessor) the films are for.
        input_size: Without a model: the side of the square films.
        color: Without a model: keep colour (the ``rgb`` policy).
        cache: A path prefix keeps the array in ``<prefix>-<size>px-<C>ch-<digest>.npy``
            and reads it back when the same files are asked again; ``True``/``False``: no
            file (the array is in memory either way).
        threads: Decoding threads (default: 2 x CPUs, 2..16).
        colour: A boolean array of length N to fill (like NumPy's ``out=``) with whether
            each file is a colour picture (:func:`pneumozoo.rules.is_colour_picture` on its
            own pixels, which the grey films no longer show); the cache file is not read then.

    Returns:
        ``uint8 (N, size, size, C)``, one film per record in the records' order.

    Raises:
        InvalidImageError: If a file cannot be read.
        TypeError: Without a model (or preprocessor), if ``input_size`` is not given.

    Example:
        >>> films = load_films(records, model)  # doctest: +SKIP
        >>> films.dtype, films.shape[1:]  # doctest: +SKIP
        (dtype('uint8'), (192, 192, 1))
    """
    pre = _preprocessor(model, input_size, color)
    paths = [str(getattr(r, "path", r)) for r in records]
    file = None
    if colour is not None and colour.shape != (len(paths),):
        raise ValueError(f"colour must have shape ({len(paths)},), got {colour.shape}")
    if cache not in (True, False, None):
        file = _cache_file(cache, paths, pre)  # type: ignore[arg-type]
        if file.is_file() and colour is None:
            films = np.load(file)
            if films.shape == (len(paths), pre.input_size, pre.input_size, pre.channels):
                return films
    out = np.empty((len(paths), pre.input_size, pre.input_size, pre.channels), np.uint8)

    def one(i: int) -> None:
        image = read_xray(paths[i])
        if colour is not None:
            colour[i] = is_colour_picture(image)
        out[i] = pre.prepare(image).reshape(out.shape[1:])

    if len(paths) > 1:
        with ThreadPoolExecutor(threads or _threads(), thread_name_prefix="pneumozoo-decode") as ex:
            for _ in ex.map(one, range(len(paths))):
                pass
    elif paths:
        one(0)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".npy")
        os.close(fd)
        try:
            np.save(tmp, out)
            os.replace(tmp, file)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return out


class FilmBatches(keras.utils.PyDataset):
    """Batches of cached uint8 films and int32 labels, for ``model.fit`` on any backend.

    A ``keras.utils.PyDataset`` over in-memory arrays: batch ``i`` is a slice of this epoch's
    permutation (seeded: ``seed`` and the epoch number decide it, so a resumed run sees the
    epochs a full run saw). No TensorFlow anywhere.

    Args:
        films: ``uint8 (N, size, size, C)`` (see :func:`load_films`).
        labels: ``(N,)`` class indices.
        batch_size: Films per batch.
        shuffle: A new seeded order every epoch (training); else the records' order.
        seed: Seed of the orders.
        drop_remainder: Leave out the last partial batch.
        epoch: The epoch the first iteration is (a resumed run starts later).
        workers: Threads preparing batches ahead (1: in the training thread).
        max_queue_size: Batches the ``workers`` threads may prepare ahead.
        pad_to: Pad every batch to a multiple of this many films (repeating its last film)
            and return ``(films, labels, weights)`` with weight 0 on the padding: batches a
            data-parallel step can split evenly over its devices, with unchanged metrics.

    Example:
        >>> batches = FilmBatches(films, labels, 32, shuffle=True)  # doctest: +SKIP
        >>> x, y = batches[0]; x.dtype, y.dtype  # doctest: +SKIP
        (dtype('uint8'), dtype('int32'))
    """

    def __init__(self, films: np.ndarray, labels: Any, batch_size: int, *, shuffle: bool = False,
                 seed: int = 0, drop_remainder: bool = False, epoch: int = 0,
                 workers: int = 1, max_queue_size: int = 8, pad_to: int | None = None) -> None:
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=max_queue_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.films = films
        self.labels = np.asarray(labels, dtype=np.int32)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_remainder = bool(drop_remainder)
        self.epoch = int(epoch)
        self.pad_to = int(pad_to) if pad_to and pad_to > 1 else None
        self._order = self._order_of(self.epoch)

    def _order_of(self, epoch: int) -> np.ndarray | None:
        if not self.shuffle:
            return None
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.labels))

    def set_epoch(self, epoch: int) -> None:
        """Start at ``epoch`` (its order), e.g. when a run resumes.

        Args:
            epoch: The epoch whose order the next batches follow (0 is the first).
        """
        self.epoch = int(epoch)
        self._order = self._order_of(self.epoch)

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_remainder else -(-n // self.batch_size)

    def __getitem__(self, index: int) -> Any:
        lo, hi = index * self.batch_size, min((index + 1) * self.batch_size, len(self.labels))
        if self._order is None:
            x, y = self.films[lo:hi], self.labels[lo:hi]
        else:
            idx = np.sort(self._order[lo:hi])  # sorted: contiguous reads, same batch content
            x, y = self.films[idx], self.labels[idx]
        if self.pad_to is None:
            return x, y
        n = len(y)
        pad = -n % self.pad_to
        w = np.ones(n + pad, np.float32)
        if pad:
            w[n:] = 0.0
            x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
            y = np.concatenate([y, np.repeat(y[-1:], pad)])
        return x, y, w

    def on_epoch_end(self) -> None:
        # Called after Keras stopped this epoch's prefetch threads: the next order is safe.
        self.set_epoch(self.epoch + 1)


def _tf_backend() -> bool:
    return keras.backend.backend() == "tensorflow"


def make_batches(
    records: Sequence[Record],
    model: Any = None,
    *,
    input_size: int | None = None,
    task: Task = "binary",
    batch_size: int = 32,
    training: bool = False,
    cache: bool | str | Path = True,
    seed: int = 0,
    drop_remainder: bool = False,
    color: bool = False,
    host: str = "auto",
    films: np.ndarray | None = None,
    pad_to: int | None = None,
) -> Any:
    """Batches of ``(uint8 films, int32 labels)`` at the model's size, for ``model.fit``.

    What :func:`pneumozoo.fit` trains and validates on: the films of :func:`load_films`,
    shuffled every epoch when ``training``, batched. The model casts, augments and normalises.

    Args:
        records: What to load.
        model: The model (or its preprocessor) the data is for.
        input_size: Without a model: the side of the square films.
        task: ``"binary"`` or ``"3class"`` (the labels).
        batch_size: Films per batch (a global batch under data parallelism).
        training: A new seeded order every epoch; else the records' order.
        cache: See :func:`load_films`.
        seed: Seed of the orders.
        drop_remainder: Leave out the last partial batch.
        color: Without a model: the ``rgb`` policy.
        host: ``"auto"`` (``tf.data`` on the TensorFlow backend, :class:`FilmBatches`
            elsewhere), ``"tf.data"`` or ``"pydataset"``.
        films: Already loaded films (skips :func:`load_films`).
        pad_to: See :class:`FilmBatches` (forces ``host="pydataset"``).

    Returns:
        A :class:`FilmBatches` or a ``tf.data.Dataset``.

    Raises:
        ValueError: If ``host`` is not ``"auto"``, ``"tf.data"`` or ``"pydataset"``.
        TypeError: Without a model (or preprocessor), if ``input_size`` is not given.
        DataError: For ``task="3class"`` if a pneumonia file name says neither bacteria nor
            virus.
        InvalidImageError: If a file cannot be read.

    Example:
        >>> batches = make_batches(records, model, batch_size=32, training=True,
        ...                        host="pydataset")  # doctest: +SKIP
        >>> x, y = batches[0]; x.dtype, y.dtype  # doctest: +SKIP
        (dtype('uint8'), dtype('int32'))
    """
    pre = _preprocessor(model, input_size, color)
    y = np.asarray(targets(records, task), dtype=np.int32)
    x = load_films(records, pre, cache=cache) if films is None else films
    if host == "auto":
        host = "tf.data" if _tf_backend() and not pad_to else "pydataset"
    if host == "pydataset":
        return FilmBatches(x, y, batch_size, shuffle=training, seed=seed,
                           drop_remainder=drop_remainder, pad_to=pad_to)
    if host != "tf.data":
        raise ValueError(f"host must be auto, tf.data or pydataset, got {host!r}")
    # lazy: TensorFlow's own (not imported under JAX or PyTorch)
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if training:
        ds = ds.shuffle(max(len(y), 1), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    # Under tf.distribute, shard by element: the source is an in-memory array, not files.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


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
) -> Any:
    """Batches of float32 RGB ``(images, labels)``, for code that feeds a model itself.

    The films come from :func:`load_films` (the one pixel path, what :func:`pneumozoo.fit`
    trains on) and are handed over as float32 ``(N, size, size, 3)`` in 0..255, augmented on
    the host when ``training`` and ``augment`` say so. :func:`pneumozoo.fit` does not use
    this: it hands the model uint8 films (:func:`make_batches`) and augments inside it.

    Args:
        records: What to load (see :func:`pneumozoo.data.scan_split`).
        model: The model (or its preprocessor) the data is for.
        input_size: Without a model: the side of the square images.
        task: ``"binary"`` or ``"3class"``.
        batch_size: Images per batch.
        training: Shuffle every epoch and apply ``augment``; evaluation pipelines keep
            the input order and never augment.
        augment: A preset name (see :func:`pneumozoo.augment.list_presets`) or a Keras layer;
            only used when ``training`` is true.
        cache: See :func:`load_films` (decoded films are always kept in memory).
        shuffle_buffer: Shuffle buffer size (``tf.data`` only; default: the whole set).
        seed: Seed for shuffling and augmentation.
        drop_remainder: Drop the last partial batch.
        repeat: Repeat forever (``tf.data`` only; pair with ``steps_per_epoch``).
        color: Without a model: the ``rgb`` policy (colour kept).

    Returns:
        A ``tf.data.Dataset`` on the TensorFlow backend, else a ``keras.utils.PyDataset``.

    Raises:
        DataError: For ``task="3class"`` if a pneumonia file name says neither bacteria nor
            virus.
        UnknownNameError: For an unknown augmentation preset.

    Example:
        >>> ds = make_dataset(records, input_size=192, batch_size=32, training=True,
        ...                   augment="xray")  # doctest: +SKIP
    """
    pre = _preprocessor(model, input_size, color)
    layer = _augment_layer(augment, seed) if training else None
    preset = isinstance(augment, str)
    if not _tf_backend():
        base = make_batches(records, pre, task=task, batch_size=batch_size, training=training,
                            cache=cache, seed=seed, drop_remainder=drop_remainder, host="pydataset")
        return _FloatBatches(base, layer, preset)
    # lazy: TensorFlow's own (not imported under JAX or PyTorch)
    import tensorflow as tf

    y = np.asarray(targets(records, task), dtype=np.int32)
    ds = tf.data.Dataset.from_tensor_slices((load_films(records, pre, cache=cache), y))
    if training:
        ds = ds.shuffle(shuffle_buffer or max(len(y), 1), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(lambda x, label: (_to_model_input(x, layer, preset), label),
                num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


class _FloatBatches(keras.utils.PyDataset):
    """:class:`FilmBatches` as float32 RGB, augmented on the host (non-TF backends)."""

    def __init__(self, base: FilmBatches, layer: Any, preset: bool) -> None:
        super().__init__()
        self.base, self.layer, self.preset = base, layer, preset

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.base[index]
        return keras.ops.convert_to_numpy(_to_model_input(x, self.layer, self.preset)), y

    def on_epoch_end(self) -> None:
        self.base.on_epoch_end()


def _to_model_input(images: Any, layer: Any, channel_agnostic: bool) -> Any:
    """A uint8 batch of one or three channels -> (augmented) float32 RGB.

    The presets draw one transform per image, not per channel, so a one-channel batch is
    augmented before it is repeated to RGB; a layer passed by the user may be
    colour-specific, so it sees the RGB batch.
    """
    ops = keras.ops
    x = ops.cast(images, "float32")
    if layer is not None and channel_agnostic:
        x = layer(x, training=True)
    if x.shape[-1] == 1:
        x = ops.repeat(x, 3, axis=-1)
    if layer is not None and not channel_agnostic:
        x = layer(x, training=True)
    return x


def _augment_layer(augment: Any, seed: int) -> Any:
    if augment is None:
        return None
    if isinstance(augment, str):
        if augment == "none":
            return None

        return get_preset(augment, seed=seed)
    return augment

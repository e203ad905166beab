"""``predict``: typed predictions for paths, folders, bytes, PIL images or arrays, streamed in batches."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pneumozoo.errors import InvalidImageError
from pneumozoo.io import ImageSource, describe_source, read_xray

__all__ = ["Prediction", "iter_predictions", "predict"]


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one input.

    Attributes:
        source: The path, or a short description of an in-memory input.
        label: Predicted class name (``None`` if the input could not be read).
        probability: P(pneumonia) = 1 - P(normal) (``None`` on error).
        probabilities: Every class's probability, by name.
        threshold: The decision threshold used for ``label``.
        error: Why the input could not be read, or ``None``.

    Example:
        >>> p = Prediction("a.jpeg", "pneumonia", 0.93, {"normal": 0.07, "pneumonia": 0.93})
        >>> p.ok, p.to_dict()["label"]
        (True, 'pneumonia')
        >>> Prediction("b.jpeg", None, None, error="empty file (0 bytes)").to_dict()
        {'path': 'b.jpeg', 'error': 'empty file (0 bytes)'}
    """

    source: str
    label: str | None
    probability: float | None
    probabilities: dict[str, float] = field(default_factory=dict)
    threshold: float = 0.5
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the input was read and predicted."""
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``path`` and ``label``/``probability``/``probabilities``, or ``error``."""
        if self.error is not None:
            return {"path": self.source, "error": self.error}
        return {
            "path": self.source,
            "label": self.label,
            "probability": self.probability,
            "probabilities": self.probabilities,
            "threshold": self.threshold,
        }


def _label(probs: np.ndarray, names: Sequence[str], threshold: float) -> str:
    if 1.0 - float(probs[0]) < threshold:
        return names[0]
    # Pneumonia: the most likely non-normal class (bacteria/virus for 3-class models).
    return names[1 + int(np.argmax(probs[1:]))]


def _expand(inputs: Any) -> list[Any]:
    """Folders become their image files (recursively, sorted); everything else stays."""
    single = (str, os.PathLike, bytes, bytearray, memoryview, np.ndarray, Image.Image)
    items = [inputs] if isinstance(inputs, single) else list(inputs)
    out: list[Any] = []
    for item in items:
        if isinstance(item, (str, os.PathLike)) and Path(item).is_dir():
            from pneumozoo.io import expand_inputs

            files, errors = expand_inputs([item])
            out.extend(files)
            out.extend(errors)
        else:
            out.append(item)
    return out


def _load_one(item: Any, size: int) -> np.ndarray | InvalidImageError:
    from pneumozoo.data.pipeline import resize_images

    if isinstance(item, InvalidImageError):
        return item
    try:
        image = read_xray(item)
    except InvalidImageError as e:
        return e
    # Rounded to uint8 like the training pipeline's cache, so both feed identical pixels.
    return np.clip(np.rint(np.asarray(resize_images(image, size))), 0, 255).astype(np.uint8)


def iter_predictions(
    model: Any,
    inputs: ImageSource | Iterable[ImageSource],
    *,
    threshold: float | None = None,
    batch_size: int = 32,
    tta: bool = False,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[Prediction]:
    """Like :func:`predict`, but yields predictions as batches finish (constant memory).

    Args:
        model: A zoo model (see :func:`pneumozoo.load_pretrained`).
        inputs: One input or a sequence of them; folders are walked recursively.
        threshold: Decision threshold on P(pneumonia); defaults to the model's shipped one.
        batch_size: Images per forward pass.
        tta: Average over test-time augmentations.
        workers: Threads reading and resizing files while the model runs.
        progress: Called as ``progress(done, total)`` after each batch.

    Yields:
        One :class:`Prediction` per input (per file for folders), in order; unreadable
        inputs have ``error`` set.

    Example:
        >>> for p in iter_predictions(model, "scans/", batch_size=64):  # doctest: +SKIP
        ...     print(p.source, p.label if p.ok else p.error)
    """
    from pneumozoo.models.registry import class_names_of, input_size_of

    names = class_names_of(model)
    size = input_size_of(model)
    if threshold is None:
        cfg = getattr(model, "pneumozoo_config", None)
        threshold = float(cfg.threshold) if cfg is not None else 0.5
    items = _expand(inputs)
    total = len(items)
    done = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, total, batch_size):
            chunk = items[start:start + batch_size]
            loaded = list(pool.map(lambda it: _load_one(it, size), chunk))
            good = [x for x in loaded if not isinstance(x, InvalidImageError)]
            probs = np.empty((0, len(names)))
            if good:
                batch = np.stack(good).astype(np.float32)
                probs = _predict_batch(model, batch, tta=tta)
            k = 0
            for item, x in zip(chunk, loaded, strict=True):
                name = describe_source(item) if not isinstance(item, InvalidImageError) else item.source
                if isinstance(x, InvalidImageError):
                    yield Prediction(source=name, label=None, probability=None, threshold=threshold,
                                     error=x.reason)
                    continue
                p = probs[k]
                k += 1
                yield Prediction(
                    source=name,
                    label=_label(p, names, threshold),
                    probability=float(1.0 - p[0]),
                    probabilities={n: float(v) for n, v in zip(names, p, strict=True)},
                    threshold=threshold,
                )
            done += len(chunk)
            if progress is not None:
                progress(done, total)


def _predict_batch(model: Any, batch: np.ndarray, *, tta: bool) -> np.ndarray:
    if tta:
        from pneumozoo.evaluation.tta import predict_tta

        return np.asarray(predict_tta(model, batch), dtype=np.float64)
    return np.asarray(model.predict_on_batch(batch), dtype=np.float64)


def predict(
    model: Any,
    inputs: ImageSource | Iterable[ImageSource],
    *,
    threshold: float | None = None,
    batch_size: int = 32,
    tta: bool = False,
) -> list[Prediction]:
    """Predict pneumonia for one or many X-rays.

    Inputs may be paths (folders are walked recursively), raw file bytes, PIL images or
    arrays, of any size and common mode; each is read with :func:`pneumozoo.read_xray` and
    resized to the model's input size. An unreadable input does not stop the others: its
    :class:`Prediction` has ``error`` set instead.

    Args:
        model: A zoo model (see :func:`pneumozoo.load_pretrained`).
        inputs: One input or a sequence of them.
        threshold: Decision threshold on P(pneumonia); defaults to the model's shipped one.
        batch_size: Images per forward pass.
        tta: Average over test-time augmentations (slower; see the evaluation guide).

    Returns:
        One :class:`Prediction` per input (per file for folders), in order.

    Example:
        >>> from pneumozoo import load_pretrained, predict
        >>> model = load_pretrained()
        >>> import numpy as np
        >>> [p.label for p in predict(model, np.zeros((300, 200), dtype=np.uint8))]  # doctest: +SKIP
        ['normal']
    """
    return list(iter_predictions(model, inputs, threshold=threshold, batch_size=batch_size, tta=tta))

"""``predict``: typed predictions for paths, folders, bytes, PIL images or arrays, streamed in batches."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pneumozoo.errors import InvalidImageError, OutOfDomainError, PneumozooError
from pneumozoo.guard import OUT_OF_DOMAIN_POLICIES
from pneumozoo.io import ImageSource, describe_source, expand_inputs, read_xray
from pneumozoo.models.classifier import PneumoniaClassifier, as_classifier
from pneumozoo.models.head import check_threshold
from pneumozoo.rules import in_domain as in_domain_of
from pneumozoo.rules import is_colour_picture, pneumonia_scores
from pneumozoo.tta import predict_tta

__all__ = ["OUT_OF_DOMAIN_POLICIES", "Prediction", "iter_predictions", "predict"]




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
        in_domain: False when the model's domain guard says the film is unlike its training
            films (the prediction is then not to be trusted); ``None`` for a model without a
            guard or on error.
        domain_score: The guard's distance on a linear scale set by the guard's own
            validation films: 0.0 at their median film, 1.0 at the cut-off; above 1.0 is out
            of domain. Negative values are normal (a film more typical than the median
            validation film) and are not clipped. ``None`` without a guard or on error.

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
    in_domain: bool | None = None
    domain_score: float | None = None

    @property
    def ok(self) -> bool:
        """True when the input was read and predicted."""
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``path``, ``label``, ``probability``, ``probabilities``,
        ``threshold``, ``in_domain``, ``domain_score``; or ``path`` and ``error``."""
        if self.error is not None:
            return {"path": self.source, "error": self.error}
        return {
            "path": self.source,
            "label": self.label,
            "probability": self.probability,
            "probabilities": self.probabilities,
            "threshold": self.threshold,
            "in_domain": self.in_domain,
            "domain_score": self.domain_score,
        }


def _expand(inputs: Any) -> list[Any]:
    """Folders become their image files (recursively, sorted); batches their films; the rest stays."""
    single = (str, os.PathLike, bytes, bytearray, memoryview, np.ndarray, Image.Image)
    items = [inputs] if isinstance(inputs, single) else list(inputs)
    out: list[Any] = []
    for item in items:
        if isinstance(item, (str, os.PathLike)) and Path(item).is_dir():
            files, errors = expand_inputs([item])
            if not files and not errors:
                raise PneumozooError(f"{item}: no image files found in this folder")
            out.extend(files)
            out.extend(errors)
        elif isinstance(item, np.ndarray) and item.ndim == 4:  # a (N, H, W, C) batch
            out.extend(item)
        else:
            out.append(item)
    return out


def _load_one(item: Any, model: PneumoniaClassifier) -> tuple[np.ndarray, bool] | InvalidImageError:
    """The prepared pixels of one input and whether it looks like a colour picture."""
    if isinstance(item, InvalidImageError):
        return item
    try:  # check: films too small or without content are a per-file error, not a prediction
        # Always the full decode: a path, its bytes, a PIL image and read_xray's array are the
        # same film and must read the same (reduced JPEG decoding, read_xray(min_side=...),
        # is an explicit opt-in: pass its arrays).
        image = read_xray(item, check=True)
    except InvalidImageError as e:
        return e
    return model.preprocessor.prepare(image), is_colour_picture(image)


def iter_predictions(
    model: Any,
    inputs: ImageSource | Iterable[ImageSource],
    *,
    threshold: float | None = None,
    batch_size: int = 32,
    tta: bool = False,
    workers: int = 2,
    on_out_of_domain: str = "flag",
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[Prediction]:
    """Like :func:`predict`, but yields predictions as batches finish (constant memory).

    Args:
        model: A pneumozoo model (see :func:`pneumozoo.load_pretrained`).
        inputs: One input or a sequence of them; folders are walked recursively.
        threshold: Decision threshold on P(pneumonia); defaults to the model's own.
        batch_size: Images per forward pass.
        tta: Average over test-time augmentations.
        workers: Threads reading and resizing files while the model runs.
        on_out_of_domain: ``flag`` (default: predict, with ``in_domain=False``), ``skip``
            (leave such films out) or ``fail`` (raise :class:`~pneumozoo.errors.OutOfDomainError`).
        progress: Called as ``progress(done, total)`` after each batch.

    Yields:
        One :class:`Prediction` per input (per file for folders), in order; unreadable
        inputs have ``error`` set.

    Raises:
        PneumozooError: If ``model`` is not a pneumozoo model, an argument is out of range,
            or an input folder holds no image.
        OutOfDomainError: With ``on_out_of_domain="fail"``, at the first flagged film.

    Example:
        >>> for p in iter_predictions(model, "scans/", batch_size=64):  # doctest: +SKIP
        ...     print(p.source, p.label if p.ok else p.error)
    """
    clf = as_classifier(model)
    threshold = clf.threshold if threshold is None else check_threshold(threshold)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise PneumozooError(f"batch_size must be a positive integer, got {batch_size!r}")
    if on_out_of_domain not in OUT_OF_DOMAIN_POLICIES:
        raise PneumozooError(f"on_out_of_domain must be one of {', '.join(OUT_OF_DOMAIN_POLICIES)}, "
                             f"got {on_out_of_domain!r}")
    items = _expand(inputs)
    if not items:
        raise PneumozooError("no inputs given: pass a file, a folder, bytes, a PIL image or an array")
    names = clf.class_names
    head = clf.head
    total = len(items)
    done = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        def submit(start: int) -> list[Any]:
            return [pool.submit(_load_one, it, clf) for it in items[start:start + batch_size]]

        pending = submit(0)
        for start in range(0, total, batch_size):
            chunk = items[start:start + batch_size]
            loaded = [f.result() for f in pending]
            # The next batch is read and prepared while the model runs on this one.
            pending = submit(start + batch_size)
            good = [x for x in loaded if not isinstance(x, InvalidImageError)]
            probs: np.ndarray = np.empty((0, len(names)))
            dist: np.ndarray | None = None
            if good:
                batch = np.stack([x[0] for x in good])  # uint8 (n, size, size, 1 | 3)
                probs, dist = _predict_batch(clf, batch, tta=tta)
            labels = head.label(probs, threshold) if len(probs) else []
            p_sick: Any = pneumonia_scores(probs) if len(probs) else []
            k = 0
            for item, x in zip(chunk, loaded, strict=True):
                name = describe_source(item) if not isinstance(item, InvalidImageError) else item.source
                if isinstance(x, InvalidImageError):
                    yield Prediction(source=name, label=None, probability=None, threshold=threshold,
                                     error=x.reason)
                    continue
                in_domain: bool | None = None
                score: float | None = None
                if dist is not None and head.guard_cutoff is not None:
                    score = float(dist[k])  # already the domain score (1.0 at the cut-off)
                    in_domain = bool(in_domain_of([score], colour=[x[1]])[0])
                pred = Prediction(
                    source=name,
                    label=labels[k],
                    probability=float(p_sick[k]),
                    probabilities={n: float(v) for n, v in zip(names, probs[k], strict=True)},
                    threshold=threshold,
                    in_domain=in_domain,
                    domain_score=score,
                )
                k += 1
                if in_domain is False and on_out_of_domain != "flag":
                    if on_out_of_domain == "fail":
                        raise OutOfDomainError(name, score, colour=bool(x[1]))
                    continue
                yield pred
            done += len(chunk)
            if progress is not None:
                progress(done, total)


def _predict_batch(model: PneumoniaClassifier, batch: np.ndarray, *,
                   tta: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities and domain scores of a prepared batch, by the model's one inference
    method (:meth:`PneumoniaClassifier.scores`); with ``tta`` the probabilities are averaged
    over the views (the domain score stays the film's own)."""
    probs, dist = model.scores(batch)
    if tta:
        probs = np.asarray(predict_tta(model, batch), dtype=np.float64)
    return probs, dist


def predict(
    model: Any,
    inputs: ImageSource | Iterable[ImageSource],
    *,
    threshold: float | None = None,
    batch_size: int = 32,
    tta: bool = False,
    on_out_of_domain: str = "flag",
) -> list[Prediction]:
    """Predict pneumonia for one or many X-rays.

    Inputs may be paths (folders are walked recursively), raw file bytes, PIL images,
    ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` arrays or ``(N, H, W, C)`` batches, of any
    size and common mode; each is read with :func:`pneumozoo.read_xray` (floats in 0..1 are
    rescaled to 0..255) and prepared by the model's own preprocessor, so the probabilities
    equal ``model.predict`` on the same film. An unreadable input does not stop the others:
    its :class:`Prediction` has ``error`` set instead.

    Args:
        model: A pneumozoo model (see :func:`pneumozoo.load_pretrained`).
        inputs: One input or a sequence of them.
        threshold: Decision threshold on P(pneumonia) in [0, 1]; defaults to the model's own.
        batch_size: Images per forward pass.
        tta: Average over test-time augmentations (slower; see the evaluation guide).
        on_out_of_domain: ``flag`` (default), ``skip`` or ``fail``: what to do with films
            the model's domain guard flags (see :func:`iter_predictions`).

    Returns:
        One :class:`Prediction` per input (per file for folders), in order.

    Raises:
        PneumozooError: If ``model`` is not a model (a name: load it with
            :func:`pneumozoo.load_pretrained` first), the threshold is not in [0, 1], or
            there is nothing to predict.

    Example:
        >>> from pneumozoo import load_pretrained, predict
        >>> model = load_pretrained()
        >>> import numpy as np
        >>> [p.label for p in predict(model, np.zeros((300, 200), dtype=np.uint8))]  # doctest: +SKIP
        ['normal']
    """
    return list(iter_predictions(model, inputs, threshold=threshold, batch_size=batch_size,
                                 tta=tta, on_out_of_domain=on_out_of_domain))

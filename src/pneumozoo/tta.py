"""Test-time augmentation: average the softmax over a few deterministic views of each film.

The views are mild and anatomically plausible: the film itself, shifts of a few percent in
four directions, and a slight zoom in. There is no vertical flip (films are never upside
down) and the horizontal flip is off by default: the heart is on the left, and a mirrored
chest is not a chest the model will ever see.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pneumozoo.errors import UnknownNameError

__all__ = ["VIEWS", "VIEW_PRESETS", "make_view", "predict_tta"]

#: Every single view :func:`predict_tta` knows.
VIEWS: tuple[str, ...] = (
    "identity", "shift_left", "shift_right", "shift_up", "shift_down", "zoom_in", "hflip",
)
#: Named sets of views.
VIEW_PRESETS: dict[str, tuple[str, ...]] = {
    "identity": ("identity",),
    "shift": ("identity", "shift_left", "shift_right", "shift_up", "shift_down", "zoom_in"),
    "zoom": ("identity", "zoom_in"),
}


def _shift(batch: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate by (dy, dx) pixels, filling the uncovered border with the nearest edge."""
    _, h, w, _ = batch.shape
    pad = ((0, 0), (max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0)), (0, 0))
    padded = np.pad(batch, pad, mode="edge")
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[:, top:top + h, left:left + w, :]


def make_view(batch: np.ndarray, view: str, *, shift: float = 0.04, zoom: float = 0.08) -> np.ndarray:
    """One deterministic view of a batch ``(N, H, W, C)`` (any number of channels).

    Args:
        batch: Images, 0..255.
        view: One of :data:`VIEWS`.
        shift: Translation as a fraction of the side (``shift_*`` views), at least 1 pixel.
        zoom: Fraction of the side cropped away around the centre (``zoom_in``); the model
            resizes the crop back to its input size.

    Returns:
        The view (the same shape, except ``zoom_in`` which is a central crop).

    Raises:
        UnknownNameError: For an unknown view name.
    """
    _, h, w, _ = batch.shape
    dy, dx = max(1, round(shift * h)), max(1, round(shift * w))
    if view == "identity":
        return batch
    if view == "shift_left":
        return _shift(batch, 0, -dx)
    if view == "shift_right":
        return _shift(batch, 0, dx)
    if view == "shift_up":
        return _shift(batch, -dy, 0)
    if view == "shift_down":
        return _shift(batch, dy, 0)
    if view == "zoom_in":
        cy, cx = round(zoom * h / 2), round(zoom * w / 2)
        return batch[:, cy:h - cy, cx:w - cx, :]
    if view == "hflip":
        return batch[:, :, ::-1, :]
    raise UnknownNameError("TTA view", view, list(VIEWS))


def _resolve(views: str | Sequence[str], hflip: bool) -> list[str]:
    if isinstance(views, str):
        if views in VIEW_PRESETS:
            names = list(VIEW_PRESETS[views])
        elif views in VIEWS:
            names = [views]
        else:
            raise UnknownNameError("TTA views", views, [*VIEW_PRESETS, *VIEWS])
    else:
        names = list(views)
        for name in names:
            if name not in VIEWS:
                raise UnknownNameError("TTA view", name, list(VIEWS))
    if hflip and "hflip" not in names:
        names.append("hflip")
    if not names:
        raise ValueError("predict_tta needs at least one view")
    return names


def predict_tta(
    model: Any,
    batch: np.ndarray,
    *,
    views: str | Sequence[str] = "shift",
    hflip: bool = False,
    shift: float = 0.04,
    zoom: float = 0.08,
) -> np.ndarray:
    """Softmax of ``model`` averaged over deterministic views of each image.

    Every view goes through the model's one inference method
    (:meth:`~pneumozoo.models.PneumoniaClassifier.predict_prepared`); a view whose size is not the
    model's (the zoom-in crop, or films of another size) is prepared on the host first, as
    :func:`pneumozoo.predict` prepares films.

    Args:
        model: A pneumozoo model.
        batch: Films ``(N, H, W, 1 | 3)`` (or one ``(H, W, 1 | 3)``), float or uint8,
            0..255; usually prepared ones at the model's size.
        views: A preset of :data:`VIEW_PRESETS` (``"shift"``: identity, 4 shifts, zoom in)
            or a list of :data:`VIEWS`.
        hflip: Also average the mirrored film (off: anatomy is lateralised).
        shift: Shift as a fraction of the side.
        zoom: Zoom-in crop as a fraction of the side.

    Returns:
        ``(N, k)`` float64 probabilities; rows sum to 1.

    Raises:
        UnknownNameError: For an unknown view or preset.
        ValueError: If ``batch`` is not ``(N, H, W, 1 | 3)``.

    Example:
        >>> probs = predict_tta(model, np.zeros((2, 192, 192, 3)))  # doctest: +SKIP
        >>> probs.shape  # doctest: +SKIP
        (2, 2)
    """
    # lazy: loads Keras and its backend
    from pneumozoo.models.classifier import as_classifier

    clf = as_classifier(model)
    x = np.asarray(batch)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"expected images (N, H, W, 1) or (N, H, W, 3), got shape {x.shape}")
    names = _resolve(views, hflip)
    total: np.ndarray | None = None
    for name in names:
        view = np.ascontiguousarray(make_view(x, name, shift=shift, zoom=zoom))
        probs = clf.predict_prepared(view)[0]
        total = probs if total is None else total + probs
    assert total is not None
    return total / len(names)

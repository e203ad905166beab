"""The domain guard: "this film is unlike the films I was trained on".

A Mahalanobis distance on the model's penultimate features: the features of the training
films are centred, projected onto their first principal components, and their covariance is
estimated with Ledoit-Wolf shrinkage. A film whose distance exceeds a declared quantile of
held-out in-domain films' distances (validation, never test) is out of domain. The arrays
live in the model's :class:`~pneumozoo.models.ClassifierHead`, so they are saved, hashed and
loaded with the weights.

Out-of-domain films still get a prediction; :func:`pneumozoo.predict` marks them
(``in_domain=False``) and ``on_out_of_domain`` chooses whether they are flagged, skipped or
refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pneumozoo.rules import MAX_COLOURFULNESS, is_colour_picture

__all__ = ["DEFAULT_QUANTILE", "MAX_COLOURFULNESS", "OUT_OF_DOMAIN_POLICIES", "fit_guard",
           "guard_features", "is_colour_picture", "non_xray_images"]

#: What ``predict`` and ``evaluate`` do with films the guard flags: keep them flagged,
#: leave them out, or stop with :class:`~pneumozoo.errors.OutOfDomainError`.
OUT_OF_DOMAIN_POLICIES = ("flag", "skip", "fail")

#: Quantile of the held-out in-domain films' scores used as the cut-off: about 7.5% of
#: in-domain films are flagged. Chosen for the zoo on the validation films and the adult
#: ``nih-adult-dev`` films (the data set meant for this), see benchmarks/bench_guard.py.
DEFAULT_QUANTILE = 0.925
def guard_features(model: Any, records: Sequence[Any], *, batch_size: int = 64) -> np.ndarray:
    """Penultimate features of labelled or unlabelled records, read as the model reads them.

    Args:
        model: A :class:`~pneumozoo.models.PneumoniaClassifier`.
        records: :class:`pneumozoo.data.Record` s (labels are not used).
        batch_size: Films per forward pass.

    Returns:
        ``(N, D)`` float64 features.
    """
    # lazy: loads Keras and its backend
    from pneumozoo.data.pipeline import make_dataset

    ds = make_dataset(list(records), model, batch_size=batch_size, training=False, cache=False)
    chunks = [model.features(np.asarray(x)) for x, _ in ds]
    return np.concatenate(chunks) if chunks else np.zeros((0, 0))


def fit_guard(
    model: Any,
    fit_features: np.ndarray,
    cutoff_features: np.ndarray,
    *,
    quantile: float = DEFAULT_QUANTILE,
    fitted_on: str = "",
) -> dict[str, Any]:
    """Fit the guard on in-domain features and install it in ``model``'s head.

    Per block of the guard's features (see :class:`~pneumozoo.models.ClassifierHead`): the
    training films' mean, a projection onto their first
    :data:`~pneumozoo.models.head.GUARD_PROJECTED_COMPONENTS` principal components when the
    block is wider than :data:`~pneumozoo.models.head.GUARD_MAX_COMPONENTS` (its rows scaled
    to unit length first), and the Ledoit-Wolf
    precision matrix; then each block's distances are standardised by the held-out films'
    mean and standard deviation, and the cut-off is the ``quantile`` of the held-out films'
    summed score.

    Args:
        model: The model whose guard features these are (:meth:`PneumoniaClassifier.features`).
        fit_features: ``(N, D)`` guard features of the training films (the model's domain).
        cutoff_features: ``(M, D)`` guard features of held-out in-domain films (validation);
            about ``1 - quantile`` of such films are flagged.
        quantile: The declared quantile.
        fitted_on: A short description of the films, for the model card.

    Returns:
        What was fitted (blocks, cut-off, quantile, film counts), also kept in the head's
        ``guard_info``.

    Raises:
        ValueError: With fewer than 2 films on either side, or ``quantile`` outside (0, 1).
    """
    # lazy: loads scikit-learn
    from sklearn.covariance import LedoitWolf

    # lazy: loads Keras and its backend
    from pneumozoo.models.head import GUARD_MAX_COMPONENTS, GUARD_PROJECTED_COMPONENTS, _unit_rows

    f = np.asarray(fit_features, dtype=np.float64)
    held_out = np.asarray(cutoff_features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2 or held_out.ndim != 2 or len(held_out) < 2:
        raise ValueError("the guard needs the features of at least 2 films on each side")
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    head = model.head
    blocks = []
    start = 0
    for d in head.guard_blocks:
        x = f[:, start:start + d]
        if d > GUARD_MAX_COMPONENTS:
            x = _unit_rows(x)
        mean = x.mean(axis=0)
        proj = None
        if d > GUARD_MAX_COMPONENTS:  # principal directions (right singular vectors)
            _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
            proj = np.zeros((d, GUARD_PROJECTED_COMPONENTS))
            used = min(GUARD_PROJECTED_COMPONENTS, vt.shape[0])
            proj[:, :used] = vt[:used].T
            x = (x - mean) @ proj
        lw = LedoitWolf().fit(x)
        blocks.append((mean, proj, lw.precision_))
        start += d
    # Standardise each block's distances on the held-out films, then sum.
    head.set_guard(blocks, np.tile([0.0, 1.0], (len(blocks), 1)), 1.0, 0.0, {})
    dist = head.block_distances(held_out)
    scale = np.array([[d.mean(), max(float(d.std()), 1e-12)] for d in dist])
    total = sum((d - scale[i, 0]) / scale[i, 1] for i, d in enumerate(dist))
    cutoff = float(np.quantile(total, quantile))
    median = float(np.median(total))
    info = {"method": "multi-layer Mahalanobis (Ledoit-Wolf), standardised block distances summed",
            "blocks": len(blocks), "quantile": quantile, "fit_films": len(f),
            "cutoff_films": len(held_out), "fitted_on": fitted_on}
    head.set_guard(blocks, scale, max(cutoff, median + 1e-9), median, info)
    return info


def non_xray_images(n: int = 8, size: int = 256, seed: int = 0) -> dict[str, np.ndarray]:
    """Images that are not chest films, for checking a guard: ``n`` each of uniform noise,
    Gaussian noise, colour pictures (smooth random colour fields) and grey gradients.

    Args:
        n: Images of each kind.
        size: Side of each square image.
        seed: Seed of the random generator.

    Returns:
        ``{kind: uint8 (n, size, size, 3)}``.

    Example:
        >>> sorted(non_xray_images(1, 32))
        ['colour-picture', 'gaussian-noise', 'grey-gradient', 'uniform-noise']
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    colour = []
    for _ in range(n):
        img = np.zeros((size, size, 3))
        for _ in range(6):  # a few smooth colour blobs over a coloured background
            cx, cy, r = rng.random(3)
            blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (0.02 + 0.1 * r))
            img += blob[..., None] * rng.integers(0, 255, 3)
        colour.append(np.clip(img + rng.integers(0, 120, 3), 0, 255))
    angle = rng.random(n) * 2 * np.pi
    gradient = [np.repeat((255 * ((np.cos(a) * xx + np.sin(a) * yy) % 1.0))[..., None], 3, -1)
                for a in angle]
    return {
        "uniform-noise": rng.integers(0, 256, (n, size, size, 3)).astype(np.uint8),
        "gaussian-noise": np.clip(rng.normal(128, 50, (n, size, size, 1)), 0, 255).repeat(3, -1).astype(np.uint8),
        "colour-picture": np.stack(colour).astype(np.uint8),
        "grey-gradient": np.stack(gradient).astype(np.uint8),
    }

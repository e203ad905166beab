"""Bootstrap confidence intervals for the binary metrics, resampling patients or images.

Every resample is a vector of weights (how many times each image was drawn), so the metrics
of all resamples are computed at once with array operations: 1000 resamples of a 624-image
test set take well under a second. The metrics are those of the point estimates, from one
registry (:data:`pneumozoo.evaluation.metrics.BINARY_METRICS`): the point estimate is the
resample whose weights are all 1. When patient ids are given, patients are drawn with
replacement and each brings all of its images (a cluster bootstrap): images of one patient
are not independent, and resampling them one by one gives intervals that are too narrow.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence

import numpy as np

from pneumozoo.evaluation.metrics import BINARY_METRICS, binary_metric_values, pneumonia_scores

__all__ = ["BOOTSTRAP_METRICS", "bootstrap_ci", "bootstrap_distribution"]

#: Metrics :func:`bootstrap_ci` returns an interval for: every registered binary metric.
BOOTSTRAP_METRICS: tuple[str, ...] = tuple(BINARY_METRICS)

# Resamples per chunk are limited so that a chunk holds about this many weights.
_CHUNK_CELLS = 4_000_000


def _validate(y_true: Sequence[int] | np.ndarray, probabilities: np.ndarray,
              patient_ids: Sequence[Hashable] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = (np.asarray(y_true).reshape(-1) > 0).astype(np.float64)
    s = pneumonia_scores(np.asarray(probabilities, dtype=np.float64)).reshape(-1)
    if len(y) != len(s):
        raise ValueError(f"{len(y)} labels but {len(s)} scores; they must match one to one")
    if len(y) == 0:
        raise ValueError("cannot bootstrap an empty set of predictions")
    if patient_ids is None:
        clusters = np.arange(len(y))
    else:
        ids = list(patient_ids)
        if len(ids) != len(y):
            raise ValueError(f"{len(ids)} patient ids for {len(y)} predictions; give one per image")
        _, clusters = np.unique(np.asarray([str(i) for i in ids]), return_inverse=True)
    return y, s, clusters.reshape(-1)


def _weight_chunks(clusters: np.ndarray, n_boot: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Yield ``(b, n_images)`` weight matrices: times each image is drawn, per resample."""
    n_clusters = int(clusters.max()) + 1
    per_chunk = max(1, _CHUNK_CELLS // max(len(clusters), n_clusters))
    done = 0
    while done < n_boot:
        b = min(per_chunk, n_boot - done)
        draws = rng.integers(0, n_clusters, size=(b, n_clusters))
        flat = (draws + np.arange(b)[:, None] * n_clusters).ravel()
        counts = np.bincount(flat, minlength=b * n_clusters).reshape(b, n_clusters)
        yield counts[:, clusters].astype(np.float64)
        done += b


def _weighted_metrics(w: np.ndarray, y: np.ndarray, s: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """Binary metrics of each weighted resample (one row of ``w`` per resample).

    The formulas are those of the point estimates: the registry of
    :data:`pneumozoo.evaluation.metrics.BINARY_METRICS`.
    """
    return binary_metric_values(y, s, threshold, weights=w)


def bootstrap_distribution(
    y_true: Sequence[int] | np.ndarray,
    probabilities: np.ndarray,
    *,
    threshold: float,
    patient_ids: Sequence[Hashable] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Each metric over ``n_boot`` bootstrap resamples (NaN where undefined in a resample).

    Args and resampling are those of :func:`bootstrap_ci`.

    Returns:
        Metric name -> array of ``n_boot`` values.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    y, s, clusters = _validate(y_true, probabilities, patient_ids)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {}
    for w in _weight_chunks(clusters, n_boot, rng):
        for key, values in _weighted_metrics(w, y, s, threshold).items():
            parts.setdefault(key, []).append(values)
    return {k: np.concatenate(v) for k, v in parts.items()}


def bootstrap_ci(
    y_true: Sequence[int] | np.ndarray,
    probabilities: np.ndarray,
    *,
    threshold: float,
    patient_ids: Sequence[Hashable] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, list[float]]:
    """Percentile bootstrap confidence intervals of the binary (normal vs pneumonia) metrics.

    With ``patient_ids``, patients are resampled with replacement and each drawn patient
    brings all of its images (cluster bootstrap); without, images are resampled. Resamples in
    which a metric is undefined (e.g. no pneumonia case for sensitivity; the rules are those
    of :mod:`pneumozoo.evaluation.metrics`) are left out of that metric's interval.

    Args:
        y_true: Labels: 0 normal, anything else pneumonia (3-class labels work too).
        probabilities: Softmax outputs ``(n, k)`` (class 0 normal) or P(pneumonia) ``(n,)``.
        threshold: Decision threshold on P(pneumonia), as in the point estimates.
        patient_ids: One patient id per image, or ``None`` to resample images.
        n_boot: Number of resamples.
        seed: Seed of the resampling; the same seed gives the same intervals.
        level: Coverage of the interval, e.g. 0.95.

    Returns:
        Metric name (every one of :data:`BOOTSTRAP_METRICS`: ``accuracy``, ``sensitivity``,
        ``specificity``, ``precision``, ``npv``, ``f1``, ``auc``, ``pr_auc``) ->
        ``[low, high]``; ``[nan, nan]`` if never defined.

    Raises:
        ValueError: If lengths differ, the input is empty, ``n_boot < 1`` or ``level`` is
            not in (0, 1).

    Example:
        >>> import numpy as np
        >>> y = np.array([0, 0, 0, 1, 1, 1] * 20)
        >>> p = np.array([0.1, 0.4, 0.6, 0.5, 0.8, 0.9] * 20)
        >>> ci = bootstrap_ci(y, p, threshold=0.5, n_boot=200)
        >>> ci["accuracy"][0] < 5 / 6 < ci["accuracy"][1]
        True
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    dist = bootstrap_distribution(y_true, probabilities, threshold=threshold,
                                  patient_ids=patient_ids, n_boot=n_boot, seed=seed)
    tail = 100.0 * (1.0 - level) / 2.0
    out: dict[str, list[float]] = {}
    for key, values in dist.items():
        finite = values[~np.isnan(values)]
        if finite.size == 0:
            out[key] = [float("nan"), float("nan")]
        else:
            low, high = np.percentile(finite, [tail, 100.0 - tail])
            out[key] = [float(low), float(high)]
    return out

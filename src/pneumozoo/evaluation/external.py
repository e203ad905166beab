"""Measure a model's domain guard and its validity on another population, as every zoo card
reports them (``benchmarks/bench_guard.py``, ``recipes/guard_and_external.py``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pneumozoo.evaluation.evaluator import evaluate
from pneumozoo.guard import non_xray_images

__all__ = ["check_guard"]


def check_guard(model: Any, in_domain: Any, out_of_domain: Any, *, n_boot: int = 1000) -> dict[str, Any]:
    """Measure a model's guard and its external validity, as every zoo card reports them.

    Args:
        model: A pneumozoo model with a fitted guard.
        in_domain: Labelled held-out films of the model's own domain (a ``NORMAL/``
            ``PNEUMONIA/`` folder, e.g. Kermany ``test``).
        out_of_domain: Labelled films of another population (e.g. ``nih-adult-dev``).
        n_boot: Bootstrap resamples of the external metrics' intervals.

    Returns:
        ``flagged``: the share flagged of ``in_domain``, ``out_of_domain`` and of each kind of
        :func:`non_xray_images` (an unreadable or refused image counts as flagged);
        ``external``: the :class:`~pneumozoo.evaluation.EvaluationReport` dict of
        ``out_of_domain`` at the model's threshold (with its in-domain subset).
    """
    # lazy: loads Keras and its backend
    from pneumozoo.prediction import predict

    inside = evaluate(model, in_domain, ci=False)
    outside = evaluate(model, out_of_domain, n_boot=n_boot)
    flagged: dict[str, float | None] = {"in_domain": inside.out_of_domain_fraction,
                                        "out_of_domain": outside.out_of_domain_fraction}
    for kind, images in non_xray_images(8).items():
        preds = predict(model, list(images))
        flagged[f"non_xray_{kind}"] = float(np.mean([not p.ok or p.in_domain is False for p in preds]))
    return {"flagged": flagged, "external": outside.to_dict()}

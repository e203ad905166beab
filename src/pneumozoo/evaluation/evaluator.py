"""``evaluate``: run a model over a labelled split and report what a clinician would ask.

The top of :mod:`pneumozoo.evaluation`: scores the films (:mod:`~pneumozoo.evaluation.scoring`),
builds the report (:mod:`~pneumozoo.evaluation.report`), adds intervals, calibration and
operating points and writes the report folder (:mod:`~pneumozoo.evaluation.enrich`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pneumozoo.data.records import Record, scan_folder, targets
from pneumozoo.errors import DataError, OutOfDomainError, PneumozooError
from pneumozoo.evaluation.enrich import enrich_report, write_report
from pneumozoo.evaluation.metrics import pneumonia_scores
from pneumozoo.evaluation.report import EvaluationReport, report_from_predictions
from pneumozoo.evaluation.scoring import RecordScores, score_records
from pneumozoo.guard import OUT_OF_DOMAIN_POLICIES
from pneumozoo.plot import require_matplotlib
from pneumozoo.rules import BINARY_CLASSES

__all__ = ["evaluate"]


def evaluate(
    model: Any,
    data: str | Path | Sequence[Record],
    *,
    threshold: float | None = None,
    batch_size: int = 32,
    ci: bool = True,
    n_boot: int = 1000,
    tta: bool = False,
    report_dir: str | Path | None = None,
    on_out_of_domain: str = "flag",
    scores: RecordScores | None = None,
) -> EvaluationReport:
    """Evaluate a model on a labelled split.

    Args:
        model: A pneumozoo model (e.g. from :func:`pneumozoo.load_pretrained`).
        data: A folder with ``NORMAL/`` and ``PNEUMONIA/`` (one split, e.g. ``.../test``) or
            records. For a 3-class model the subtype comes from the file names; a folder
            whose names carry no subtype is scored normal vs pneumonia.
        threshold: Decision threshold on P(pneumonia) in [0, 1]; defaults to the model's own.
        batch_size: Inference batch size.
        ci: Fill ``confidence_intervals`` with 95% bootstrap intervals, resampling patients
            (ids parsed from the file names); see :func:`pneumozoo.evaluation.enrich_report`,
            which also puts calibration (ECE) and operating points in ``extra``.
        n_boot: Bootstrap resamples.
        tta: Average the softmax over test-time augmentations
            (:func:`pneumozoo.tta.predict_tta`).
        report_dir: Also write ``report.json`` and every figure there (figures need the
            ``plot`` extra, checked before the model runs).
        on_out_of_domain: For a model with a domain guard: ``flag`` (default: every film
            counts; the in-domain films' metrics go beside, in ``extra["in_domain"]``),
            ``skip`` (score in-domain films only) or ``fail`` (raise if any film is flagged).
        scores: The films' scores by this model, when already computed
            (:func:`pneumozoo.evaluation.scoring.score_records` on the same records, without
            TTA); scored here when absent, so no film goes through the model twice.

    Returns:
        An :class:`EvaluationReport`; ``.to_dict()``/``.to_json()`` for JSON.

    Raises:
        PneumozooError: If ``model`` is not a pneumozoo model, ``data`` holds no film, or an
            argument is out of range.
        OutOfDomainError: With ``on_out_of_domain="fail"``, when a film is flagged.

    Example:
        >>> report = pneumozoo.evaluate(model, "chest_xray/test")  # doctest: +SKIP
        >>> report.accuracy, report.auc  # doctest: +SKIP
    """
    # lazy: the model class and its head load Keras (and its backend)
    from pneumozoo.models.classifier import as_classifier
    from pneumozoo.models.head import check_threshold

    clf = as_classifier(model)
    if threshold is not None:
        threshold = check_threshold(threshold)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise PneumozooError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or (ci and n_boot < 1):
        raise PneumozooError(f"n_boot must be a positive integer, got {n_boot!r}")
    if on_out_of_domain not in OUT_OF_DOMAIN_POLICIES:
        raise PneumozooError(f"on_out_of_domain must be one of {', '.join(OUT_OF_DOMAIN_POLICIES)}, "
                             f"got {on_out_of_domain!r}")
    if report_dir is not None:
        require_matplotlib()
    threshold_source = "given" if threshold is not None else "model"
    records = scan_folder(data) if isinstance(data, (str, Path)) else list(data)
    if not records:
        raise PneumozooError(f"nothing to evaluate: {data if isinstance(data, (str, Path)) else 'the list of records'} "
                             "holds no labelled film (expected NORMAL/ and PNEUMONIA/ folders of images)")
    names = list(clf.class_names)
    scored_as = clf.task
    try:
        y: np.ndarray = np.asarray(targets(records, clf.task))
    except DataError:
        if clf.task != "3class":
            raise
        scored_as = "binary"  # a NORMAL/PNEUMONIA folder without bacteria/virus in the names
        y = np.asarray(targets(records, "binary"))
    if scores is not None and tta:
        raise PneumozooError("evaluate: pass scores or tta=True, not both (the scores were "
                             "computed without test-time augmentation)")
    if scores is not None and len(scores.probabilities) != len(records):
        raise PneumozooError(f"scores hold {len(scores.probabilities)} films but the data "
                             f"{len(records)}; score the same records")
    scored = scores if scores is not None else score_records(clf, records,
                                                             batch_size=batch_size, tta=tta)
    probs, domain, in_domain = scored.probabilities, scored.domain_scores, scored.in_domain
    if scored_as != clf.task:
        p_sick = pneumonia_scores(probs)[:, None]
        probs = np.concatenate([1.0 - p_sick, p_sick], axis=1)
        names = list(BINARY_CLASSES)
    if in_domain is not None and not in_domain.all():
        if on_out_of_domain == "fail":
            first = int(np.argmin(in_domain))
            raise OutOfDomainError(str(records[first].path), float(domain[first]),  # type: ignore[index]
                                   colour=bool(scored.colour[first]))
        if on_out_of_domain == "skip":
            records = [r for r, keep in zip(records, in_domain, strict=True) if keep]
            y, probs = y[in_domain], probs[in_domain]
            if not records:
                raise PneumozooError("every film is out of the model's domain: nothing left to score")
    threshold = clf.threshold if threshold is None else threshold
    report = report_from_predictions(y, probs, names, threshold=threshold)
    report.extra["tta"] = tta
    report.extra["threshold_source"] = threshold_source
    if scored_as != clf.task:
        report.extra["scored_as"] = ("binary: normal vs pneumonia (the file names carry no "
                                     "bacteria/virus subtype)")
    enrich_report(report, y, probs, patient_ids=[r.patient_id for r in records], ci=ci,
                  n_boot=n_boot, temperature=clf.temperature)
    if in_domain is not None:
        report.out_of_domain_fraction = float(1.0 - in_domain.mean())
        report.extra["on_out_of_domain"] = on_out_of_domain
        if on_out_of_domain == "flag" and in_domain.any():
            sub = report_from_predictions(y[in_domain], probs[in_domain], names, threshold=threshold)
            report.extra["in_domain"] = {k: getattr(sub, k) for k in (
                "n", "accuracy", "sensitivity", "specificity", "auc")}
    if report_dir is not None:
        write_report(report, y, probs, report_dir)
    return report

"""What :func:`pneumozoo.evaluate` adds to the point estimates: CIs, calibration, figures."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pneumozoo.evaluation.bootstrap import bootstrap_ci
from pneumozoo.evaluation.calibration import expected_calibration_error, uncalibrated
from pneumozoo.evaluation.report import EvaluationReport
from pneumozoo.evaluation.thresholds import operating_points
from pneumozoo.plot import require_matplotlib, save_report_figures
from pneumozoo.utils import atomic_write_json

__all__ = ["REPORT_FILE", "enrich_report", "write_report"]

#: Name of the JSON report inside a report folder.
REPORT_FILE = "report.json"


def enrich_report(
    report: EvaluationReport,
    y_true: Sequence[int] | np.ndarray,
    probabilities: np.ndarray,
    *,
    patient_ids: Sequence[Hashable] | None = None,
    ci: bool = True,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    temperature: float = 1.0,
    n_bins: int = 15,
) -> EvaluationReport:
    """Fill a report's confidence intervals and its ``extra`` calibration and operating points.

    - ``confidence_intervals``: percentile bootstrap intervals of every binary metric
      (:func:`pneumozoo.evaluation.bootstrap.bootstrap_ci`), resampling patients when
      ``patient_ids`` are given; ``extra["bootstrap"]`` says how they were made.
    - ``extra["calibration"]``: ``ece`` of the probabilities as evaluated (binary view for 2
      classes, top-label for more), the model's ``temperature`` and, when it is not 1,
      ``ece_uncalibrated``: the ECE the same model had before temperature scaling.
    - ``extra["operating_points"]``: Youden's threshold and those reaching 90/95/99%
      sensitivity or specificity *on this data* (descriptive; choose thresholds on
      validation data with :func:`pneumozoo.evaluation.choose_threshold`).

    Args:
        report: The report to fill (modified in place and returned).
        y_true: Class labels the report was computed from.
        probabilities: ``(n, k)`` softmax outputs the report was computed from.
        patient_ids: One patient id per image, for the cluster bootstrap.
        ci: Compute the bootstrap intervals.
        n_boot: Bootstrap resamples.
        seed: Bootstrap seed.
        level: Interval coverage.
        temperature: The model's softmax temperature (see
            :func:`pneumozoo.evaluation.calibration.temperature_of`).
        n_bins: Bins of the ECE.

    Returns:
        ``report``.

    Example:
        >>> report = report_from_predictions(y, probs, ["normal", "pneumonia"])  # doctest: +SKIP
        >>> enrich_report(report, y, probs).confidence_intervals["auc"]  # doctest: +SKIP
        [0.91, 0.95]
    """
    y = np.asarray(y_true).reshape(-1)
    p = np.asarray(probabilities, dtype=np.float64)
    if ci:
        report.confidence_intervals = bootstrap_ci(
            y, p, threshold=report.threshold, patient_ids=patient_ids, n_boot=n_boot, seed=seed,
            level=level)
        units = len({str(i) for i in patient_ids}) if patient_ids is not None else len(y)
        report.extra["bootstrap"] = {
            "method": "percentile", "n_boot": n_boot, "level": level, "seed": seed,
            "resampled": "patients" if patient_ids is not None else "images", "units": units,
        }
    calibration: dict[str, Any] = {
        "ece": expected_calibration_error(y, p, n_bins),
        "n_bins": n_bins,
        "view": "binary" if p.shape[1] == 2 else "top_label",
        "temperature": float(temperature),
    }
    if temperature != 1.0:
        calibration["ece_uncalibrated"] = expected_calibration_error(y, uncalibrated(p, temperature),
                                                                     n_bins)
    report.extra["calibration"] = calibration
    binary = y > 0
    if binary.any() and not binary.all():
        report.extra["operating_points"] = [pt.to_dict() for pt in operating_points(y, p)]
    return report


def write_report(
    report: EvaluationReport,
    y_true: Sequence[int] | np.ndarray,
    probabilities: np.ndarray,
    folder: str | Path,
    *,
    figures: bool = True,
) -> list[Path]:
    """Write ``report.json`` and, with the ``plot`` extra, every evaluation figure.

    Args:
        report: The report.
        y_true: Class labels it was computed from.
        probabilities: Softmax outputs it was computed from.
        folder: Output folder (created).
        figures: Also write the figures (see :func:`pneumozoo.plot.save_report_figures`).

    Returns:
        The files written, ``report.json`` first.

    Raises:
        PneumozooError: If figures are asked for without matplotlib.

    Example:
        >>> write_report(report, y, probs, "reports/test")  # doctest: +SKIP
    """
    folder = Path(folder)
    if figures:
        require_matplotlib()
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / REPORT_FILE, report.to_dict())
    written = [folder / REPORT_FILE]
    if figures:
        written.extend(save_report_figures(report, y_true, probabilities, folder))
    return written

"""The evaluation report: what a clinician would ask of a model on a labelled split.

:class:`EvaluationReport` and :func:`report_from_predictions` (labels and softmax outputs in, no
model needed); :func:`pneumozoo.evaluation.evaluate` runs a model and fills one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from pneumozoo.evaluation.metrics import (
    BINARY_METRICS,
    binary_metrics,
    multiclass_metrics,
    pneumonia_scores,
)
from pneumozoo.utils import json_safe

__all__ = ["EvaluationReport", "report_from_predictions"]


@dataclass
class EvaluationReport:
    """Metrics of a model on one labelled split.

    The binary metrics (normal vs pneumonia) are always there, for 3-class models too
    (pneumonia = bacteria + virus); ``per_class`` and the k x k ``confusion_matrix`` cover
    every class.

    Attributes:
        n: Number of images.
        threshold: Decision threshold on P(pneumonia) used for the binary metrics.
        accuracy, sensitivity, specificity, precision, npv, f1, auc, pr_auc: Binary metrics.
        confusion_matrix: Binary confusion matrix, rows true (normal, pneumonia), columns
            predicted.
        class_names: The model's classes.
        class_accuracy: Arg-max accuracy over all classes (equals ``accuracy`` in spirit for
            binary models, but at threshold 0.5).
        per_class: Precision, recall, F1, support and one-vs-rest AUC per class.
        class_confusion_matrix: k x k confusion matrix over all classes.
        confidence_intervals: 95% bootstrap intervals per metric, when computed.
        out_of_domain_fraction: Share of the films the model's domain guard flagged
            (``None`` for a model without a guard); ``extra["in_domain"]`` then holds the
            metrics of the in-domain films alone.
        extra: Anything added later (calibration, operating points...).
    """

    n: int
    threshold: float
    accuracy: float
    sensitivity: float
    specificity: float
    precision: float
    npv: float
    f1: float
    auc: float
    pr_auc: float
    confusion_matrix: list[list[int]]
    class_names: list[str]
    class_accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    class_confusion_matrix: list[list[int]]
    confidence_intervals: dict[str, list[float]] = field(default_factory=dict)
    out_of_domain_fraction: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN and infinities become null)."""
        return dict(json_safe(asdict(self)))

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    def metric(self, name: str) -> float:
        """A registered binary metric by name (a field, or ``extra["metrics"]`` for new ones).

        Args:
            name: A key of :data:`pneumozoo.evaluation.metrics.BINARY_METRICS`.

        Returns:
            Its value (NaN when undefined or absent).
        """
        value = getattr(self, name, None)
        if value is None:
            value = (self.extra.get("metrics") or {}).get(name)
        return float("nan") if value is None else float(value)

    def to_text(self) -> str:
        """The report as a short labelled table, for people (``pneumozoo evaluate`` prints it).

        The binary metrics with their confidence intervals, the threshold and where it came
        from, the all-class block for 3-class models, calibration in words, and a warning when
        the threshold makes the model call every film (or every case of one class) the same.
        ``n/a`` marks an undefined metric (``null`` in the JSON, which keeps every field).

        Returns:
            Multi-line text, no trailing newline.
        """
        return "\n".join(_text_lines(self))

    def summary(self) -> str:
        """The readable table of :meth:`to_text` (kept under its old name).

        Returns:
            Multi-line text.
        """
        return self.to_text()

    def __str__(self) -> str:
        return self.to_text()


#: Where the threshold of a report came from (``extra["threshold_source"]``), in words.
_THRESHOLD_SOURCES = {
    "given": "as given",
    "model": "the model's own threshold",
}
#: An AUC at least this far from 0.5 says the scores rank the films.
_INFORMATIVE_AUC_MARGIN = 0.1


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{float(value):.{digits}f}"


def _one_class_warning(report: EvaluationReport) -> list[str]:
    """Lines saying the threshold makes the model call everyone alike, if it does."""
    auc = report.auc
    if math.isnan(auc) or abs(auc - 0.5) < _INFORMATIVE_AUC_MARGIN:
        return []
    (tn, fp), (fn, tp) = report.confusion_matrix
    if tp + fp == 0:
        what = "calls every film normal (sensitivity 0)"
    elif tn + fn == 0:
        what = "calls every film pneumonia (specificity 0)"
    elif report.sensitivity == 0.0:
        what = "calls no pneumonia case pneumonia (sensitivity 0)"
    elif report.specificity == 0.0:
        what = "calls no normal film normal (specificity 0)"
    else:
        return []
    return [
        f"warning: at threshold {report.threshold:.3f} the model {what},",
        f"  although its ROC AUC is {auc:.3f}: the scores separate the classes but the",
        "  threshold lies outside their range. Choose a threshold on validation data with",
        "  pneumozoo.evaluation.choose_threshold and pass it as threshold= (CLI: --threshold).",
    ]


def _text_lines(report: EvaluationReport) -> list[str]:
    (tn, fp), (fn, tp) = report.confusion_matrix
    three = len(report.class_names) > 2
    kinds = " (" + " + ".join(report.class_names[1:]) + ")" if three else ""
    lines = [f"{report.n} films: {tn + fp} normal, {fn + tp} pneumonia{kinds}"]
    source = _THRESHOLD_SOURCES.get(str(report.extra.get("threshold_source")))
    lines.append(f"threshold {report.threshold:.3f} on P(pneumonia)" + (f", {source}" if source else ""))
    lines.append("")
    cis = report.confidence_intervals
    boot = report.extra.get("bootstrap") or {}
    level = f"{float(boot.get('level', 0.95)):.0%} CI"
    title = "normal vs pneumonia"
    width = max(len(title), *(len(m.label) for m in BINARY_METRICS.values())) + 2
    lines.append(f"{title:<{width}}{'value':>6}" + (f"   {level}" if cis else ""))
    for name, metric in BINARY_METRICS.items():
        row = f"{metric.label:<{width}}{_num(report.metric(name)):>6}"
        if cis:
            low, high = cis.get(name, [float("nan"), float("nan")])
            row += "   n/a" if math.isnan(low) or math.isnan(high) else f"   [{low:.3f}, {high:.3f}]"
        lines.append(row)
    if cis and boot:
        lines.append(f"({level}s: percentile bootstrap, {boot.get('n_boot')} resamples of "
                     f"{boot.get('units')} {boot.get('resampled', 'images')})")
    if three:
        lines.append("")
        lines.append(f"all {len(report.class_names)} classes (arg-max): accuracy "
                     f"{_num(report.class_accuracy)}, macro F1 {_num(report.macro_f1)}")
        lines.append("  F1 per class: " + ", ".join(
            f"{name} {_num(report.per_class.get(name, {}).get('f1'))}" for name in report.class_names))
    calibration = report.extra.get("calibration") or {}
    if "ece" in calibration:
        view = " top-label" if calibration.get("view") == "top_label" else ""
        text = f"calibration error (ECE{view}) {_num(calibration['ece'])}"
        temperature = float(calibration.get("temperature", 1.0))
        before = calibration.get("ece_uncalibrated")
        if temperature != 1.0:
            text += f" after temperature scaling (T={temperature:.2f})"
            if before is not None:
                text += f", {_num(before)} before"
        else:
            text += ", no temperature scaling"
        lines.extend(["", text])
    if report.extra.get("scored_as"):
        lines.extend(["", f"scored as {report.extra['scored_as']}"])
    if report.out_of_domain_fraction is not None:
        policy = report.extra.get("on_out_of_domain")
        text = (f"domain guard: {report.out_of_domain_fraction:.1%} of films flagged out of domain"
                + (", left out above" if policy == "skip" else ", counted above" if policy else ""))
        lines.extend(["", text])
        inside = report.extra.get("in_domain")
        if inside:
            lines.append(f"  in-domain films alone ({inside.get('n')}): " + ", ".join(
                f"{BINARY_METRICS[k].label} {_num(inside.get(k))}"
                for k in ("accuracy", "sensitivity", "specificity", "auc") if k in inside))
    warning = _one_class_warning(report)
    if warning:
        lines.extend(["", *warning])
    return lines


def report_from_predictions(
    y_true: Sequence[int] | np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
    *,
    threshold: float = 0.5,
) -> EvaluationReport:
    """Build a report from class labels and softmax outputs (no model needed)."""
    y = np.asarray(y_true, dtype=int)
    p = np.asarray(probabilities, dtype=np.float64)
    b = binary_metrics(y, pneumonia_scores(p), threshold)
    m = multiclass_metrics(y, p, class_names)
    # Registered metrics fill the report's fields; one without a field yet goes to extra.
    typed = {f.name for f in fields(EvaluationReport)}
    values: dict[str, Any] = {k: b[k] for k in BINARY_METRICS if k in typed}
    report = EvaluationReport(
        n=b["n"], threshold=b["threshold"], **values, confusion_matrix=b["confusion_matrix"],
        class_names=list(class_names), class_accuracy=m["accuracy"], macro_f1=m["macro_f1"],
        per_class=m["per_class"], class_confusion_matrix=m["confusion_matrix"],
    )
    others = {k: b[k] for k in BINARY_METRICS if k not in typed}
    if others:
        report.extra["metrics"] = others
    return report

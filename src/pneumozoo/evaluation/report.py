"""``evaluate``: run a model over a labelled split and report what a clinician would ask."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from pneumozoo.data.records import Record, Task, scan_folder, targets
from pneumozoo.evaluation.metrics import (
    BINARY_METRICS,
    binary_metrics,
    multiclass_metrics,
    pneumonia_scores,
)

__all__ = ["EvaluationReport", "evaluate", "report_from_predictions"]


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
        from pneumozoo.utils import json_safe

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


def score_records(model: Any, records: Sequence[Record], *, batch_size: int = 32,
                  tta: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Softmax outputs and domain-guard scores (distance / cut-off; ``None`` without a guard)
    of ``model`` for ``records``, in order, streamed through the model's own pipeline."""
    from pneumozoo.data.pipeline import make_dataset
    from pneumozoo.models.classifier import as_classifier

    clf = as_classifier(model)
    ds = make_dataset(records, clf, batch_size=batch_size, training=False, cache=False)
    probs, scores = [], []
    for x, _ in ds:
        batch = np.asarray(x)
        p, d = clf.scores(batch)
        if tta:
            from pneumozoo.evaluation.tta import predict_tta

            p = np.asarray(predict_tta(clf, batch), dtype=np.float64)
        probs.append(p)
        if d is not None:
            scores.append(d)  # the head's domain score: 1.0 at the cut-off
    k = len(clf.class_names)
    return (np.concatenate(probs) if probs else np.zeros((0, k)),
            np.concatenate(scores) if scores else None)


def predict_records(model: Any, records: Sequence[Record], *, batch_size: int = 32,
                    task: Task | None = None, tta: bool = False) -> np.ndarray:
    """Softmax outputs of ``model`` for ``records``, in order (streamed in batches).

    With ``tta=True`` each batch goes through
    :func:`pneumozoo.evaluation.tta.predict_tta` (the default shift/zoom views).
    ``task`` is ignored (the model knows its own).
    """
    return score_records(model, records, batch_size=batch_size, tta=tta)[0]


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
            (:func:`pneumozoo.evaluation.tta.predict_tta`).
        report_dir: Also write ``report.json`` and every figure there (figures need the
            ``plot`` extra, checked before the model runs).
        on_out_of_domain: For a model with a domain guard: ``flag`` (default: every film
            counts; the in-domain films' metrics go beside, in ``extra["in_domain"]``),
            ``skip`` (score in-domain films only) or ``fail`` (raise if any film is flagged).

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
    from pneumozoo.errors import DataError, OutOfDomainError, PneumozooError
    from pneumozoo.evaluation.enrich import enrich_report, write_report
    from pneumozoo.guard import OUT_OF_DOMAIN_POLICIES
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
        from pneumozoo.plot import require_matplotlib

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
    probs, domain = score_records(clf, records, batch_size=batch_size, tta=tta)
    if scored_as != clf.task:
        p_sick = pneumonia_scores(probs)[:, None]
        probs = np.concatenate([1.0 - p_sick, p_sick], axis=1)
        names = ["normal", "pneumonia"]
    in_domain = None if domain is None else domain <= 1.0
    if in_domain is not None and not in_domain.all():
        if on_out_of_domain == "fail":
            first = int(np.argmin(in_domain))
            raise OutOfDomainError(str(records[first].path), float(domain[first]))  # type: ignore[index]
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

"""``evaluate``: run a model over a labelled split and report what a clinician would ask."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pneumozoo.data.records import Record, Task, scan_folder, targets
from pneumozoo.evaluation.metrics import binary_metrics, multiclass_metrics, pneumonia_scores

__all__ = ["EvaluationReport", "evaluate", "report_from_predictions"]


def _clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    return obj


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
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN becomes null)."""
        return dict(_clean(asdict(self)))

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    def summary(self) -> str:
        """A few readable lines."""
        lines = [f"n={self.n}  threshold={self.threshold:.3f}"]
        for key in ("accuracy", "sensitivity", "specificity", "precision", "f1", "auc", "pr_auc"):
            value = getattr(self, key)
            ci = self.confidence_intervals.get(key)
            ci_text = f"  [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
            lines.append(f"{key:<12} {value:.4f}{ci_text}")
        if len(self.class_names) > 2:
            lines.append(f"{'3-class acc':<12} {self.class_accuracy:.4f}  macro F1 {self.macro_f1:.4f}")
        calibration = self.extra.get("calibration") or {}
        if "ece" in calibration:
            before = calibration.get("ece_uncalibrated")
            note = f"  (T={calibration['temperature']:.3f}; {before:.4f} before)" if before else ""
            lines.append(f"{'ece':<12} {calibration['ece']:.4f}{note}")
        return "\n".join(lines)


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
    return EvaluationReport(
        n=b["n"], threshold=b["threshold"], accuracy=b["accuracy"], sensitivity=b["sensitivity"],
        specificity=b["specificity"], precision=b["precision"], npv=b["npv"], f1=b["f1"],
        auc=b["auc"], pr_auc=b["pr_auc"], confusion_matrix=b["confusion_matrix"],
        class_names=list(class_names), class_accuracy=m["accuracy"], macro_f1=m["macro_f1"],
        per_class=m["per_class"], class_confusion_matrix=m["confusion_matrix"],
    )


def predict_records(model: Any, records: Sequence[Record], *, batch_size: int = 32,
                    task: Task = "binary", tta: bool = False) -> np.ndarray:
    """Softmax outputs of ``model`` for ``records``, in order (streamed in batches).

    With ``tta=True`` each batch goes through
    :func:`pneumozoo.evaluation.tta.predict_tta` (the default shift/zoom views).
    """
    from pneumozoo.data.pipeline import make_dataset
    from pneumozoo.models.registry import input_size_of

    ds = make_dataset(records, input_size=input_size_of(model), task=task, batch_size=batch_size,
                      training=False, cache=False)
    if tta:
        from pneumozoo.evaluation.tta import predict_tta

        return np.concatenate([predict_tta(model, np.asarray(x)) for x, _ in ds])
    return np.asarray(model.predict(ds.map(lambda x, y: x), verbose=0), dtype=np.float64)


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
) -> EvaluationReport:
    """Evaluate a model on a labelled split.

    Args:
        model: A zoo model (e.g. from :func:`pneumozoo.load_pretrained`).
        data: A folder with ``NORMAL/`` and ``PNEUMONIA/`` (one split, e.g. ``.../test``) or
            records. For a 3-class model the subtype comes from the file names.
        threshold: Decision threshold on P(pneumonia); defaults to the model's shipped
            threshold (``model.pneumozoo_config.threshold``) or 0.5.
        batch_size: Inference batch size.
        ci: Fill ``confidence_intervals`` with 95% bootstrap intervals, resampling patients
            (ids parsed from the file names); see :func:`pneumozoo.evaluation.enrich_report`,
            which also puts calibration (ECE) and operating points in ``extra``.
        n_boot: Bootstrap resamples.
        tta: Average the softmax over test-time augmentations
            (:func:`pneumozoo.evaluation.tta.predict_tta`).
        report_dir: Also write ``report.json`` and every figure there (figures need the
            ``plot`` extra, checked before the model runs).

    Returns:
        An :class:`EvaluationReport`; ``.to_dict()``/``.to_json()`` for JSON.

    Example:
        >>> report = pneumozoo.evaluate(model, "chest_xray/test")  # doctest: +SKIP
        >>> report.accuracy, report.auc  # doctest: +SKIP
    """
    from pneumozoo.evaluation.enrich import enrich_report, write_report
    from pneumozoo.models.layers import ClassifierOutput
    from pneumozoo.models.registry import class_names_of

    if report_dir is not None:
        from pneumozoo.plot import require_matplotlib

        require_matplotlib()
    records = scan_folder(data) if isinstance(data, (str, Path)) else list(data)
    names = class_names_of(model)
    task: Task = "3class" if len(names) == 3 else "binary"
    y = np.asarray(targets(records, task))
    probs = predict_records(model, records, batch_size=batch_size, task=task, tta=tta)
    if threshold is None:
        cfg = getattr(model, "pneumozoo_config", None)
        threshold = float(cfg.threshold) if cfg is not None else 0.5
    report = report_from_predictions(y, probs, names, threshold=threshold)
    report.extra["tta"] = tta
    enrich_report(report, y, probs, patient_ids=[r.patient_id for r in records], ci=ci,
                  n_boot=n_boot, temperature=next((float(layer.temperature) for layer in model.layers
                                                   if isinstance(layer, ClassifierOutput)), 1.0))
    if report_dir is not None:
        write_report(report, y, probs, report_dir)
    return report

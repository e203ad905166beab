"""Evaluation: metrics, reports, confidence intervals, operating points, calibration."""

from pneumozoo.evaluation.metrics import binary_metrics, multiclass_metrics, pneumonia_scores
from pneumozoo.evaluation.report import (
    EvaluationReport,
    evaluate,
    predict_records,
    report_from_predictions,
)

__all__ = [
    "EvaluationReport",
    "binary_metrics",
    "evaluate",
    "multiclass_metrics",
    "pneumonia_scores",
    "predict_records",
    "report_from_predictions",
]

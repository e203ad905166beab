"""Evaluation: metrics, reports, confidence intervals, operating points, calibration."""

from pneumozoo.evaluation.bootstrap import bootstrap_ci
from pneumozoo.evaluation.calibration import (
    apply_temperature,
    calibrate,
    expected_calibration_error,
    fit_temperature,
    reliability_curve,
    temperature_of,
)
from pneumozoo.evaluation.enrich import enrich_report, write_report
from pneumozoo.evaluation.evaluator import evaluate
from pneumozoo.evaluation.metrics import binary_metrics, multiclass_metrics, pneumonia_scores
from pneumozoo.evaluation.report import EvaluationReport, report_from_predictions
from pneumozoo.evaluation.scoring import predict_records
from pneumozoo.evaluation.thresholds import OperatingPoint, choose_threshold, operating_points
from pneumozoo.tta import predict_tta

__all__ = [
    "EvaluationReport",
    "OperatingPoint",
    "apply_temperature",
    "binary_metrics",
    "bootstrap_ci",
    "calibrate",
    "choose_threshold",
    "enrich_report",
    "evaluate",
    "expected_calibration_error",
    "fit_temperature",
    "multiclass_metrics",
    "operating_points",
    "pneumonia_scores",
    "predict_records",
    "predict_tta",
    "reliability_curve",
    "report_from_predictions",
    "temperature_of",
    "write_report",
]

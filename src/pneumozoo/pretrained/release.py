"""Turn a trained model into a release: calibrate and pick its threshold on validation data,
then write the model folder with its config and model card.

``pneumozoo train`` and the zoo's recipes both go through here, so a model a user trains is
packaged exactly like the zoo's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pneumozoo.data.records import Record, Task, targets
from pneumozoo.pretrained.config import PretrainedConfig

__all__ = ["prepare_release", "write_release"]


def prepare_release(
    model: Any,
    validation: Sequence[Record],
    *,
    name: str,
    architecture: str,
    threshold_rule: str = "youden-margin",
    description: str = "",
    training: dict[str, Any] | None = None,
) -> tuple[Any, PretrainedConfig]:
    """Calibrate ``model`` and choose its decision threshold, both on ``validation`` only.

    Fits the softmax temperature (stored in the model's output layer), then picks the
    threshold on the calibrated P(pneumonia) with ``threshold_rule`` (see
    :func:`pneumozoo.evaluation.choose_threshold`), and measures the validation metrics.

    Args:
        model: A trained zoo model.
        validation: Validation records (never the test split).
        name: Name of the release (registry name / folder name).
        architecture: Architecture name from :func:`pneumozoo.list_models`.
        threshold_rule: ``youden-margin`` (default), ``youden``, or for a target use
            :func:`~pneumozoo.evaluation.choose_threshold` yourself.
        description: One line for the config and the model card.
        training: What to record about the training run (data, epochs, recipe...).

    Returns:
        ``(calibrated_model, config)``; write them with :func:`write_release`.

    Example:
        >>> calibrated, config = prepare_release(model, val, name="mine", architecture="xraynet")  # doctest: +SKIP
    """
    from pneumozoo.evaluation.calibration import (
        apply_temperature,
        expected_calibration_error,
        fit_temperature,
        temperature_of,
    )
    from pneumozoo.evaluation.metrics import pneumonia_scores
    from pneumozoo.evaluation.report import predict_records, report_from_predictions
    from pneumozoo.evaluation.thresholds import choose_threshold
    from pneumozoo.models.registry import class_names_of, input_size_of

    names = class_names_of(model)
    task: Task = "3class" if len(names) == 3 else "binary"
    y_val = np.asarray(targets(validation, task))
    raw = predict_records(model, validation, task=task)
    # Fitted on the model's current outputs, the temperature is relative to the one it has.
    temperature = temperature_of(model) * fit_temperature(raw, y_val)
    model = apply_temperature(model, temperature)
    calibrated = predict_records(model, validation, task=task)
    op = choose_threshold(y_val, pneumonia_scores(calibrated), method=threshold_rule)
    report = report_from_predictions(y_val, calibrated, names, threshold=op.threshold)
    val = report.to_dict()
    val["ece"] = expected_calibration_error(y_val, calibrated)
    val["ece_uncalibrated"] = expected_calibration_error(y_val, raw)
    size = input_size_of(model)
    config = PretrainedConfig(
        name=name,
        architecture=architecture,
        task=task,
        class_names=tuple(names),
        input_size=size,
        threshold=round(float(op.threshold), 6),
        metrics={"validation": val},
        preprocessing={
            "input": "RGB (grayscale is repeated), uint8 or float, 0..255, any size",
            "resize": f"bilinear with antialiasing to {size}x{size}, inside the model",
            "normalization": f"{_normalization_of(model)}, inside the model",
            "temperature": round(float(temperature), 6),
            "reader": "pneumozoo.read_xray (EXIF orientation, 16-bit, palette, RGBA, DICOM)",
        },
        training={**(training or {}), "validation_images": len(validation),
                  "threshold_rule": f"{op.method} on validation"},
        description=description,
    )
    return model, config


def write_release(model: Any, config: PretrainedConfig, folder: str | Path) -> PretrainedConfig:
    """Write the model folder (Keras files, ``pneumozoo.json`` with sha256s, model card).

    Args:
        model: The calibrated model from :func:`prepare_release`.
        config: Its config (add test metrics to ``config.metrics["test"]`` first if you have them).
        folder: The model folder to (re)write; written atomically.

    Returns:
        The config as written (with the files' sha256 and the parameter count).

    Example:
        >>> write_release(calibrated, config, "models/mine")  # doctest: +SKIP
    """
    from pneumozoo.pretrained.card import model_card
    from pneumozoo.pretrained.folder import save_folder

    written = save_folder(model, folder, config)
    (Path(folder) / "README.md").write_text(model_card(written), encoding="utf-8")
    return written


def _normalization_of(model: Any) -> str:
    """The mode of the model's :class:`~pneumozoo.models.layers.Normalize` layer."""
    from pneumozoo.models.layers import Normalize

    for layer in model.layers:
        if isinstance(layer, Normalize):
            return layer.mode
    return "none"

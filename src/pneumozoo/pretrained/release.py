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

from pneumozoo.data.records import Record, targets
from pneumozoo.evaluation.calibration import recalibrate
from pneumozoo.evaluation.report import report_from_predictions
from pneumozoo.evaluation.scoring import FilmScores, score_films
from pneumozoo.pretrained.card import model_card
from pneumozoo.pretrained.config import CONFIG_FILE, WEIGHT_FILES, PretrainedConfig

__all__ = ["prepare_release", "update_release", "write_release"]


def prepare_release(
    model: Any,
    validation: Sequence[Record],
    *,
    name: str,
    architecture: str,
    threshold_rule: str = "youden-margin",
    description: str = "",
    training: dict[str, Any] | None = None,
    train: Sequence[Record] | None = None,
    calibration: dict[str, Any] | None = None,
    scores: FilmScores | None = None,
) -> tuple[Any, PretrainedConfig]:
    """Calibrate ``model`` (unless already done) and describe it as a release.

    Refits the temperature, the threshold (by ``threshold_rule``) and the domain guard with
    :func:`~pneumozoo.evaluation.calibration.recalibrate` on ``validation`` (and ``train``
    for the guard), unless ``calibration`` (what :func:`pneumozoo.fit` already fitted, its
    ``extra["calibration"]``) is given; then measures the validation metrics.

    Args:
        model: A trained pneumozoo model (changed in place).
        validation: Validation records (never the test split).
        name: Name of the release (registry name / folder name).
        architecture: Architecture name from :func:`pneumozoo.list_models`.
        threshold_rule: The declared threshold rule (see
            :func:`pneumozoo.evaluation.choose_threshold`).
        description: One line for the config and the model card.
        training: What to record about the training run (data, epochs, recipe...).
        train: The training records (the guard is fitted on them).
        calibration: A recalibration already done on ``validation``.
        scores: The validation films' scores by the trained model
            (:func:`pneumozoo.evaluation.scoring.score_films`); scored here, once, when absent.

    Returns:
        ``(model, config)``; write them with :func:`write_release`.

    Example:
        >>> calibrated, config = prepare_release(model, val, name="mine", architecture="xraynet")  # doctest: +SKIP
    """
    from pneumozoo.models.classifier import as_classifier  # keras-heavy: loads Keras

    clf = as_classifier(model)
    if scores is None:
        scores = score_films(clf, validation)
    if calibration is None:
        calibration = recalibrate(clf, validation, train=train, threshold_rule=threshold_rule,
                                  scores=scores)
    y_val: np.ndarray = np.asarray(targets(validation, clf.task))
    calibrated = scores.at_temperature(clf.temperature)
    val = report_from_predictions(y_val, calibrated, clf.class_names, threshold=clf.threshold).to_dict()
    val["ece"] = calibration["ece"]
    val["ece_uncalibrated"] = calibration["ece_uncalibrated"]
    config = PretrainedConfig.from_model(
        clf, name=name, architecture=architecture, metrics={"validation": val},
        training={**(training or {}), "validation_images": len(validation),
                  "threshold_rule": calibration["threshold_rule"],
                  "domain_guard": calibration["guard"]},
        description=description)
    return clf, config


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
    from pneumozoo.pretrained.folder import save_folder  # keras-heavy: loads Keras

    written = save_folder(model, folder, config)
    (Path(folder) / "README.md").write_text(model_card(written), encoding="utf-8")
    return written


def update_release(model: Any, config: PretrainedConfig, folder: str | Path,
                   out: str | Path | None = None) -> PretrainedConfig:
    """Rewrite a released model folder with new settings or metrics, keeping what is not
    generated: extra files (``reference_predictions.json``, ``history.json``...) and any
    hand-written sections appended to the model card.

    Args:
        model: The model (as loaded from ``folder``, possibly with new settings).
        config: Its new config.
        folder: The released folder.
        out: Where to write (default: ``folder`` itself, rewritten atomically).

    Returns:
        The config as written.
    """
    folder = Path(folder)
    out = Path(out) if out is not None else folder
    generated = {CONFIG_FILE, "README.md", *WEIGHT_FILES}
    kept = {f.name: f.read_bytes() for f in folder.iterdir()
            if f.is_file() and f.name not in generated}
    card = (folder / "README.md").read_text(encoding="utf-8") if (folder / "README.md").is_file() else ""
    old = model_card(PretrainedConfig.read(folder))
    notes = card[len(old):] if card.startswith(old) else ""
    written = write_release(model, config, out)
    for name, content in kept.items():
        (out / name).write_bytes(content)
    if notes:
        (out / "README.md").write_text(model_card(written) + notes, encoding="utf-8")
    return written

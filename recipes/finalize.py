"""Finalize a trained recipe: calibrate and pick the threshold on validation, test once, package.

Validation (carved patient-wise from ``train``) chooses everything: the softmax temperature
and the decision threshold. The official ``test`` split is touched once, at the end, to
report the numbers that go into the model card and ``pneumozoo.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "xrays"


def finalize(recipe: Any, model: Any, train: list[Any], val: list[Any], args: argparse.Namespace) -> None:
    import keras
    from pneumozoo.evaluation.bootstrap import bootstrap_ci
    from pneumozoo.evaluation.calibration import (
        apply_temperature,
        expected_calibration_error,
        fit_temperature,
    )
    from pneumozoo.evaluation.thresholds import choose_threshold
    from pneumozoo.pretrained.card import model_card

    import pneumozoo
    from pneumozoo.data import scan_split, targets
    from pneumozoo.evaluation import report_from_predictions
    from pneumozoo.evaluation.metrics import pneumonia_scores
    from pneumozoo.evaluation.report import predict_records
    from pneumozoo.models import class_names_of
    from pneumozoo.pretrained import PretrainedConfig, load_pretrained, save_folder

    task = recipe.task
    names = class_names_of(model)
    # 1. validation: temperature, then threshold on the calibrated scores
    y_val = np.asarray(targets(val, task))
    p_val_raw = predict_records(model, val, task=task)
    temperature = fit_temperature(p_val_raw, y_val)
    model = apply_temperature(model, temperature)
    p_val = predict_records(model, val, task=task)
    op = choose_threshold(y_val, pneumonia_scores(p_val), method=recipe.threshold_rule)
    val_report = report_from_predictions(y_val, p_val, names, threshold=op.threshold)
    val_dict = val_report.to_dict()
    val_dict["ece"] = expected_calibration_error(y_val, p_val)
    val_dict["ece_uncalibrated"] = expected_calibration_error(y_val, p_val_raw)
    print(f"[{recipe.name}] validation: T={temperature:.3f} threshold={op.threshold:.4f}\n"
          f"{val_report.summary()}", flush=True)

    # 2. the official test split, once
    test = scan_split(args.data, "test")
    y_test = np.asarray(targets(test, task))
    t0 = time.time()
    p_test = predict_records(model, test, task=task)
    seconds = time.time() - t0
    test_report = report_from_predictions(y_test, p_test, names, threshold=op.threshold)
    test_report.confidence_intervals = bootstrap_ci(
        y_test, p_test, threshold=op.threshold, patient_ids=[r.patient_id for r in test],
        n_boot=1000, seed=0)
    test_dict = test_report.to_dict()
    test_dict["ece"] = expected_calibration_error(y_test, p_test)
    print(f"[{recipe.name}] TEST (n={len(test)}, {len(test) / seconds:.0f} img/s):\n"
          f"{test_report.summary()}", flush=True)

    # 3. package: model folder in Hub layout with config and card
    config = PretrainedConfig(
        name=recipe.name,
        architecture=recipe.arch,
        task=task,
        class_names=tuple(names),
        input_size=recipe.input_size,
        threshold=round(float(op.threshold), 6),
        metrics={"test": test_dict, "validation": val_dict},
        preprocessing={
            "input": "RGB (grayscale is repeated), uint8 or float, 0..255, any size",
            "resize": f"bilinear with antialiasing to {recipe.input_size}x{recipe.input_size}, "
                      "inside the model",
            "normalization": "inside the model (x / 255)",
            "temperature": round(float(temperature), 6),
            "reader": "pneumozoo.read_xray (EXIF orientation, 16-bit, palette, RGBA, DICOM)",
        },
        training={
            "dataset": "Kermany et al. 2018 chest X-ray (pediatric, Guangzhou), kermany224 "
                       "(images resized to 224 px)",
            "citation": "doi:10.17632/rscbjbr9sj.2 (CC BY 4.0)",
            "train_images": len(train),
            "validation_images": len(val),
            "validation_split": f"patient-wise, stratified, {recipe.val_fraction:.0%} of train "
                                f"patients, seed {recipe.seed}",
            "recipe": f"recipes/{recipe.name.replace('-', '_')}.py",
            "epochs": recipe.epochs,
            "batch_size": recipe.batch_size,
            "learning_rate": recipe.learning_rate,
            "optimizer": recipe.optimizer,
            "schedule": recipe.schedule,
            "augment": recipe.augment,
            "class_balance": "oversample" if recipe.oversample else "balanced class weights",
            "threshold_rule": f"{op.method} on validation",
            "keras": keras.__version__,
            "machine": f"{platform.machine()} CPU",
        },
        description=recipe.description,
    )
    out = Path(args.out) / recipe.name
    written = save_folder(model, out, config)
    (out / "README.md").write_text(model_card(written), encoding="utf-8")
    # 4. reference predictions on the bundled example films, from the folder as users load it
    loaded = load_pretrained(out)
    preds = pneumozoo.predict(loaded, sorted(EXAMPLES.glob("*.jpeg")))
    ref = [{"file": Path(p.source).name, "label": p.label, "probabilities": p.probabilities}
           for p in preds]
    (out / "reference_predictions.json").write_text(json.dumps(ref, indent=2) + "\n")
    print(f"[{recipe.name}] wrote {out}", flush=True)

"""Finalize a trained recipe: calibrate and pick the threshold on validation, test once, package.

Validation (carved patient-wise from ``train``) chooses everything, through the same
:func:`pneumozoo.pretrained.release.prepare_release` that ``pneumozoo train`` uses. The
official ``test`` split is touched once, at the end, for the numbers in the model card.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "xrays"


def finalize(recipe: Any, model: Any, train: list[Any], val: list[Any], args: argparse.Namespace) -> None:
    import keras

    import pneumozoo
    from pneumozoo.data import scan_split, targets
    from pneumozoo.evaluation import report_from_predictions
    from pneumozoo.evaluation.bootstrap import bootstrap_ci
    from pneumozoo.evaluation.calibration import expected_calibration_error
    from pneumozoo.evaluation.report import predict_records
    from pneumozoo.pretrained import load_pretrained
    from pneumozoo.pretrained.release import prepare_release, write_release

    model, config = prepare_release(
        model, val, name=recipe.name, architecture=recipe.arch,
        threshold_rule=recipe.threshold_rule, description=recipe.description,
        training={
            "dataset": "Kermany et al. 2018 pediatric chest X-rays (Guangzhou), official train "
                       "split resized to 224 px",
            "citation": "doi:10.17632/rscbjbr9sj.2 (CC BY 4.0)",
            "train_images": len(train),
            "validation_split": f"patient-wise, stratified, {recipe.val_fraction:.0%} of the "
                                f"train patients, seed {recipe.seed}",
            "recipe": f"recipes/{recipe.name.replace('-', '_')}.py",
            "epochs": recipe.epochs,
            "batch_size": recipe.batch_size,
            "learning_rate": recipe.learning_rate,
            "optimizer": recipe.optimizer,
            "schedule": recipe.schedule,
            "augment": recipe.augment,
            "label_smoothing": recipe.label_smoothing,
            "class_balance": "oversampling" if recipe.oversample else "balanced class weights",
            "init_from": recipe.init_from,
            "keras": keras.__version__,
            "machine": f"{platform.machine()} CPU, 2 cores",
        })
    print(f"[{recipe.name}] validation: T={config.preprocessing['temperature']} "
          f"threshold={config.threshold}", flush=True)

    # The official test split, once.
    test = scan_split(args.data, "test")
    y_test = np.asarray(targets(test, config.task))  # type: ignore[arg-type]
    t0 = time.time()
    p_test = predict_records(model, test, task=config.task)  # type: ignore[arg-type]
    seconds = time.time() - t0
    report = report_from_predictions(y_test, p_test, config.class_names, threshold=config.threshold)
    report.confidence_intervals = bootstrap_ci(
        y_test, p_test, threshold=config.threshold, patient_ids=[r.patient_id for r in test],
        n_boot=1000, seed=0)
    test_dict = report.to_dict()
    test_dict["ece"] = expected_calibration_error(y_test, p_test)
    test_dict["split"] = "official Kermany test split (624 images), evaluated once"
    print(f"[{recipe.name}] TEST (n={len(test)}, {len(test) / seconds:.0f} img/s):\n"
          f"{report.summary()}", flush=True)

    # Operating points chosen on validation (pre-declared targets), reported on test: what a
    # user who needs a given sensitivity can expect. The shipped threshold stays the recipe's.
    from pneumozoo.evaluation.metrics import binary_metrics, pneumonia_scores
    from pneumozoo.evaluation.thresholds import choose_threshold

    y_val = np.asarray(targets(val, config.task))  # type: ignore[arg-type]
    s_val = pneumonia_scores(predict_records(model, val, task=config.task))  # type: ignore[arg-type]
    s_test = pneumonia_scores(p_test)
    points = []
    for method, target in (("sensitivity", 0.99), ("sensitivity", 0.95), ("sensitivity", 0.90),
                           ("specificity", 0.99), ("youden", None)):
        op = choose_threshold(y_val, s_val, method=method, target=target)
        at = binary_metrics(y_test, s_test, op.threshold)
        points.append({"rule": f"{method}>={target}" if target else method,
                       "threshold": op.threshold, "val_sensitivity": op.sensitivity,
                       "val_specificity": op.specificity, **{k: at[k] for k in (
                           "accuracy", "sensitivity", "specificity")}})
    test_dict["operating_points"] = points
    run_dir = Path(args.runs) / recipe.name
    np.savez_compressed(run_dir / "predictions.npz", val=s_val, test=p_test, y_test=y_test)

    config = replace(config, metrics={"test": test_dict, **config.metrics})
    out = Path(args.out) / recipe.name
    write_release(model, config, out)
    # Reference predictions on the example films, from the folder exactly as users load it.
    loaded = load_pretrained(out)
    preds = pneumozoo.predict(loaded, sorted(EXAMPLES.glob("*.jpeg")))
    ref = [{"file": Path(p.source).name, "label": p.label, "probabilities": p.probabilities}
           for p in preds]
    (out / "reference_predictions.json").write_text(json.dumps(ref, indent=2) + "\n")
    # The per-epoch history of the run, for benchmarks/bench_training.py's time to target.
    history = run_dir / "checkpoint" / "history.json"
    if history.is_file():
        shutil.copyfile(history, out / "history.json")
    print(f"[{recipe.name}] wrote {out}", flush=True)

"""Apply each zoo recipe's declared threshold rule to its bundled model and remeasure it.

The rule is chosen on validation only (``benchmarks/bench_seeds.py``, issue #17). For each
bundled model with a Kermany recipe, without touching its weights, temperature or guard:

1. recompute the threshold by the recipe's ``threshold_rule`` on the recipe's own
   patient-wise validation split;
2. remeasure at the new threshold: validation metrics, the once-only test report (with
   patient-bootstrap CIs and the validation-chosen operating points) and the external NIH
   metrics and guard rates (``recipes/guard_and_external.py``'s ``measure``);
3. rewrite the folder's ``pneumozoo.json`` and model card (sha256s refreshed).

Regenerate the reference predictions afterwards (``recipes/reference_predictions.py``).

Data: Kermany et al. 2018 (doi:10.17632/rscbjbr9sj.2, CC BY 4.0); NIH ChestX-ray14 (Wang et
al., CVPR 2017; NIH Clinical Center). Usage::

    python recipes/threshold_rule.py --data ../shared/data [MODEL ...]
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "src" / "pneumozoo" / "pretrained" / "bundled"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def run(name: str, data: Path) -> dict[str, Any]:
    import numpy as np
    from guard_and_external import measure

    import pneumozoo
    from pneumozoo.data import targets
    from pneumozoo.evaluation.metrics import pneumonia_scores
    from pneumozoo.evaluation.report import predict_records, report_from_predictions
    from pneumozoo.evaluation.thresholds import choose_threshold
    from pneumozoo.pretrained.config import PretrainedConfig
    from pneumozoo.pretrained.release import update_release
    from pneumozoo.recipe import get_recipe, split, test_metrics, training_records

    folder = BUNDLED / name
    model = pneumozoo.load_pretrained(str(folder))
    config = PretrainedConfig.read(folder)
    recipe = get_recipe(name)
    _, val = split(recipe, training_records(data / "kermany224"))
    y = np.asarray(targets(val, model.task))
    probs = predict_records(model, val)
    op = choose_threshold(y, pneumonia_scores(probs), method=recipe.threshold_rule)
    old = model.threshold
    model.threshold = op.threshold
    validation = report_from_predictions(y, probs, model.class_names, threshold=model.threshold).to_dict()
    for key in ("ece", "ece_uncalibrated"):  # calibration is unchanged
        if key in config.metrics.get("validation", {}):
            validation[key] = config.metrics["validation"][key]
    metrics = {**config.metrics, "validation": validation,
               "test": test_metrics(model, data / "kermany224", val), **measure(model, data)}
    training = {**config.training, "threshold_rule": f"{op.method} on validation"}
    update_release(model, replace(config, threshold=model.threshold, metrics=metrics,
                                  training=training), folder)
    return {"old": old, "new": model.threshold, "test": metrics["test"]}


def main() -> None:
    from pneumozoo.recipe import ZOO_RECIPES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*", help="zoo models (default: every bundled one with a recipe)")
    p.add_argument("--data", type=Path, default=Path(os.environ.get("PNEUMOZOO_SHARED_DATA", "data")),
                   help="folder with kermany224/ and nih-adult-dev/")
    args = p.parse_args()
    names = args.models or sorted(d.name for d in BUNDLED.iterdir()
                                  if d.is_dir() and d.name in ZOO_RECIPES)
    for name in names:
        r = run(name, args.data)
        t = r["test"]
        print(f"{name}: threshold {r['old']:.4f} -> {r['new']:.4f}; test accuracy "
              f"{t['accuracy']:.3f} sensitivity {t['sensitivity']:.3f} specificity "
              f"{t['specificity']:.3f}", flush=True)


if __name__ == "__main__":
    main()

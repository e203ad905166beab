"""Fit the domain guard of released zoo models and measure them on films they never saw.

For each model (default: every bundled one), without changing its weights, temperature or
threshold (those were chosen before its one test evaluation):

1. fit the guard (:func:`pneumozoo.guard.fit_guard`) on the features of the model's own
   training films (its recipe's patient-wise split of Kermany ``train``), with the cut-off at
   the recipe's declared quantile of its validation films' scores
   (0.925);
2. measure the guard: the share of Kermany ``test`` films it flags, of the adult NIH films
   (``nih-adult-dev``) and of non-X-ray images (noise, colour pictures, gradients);
3. external validation: the model's metrics on ``nih-adult-dev`` at its shipped threshold,
   with patient-bootstrap 95% intervals, however poor;
4. write both into the folder's ``pneumozoo.json`` (``metrics.external``, ``metrics.guard``)
   and model card, re-saving the folder with new sha256s.

Data: Kermany et al. 2018 (doi:10.17632/rscbjbr9sj.2, CC BY 4.0); NIH ChestX-ray14 (Wang et
al., CVPR 2017; NIH Clinical Center). Usage::

    python recipes/guard_and_external.py --data ../shared/data [MODEL ...]
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "src" / "pneumozoo" / "pretrained" / "bundled"
NIH_CAVEATS = ("adult NIH ChestX-ray14 films (Wang et al., CVPR 2017; NIH Clinical Center), "
               "pneumonia vs no finding; labels mined from reports by NLP (> 90% accurate per "
               "NIH); NORMAL and PNEUMONIA differ in view (PA/AP mix), so a model can partly "
               "learn the view; 110 positives give wide intervals")


def measure(model: Any, data: Path) -> dict[str, Any]:
    """Guard flag rates and external metrics of a model as it is (nothing refitted)."""
    from pneumozoo.evaluation.external import check_guard

    checked = check_guard(model, data / "kermany224" / "test", data / "nih-adult-dev")
    nih = checked["external"]
    flagged = checked["flagged"]
    external = {
        "nih-adult-dev": {
            **{k: nih[k] for k in ("n", "threshold", "accuracy", "sensitivity", "specificity",
                                    "auc", "confidence_intervals")},
            "in_domain": nih["extra"].get("in_domain"),
            "data": NIH_CAVEATS,
        }
    }
    guard = {
        **model.head.guard_info,
        "flagged": {"kermany_test": flagged.pop("in_domain"),
                    "nih_adult_dev": flagged.pop("out_of_domain"), **flagged},
        "targets": "flag >= 90% of nih-adult-dev, <= 10% of Kermany test, every non-X-ray image",
    }
    return {"external": external, "guard": guard}


def run(name: str, data: Path, out: Path) -> dict[str, Any]:
    import pneumozoo
    from pneumozoo.guard import fit_guard, guard_features
    from pneumozoo.pretrained import get_recipe
    from pneumozoo.pretrained.release import update_release
    from pneumozoo.run import split, training_records
    from pneumozoo.zoo.config import PretrainedConfig

    folder = BUNDLED / name
    model = pneumozoo.load_pretrained(str(folder))
    config = PretrainedConfig.read(folder)
    recipe = get_recipe(name)
    train, val = split(recipe, training_records(data / "kermany224"))
    import numpy as np

    from pneumozoo.data import targets

    # The prevalence the shipped probabilities were calibrated under (the validation split's).
    model.head.prior = float(np.mean(np.asarray(targets(val, "binary")) > 0))
    fit_guard(model, guard_features(model, train), guard_features(model, val),
              quantile=recipe.guard_quantile,
              fitted_on=f"{len(train)} Kermany train films of the recipe's split; cut-off on "
                        f"its {len(val)} validation films")
    measured = measure(model, data)
    update_release(model, replace(config, metrics={**config.metrics, **measured}), folder, out / name)
    return measured


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*", help="zoo models (default: every bundled one)")
    p.add_argument("--data", type=Path, default=Path(os.environ.get("PNEUMOZOO_SHARED_DATA", "data")),
                   help="folder with kermany224/ and nih-adult-dev/")
    p.add_argument("--out", type=Path, default=BUNDLED, help="where the folders are written")
    args = p.parse_args()
    names = args.models or sorted(d.name for d in BUNDLED.iterdir() if d.is_dir())
    for name in names:
        measured = run(name, args.data, args.out)
        print(name, json.dumps(measured["guard"]["flagged"]),
              "NIH AUC", measured["external"]["nih-adult-dev"]["auc"], flush=True)


if __name__ == "__main__":
    main()

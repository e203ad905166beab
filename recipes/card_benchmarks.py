"""Copy the benchmark results about each zoo model into its ``pneumozoo.json`` and card.

For every bundled model:

- ``metrics.seed_spread``: the spread of its thresholded test metrics over the retrains of
  ``benchmarks/bench_seeds.py`` (``benchmarks/results/seeds-<name>.json``), under the
  threshold rule the model's recipe declares, or the reason it was not measured;
- ``metrics.speed``: its images/s against the published peer, from the run with every zoo
  model in the same rounds (``benchmarks/results/peer-zoo.json``, ``python
  benchmarks/bench_peer.py --name peer-zoo --candidates ...``), when it was measured.

Weights, thresholds and every other number are left as they are.

Data of the retrains: Kermany et al. 2018 (doi:10.17632/rscbjbr9sj.2, CC BY 4.0). Usage::

    python recipes/card_benchmarks.py [MODEL ...]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "src" / "pneumozoo" / "pretrained" / "bundled"
RESULTS = ROOT / "benchmarks" / "results"
METRICS = ("accuracy", "sensitivity", "specificity", "f1", "auc")

#: Why a model has no measured spread (the costs are measured on this 2-core machine).
NOT_MEASURED = {
    "xraynet-binary-v2": "one retrain of the recipe takes about 25 minutes on 2 CPU cores "
                         "(benchmarks/results/reproduce-xraynet-binary-v2.json: 1475 s), so three "
                         "take 75 minutes; not run yet. That single retrain landed inside every "
                         "bootstrap interval of the shipped weights",
    "xraynet-binary": "one retrain takes about 25 minutes on 2 CPU cores (22 epochs of xraynet "
                      "at 192 px); not run yet",
    "xraynet-3class": "fine-tuned from xraynet-binary, so a spread needs retrains of both "
                      "(about 35 minutes each on 2 CPU cores); not run yet",
    "xraynet-binary-fast": "fine-tuned from xraynet-binary-v2 (6 epochs, about 8 minutes); a "
                           "spread needs retrains of xraynet-binary-v2 too (about 25 minutes "
                           "each); not run yet",
    "xraynet-adult": "adapted to nih-adult-dev with a linear probe, not trained by a Kermany "
                     "recipe; its card gives out-of-fold intervals over NIH patients instead",
}


def spread_of(name: str, rule: str) -> dict[str, Any]:
    """The model's ``seed_spread`` entry under ``rule``."""
    path = RESULTS / f"seeds-{name}.json"
    if not path.is_file():
        return {"reason": NOT_MEASURED.get(name, "no retrains were run")}
    result = json.loads(path.read_text(encoding="utf-8"))
    if result.get("quick") or result.get("limit") or result.get("epochs"):
        raise SystemExit(f"error: {path} is a shortened run; rerun bench_seeds.py in full")
    summary = result["rules"][rule]["summary"]
    return {
        "rule": rule,
        "chosen_rule": result["chosen"],
        "seeds": result["seeds"],
        "metrics": {m: {k: summary[m][k] for k in ("mean", "sd", "min", "max",
                                                   "prediction_interval", "values")}
                    for m in METRICS},
        "thresholds": {k: summary["threshold"][k] for k in ("mean", "sd", "min", "max", "values")},
        "seconds_per_run": result["seconds_per_run"],
        "source": f"benchmarks/bench_seeds.py {name} --seeds "
                  + " ".join(str(s) for s in result["seeds"]),
    }


def speed_of(name: str) -> dict[str, Any] | None:
    """The model's row of ``results/peer-zoo.json`` (None when it was not in the run)."""
    path = RESULTS / "peer-zoo.json"
    if not path.is_file():
        return None
    result = json.loads(path.read_text(encoding="utf-8"))
    if result.get("quick"):
        return None
    peer, *ours = result["rows"]
    row = next((r for r in ours if r["model"] == name), None)
    if row is None:
        return None
    return {"images_per_s": row["images_per_s"], "ratio_vs_peer": row["ratio_vs_peer"],
            "round_ratios": row.get("ratios"), "peer": result["peer"],
            "peer_images_per_s": peer["images_per_s"], "peer_test_auc": result["peer_test_auc"],
            "method": result["method"], "date": result["date"],
            "cpu": result["environment"].get("cpu"), "source": "benchmarks/bench_peer.py"}


def run(name: str) -> dict[str, Any]:
    import pneumozoo
    from pneumozoo.pretrained.release import update_release
    from pneumozoo.recipe import ZOO_RECIPES
    from pneumozoo.zoo.config import PretrainedConfig

    folder = BUNDLED / name
    config = PretrainedConfig.read(folder)
    rule = ZOO_RECIPES[name].threshold_rule if name in ZOO_RECIPES else ""
    entry = spread_of(name, rule)
    if entry.get("chosen_rule") not in (None, rule):
        print(f"warning: {name}: bench_seeds chose {entry['chosen_rule']!r}, the recipe declares {rule!r}")
    metrics = {**config.metrics, "seed_spread": entry}
    speed = speed_of(name)
    if speed:
        metrics["speed"] = speed
    model = pneumozoo.load_pretrained(str(folder))
    update_release(model, replace(config, metrics=metrics), folder)
    return {**entry, "speed": speed}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*", help="zoo models (default: every bundled one)")
    args = p.parse_args()
    for name in args.models or sorted(d.name for d in BUNDLED.iterdir() if d.is_dir()):
        entry = run(name)
        summary = {m: round(v["mean"], 3) for m, v in entry.get("metrics", {}).items()}
        ratio = (entry.get("speed") or {}).get("ratio_vs_peer")
        print(name, summary or entry["reason"], f"{ratio:.2f}x the peer" if ratio else "", flush=True)


if __name__ == "__main__":
    main()

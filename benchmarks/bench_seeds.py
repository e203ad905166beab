"""Run-to-run spread: retrain a zoo model with several seeds, measure how far its threshold
and decisions move, and choose the threshold rule that moves least (issue #17).

``python benchmarks/bench_seeds.py cnn4-binary --seeds 1 2 3`` retrains the model's recipe
once per seed (the seed changes the patient-wise validation split, the initial weights, the
shuffling and the augmentation), each in its own process and work folder, so a killed run
resumes where it stopped and finished seeds are not redone. Each run keeps P(pneumonia) of
its validation films and of the test films.

Then, for every candidate threshold rule, the threshold each run would ship is computed
from its own validation films only, and the rules are compared **on validation only**:

- ``youden-margin``: the middle of the best-Youden range on the run's validation split
  (the rule of pneumozoo 0.1);
- ``youden``: the lowest best-Youden threshold on the run's validation split;
- ``calibrated``: calibrated P(pneumonia) >= 0.5, chosen on no data at all: pneumonia when it
  is the more probable class at the stated prevalence (the one the temperature was fitted
  under, the validation split's, about 74% in Kermany ``train``);
- ``pooled``: ``youden-margin`` on the pooled validation predictions of the *other* runs
  (an out-of-fold pool over more of ``train``; in real use it costs one training per fold).

**The declared choice** (fixed before any test number is looked at): the rule whose
threshold varies least across seeds (standard deviation of logit(threshold)), among the
rules whose validation sensitivity and specificity both vary by at most 0.02 (SD) across
seeds and average at least 0.90. Test metrics of every rule are reported after the choice,
with their mean, SD, range and a 95% prediction interval for one more retrain.

Writes ``results/seeds-<model>.json``; ``recipes/seed_spread.py`` copies the chosen rule's
spread into the model cards. Takes one recipe run per seed (cnn4-binary: about 9 minutes
each on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

NAME = "seeds"
RULES = ("youden-margin", "youden", "calibrated", "pooled")
TEST_METRICS = ("accuracy", "sensitivity", "specificity", "f1", "auc")
MAX_VAL_SD = 0.02
MIN_VAL_MEAN = 0.90
# Two-sided 97.5% Student t quantiles by degrees of freedom (no scipy dependency).
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228}


def spread(values: list[float], bounds: tuple[float, float] = (0.0, 1.0)) -> dict[str, Any]:
    """Mean, SD, range and the 95% prediction interval of one more draw (t-based, clipped
    to ``bounds``: every metric here is a proportion)."""
    n = len(values)
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if n > 1 else math.nan
    half = _T975.get(n - 1, 1.96) * sd * math.sqrt(1 + 1 / n) if n > 1 else math.nan
    lo, hi = max(mean - half, bounds[0]), min(mean + half, bounds[1])
    return {"n": n, "mean": mean, "sd": sd, "min": min(values), "max": max(values),
            "prediction_interval": [lo, hi], "values": values}


def _logit(p: float) -> float:
    p = min(max(p, 1e-7), 1 - 1e-7)
    return math.log(p / (1 - p))


def run_one(model_name: str, seed: int, work: Path, data: Path, epochs: int | None,
            limit: int | None) -> dict[str, Any]:
    """Train one seed (resumable) and return its validation and test P(pneumonia)."""
    import numpy as np

    from pneumozoo.data import scan_split, targets
    from pneumozoo.evaluation.metrics import pneumonia_scores
    from pneumozoo.evaluation.scoring import predict_records
    from pneumozoo.pretrained import get_recipe
    from pneumozoo.run import deterministic_ops, recipe_records, run_recipe, split

    deterministic_ops()  # as recipes/<name>.py runs it
    recipe = get_recipe(model_name).with_(seed=seed, **({"epochs": epochs} if epochs else {}))
    t0 = time.time()
    model, config = run_recipe(recipe, data, out=work / "model", checkpoint_dir=work / "checkpoint",
                               verbose=0, limit=limit, log=lambda *a: print(*a, flush=True))
    seconds = time.time() - t0
    _, val = split(recipe, recipe_records(recipe, data, limit=limit))
    test = scan_split(data, "test")
    if limit:
        test = test[:limit]

    def scores(rs: list[Any]) -> dict[str, list[Any]]:
        p = pneumonia_scores(predict_records(model, rs))
        return {"y": [int(v > 0) for v in np.asarray(targets(rs, model.task))],
                "p": [round(float(v), 7) for v in p]}

    return {"seed": seed, "seconds": seconds, "epochs": config.training.get("epochs_run"),
            "temperature": model.temperature, "shipped_threshold": model.threshold,
            "val": scores(val), "test": scores(test)}


def threshold_for(rule: str, run: dict[str, Any], others: list[dict[str, Any]]) -> float:
    """The threshold ``rule`` gives ``run``, from validation predictions only."""
    import numpy as np

    from pneumozoo.evaluation.thresholds import choose_threshold

    if rule == "pooled":
        pool = others or [run]
        y = np.concatenate([r["val"]["y"] for r in pool])
        p = np.concatenate([r["val"]["p"] for r in pool])
        return choose_threshold(y, p, method="youden-margin").threshold
    return choose_threshold(run["val"]["y"], run["val"]["p"], method=rule).threshold


def analyse(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per rule: thresholds, validation and test metrics per run, their spread; the choice."""
    from pneumozoo.evaluation.metrics import binary_metrics

    rules: dict[str, Any] = {}
    for rule in RULES:
        per_run = []
        for run in runs:
            t = threshold_for(rule, run, [r for r in runs if r is not run])
            val = binary_metrics(run["val"]["y"], run["val"]["p"], t)
            test = binary_metrics(run["test"]["y"], run["test"]["p"], t)
            per_run.append({"seed": run["seed"], "threshold": t,
                            "val_sensitivity": val["sensitivity"],
                            "val_specificity": val["specificity"],
                            **{m: float(test[m]) for m in TEST_METRICS}})
        summary = {"threshold_logit_sd": statistics.stdev([_logit(r["threshold"]) for r in per_run])
                   if len(per_run) > 1 else math.nan}
        for key in ("threshold", "val_sensitivity", "val_specificity", *TEST_METRICS):
            summary[key] = spread([float(r[key]) for r in per_run])
        rules[rule] = {"runs": per_run, "summary": summary}

    def eligible(rule: str) -> bool:
        s = rules[rule]["summary"]
        return all(s[k]["sd"] <= MAX_VAL_SD and s[k]["mean"] >= MIN_VAL_MEAN
                   for k in ("val_sensitivity", "val_specificity"))

    candidates = [r for r in RULES if eligible(r)] or list(RULES)
    chosen = min(candidates, key=lambda r: (rules[r]["summary"]["threshold_logit_sd"],
                                             RULES.index(r)))
    return {"rules": rules, "eligible": [r for r in RULES if eligible(r)], "chosen": chosen,
            "criterion": f"least SD of logit(threshold) across seeds among rules whose "
                         f"validation sensitivity and specificity have SD <= {MAX_VAL_SD} and "
                         f"mean >= {MIN_VAL_MEAN} (validation only; test reported after)"}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("model", help="a zoo model with a recipe, e.g. cnn4-binary")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="seeds to retrain")
    p.add_argument("--work", type=Path, default=None,
                   help="run folders (default runs/seeds/<model>; reruns resume)")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--limit", type=int, default=None, help="train and test on N films only")
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # one seed's child
    args = p.parse_args(argv)
    C.check_data(args.data)
    if args.quick:
        args.epochs, args.limit = args.epochs or 1, args.limit or 32
    work = args.work or C.REPO / "runs" / "seeds" / args.model
    if args.one is not None:  # the child process of one seed
        out = run_one(args.model, args.one, work / f"seed{args.one}", args.data, args.epochs,
                      args.limit)
        tmp = work / f"seed{args.one}.json.tmp"
        tmp.write_text(json.dumps(out), encoding="utf-8")
        tmp.replace(work / f"seed{args.one}.json")
        return out
    if len(args.seeds) < 2 or len(set(args.seeds)) != len(args.seeds):
        sys.exit("error: --seeds needs at least two different seeds")
    work.mkdir(parents=True, exist_ok=True)
    runs = []
    for seed in args.seeds:
        done = work / f"seed{seed}.json"
        if not done.is_file():
            cmd = [sys.executable, __file__, args.model, "--one", str(seed), "--work", str(work),
                   "--data", str(args.data)]
            cmd += ["--epochs", str(args.epochs)] if args.epochs else []
            cmd += ["--limit", str(args.limit)] if args.limit else []
            log = work / f"seed{seed}.log"
            print(f"seed {seed}: {' '.join(cmd)}\n  log: {log}", flush=True)
            with log.open("a", encoding="utf-8") as fh:
                code = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode
            if code != 0:
                sys.exit(f"error: seed {seed} failed (exit {code}); see {log}")
        runs.append(json.loads(done.read_text(encoding="utf-8")))
    result = {"model": args.model, "seeds": args.seeds, "epochs": args.epochs, "limit": args.limit,
              "seconds_per_run": [r["seconds"] for r in runs], **analyse(runs)}
    out = C.write_results(f"{NAME}-{args.model}", args, result)
    table = [{"rule": rule, "threshold_logit_sd": s["summary"]["threshold_logit_sd"],
              "val_sens_sd": s["summary"]["val_sensitivity"]["sd"],
              "val_spec_sd": s["summary"]["val_specificity"]["sd"],
              "test_spec_mean": s["summary"]["specificity"]["mean"],
              "test_spec_sd": s["summary"]["specificity"]["sd"],
              "test_sens_mean": s["summary"]["sensitivity"]["mean"]}
             for rule, s in result["rules"].items()]
    C.print_table(table, list(table[0]), f"{args.model}: {len(runs)} seeds, rules on validation")
    print(f"chosen (validation only): {result['chosen']}\n-> {out}")
    return result


if __name__ == "__main__":
    main()

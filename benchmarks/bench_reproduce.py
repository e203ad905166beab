"""Accuracy reproduction: retrain a zoo model from scratch and check its test metrics against
its model card.

One command per model: ``python benchmarks/bench_reproduce.py cnn4-binary``. It runs the
model's recipe (``recipes/<name>.py``, its seed unless ``--seed``) into a fresh temporary run
folder (no checkpoint to resume from, nothing written to the bundled models), then judges
every test metric of the new model against the released one in two ways:

- **bootstrap**: inside the released weights' 95% interval (resampled by patient), i.e. the
  uncertainty of *those weights* measured on 624 test films;
- **seed spread**: inside the 95% prediction interval of one more retrain, from the model
  card's run-to-run spread (``benchmarks/bench_seeds.py``), i.e. how far *another training
  run* of the same recipe is expected to land.

A metric reproduces when it is inside either; the table says which. The exit status is 1
when any metric is inside neither (``--quick``: always 0, the run is too small to mean
anything).

``--epochs`` and ``--limit`` shorten the run (the check then says little);
``--keep DIR`` keeps the retrained model folder and the training log.

Takes as long as the recipe: tens of minutes per model on 2 CPU cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

NAME = "reproduce"
METRICS = ("accuracy", "sensitivity", "specificity", "f1", "auc", "pr_auc")


def compare(released: dict[str, Any], new: dict[str, Any],
            seed_spread: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per metric: the released value, its bootstrap interval and the seed spread's
    prediction interval, the new value, and which of the two it falls inside."""
    rows = []
    intervals = released.get("confidence_intervals", {})
    spreads = (seed_spread or {}).get("metrics", {})
    for metric in METRICS:
        if metric not in released or metric not in new or metric not in intervals:
            continue
        lo, hi = intervals[metric]
        value = float(new[metric])
        in_ci = lo <= value <= hi
        row = {"metric": metric, "released": float(released[metric]), "ci_low": lo,
               "ci_high": hi, "reproduced": value, "within_ci": in_ci}
        spread = spreads.get(metric)
        in_spread = False
        if spread:
            s_lo, s_hi = spread["prediction_interval"]
            in_spread = s_lo <= value <= s_hi
            row.update(spread_low=s_lo, spread_high=s_hi, within_spread=in_spread)
        row["verdict"] = ("both" if in_ci and in_spread else "bootstrap" if in_ci
                          else "seed spread" if in_spread else "neither")
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("model", help="a zoo model with a recipe, e.g. xraynet-binary")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--limit", type=int, default=None, help="train on N images only")
    p.add_argument("--released", type=Path, default=None,
                   help="released model folder (default: the bundled one)")
    p.add_argument("--keep", type=Path, default=None, help="keep the run and model folder here")
    p.add_argument("--seed", type=int, default=None, help="retrain with this seed (default: the recipe's)")
    args = p.parse_args(argv)
    from pneumozoo.recipe import ZOO_RECIPES

    def script(name: str) -> Path:
        return C.REPO / "recipes" / f"{name.replace('-', '_')}.py"

    recipe = script(args.model)
    if args.model not in ZOO_RECIPES or not recipe.is_file():
        names = sorted(n for n in ZOO_RECIPES if script(n).is_file())
        sys.exit(f"error: no recipe for {args.model!r}; valid: {', '.join(names)}")
    from pneumozoo.zoo.registry import BUNDLED_DIR

    released_dir = args.released or BUNDLED_DIR / args.model
    card = released_dir / "pneumozoo.json"
    if not card.is_file():
        sys.exit(f"error: {card} not found: the released model has no config to compare with")
    C.check_data(args.data)
    if args.quick:
        args.epochs = args.epochs or 1
        args.limit = args.limit or 32

    with tempfile.TemporaryDirectory(prefix="pneumozoo-reproduce-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, str(recipe), "--data", str(args.data), "--runs", str(work / "runs"),
               "--out", str(work / "models")]
        cmd += ["--epochs", str(args.epochs)] if args.epochs else []
        cmd += ["--limit", str(args.limit)] if args.limit else []
        cmd += ["--seed", str(args.seed)] if args.seed is not None else []
        log = work / f"{args.model}.log"
        print(f"retraining {args.model}: {' '.join(cmd)}\n  log: {log}", flush=True)
        t0 = time.time()
        with log.open("w", encoding="utf-8") as fh:
            code = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode
        seconds = time.time() - t0
        if code != 0:
            tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
            sys.exit(f"error: the recipe failed (exit {code}): {' '.join(tail)}")
        new = json.loads((work / "models" / args.model / "pneumozoo.json").read_text("utf-8"))
    released = json.loads(card.read_text(encoding="utf-8"))
    spread = released["metrics"].get("seed_spread")
    if not (spread and spread.get("metrics")):
        spread = None
        print("the model card has no seed spread: judging by the bootstrap interval only")
    rows = compare(released["metrics"]["test"], new["metrics"]["test"], spread)
    reproduced = all(r["verdict"] != "neither" for r in rows)
    result = {"model": args.model, "seed": new["training"].get("recipe", {}).get("seed"),
              "seconds": seconds, "epochs": new["training"].get("epochs_run", new["training"].get("epochs")),
              "train_images": new["training"].get("train_images"), "rows": rows,
              "reproduced": reproduced}
    out = C.write_results(f"{NAME}-{args.model}", args, result)
    columns = ["metric", "released", "ci_low", "ci_high"]
    columns += ["spread_low", "spread_high"] if spread else []
    C.print_table(rows, [*columns, "reproduced", "verdict"],
                  f"{args.model}: retrained in {seconds:.0f} s, test metrics vs the model card")
    if reproduced:
        print("reproduced: every metric inside the released 95% bootstrap interval or the "
              "seed spread's 95% prediction interval (verdict column: which)")
    else:
        outside = ", ".join(r["metric"] for r in rows if r["verdict"] == "neither")
        print(f"NOT reproduced: {outside} outside both intervals")
    print(f"-> {out}")
    if not reproduced and not args.quick:
        sys.exit(1)
    return result


if __name__ == "__main__":
    main()

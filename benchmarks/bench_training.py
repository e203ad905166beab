"""Training speed: seconds per epoch for each recipe's architecture, float32 vs mixed_bfloat16,
XLA off vs on.

Each variant compiles the model as ``pneumozoo.fit`` does (Adam, sparse cross-entropy,
accuracy, AUC) and times ``--steps`` calls of ``train_on_batch`` on batches of 32 images
already at the input size (the input pipeline is bench_pipeline.py's job), after one
untimed step (tracing, and XLA compilation: reported apart as ``first_step_s``). Seconds
per epoch = median seconds per step x steps per epoch of the recipe (ceil(train films x
0.85 / 32): the recipes keep 15% for validation), i.e. extrapolated from the capped steps.

Time to reach the default model's validation AUC: every bundled zoo model ships the
per-epoch history of its recipe run (``history.json``); the first epoch whose validation
AUC reaches the default model's best, times the seconds per epoch measured here for that
model's architecture (float32, XLA off), is its time to target (``None``: never reached).

Run: ``python benchmarks/bench_training.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

NAME = "training"
BATCH = 32


def recipe_architectures() -> list[str]:
    """``arch@size`` of every recipe in ``recipes/`` (deduplicated, in file order)."""
    folder = C.REPO / "recipes"
    specs: list[str] = []
    sys.path.insert(0, str(folder))
    try:
        for path in sorted(folder.glob("*_*.py")):
            spec = importlib.util.spec_from_file_location(f"_recipe_{path.stem}", path)
            if spec is None or spec.loader is None:
                continue
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except Exception:  # a recipe that needs more than its Recipe: skip it
                continue
            recipe = getattr(module, "RECIPE", None)
            if recipe is not None:
                item = f"{recipe.arch}@{recipe.input_size}"
                if item not in specs:
                    specs.append(item)
    finally:
        sys.path.remove(str(folder))
    return specs


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--archs", default=None,
                   help="comma-separated arch@size (default: every recipe's architecture)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 20; --quick 2)")
    p.add_argument("--precisions", default="float32,mixed_bfloat16")
    p.add_argument("--xla", default="off,on", help="off, on or off,on")
    args = p.parse_args(argv)
    reps = C.repeats(args, 3)
    steps = args.steps or (2 if args.quick else 20)
    archs = args.archs.split(",") if args.archs else recipe_architectures()
    if not archs:
        sys.exit("error: no recipes found; pass --archs (e.g. xraynet@192)")
    n_train = len(C.list_images(args.data / "train")) if (args.data / "train").is_dir() else 5216
    steps_per_epoch = math.ceil(n_train * 0.85 / BATCH)

    import keras
    import numpy as np

    import pneumozoo
    from pneumozoo.train import compile_model

    rng = np.random.default_rng(0)
    rows = []
    for spec in archs:
        arch, size = C.parse_spec(spec)
        x = rng.integers(0, 256, (BATCH, size or 224, size or 224, 3)).astype(np.float32)
        y = (np.arange(BATCH) % 2).astype(np.int32)
        for precision in args.precisions.split(","):
            for xla in args.xla.split(","):
                keras.utils.set_random_seed(0)
                model = pneumozoo.build_model(arch, input_size=size, precision=precision)
                compile_model(model, jit_compile=xla == "on")
                first = C.timed(lambda model=model, x=x, y=y: model.train_on_batch(x, y))
                runs = []
                for _ in range(reps):
                    seconds = C.timed(lambda model=model, x=x, y=y: [model.train_on_batch(x, y)
                                                           for _ in range(steps)])
                    runs.append(seconds / steps)
                step_s = C.median(runs)
                rows.append({"arch": spec, "precision": precision, "xla": xla,
                             "step_s": step_s, "epoch_s": step_s * steps_per_epoch,
                             "images_per_s": BATCH / step_s, "first_step_s": first,
                             "runs_step_s": runs})
                print(f"{spec:<14} {precision:<15} xla {xla:<3}: {step_s * 1000:8.1f} ms/step  "
                      f"{step_s * steps_per_epoch:7.1f} s/epoch  (first step {first:.1f} s)",
                      flush=True)
                del model
                keras.backend.clear_session()
    for r in rows:  # speed-ups against float32 without XLA, same architecture, same run
        base = next((b for b in rows if b["arch"] == r["arch"] and b["precision"] == "float32"
                     and b["xla"] == "off"), None)
        r["speedup_vs_float32"] = base["step_s"] / r["step_s"] if base else None
    targets = time_to_target(rows)
    result = {"batch_size": BATCH, "timed_steps": steps, "repeats": reps,
              "train_films": n_train, "steps_per_epoch": steps_per_epoch,
              "extrapolation": "epoch_s = median step_s x steps_per_epoch "
                               "(ceil(train films x 0.85 / 32))", "rows": rows,
              "time_to_default_val_auc": targets}
    out = C.write_results(NAME, args, result)
    C.print_table(rows, ["arch", "precision", "xla", "step_s", "epoch_s", "speedup_vs_float32",
                         "first_step_s"],
                  f"batch {BATCH}, {steps} timed steps x {reps} runs (median), "
                  f"{steps_per_epoch} steps/epoch")
    if targets["rows"]:
        C.print_table(targets["rows"], ["model", "arch", "best_val_auc", "epochs_to_target",
                                        "epoch_s", "seconds_to_target"],
                      f"time to the default model's best validation AUC "
                      f"({targets['target_val_auc']:.4f}, {targets['default']})")
    print(f"-> {out}")
    return result


def time_to_target(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Epochs and seconds each bundled model's run took to reach the default's val AUC."""
    import json

    from pneumozoo.zoo.registry import BUNDLED_DIR, DEFAULT_MODEL, list_pretrained

    def history(name: str) -> dict[str, list[float]] | None:
        path = BUNDLED_DIR / name / "history.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    default = history(DEFAULT_MODEL)
    if not default or not default.get("val_auc"):
        return {"default": DEFAULT_MODEL, "target_val_auc": None, "rows": []}
    target = max(default["val_auc"])
    epoch_s = {r["arch"]: r["epoch_s"] for r in rows
               if r["precision"] == "float32" and r["xla"] == "off"}
    out = []
    for config in sorted(list_pretrained(), key=lambda c: c.name):
        hist = history(config.name)
        spec = f"{config.architecture}@{config.input_size}"
        if not hist or not hist.get("val_auc") or spec not in epoch_s:
            continue
        reached = [i + 1 for i, v in enumerate(hist["val_auc"]) if v >= target]
        epochs = reached[0] if reached else None
        out.append({"model": config.name, "arch": spec, "epochs_run": len(hist["val_auc"]),
                    "best_val_auc": max(hist["val_auc"]), "epochs_to_target": epochs,
                    "epoch_s": epoch_s[spec],
                    "seconds_to_target": epochs * epoch_s[spec] if epochs else None})
    return {"default": DEFAULT_MODEL, "target_val_auc": target, "rows": out}


if __name__ == "__main__":
    main()

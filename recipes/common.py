"""Shared steps of the zoo's training recipes (one script per model beside this file).

Every recipe: scan ``train``, carve a patient-wise validation split, train with resumable
checkpoints, pick the threshold and calibration on validation only, evaluate once on
``test``, and write the model folder in Hub layout under ``models/<name>/``.

Rerun a recipe with the same command to resume after a kill; ``--stage finalize`` only
redoes the validation/test/packaging step from the saved best weights.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "kermany224"


@dataclass
class Recipe:
    """Everything that defines one zoo model's training run."""

    name: str
    arch: str
    task: str
    input_size: int
    epochs: int
    learning_rate: float
    batch_size: int = 32
    augment: str = "xray"
    schedule: str = "cosine"
    warmup_epochs: int = 2
    optimizer: str = "adam"
    class_weight: str | None = "balanced"
    oversample: bool = False
    early_stopping: int | None = None
    val_fraction: float = 0.15
    seed: int = 0
    threshold_rule: str = "youden-margin"
    monitor: str = "val_auc"  # what picks the best epoch (3-class: val_accuracy)
    init_from: str | None = None  # another recipe's name: start from its best weights
    normalization: str | None = None  # override the architecture's input normalisation
    label_smoothing: float = 0.0
    description: str = ""


def parse_args(recipe: Recipe) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=f"Train the {recipe.name} zoo model.")
    p.add_argument("--data", type=Path, default=Path(os.environ.get("PNEUMOZOO_DATA", DEFAULT_DATA)),
                   help="Kermany root with train/ and test/ (default: ../shared/data/kermany224)")
    p.add_argument("--runs", type=Path, default=ROOT / "runs", help="checkpoints and logs")
    p.add_argument("--out", type=Path, default=ROOT / "src" / "pneumozoo" / "pretrained" / "bundled",
                   help="where the model folder is written (default: bundled in the package)")
    p.add_argument("--stage", choices=["all", "train", "finalize"], default="all")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--limit", type=int, default=None, help="use only N training images (smoke test)")
    return p.parse_args()


def run(recipe: Recipe) -> None:
    args = parse_args(recipe)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import pneumozoo
    from pneumozoo.data import patient_split, scan_split

    if args.epochs:
        recipe.epochs = args.epochs
    run_dir = args.runs / recipe.name
    run_dir.mkdir(parents=True, exist_ok=True)
    records = scan_split(args.data, "train")
    if args.limit:
        import random

        records = random.Random(0).sample(records, min(args.limit, len(records)))
    train, val = patient_split(records, val_fraction=recipe.val_fraction, seed=recipe.seed, task="3class")
    print(f"[{recipe.name}] train {len(train)}  val {len(val)}", flush=True)
    num_classes = 3 if recipe.task == "3class" else 2
    model = pneumozoo.build_model(recipe.arch, num_classes=num_classes, input_size=recipe.input_size,
                                  normalization=recipe.normalization)
    if recipe.init_from and not (run_dir / "checkpoint" / "state.json").exists():
        copied = init_from_bundled(model, recipe)
        print(f"[{recipe.name}] initialised {copied} layers from {recipe.init_from}", flush=True)
    if args.stage in ("all", "train"):
        t0 = time.time()
        result = pneumozoo.fit(
            model, train, val, epochs=recipe.epochs, learning_rate=recipe.learning_rate,
            optimizer=recipe.optimizer, batch_size=recipe.batch_size, augment=recipe.augment,
            class_weight="balanced" if recipe.class_weight else None, oversample=recipe.oversample,
            label_smoothing=recipe.label_smoothing,
            schedule=recipe.schedule, warmup_epochs=recipe.warmup_epochs,
            early_stopping=recipe.early_stopping, checkpoint_dir=run_dir / "checkpoint",
            monitor=recipe.monitor,
            seed=recipe.seed, verbose=2,
        )
        print(f"[{recipe.name}] trained in {time.time() - t0:.0f}s; best {result.monitor} "
              f"{result.best_value:.4f} at epoch {result.best_epoch}", flush=True)
    else:
        model.load_weights(run_dir / "checkpoint" / "best.weights.h5")
    if args.stage in ("all", "finalize"):
        from finalize import finalize  # type: ignore[import-not-found]

        finalize(recipe, model, train, val, args)


def init_from_bundled(model: Any, recipe: Recipe) -> int:
    """Copy every layer whose name and shapes match from a released (bundled) zoo model.

    Starting from the committed release keeps the recipe reproducible. The classifier
    (``logits``) differs in width between tasks and stays freshly initialised.
    """
    from pneumozoo.pretrained import load_pretrained

    folder = ROOT / "src" / "pneumozoo" / "pretrained" / "bundled" / str(recipe.init_from)
    if not folder.is_dir():
        raise SystemExit(f"{folder}: train and finalize {recipe.init_from} first")
    donor = load_pretrained(folder)
    copied = 0
    for layer in model.layers:
        try:
            other = donor.get_layer(layer.name)
        except ValueError:
            continue
        mine, theirs = layer.get_weights(), other.get_weights()
        if mine and len(mine) == len(theirs) and all(a.shape == b.shape for a, b in zip(mine, theirs, strict=True)):
            layer.set_weights(theirs)
            copied += 1
    return copied


def main_guard(recipe: Recipe) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    run(recipe)


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=2)

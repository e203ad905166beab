"""One recipe object for every training run: :func:`pneumozoo.fit`'s defaults, ``pneumozoo
train`` and the zoo's own recipes.

A :class:`Recipe` says everything that defines a run: the architecture, the data split, the
training settings, and how the finished model is calibrated (temperature, threshold rule,
domain guard). :data:`ZOO_RECIPES` holds the recipe of every zoo model, so ``pneumozoo train
--recipe xraynet-binary-v2 DATA`` reruns it, and :func:`run_recipe` is the one function that
turns a recipe and a Kermany-layout folder into a model folder.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pneumozoo.errors import PneumozooError, UnknownNameError

__all__ = ["ZOO_RECIPES", "Recipe", "get_recipe", "list_recipes"]

_SCHEDULES = ("plateau", "cosine", "exponential", "constant")
_OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
#: Threshold rules a recipe can declare (the ones that need no target).
THRESHOLD_RULES = ("calibrated", "youden", "youden-margin")


@dataclass(frozen=True)
class Recipe:
    """Everything that defines one training run (defaults: pneumozoo's recommended recipe).

    Attributes:
        name: Name of the run and of the model folder it writes.
        arch: Architecture (see :func:`pneumozoo.list_models`).
        task: ``binary`` or ``3class``.
        input_size: Square input size (``None``: the architecture's own).
        normalization: Override of the architecture's input normalisation.
        epochs: Epochs to train (at least 1).
        learning_rate: Initial learning rate.
        optimizer: ``adam``, ``adamw``, ``rmsprop`` or ``sgd``.
        batch_size: Batch size (per replica under a distribution strategy).
        augment: Augmentation preset (``none`` for none).
        schedule: ``cosine``, ``plateau``, ``exponential`` or ``constant``.
        warmup_epochs: Linear warm-up epochs (``cosine``/``exponential``).
        decay_after: First epoch of exponential decay.
        class_weight: ``balanced`` or ``None``.
        oversample: Repeat minority-class films instead of weighting.
        label_smoothing: Label smoothing of the cross-entropy.
        early_stopping: Stop after this many epochs without improvement (``None``: never).
        monitor: Metric choosing the best epoch.
        val_fraction: Share of the training patients held out for validation.
        seed: Seed of the split, initial weights, shuffling, augmentation and dropout (recorded
            in the model card): a rerun on the same machine and versions repeats the run.
        threshold_rule: How the decision threshold is chosen on validation (see
            :func:`pneumozoo.evaluation.choose_threshold`).
        guard_quantile: Quantile of validation films' guard distances used as cut-off.
        init_from: A zoo model to start from (its matching layers are copied).
        description: One line for the model card.

    Example:
        >>> Recipe(arch="cnn4", epochs=3).with_(learning_rate=1e-4).learning_rate
        0.0001
    """

    name: str = "custom"
    arch: str = "xraynet"
    task: str = "binary"
    input_size: int | None = None
    normalization: str | None = None
    epochs: int = 30
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    batch_size: int = 32
    augment: str = "xray"
    schedule: str = "cosine"
    warmup_epochs: int = 2
    decay_after: int = 20
    class_weight: str | None = "balanced"
    oversample: bool = False
    label_smoothing: float = 0.0
    early_stopping: int | None = None
    monitor: str = "val_auc"
    val_fraction: float = 0.15
    seed: int = 0
    threshold_rule: str = "youden-margin"
    guard_quantile: float = 0.925
    init_from: str | None = None
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        def bad(what: str, value: Any, rule: str) -> PneumozooError:
            return PneumozooError(f"recipe {self.name!r}: {what} must be {rule}, got {value!r}")

        def positive_int(name: str, minimum: int = 1) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                raise bad(name, v, f"an integer >= {minimum}")

        positive_int("epochs")
        positive_int("batch_size")
        positive_int("warmup_epochs", 0)
        positive_int("decay_after", 0)
        if self.early_stopping is not None:
            positive_int("early_stopping")
        if self.task not in ("binary", "3class"):
            raise bad("task", self.task, "binary or 3class")
        if not (isinstance(self.learning_rate, (int, float)) and math.isfinite(self.learning_rate)
                and self.learning_rate > 0):
            raise bad("learning_rate", self.learning_rate, "a positive number")
        if self.optimizer not in _OPTIMIZERS:
            raise UnknownNameError("optimizer", self.optimizer, list(_OPTIMIZERS))
        if self.schedule not in _SCHEDULES:
            raise UnknownNameError("schedule", self.schedule, list(_SCHEDULES))
        if not 0.0 <= self.label_smoothing < 1.0:
            raise bad("label_smoothing", self.label_smoothing, "in [0, 1)")
        if not 0.0 < self.val_fraction < 1.0:
            raise bad("val_fraction", self.val_fraction, "in (0, 1)")
        if not 0.5 <= self.guard_quantile < 1.0:
            raise bad("guard_quantile", self.guard_quantile, "in [0.5, 1)")
        if self.threshold_rule not in THRESHOLD_RULES:
            raise UnknownNameError("threshold rule", self.threshold_rule, list(THRESHOLD_RULES))
        if self.class_weight not in ("balanced", None):
            raise bad("class_weight", self.class_weight, "'balanced' or None")

    def with_(self, **changes: Any) -> Recipe:
        """A copy with some settings changed (unknown names are refused with the valid ones).

        Raises:
            UnknownNameError: For a name that is not a recipe setting.
        """
        valid = [f.name for f in dataclasses.fields(self)]
        for key in changes:
            if key not in valid:
                raise UnknownNameError("recipe setting", key, valid)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict (what the model card records)."""
        return dataclasses.asdict(self)

    @property
    def num_classes(self) -> int:
        """2 for ``binary``, 3 for ``3class``."""
        return 3 if self.task == "3class" else 2


#: The recipe of every zoo model (``recipes/<name>.py`` runs it; ``pneumozoo train --recipe``).
ZOO_RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe(
        name="xraynet-binary-v2", arch="xraynet", input_size=192, epochs=24, learning_rate=2e-3,
        augment="xray-strong", normalization="per-image", label_smoothing=0.1,
        description="xraynet trained for robustness to exposure and contrast shift (per-image "
                    "standardisation, photometric augmentation, label smoothing).",
    ),
    Recipe(
        name="cnn4-binary", arch="cnn4", input_size=128, epochs=20, learning_rate=1e-3,
        batch_size=16, augment="none", schedule="constant", warmup_epochs=0,
        description="The 4-block VGG-like CNN of 004, trained with its recipe.",
    ),
    Recipe(
        name="cnn5-binary", arch="cnn5", input_size=150, epochs=10, learning_rate=1e-3,
        augment="zoom-vflip", schedule="plateau", warmup_epochs=0,
        description="The 5-block separable-conv CNN of 001, trained with its recipe.",
    ),
    Recipe(
        name="xraynet-3class", arch="xraynet", task="3class", input_size=192, epochs=8,
        learning_rate=1e-3, warmup_epochs=1, init_from="xraynet-binary",
        # The best epoch is the one with the best 3-class accuracy: val_auc only measures
        # normal vs pneumonia, which the donor model already does well.
        monitor="val_accuracy",
        description="normal / bacteria / virus: xraynet fine-tuned from the default binary model.",
    ),
    Recipe(
        name="xraynet-binary", arch="xraynet", input_size=192, epochs=22, learning_rate=2e-3,
        description="xraynet v1, the first default (superseded by xraynet-binary-v2): fast "
                    "residual CNN trained from scratch on Kermany train.",
    ),
    Recipe(
        # Issue #15: the fast entry. Its size is the largest whose untrained network runs at
        # >= 4.2x the published peer's images/s on this CPU (bench_peer --candidates:
        # 112 px 4.01x, 104 px 4.33x); fine-tuned from the default, which it keeps the recipe of.
        name="xraynet-binary-fast", arch="xraynet", input_size=104, epochs=6, learning_rate=5e-4,
        augment="xray-strong", normalization="per-image", label_smoothing=0.1, warmup_epochs=0,
        init_from="xraynet-binary-v2",
        description="xraynet-binary-v2 fine-tuned at 104 px: over 4x the images/s of the "
                    "published 5-block CNN, for CPUs and large batches.",
    ),
)}


def get_recipe(name: str) -> Recipe:
    """The recipe of a zoo model.

    Args:
        name: A zoo model's name (see :data:`ZOO_RECIPES`).

    Returns:
        Its :class:`Recipe`.

    Raises:
        UnknownNameError: Listing the zoo's recipes.

    Example:
        >>> get_recipe("cnn4-binary").epochs
        20
    """
    if name not in ZOO_RECIPES:
        raise UnknownNameError("recipe", name, list(ZOO_RECIPES))
    return ZOO_RECIPES[name]


def list_recipes() -> list[Recipe]:
    """Every zoo recipe, the default model's first.

    Returns:
        The :class:`Recipe` of every zoo model.

    Example:
        >>> list_recipes()[0].name
        'xraynet-binary-v2'
    """
    return list(ZOO_RECIPES.values())


def build_from(recipe: Recipe, **build_kwargs: Any) -> Any:
    """The untrained model a recipe starts from (``init_from`` layers copied when set).

    The initial weights come from ``recipe.seed`` (:func:`keras.utils.set_random_seed`), so
    the same recipe builds the same model.
    """
    import keras

    from pneumozoo.models import build_model

    keras.utils.set_random_seed(recipe.seed)

    model = build_model(recipe.arch, num_classes=recipe.num_classes, input_size=recipe.input_size,
                        normalization=recipe.normalization, **build_kwargs)
    if recipe.init_from:
        copy_matching_layers(model, recipe.init_from)
    return model


def copy_matching_layers(model: Any, donor_name: str | Path) -> int:
    """Copy every layer whose name and weight shapes match from a pretrained model.

    The classifier (``logits``) differs in width between tasks and stays freshly initialised.

    Returns:
        The number of layers copied.
    """
    from pneumozoo.pretrained import load_pretrained

    donor = load_pretrained(str(donor_name))
    copied = 0
    for layer in model.layers:
        try:
            other = donor.get_layer(layer.name)
        except ValueError:
            continue
        mine, theirs = layer.get_weights(), other.get_weights()
        if mine and len(mine) == len(theirs) and all(
                a.shape == b.shape for a, b in zip(mine, theirs, strict=True)):
            layer.set_weights(theirs)
            copied += 1
    return copied


def training_records(data: str | Path) -> list[Any]:
    """The training films of a Kermany-layout root (``train/``) or of a folder that is itself
    the training split (``NORMAL/`` and ``PNEUMONIA/``).

    Raises:
        DataError: If neither layout holds labelled films.
    """
    from pneumozoo.data import scan_folder, scan_split
    from pneumozoo.data.records import label_of
    from pneumozoo.errors import DataError

    root = Path(data)
    try:
        return list(scan_split(root, "train"))
    except DataError:
        if not (root.is_dir() and any(label_of(c.name) is not None for c in root.iterdir())):
            raise  # the split's own problem (e.g. empty class folders), not a fallback's
        return list(scan_folder(root, split="train"))


def recipe_records(recipe: Recipe, data: str | Path, *, limit: int | None = None) -> list[Any]:
    """The training films :func:`run_recipe` uses: :func:`training_records`, or a sample of
    ``limit`` of them drawn with the recipe's seed (a smoke test)."""
    records = training_records(data)
    if limit:
        import random

        records = random.Random(recipe.seed).sample(records, min(int(limit), len(records)))
    return records


def split(recipe: Recipe, records: list[Any]) -> tuple[list[Any], list[Any]]:
    """The recipe's patient-wise train/validation split (stratified by subtype when the file
    names carry one, as the zoo's splits are)."""
    from pneumozoo.data import patient_split
    from pneumozoo.errors import DataError

    try:
        return patient_split(records, val_fraction=recipe.val_fraction, seed=recipe.seed, task="3class")
    except DataError:
        if recipe.task == "3class":
            raise
        return patient_split(records, val_fraction=recipe.val_fraction, seed=recipe.seed, task="binary")


def deterministic_ops() -> None:
    """Make this process's TensorFlow kernels deterministic (``enable_op_determinism``).

    The seed fixes the split, the initial weights, the shuffling and the augmentation; this
    also pins the kernels whose floating-point order can vary from run to run (multithreaded
    CPU reductions under load, GPUs), without which two runs of one seed can differ in the
    last bits and then drift apart. It is process-wide and cannot be undone, and Keras then
    refuses XLA, so the entry points call it (``recipes/*.py``, ``pneumozoo train`` without
    ``--jit-compile``, ``benchmarks/bench_seeds.py``), not the library functions.
    """
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()


def run_recipe(
    recipe: Recipe,
    data: str | Path,
    *,
    out: str | Path,
    checkpoint_dir: str | Path | None = None,
    model: Any = None,
    test: bool = False,
    strategy: Any = None,
    jit_compile: bool | str = "auto",
    verbose: int | str = 2,
    log: Any = print,
    limit: int | None = None,
) -> tuple[Any, Any]:
    """Train a recipe on a Kermany-layout folder and write the model folder: the one path
    behind ``pneumozoo train``, ``pneumozoo train --recipe NAME`` and ``recipes/*.py``.

    Split patient-wise (``val_fraction``, ``seed``), train with resumable checkpoints,
    recalibrate on validation only (temperature, threshold by the declared rule, guard),
    optionally evaluate once on ``data/test``, and write ``out`` (Keras files,
    ``pneumozoo.json`` with sha256s and the recipe, model card).

    Args:
        recipe: The recipe.
        data: A root with ``train/`` (and ``test/`` for ``test=True``), or a training folder.
        out: The model folder to write.
        checkpoint_dir: Checkpoints and ``history.json`` (default ``<out>.checkpoint``);
            rerunning resumes from the last finished epoch.
        model: Start from this model instead of ``build_from(recipe)`` (fine-tuning).
        test: Evaluate once on ``data/test`` and record the metrics with bootstrap CIs.
        strategy: A ``tf.distribute`` strategy or its name.
        jit_compile: XLA for the train step.
        verbose: Keras verbosity.
        log: Where progress lines go.
        limit: Train on a seeded random sample of this many training films only (a smoke
            test: the model says little).

    Returns:
        ``(model, config)`` as written.
    """
    import platform

    import keras

    from pneumozoo.data.validate import validate_records
    from pneumozoo.pretrained.release import prepare_release, write_release
    from pneumozoo.train import fit

    out = Path(out)
    records = recipe_records(recipe, data, limit=limit)
    validate_records(records, task=recipe.task)  # type: ignore[arg-type]
    train, val = split(recipe, records)
    log(f"[{recipe.name}] train {len(train)}  validation {len(val)}")
    if model is None:
        model = build_from(recipe)
    ckpt = Path(checkpoint_dir) if checkpoint_dir else out.with_name(out.name + ".checkpoint")
    result = fit(model, train, val, recipe=recipe, checkpoint_dir=ckpt, strategy=strategy,
                 jit_compile=jit_compile, verbose=verbose)
    log(f"[{recipe.name}] best {result.monitor} {result.best_value:.4f} at epoch {result.best_epoch}")
    model, config = prepare_release(
        model, val, name=recipe.name, architecture=recipe.arch,
        threshold_rule=recipe.threshold_rule, description=recipe.description,
        calibration=result.extra["calibration"],
        training={
            "data": Path(data).name,  # the folder's name: no machine paths in a card
            "train_images": len(train),
            "validation_split": f"patient-wise, stratified, {recipe.val_fraction:.0%} of the "
                                f"train patients, seed {recipe.seed}",
            "recipe": recipe.to_dict(),
            "epochs_run": result.epochs,
            "best_epoch": result.best_epoch,
            "keras": keras.__version__,
            "machine": f"{platform.machine()} CPU",
        })
    log(f"[{recipe.name}] validation: T={model.temperature:.4f} threshold={model.threshold:.4f}")
    if test:
        from dataclasses import replace

        config = replace(config, metrics={"test": test_metrics(model, data, val), **config.metrics})
    if strategy is not None:
        from pneumozoo.distribute import get_strategy, is_chief

        if not is_chief(get_strategy(strategy)):
            return model, config  # only the chief writes the model folder
    written = write_release(model, config, out)
    history = ckpt / "history.json"
    if history.is_file():
        import shutil

        shutil.copyfile(history, out / "history.json")
    log(f"[{recipe.name}] wrote {out}")
    return model, written


def test_metrics(model: Any, data: str | Path, validation: list[Any]) -> dict[str, Any]:
    """The once-only test evaluation of a release: metrics at the model's threshold with
    patient-bootstrap CIs, and the test metrics at operating points chosen on validation."""
    import numpy as np

    from pneumozoo.data import scan_split, targets
    from pneumozoo.evaluation import evaluate
    from pneumozoo.evaluation.metrics import binary_metrics, pneumonia_scores
    from pneumozoo.evaluation.report import predict_records
    from pneumozoo.evaluation.thresholds import choose_threshold

    test = scan_split(Path(data), "test")
    report = evaluate(model, test, n_boot=1000)
    out = report.to_dict()
    out["split"] = f"official Kermany test split ({len(test)} images), evaluated once"
    # Operating points chosen on validation (pre-declared targets), reported on test: what a
    # user who needs a given sensitivity can expect. The shipped threshold stays the recipe's.
    y_val = np.asarray(targets(validation, model.task))
    s_val = pneumonia_scores(predict_records(model, validation))
    y_test = np.asarray(targets(test, model.task))
    s_test = pneumonia_scores(predict_records(model, test))
    points = []
    for method, target in (("sensitivity", 0.99), ("sensitivity", 0.95), ("sensitivity", 0.90),
                           ("specificity", 0.99), ("youden", None)):
        op = choose_threshold(y_val, s_val, method=method, target=target)
        at = binary_metrics(y_test, s_test, op.threshold)
        points.append({"rule": f"{method}>={target}" if target else method,
                       "threshold": op.threshold, "val_sensitivity": op.sensitivity,
                       "val_specificity": op.specificity,
                       **{k: at[k] for k in ("accuracy", "sensitivity", "specificity")}})
    out["operating_points"] = points
    return out


def main(name: str, argv: list[str] | None = None) -> None:
    """Command line of ``recipes/<name>.py``: rerun a zoo recipe (resumes after a kill).

    Example:
        >>> main("cnn4-binary", ["--data", "chest_xray", "--out", "models"])  # doctest: +SKIP
    """
    import argparse
    import os

    recipe = get_recipe(name)
    p = argparse.ArgumentParser(description=f"Train the {name} zoo model with its recipe.")
    p.add_argument("--data", type=Path, default=Path(os.environ.get("PNEUMOZOO_DATA", "data/kermany224")),
                   help="Kermany root with train/ and test/ (default: $PNEUMOZOO_DATA)")
    p.add_argument("--out", type=Path, default=Path("models"), help="parent of the model folder")
    p.add_argument("--runs", type=Path, default=Path("runs"), help="checkpoints and logs")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--limit", type=int, default=None, help="use only N training images (smoke test)")
    p.add_argument("--seed", type=int, default=None,
                   help=f"seed of the split, weights, shuffling and augmentation (default: {recipe.seed})")
    args = p.parse_args(argv)
    if args.epochs:
        recipe = recipe.with_(epochs=args.epochs)
    if args.seed is not None:
        recipe = recipe.with_(seed=args.seed)
    deterministic_ops()
    run_recipe(recipe, args.data, out=args.out / name, checkpoint_dir=args.runs / name / "checkpoint",
               test=True, limit=args.limit)

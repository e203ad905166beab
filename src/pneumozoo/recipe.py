"""One recipe object for every training run: :func:`pneumozoo.fit`'s defaults, ``pneumozoo
train`` and the zoo's own recipes.

A :class:`Recipe` says everything that defines a run: the architecture, the data split, the
training settings, and how the finished model is calibrated (temperature, threshold rule,
domain guard). :data:`ZOO_RECIPES` holds the recipe of every zoo model, so ``pneumozoo train
--recipe xraynet-binary-v2 DATA`` reruns it. This module only describes runs (it imports no
Keras); the zoo's registry (:mod:`pneumozoo.zoo.registry`) keys each recipe to its
architecture and weights, and :func:`pneumozoo.run.run_recipe` is the one function that runs one.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from pneumozoo.errors import PneumozooError, UnknownNameError
from pneumozoo.rules import TASKS

__all__ = ["BALANCES", "OPTIMIZERS", "SCHEDULES", "STRATEGY_NAMES", "TASKS", "THRESHOLD_RULES",
           "ZOO_RECIPES", "Recipe"]

#: Learning-rate schedules (:func:`pneumozoo.train.compile_model`).
SCHEDULES = ("plateau", "cosine", "exponential", "constant")
#: Optimizers (:func:`pneumozoo.train.compile_model`).
OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
#: Threshold rules a recipe can declare (the ones that need no target).
THRESHOLD_RULES = ("calibrated", "youden", "youden-margin")
#: How the classes are balanced (:func:`pneumozoo.run.recipe_for`): loss weights, oversampling, or not at all.
BALANCES = ("weights", "oversample", "none")
#: Distribution strategies a run can be given (:func:`pneumozoo.distribute.get_strategy`); named
#: here, beside the rest of a run's vocabulary, so the command line lists them without Keras.
STRATEGY_NAMES: tuple[str, ...] = ("mirrored", "data-parallel", "multiworker")


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
        if self.task not in TASKS:
            raise bad("task", self.task, "binary or 3class")
        if not (isinstance(self.learning_rate, (int, float)) and math.isfinite(self.learning_rate)
                and self.learning_rate > 0):
            raise bad("learning_rate", self.learning_rate, "a positive number")
        if self.optimizer not in OPTIMIZERS:
            raise UnknownNameError("optimizer", self.optimizer, list(OPTIMIZERS))
        if self.schedule not in SCHEDULES:
            raise UnknownNameError("schedule", self.schedule, list(SCHEDULES))
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

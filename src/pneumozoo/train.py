"""``fit``: ``model.fit`` with the callbacks people rely on, crash-safe resume and distribution.

Backend-neutral: records become uint8 film batches (:func:`pneumozoo.data.make_batches`) and the
model is trained inside a thin training model that casts them, augments them (``training=True``
only) and repeats the grey channel on the device, so the same ``fit`` runs on TensorFlow, JAX
and PyTorch; only ``tf.distribute`` strategies and op determinism are TensorFlow's own.
"""

from __future__ import annotations

import filecmp
import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import keras

from pneumozoo.augment import get_preset
from pneumozoo.data.pipeline import make_batches
from pneumozoo.data.records import Record, Task
from pneumozoo.data.splits import class_weights as balanced_weights
from pneumozoo.data.splits import oversample
from pneumozoo.distribute import (
    get_strategy,
    global_batch_size,
    replicate_model,
    worker_checkpoint_dir,
)
from pneumozoo.errors import DataError, UnknownNameError
from pneumozoo.evaluation.calibration import recalibrate as refit
from pneumozoo.keras_metrics import PneumoniaAUC, SmoothedSparseCrossentropy
from pneumozoo.models.classifier import as_classifier
from pneumozoo.recipe import OPTIMIZERS, Recipe
from pneumozoo.utils import atomic_path, atomic_write_json

__all__ = ["FitResult", "compile_model", "fit", "training_model"]

Schedule = Literal["plateau", "cosine", "exponential", "constant"]


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        history: Per-epoch metrics (``loss``, ``accuracy``, ``auc``, ``val_*``, ``lr``),
            including epochs run before a resume.
        best_epoch: 1-based epoch with the best ``monitor`` value (0 if never measured).
        best_value: That value.
        monitor: The metric that chose the best epoch.
        checkpoint_dir: Where checkpoints and ``history.json`` live, if anywhere.
        resumed_from: Epochs already done when this call started (0 for a fresh run).
        extra: Anything else worth keeping about the run.

    Example:
        >>> result = pneumozoo.fit(model, train, val, epochs=20)  # doctest: +SKIP
        >>> result.monitor, 1 <= result.best_epoch <= result.epochs  # doctest: +SKIP
        ('val_auc', True)
    """

    history: dict[str, list[float]]
    best_epoch: int
    best_value: float
    monitor: str
    checkpoint_dir: Path | None = None
    resumed_from: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        """Number of epochs trained in total."""
        return len(next(iter(self.history.values()), []))


def _loss_and_metrics(label_smoothing: float) -> dict[str, Any]:
    return {"loss": (SmoothedSparseCrossentropy(label_smoothing) if label_smoothing
                     else keras.losses.SparseCategoricalCrossentropy()),
            "metrics": [keras.metrics.SparseCategoricalAccuracy(name="accuracy"), PneumoniaAUC()]}


def compile_model(model: keras.Model, *, learning_rate: float = 1e-3, optimizer: str = "adam",
                  weight_decay: float | None = None, jit_compile: bool | str = "auto",
                  label_smoothing: float = 0.0) -> None:
    """Compile a zoo model with sparse categorical cross-entropy, accuracy and pneumonia AUC.

    Args:
        model: A model from :func:`pneumozoo.build_model` (softmax outputs).
        learning_rate: Initial learning rate.
        optimizer: ``adam``, ``adamw``, ``rmsprop`` or ``sgd`` (momentum 0.9).
        weight_decay: Decoupled weight decay for ``adamw``.
        jit_compile: XLA compilation (``"auto"`` lets Keras decide).
        label_smoothing: Label smoothing of the loss (0 = plain cross-entropy).

    Raises:
        UnknownNameError: For an unknown optimizer.

    Example:
        >>> model = pneumozoo.build_model("cnn4", input_size=64)  # doctest: +SKIP
        >>> compile_model(model, learning_rate=1e-4, optimizer="adamw")  # doctest: +SKIP
        >>> model.evaluate(dataset, return_dict=True)  # loss, accuracy, auc  # doctest: +SKIP
    """
    name = optimizer.lower()
    opt: keras.optimizers.Optimizer
    if name == "adam":
        opt = keras.optimizers.Adam(learning_rate)
    elif name == "adamw":
        opt = keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay or 1e-4)
    elif name == "rmsprop":
        opt = keras.optimizers.RMSprop(learning_rate)
    elif name == "sgd":
        opt = keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True)
    else:
        raise UnknownNameError("optimizer", optimizer, list(OPTIMIZERS))
    # Keras adds loss scaling only when the *model's* policy is mixed_float16, which a model
    # rebuilt from a config (loaded, or replicated for tf.distribute) does not carry.
    if any(layer.dtype_policy.name == "mixed_float16" for layer in [model, *model.layers]):
        opt = keras.optimizers.LossScaleOptimizer(opt)
    model.compile(optimizer=opt, jit_compile=jit_compile, **_loss_and_metrics(label_smoothing))


def _schedule_callback(schedule: Schedule, learning_rate: float, epochs: int,
                       decay_after: int, warmup: int) -> keras.callbacks.Callback | None:
    if schedule == "plateau":
        return keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=2,
                                                 min_lr=learning_rate * 1e-3, verbose=1)
    if schedule == "constant":
        return None

    def lr_at(epoch: int, lr: float) -> float:
        if epoch < warmup:
            return learning_rate * (epoch + 1) / warmup
        if schedule == "cosine":
            t = (epoch - warmup) / max(1, epochs - warmup)
            return learning_rate * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))
        # "exponential": constant, then lr * exp(-0.1) per epoch after `decay_after` (000).
        return learning_rate * math.exp(-0.1 * max(0, epoch - decay_after + 1))

    # Computed from the epoch index alone, so a resumed run gets the same rates.
    return keras.callbacks.LearningRateScheduler(lr_at)


#: File name of the best epoch's weights inside ``checkpoint_dir``.
BEST_WEIGHTS = "best.weights.h5"
_TEMP_PREFIXES = (".state.json.", ".history.json.", f".{BEST_WEIGHTS}.", ".epoch-")


def _copy_atomic(source: Path, target: Path) -> None:
    with atomic_path(target, suffix=".weights.h5") as tmp:
        shutil.copyfile(source, tmp)


def _resume_state(ckpt: Path, checkpointer: _Checkpointer) -> dict[str, Any] | None:
    """The saved state of a killed or finished run in ``ckpt`` (None for a fresh start).

    Temporary files a kill left behind are removed, and the best-weights copy is redone when
    the last saved epoch is the best one (a kill can fall between the state and the copy).
    """
    for stale in ckpt.glob(".*"):
        if stale.name.startswith(_TEMP_PREFIXES) and stale.is_file():
            stale.unlink(missing_ok=True)
    state_file = ckpt / "state.json"
    if not state_file.exists():
        return None
    state: dict[str, Any] = json.loads(state_file.read_text(encoding="utf-8"))
    checkpointer.history.update({k: list(v) for k, v in state["history"].items()})
    last, best = ckpt / state["weights"], ckpt / BEST_WEIGHTS
    if checkpointer._best()[0] == int(state["epoch"]) and not (
            best.exists() and filecmp.cmp(last, best, shallow=False)):
        _copy_atomic(last, best)
    return state


class _Checkpointer(keras.callbacks.Callback):
    """Atomic per-epoch state for resume, best weights by ``monitor``, and early stopping."""

    def __init__(self, directory: Path, monitor: str, mode: str, patience: int | None,
                 history: dict[str, list[float]], target: keras.Model | None = None) -> None:
        super().__init__()
        self.target = target  # the model whose weights (and optimizer) are saved
        self.directory = directory
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.history = history

    def _best(self) -> tuple[int, float]:
        return _best_epoch(self.history.get(self.monitor, []), self.mode)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = dict(logs or {})
        logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        keys = set(self.history) | set(logs)
        for key in keys:
            self.history.setdefault(key, [math.nan] * epoch)
            self.history[key].append(float(logs.get(key, math.nan)))
        best_epoch, _ = self._best()
        # Weights first (with the optimizer state), then the state file that points at them,
        # then the copy of the best: a kill between any two leaves the previous, consistent
        # state (a resume redoes the best copy a kill cut short, see _resume_state).
        name = f"epoch-{epoch + 1:04d}.weights.h5"
        with atomic_path(self.directory / name, suffix=".weights.h5") as tmp:
            (self.target or self.model).save_weights(tmp)
        atomic_write_json(self.directory / "state.json", {"epoch": epoch + 1, "weights": name,
                                                          "history": self.history})
        atomic_write_json(self.directory / "history.json", self.history)
        if best_epoch == epoch + 1:
            _copy_atomic(self.directory / name, self.directory / BEST_WEIGHTS)
        for old in self.directory.glob("epoch-*.weights.h5"):
            if old.name != name:
                old.unlink(missing_ok=True)
        if self.patience is not None and best_epoch and epoch + 1 - best_epoch >= self.patience:
            self.model.stop_training = True


def _is_records(data: Any) -> bool:
    """True for a list (or other sequence) of :class:`Record`; False for a dataset."""
    if isinstance(data, (str, bytes)) or not isinstance(data, Sequence):
        return False
    return all(isinstance(r, Record) for r in data)


def _as_batches(data: Any, model: keras.Model, *, training: bool, batch_size: int,
                cache: bool | str | Path, seed: int, oversample_minority: bool,
                drop_remainder: bool = False, epoch: int = 0) -> Any:
    """Records -> uint8 film batches (:func:`make_batches`); a dataset is used as it is."""
    if not _is_records(data):
        return data
    records = list(data)
    if not records:
        raise DataError("no records to train or validate on")
    task: Task = as_classifier(model).task
    if training and oversample_minority:
        records = oversample(records, task, seed=seed)
    batches = make_batches(records, model, task=task, batch_size=batch_size, training=training,
                           cache=cache, seed=seed, drop_remainder=drop_remainder)
    if hasattr(batches, "set_epoch"):
        batches.set_epoch(epoch)
    return batches


def training_model(model: keras.Model, augment: Any = None, *, seed: int = 0) -> keras.Model:
    """The model :func:`fit` trains: uint8 films in, ``model``'s outputs out.

    It casts the films to float32, applies ``augment`` (a preset name or a Keras layer; only
    with ``training=True``, in float32 under any dtype policy), repeats a grey channel to RGB
    when ``model`` takes three, and calls ``model``: all on the device, on any backend. It
    shares ``model``'s variables (training it trains ``model``).

    Args:
        model: A pneumozoo model.
        augment: A preset name (see :func:`pneumozoo.augment.list_presets`), a layer, or None.
        seed: Seed of the augmentation.

    Returns:
        A ``keras.Model`` (named ``<model>_training``) from ``uint8 (N, size, size, channels)``
        films to ``model``'s outputs, sharing ``model``'s variables.

    Raises:
        PneumozooError: If ``model`` is not a pneumozoo model.
        UnknownNameError: If no augmentation preset has that name.

    Example:
        >>> trainer = training_model(model, "xray")  # doctest: +SKIP
        >>> trainer(np.zeros((2, 192, 192, 1), np.uint8), training=True).shape  # doctest: +SKIP
        (2, 2)
    """
    model = as_classifier(model)
    pre = model.preprocessor
    size, channels = pre.input_size, pre.channels
    layer, preset = None, isinstance(augment, str)
    if augment is not None and augment != "none":
        if preset:
            previous = keras.config.dtype_policy()
            keras.config.set_dtype_policy("float32")  # pixel arithmetic in float32
            try:
                layer = get_preset(augment, seed=seed)
            finally:
                keras.config.set_dtype_policy(previous)
        else:
            layer = augment
    wants = model.inputs[0].shape[-1] if getattr(model, "inputs", None) else None
    films = keras.Input((size, size, channels), dtype="uint8", name="film")
    x = keras.ops.cast(films, "float32")
    if layer is not None and preset:
        x = layer(x)  # one transform per film: before the channel repeat, a third of the work
    if wants == 3 and channels == 1:
        x = keras.ops.repeat(x, 3, axis=-1)
    if layer is not None and not preset:
        x = layer(x)  # a user's layer may be colour-specific: it sees what the model sees
    return keras.Model(films, model(x), name=f"{model.name}_training")


def fit(
    model: keras.Model,
    train: Sequence[Record] | Any,
    validation: Sequence[Record] | Any | None = None,
    *,
    recipe: Recipe | None = None,
    class_weight: Literal["balanced"] | dict[int, float] | str | None = "recipe",
    checkpoint_dir: str | Path | None = None,
    restore_best: bool = True,
    recalibrate: bool = True,
    cache: bool | str | Path = True,
    strategy: str | Any | None = None,
    jit_compile: bool | str = "auto",
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int | str = "auto",
    **settings: Any,
) -> FitResult:
    """Train a pneumozoo model: ``model.fit`` plus checkpoints, schedules, resume, balance and
    recalibration.

    The training settings come from one :class:`~pneumozoo.recipe.Recipe`: ``recipe`` (default
    ``Recipe()``, pneumozoo's recommended settings) with any of its fields overridden by
    keyword (``epochs=20, learning_rate=1e-4, schedule="plateau", ...``; see
    :class:`~pneumozoo.recipe.Recipe` for every setting and its default). ``pneumozoo train``
    and the zoo's recipes go through the same object.

    Given records, it builds the input pipeline itself with the model's own preprocessor
    (:func:`pneumozoo.data.make_batches`: uint8 films at the model's size) and trains the model
    inside :func:`training_model` (cast, augmentation, channel repeat on the device), on any
    Keras backend. With ``checkpoint_dir``, every epoch's weights and optimizer state are
    written atomically, and calling ``fit`` again with the same arguments after a crash or
    kill continues from the last finished epoch and ends at the same ``epochs``. With
    validation records, the trained model is recalibrated at the end
    (:func:`pneumozoo.evaluation.calibration.recalibrate`: temperature, threshold by the
    recipe's ``threshold_rule``, domain guard), so a fine-tuned pretrained model never keeps
    its old threshold.

    Args:
        model: A model from :func:`pneumozoo.build_model` or :func:`pneumozoo.load_pretrained`
            (compiled here).
        train: Training records, or batches the model takes as they are (a ``tf.data``
            dataset, a ``keras.utils.PyDataset``...): ``(images, labels)``.
        validation: Validation records or dataset (needed for ``val_*`` monitoring).
        recipe: The settings to start from (default ``Recipe()``).
        class_weight: ``"balanced"``, ``None``, or a dict (for datasets); default: the
            recipe's.
        checkpoint_dir: Folder for ``best.weights.h5``, resume state and ``history.json``.
        restore_best: Load the best epoch's weights into ``model`` at the end.
        recalibrate: Refit temperature, threshold and guard on ``validation`` records.
        cache: Decoded films are kept in memory; a path also keeps them in a file (see
            :func:`pneumozoo.data.load_films`).
        strategy: ``"mirrored"`` / ``"data-parallel"`` (TensorFlow: ``tf.distribute``
            MirroredStrategy; JAX: ``keras.distribution.DataParallel`` over every local
            device), ``"multiworker"`` (TensorFlow), a ``tf.distribute.Strategy``, a
            ``keras.distribution.Distribution`` or None. The model is trained as a replica
            built in the strategy's scope and gets the trained weights back (see
            :mod:`pneumozoo.distribute`); under multi-worker training only the chief writes
            to ``checkpoint_dir``. ``batch_size`` is then per replica.
        jit_compile: XLA-compile the train and eval steps (``True``/``False``; ``"auto"``
            lets Keras decide, which means off on CPU and under ``tf.distribute``).
        callbacks: More Keras callbacks.
        verbose: Keras verbosity (``"auto"`` shows a progress bar).
        **settings: Recipe fields to override (``epochs``, ``learning_rate``, ``optimizer``,
            ``batch_size``, ``augment``, ``schedule``, ``warmup_epochs``, ``decay_after``,
            ``oversample``, ``label_smoothing``, ``early_stopping``, ``monitor``, ``seed``,
            ``threshold_rule``, ``guard_quantile``...).

    Returns:
        A :class:`FitResult` with the full history, the best epoch, and in
        ``extra["calibration"]`` what recalibration fitted.

    Raises:
        DataError: If ``train`` or ``validation`` holds no records.
        PneumozooError: If ``model`` is not a pneumozoo model or a setting is out of range.
        UnknownNameError: For an unknown setting, optimizer, augmentation preset or strategy.
        ValueError: If ``class_weight="balanced"`` is asked with a dataset (pass a dict).

    Example:
        >>> model = pneumozoo.build_model("xraynet")  # doctest: +SKIP
        >>> result = pneumozoo.fit(model, train_records, val_records, epochs=20)  # doctest: +SKIP
        >>> model.threshold  # chosen on val_records by the recipe's rule  # doctest: +SKIP
    """
    model = as_classifier(model)
    rc = (recipe or Recipe()).with_(**settings)
    if class_weight == "recipe":
        class_weight = rc.class_weight
    monitor = rc.monitor
    if validation is None and monitor.startswith("val_"):
        monitor = monitor[4:]
    mode = "min" if monitor.endswith("loss") else "max"
    task: Task = model.task
    cw: dict[int, float] | None
    if class_weight == "balanced":
        if not _is_records(train):
            raise ValueError("class_weight='balanced' needs records; pass a dict for datasets")
        cw = None if rc.oversample else balanced_weights(list(train), task)
    else:
        cw = class_weight  # type: ignore[assignment]

    def body(m: keras.Model, batch_size: int, ckpt_dir: str | Path | None,
             replicas: int = 1) -> FitResult:
        return _fit_body(m, train, validation, rc, cw=cw, monitor=monitor, mode=mode,
                         batch_size=batch_size, checkpoint_dir=ckpt_dir,
                         restore_best=restore_best, cache=cache, jit_compile=jit_compile,
                         callbacks=callbacks, verbose=verbose, replicas=replicas)

    if strategy is None:
        result = body(model, rc.batch_size, checkpoint_dir)
    else:
        strategy = get_strategy(strategy)
        global_batch = global_batch_size(rc.batch_size, strategy)
        # Keras's JAX data parallelism splits every batch evenly over the devices.
        replicas = global_batch // rc.batch_size if keras.backend.backend() == "jax" else 1
        with worker_checkpoint_dir(checkpoint_dir, strategy) as worker_ckpt:
            result = replicate_model(model, strategy,
                                     lambda m: body(m, global_batch, worker_ckpt, replicas))
        result.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
    result.extra["recipe"] = rc.to_dict()
    if recalibrate and validation is not None and _is_records(validation):
        train_records = list(train) if _is_records(train) else None
        result.extra["calibration"] = refit(
            model, list(validation), train=train_records, threshold_rule=rc.threshold_rule,
            guard_quantile=rc.guard_quantile, batch_size=rc.batch_size)
    return result


def _fit_body(model: keras.Model, train: Sequence[Record] | Any,
              validation: Sequence[Record] | Any | None, rc: Recipe, *,
              cw: dict[int, float] | None, monitor: str, mode: str, batch_size: int,
              checkpoint_dir: str | Path | None, restore_best: bool, cache: bool | str | Path,
              jit_compile: bool | str, callbacks: Sequence[keras.callbacks.Callback],
              verbose: int | str, replicas: int = 1) -> FitResult:
    """One training run on one device set (under a strategy, on the replica)."""
    # Dropout, augmentation and any other Keras randomness follow the recipe's seed.
    keras.utils.set_random_seed(rc.seed)
    compile_model(model, learning_rate=rc.learning_rate, optimizer=rc.optimizer,
                  jit_compile=jit_compile, label_smoothing=rc.label_smoothing)
    # Records: uint8 films into the training model (augmentation on the device); datasets
    # given by the caller go to the model as they are.
    trainer = model
    if _is_records(train):
        trainer = training_model(model, rc.augment, seed=rc.seed)
        # The same optimizer object: checkpoints of `model` carry the optimizer state.
        trainer.compile(optimizer=model.optimizer, jit_compile=jit_compile,
                        **_loss_and_metrics(rc.label_smoothing))
    epochs, early_stopping = rc.epochs, rc.early_stopping
    history: dict[str, list[float]] = {}
    initial_epoch = 0
    ckpt: Path | None = Path(checkpoint_dir) if checkpoint_dir else None
    all_callbacks: list[keras.callbacks.Callback] = []
    if ckpt is not None:
        ckpt.mkdir(parents=True, exist_ok=True)
        checkpointer = _Checkpointer(ckpt, monitor, mode, early_stopping, history, target=model)
        state = _resume_state(ckpt, checkpointer)
        if state is not None:
            model.optimizer.build(model.trainable_variables)
            model.load_weights(ckpt / state["weights"])
            initial_epoch = int(state["epoch"])
        all_callbacks.append(checkpointer)
    else:
        all_callbacks.append(_HistoryOnly(history))
        if early_stopping is not None or restore_best:
            # Without early stopping, a patience of `epochs` never stops but still restores.
            patience = early_stopping if early_stopping is not None else max(epochs, 1)
            all_callbacks.append(keras.callbacks.EarlyStopping(
                monitor=monitor, mode=mode, patience=patience, restore_best_weights=restore_best))
    sched = _schedule_callback(rc.schedule, rc.learning_rate, epochs, rc.decay_after,  # type: ignore[arg-type]
                               rc.warmup_epochs)
    if sched is not None:
        all_callbacks.insert(0, sched)
    all_callbacks.extend(callbacks)

    stopped_early = False
    if initial_epoch < epochs and not _early_stopped(history, monitor, mode, early_stopping):
        train_ds = _as_batches(train, model, training=True, batch_size=batch_size, cache=cache,
                               seed=rc.seed, oversample_minority=rc.oversample,
                               drop_remainder=replicas > 1, epoch=initial_epoch)
        val_ds = None if validation is None else _as_batches(
            validation, model, training=False, batch_size=batch_size, cache=cache, seed=rc.seed,
            oversample_minority=False)
        if replicas > 1 and val_ds is not None and hasattr(val_ds, "pad_to"):
            val_ds.pad_to = replicas  # weight-0 padding: every batch splits over the devices
        # shuffle=False: the pipeline shuffles; Keras would only warn that it cannot.
        trainer.fit(train_ds, validation_data=val_ds, epochs=epochs, initial_epoch=initial_epoch,
                    class_weight=cw, callbacks=all_callbacks, verbose=verbose, shuffle=False)
    else:
        stopped_early = initial_epoch < epochs
    best_epoch, best_value = _best_epoch(history.get(monitor, []), mode)
    if ckpt is not None and restore_best and (ckpt / BEST_WEIGHTS).exists():
        model.load_weights(ckpt / BEST_WEIGHTS)
    return FitResult(history=history, best_epoch=best_epoch, best_value=best_value,
                     monitor=monitor, checkpoint_dir=ckpt, resumed_from=initial_epoch,
                     extra={"stopped_early_before_resume": stopped_early})


def _best_epoch(values: list[float], mode: str) -> tuple[int, float]:
    """1-based epoch and value of the best non-NaN entry (``(0, nan)`` if there is none)."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return 0, math.nan
    best = max(finite) if mode == "max" else min(finite)
    return values.index(best) + 1, best


def _early_stopped(history: dict[str, list[float]], monitor: str, mode: str,
                   patience: int | None) -> bool:
    best_epoch, _ = _best_epoch(history.get(monitor, []), mode)
    if patience is None or not best_epoch:
        return False
    return len(history[monitor]) - best_epoch >= patience


class _HistoryOnly(keras.callbacks.Callback):
    def __init__(self, history: dict[str, list[float]]) -> None:
        super().__init__()
        self.history = history

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = dict(logs or {})
        logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))

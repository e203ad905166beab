"""Running training: one recipe and a Kermany-layout folder in, one model folder out.

:func:`run_recipe` is the one path behind ``pneumozoo train``, ``pneumozoo train --recipe
NAME`` and ``recipes/*.py``: it checks the recipe and the films, holds the run's lock
(:func:`output_lock`), optionally turns on op determinism, splits patient-wise, trains
(:func:`pneumozoo.fit`), calibrates on validation and describes the release
(:func:`prepare_release`), evaluates once on test when asked, and writes the model folder
(:func:`pneumozoo.pretrained.release.write_release`). :mod:`pneumozoo.recipe`
only describes runs; this module runs them.

Example:
    >>> from pneumozoo import get_recipe
    >>> run_recipe(get_recipe("cnn4-binary"), "chest_xray", out="models/cnn4")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import shutil
import socket
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import keras
import numpy as np

from pneumozoo import backend
from pneumozoo.backend import deterministic
from pneumozoo.data import patient_split, scan_folder, scan_split, targets
from pneumozoo.data.records import Record, label_of, validate_records
from pneumozoo.distribute import get_strategy, is_chief
from pneumozoo.errors import DataError, PneumozooError, UnknownNameError
from pneumozoo.evaluation import evaluate
from pneumozoo.evaluation.calibration import recalibrate
from pneumozoo.evaluation.metrics import binary_metrics, pneumonia_scores
from pneumozoo.evaluation.report import report_from_predictions
from pneumozoo.evaluation.scoring import FilmScores, predict_records, score_films, score_records
from pneumozoo.evaluation.thresholds import choose_threshold
from pneumozoo.models.build import build_model
from pneumozoo.models.classifier import as_classifier
from pneumozoo.models.preprocessor import NORMALIZATIONS
from pneumozoo.pretrained import get_recipe, load_pretrained
from pneumozoo.pretrained.release import write_release
from pneumozoo.recipe import BALANCES, Recipe
from pneumozoo.train import fit
from pneumozoo.zoo.config import PretrainedConfig
from pneumozoo.zoo.registry import get_model_info

__all__ = ["LOCK_FILE", "check_recipe", "deterministic_ops", "output_lock", "prepare_release",
           "recipe_for", "run_recipe", "run_zoo_recipe"]

#: Lock file a run keeps in its checkpoint folder while it trains and writes.
LOCK_FILE = ".pneumozoo-train.lock"


def check_recipe(recipe: Recipe) -> None:
    """Refuse, before any film is decoded, a recipe naming an unknown architecture or
    normalisation (the names :mod:`pneumozoo.recipe` cannot check without loading Keras).

    Args:
        recipe: The recipe.

    Raises:
        UnknownNameError: Listing the valid names.
    """
    get_model_info(recipe.arch)
    if recipe.normalization is not None and recipe.normalization not in NORMALIZATIONS:
        raise UnknownNameError("normalization", recipe.normalization, list(NORMALIZATIONS))


@contextlib.contextmanager
def output_lock(folder: str | Path) -> Iterator[None]:
    """Create ``folder`` and hold :data:`LOCK_FILE` in it (pid and host) while the body runs.

    A lock left by a dead process on this host (or by this process) is taken over; a live one
    is refused, as is a folder that cannot be created or written.

    Args:
        folder: The folder one run at a time may write.

    Returns:
        A context manager; the lock is released when it exits (on errors too).

    Raises:
        PneumozooError: If another live run holds the folder, or it cannot be written.

    Example:
        >>> with output_lock("runs/mine/checkpoint"):  # doctest: +SKIP
        ...     ...
    """
    out = Path(folder)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PneumozooError(f"{out}: cannot create the output folder ({e.strerror or e})") from None
    lock = out / LOCK_FILE
    host = socket.gethostname()
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _lock_owner(lock, host)
            if owner is not None:
                raise PneumozooError(
                    f"{out}: another 'pneumozoo train' ({owner}) is writing there; wait for it "
                    f"or choose another output folder (remove {lock} if that run is gone)") from None
            try:  # stale: its process is dead; take it over
                os.unlink(lock)
            except FileNotFoundError:
                pass
            except OSError as e:
                raise PneumozooError(f"{lock}: cannot remove a stale lock ({e.strerror})") from None
            continue
        except OSError as e:
            if created:
                with contextlib.suppress(OSError):
                    out.rmdir()
            raise PneumozooError(f"{out}: output folder is not writable ({e.strerror or e})") from None
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}\n{host}\n")
        break
    else:
        raise PneumozooError(f"{lock}: cannot take the lock (another run keeps taking it)")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)


def _lock_owner(lock: Path, host: str) -> str | None:
    """Who holds ``lock`` (``"pid N"``), or None when it is stale (its process is gone)."""
    try:
        pid_text, _, rest = lock.read_text().partition("\n")
        pid = int(pid_text)
    except (OSError, ValueError):
        return None  # unreadable or half-written by a crashed run
    lock_host = rest.strip()
    if lock_host and lock_host != host:
        return f"pid {pid} on {lock_host}"  # cannot check another machine's processes
    if pid == os.getpid():
        return None  # left by this very process (an earlier run that was interrupted)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    except OSError:
        return None
    return f"pid {pid}"


def build_from(recipe: Recipe, **build_kwargs: Any) -> Any:
    """The untrained model a recipe starts from (``init_from`` layers copied when set).

    The initial weights come from ``recipe.seed`` (:func:`keras.utils.set_random_seed`), so
    the same recipe builds the same model.
    """
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
        records = random.Random(recipe.seed).sample(records, min(int(limit), len(records)))
    return records


def split(recipe: Recipe, records: list[Any]) -> tuple[list[Any], list[Any]]:
    """The recipe's patient-wise train/validation split (stratified by subtype when the file
    names carry one, as the zoo's splits are)."""
    try:
        return patient_split(records, val_fraction=recipe.val_fraction, seed=recipe.seed, task="3class")
    except DataError:
        if recipe.task == "3class":
            raise
        return patient_split(records, val_fraction=recipe.val_fraction, seed=recipe.seed, task="binary")


def deterministic_ops() -> None:
    """Make this process's kernels deterministic where the backend has a switch: TensorFlow's
    ``enable_op_determinism``, PyTorch's deterministic algorithms; JAX needs none (see
    :func:`pneumozoo.backend.deterministic`). No TensorFlow import on other backends.

    The seed fixes the split, the initial weights, the shuffling and the augmentation; this
    also pins the kernels whose floating-point order can vary from run to run (multithreaded
    CPU reductions under load, GPUs), without which two runs of one seed can differ in the
    last bits and then drift apart. It is process-wide and cannot be undone, and Keras then
    refuses XLA, so the entry points call it (``recipes/*.py``, ``pneumozoo train`` without
    ``--jit-compile``, ``benchmarks/bench_seeds.py``), not the library functions.
    """
    deterministic(ops=True)


def run_recipe(
    recipe: Recipe,
    data: str | Path,
    *,
    out: str | Path,
    checkpoint_dir: str | Path | None = None,
    model: Any = None,
    build_kwargs: dict[str, Any] | None = None,
    test: bool = False,
    strategy: Any = None,
    jit_compile: bool | str = "auto",
    verbose: int | str = 2,
    log: Any = print,
    limit: int | None = None,
    deterministic: bool = False,
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
        build_kwargs: Passed to :func:`build_from` when ``model`` is None (``weights``,
            ``freeze_backbone``, ``precision``...); the model is built once the lock is held.
        test: Evaluate once on ``data/test`` and record the metrics with bootstrap CIs.
        strategy: A strategy or its name (see :func:`pneumozoo.fit`).
        jit_compile: XLA for the train step.
        verbose: Keras verbosity.
        log: Where progress lines go.
        limit: Train on a seeded random sample of this many training films only (a smoke
            test: the model says little).
        deterministic: Turn on op determinism for this process first
            (:func:`deterministic_ops`: process-wide, and Keras then refuses XLA), as
            ``pneumozoo train`` (without ``--jit-compile``) and ``recipes/*.py`` do.

    The checkpoint folder is held with :func:`output_lock` from the start of training to the
    end of writing (by the chief only, under a multi-worker strategy): a second run into the
    same folders stops at once with a one-line error.

    Returns:
        ``(model, config)`` as written.

    Raises:
        PneumozooError: If another live run holds the checkpoint folder, or it cannot be
            written; :class:`~pneumozoo.errors.DataError` for unusable training films.
    """
    out = Path(out)
    check_recipe(recipe)
    records = recipe_records(recipe, data, limit=limit)
    validate_records(records, task=recipe.task)  # type: ignore[arg-type]
    ckpt = Path(checkpoint_dir) if checkpoint_dir else out.with_name(out.name + ".checkpoint")
    chief = strategy is None or is_chief(get_strategy(strategy))
    with output_lock(ckpt) if chief else contextlib.nullcontext():
        if deterministic:
            deterministic_ops()
        if model is None:
            model = build_from(recipe, **(build_kwargs or {}))
        return _run_locked(recipe, data, records, out=out, ckpt=ckpt, model=model, test=test,
                           strategy=strategy, jit_compile=jit_compile, verbose=verbose, log=log,
                           chief=chief)


def _run_locked(recipe: Recipe, data: str | Path, records: list[Record], *, out: Path,
                ckpt: Path, model: Any, test: bool, strategy: Any, jit_compile: bool | str,
                verbose: int | str, log: Any, chief: bool) -> tuple[Any, Any]:
    """:func:`run_recipe` once its checks passed and its lock is held."""
    train, val = split(recipe, records)
    log(f"[{recipe.name}] train {len(train)}  validation {len(val)}")
    # Keras validates on `val` every epoch to pick the best checkpoint; after training the
    # validation films go through the trained model once (`score_films`), and the temperature,
    # threshold, guard cut-off, validation metrics and operating points all read those scores.
    result = fit(model, train, val, recipe=recipe, checkpoint_dir=ckpt, strategy=strategy,
                 jit_compile=jit_compile, verbose=verbose, recalibrate=False)
    log(f"[{recipe.name}] best {result.monitor} {result.best_value:.4f} at epoch {result.best_epoch}")
    val_scores = score_films(model, val, batch_size=recipe.batch_size)
    calibration = recalibrate(model, val, train=train, threshold_rule=recipe.threshold_rule,
                              guard_quantile=recipe.guard_quantile, batch_size=recipe.batch_size,
                              scores=val_scores)
    model, config = prepare_release(
        model, val, name=recipe.name, architecture=recipe.arch,
        threshold_rule=recipe.threshold_rule, description=recipe.description,
        calibration=calibration, scores=val_scores,
        training={
            "data": Path(data).name,  # the folder's name: no machine paths in a card
            "train_images": len(train),
            "validation_split": f"patient-wise, stratified, {recipe.val_fraction:.0%} of the "
                                f"train patients, seed {recipe.seed}",
            "recipe": recipe.to_dict(),
            "epochs_run": result.epochs,
            "best_epoch": result.best_epoch,
            "keras": keras.__version__,
            "machine": _machine(platform.machine()),
        })
    log(f"[{recipe.name}] validation: T={model.temperature:.4f} threshold={model.threshold:.4f}")
    if test:
        config = replace(config, metrics={"test": test_metrics(model, data, val, val_scores),
                                          **config.metrics})
    if not chief:
        return model, config  # only the chief writes the model folder
    written = write_release(model, config, out)
    history = ckpt / "history.json"
    if history.is_file():
        shutil.copyfile(history, out / "history.json")
    log(f"[{recipe.name}] wrote {out}")
    return model, written


def prepare_release(
    model: Any,
    validation: Sequence[Record],
    *,
    name: str,
    architecture: str,
    threshold_rule: str = "youden-margin",
    description: str = "",
    training: dict[str, Any] | None = None,
    train: Sequence[Record] | None = None,
    calibration: dict[str, Any] | None = None,
    scores: FilmScores | None = None,
) -> tuple[Any, PretrainedConfig]:
    """Calibrate ``model`` (unless already done) and describe it as a release.

    Refits the temperature, the threshold (by ``threshold_rule``) and the domain guard with
    :func:`~pneumozoo.evaluation.calibration.recalibrate` on ``validation`` (and ``train``
    for the guard), unless ``calibration`` (what :func:`pneumozoo.fit` already fitted, its
    ``extra["calibration"]``) is given; then measures the validation metrics.

    Args:
        model: A trained pneumozoo model (changed in place).
        validation: Validation records (never the test split).
        name: Name of the release (registry name / folder name).
        architecture: Architecture name from :func:`pneumozoo.list_models`.
        threshold_rule: The declared threshold rule (see
            :func:`pneumozoo.evaluation.choose_threshold`).
        description: One line for the config and the model card.
        training: What to record about the training run (data, epochs, recipe...).
        train: The training records (the guard is fitted on them).
        calibration: A recalibration already done on ``validation``.
        scores: The validation films' scores by the trained model
            (:func:`pneumozoo.evaluation.scoring.score_films`); scored here, once, when absent.

    Returns:
        ``(model, config)``; write them with
        :func:`pneumozoo.pretrained.release.write_release`.

    Example:
        >>> calibrated, config = prepare_release(model, val, name="mine", architecture="xraynet")  # doctest: +SKIP
    """
    clf = as_classifier(model)
    if scores is None:
        scores = score_films(clf, validation)
    if calibration is None:
        calibration = recalibrate(clf, validation, train=train, threshold_rule=threshold_rule,
                                  scores=scores)
    y_val: np.ndarray = np.asarray(targets(validation, clf.task))
    calibrated = scores.at_temperature(clf.temperature)
    val = report_from_predictions(y_val, calibrated, clf.class_names, threshold=clf.threshold).to_dict()
    val["ece"] = calibration["ece"]
    val["ece_uncalibrated"] = calibration["ece_uncalibrated"]
    config = PretrainedConfig.from_model(
        clf, name=name, architecture=architecture, metrics={"validation": val},
        training={**(training or {}), "validation_images": len(validation),
                  "threshold_rule": calibration["threshold_rule"],
                  "domain_guard": calibration["guard"]},
        description=description)
    return clf, config


def _machine(arch: str) -> str:
    """``x86_64 CPU``, or the accelerator and backend a run trained on (``NVIDIA H200 (jax)``)."""
    gpus = backend.accelerators()
    if not gpus:
        return f"{arch} CPU"
    return f"{gpus[0].description or gpus[0].name} x{len(gpus)} ({backend.name()})" \
        if len(gpus) > 1 else f"{gpus[0].description or gpus[0].name} ({backend.name()})"


def test_metrics(model: Any, data: str | Path, validation: list[Any],
                 val_scores: FilmScores | None = None) -> dict[str, Any]:
    """The once-only test evaluation of a release: metrics at the model's threshold with
    patient-bootstrap CIs, and the test metrics at operating points chosen on validation
    (read from ``val_scores`` when given, the validation films' scores by this model)."""
    test = scan_split(Path(data), "test")
    scored = score_records(model, test)  # the test films go through the model once
    report = evaluate(model, test, n_boot=1000, scores=scored)
    out = report.to_dict()
    out["split"] = f"official Kermany test split ({len(test)} images), evaluated once"
    # Operating points chosen on validation (pre-declared targets), reported on test: what a
    # user who needs a given sensitivity can expect. The shipped threshold stays the recipe's.
    y_val = np.asarray(targets(validation, model.task))
    val_probs = (val_scores.at_temperature(model.temperature) if val_scores is not None
                 else predict_records(model, validation))
    s_val = pneumonia_scores(val_probs)
    y_test = np.asarray(targets(test, model.task))
    s_test = pneumonia_scores(scored.probabilities)
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


def run_zoo_recipe(name: str, data: str | Path, *, models: str | Path = "models",
                   runs: str | Path = "runs", epochs: int | None = None, seed: int | None = None,
                   limit: int | None = None) -> tuple[Any, Any]:
    """Rerun a zoo model's recipe as ``recipes/<name>.py`` does: deterministic ops, the test
    split evaluated once, the model folder ``models/<name>`` and the checkpoints in
    ``runs/<name>/checkpoint`` (rerunning resumes after a kill).

    Args:
        name: A zoo recipe (see :data:`pneumozoo.recipe.ZOO_RECIPES`).
        data: A Kermany root with ``train/`` and ``test/``.
        models: Parent of the model folder.
        runs: Parent of the checkpoints.
        epochs: Override the recipe's epochs.
        seed: Override the recipe's seed.
        limit: Train on a seeded sample of this many films only (a smoke test).

    Returns:
        ``(model, config)`` as :func:`run_recipe` returns them.
    """
    recipe = get_recipe(name)
    if epochs:
        recipe = recipe.with_(epochs=epochs)
    if seed is not None:
        recipe = recipe.with_(seed=seed)
    return run_recipe(recipe, data, out=Path(models) / name,
                      checkpoint_dir=Path(runs) / name / "checkpoint", test=True, limit=limit,
                      deterministic=True)


def recipe_for(base: str | None = None, *, name: str = "custom", balance: str | None = None,
               **settings: Any) -> Recipe:
    """The recipe of one run: a zoo recipe (``base``) or the default one, with changes.

    What ``pneumozoo train`` builds from its options.

    Args:
        base: A zoo recipe's name (see :func:`pneumozoo.list_recipes`), or ``None`` for
            ``Recipe()``.
        name: The run's name when there is no ``base`` (a zoo recipe keeps its own).
        balance: One of :data:`pneumozoo.recipe.BALANCES` (``None``: the recipe's own).
        **settings: Recipe settings to change; ``None`` values are left as they are.

    Returns:
        The :class:`Recipe`.

    Raises:
        UnknownNameError: For an unknown zoo recipe, balance or setting.

    Example:
        >>> recipe_for("cnn4-binary", epochs=2, seed=None).epochs
        2
        >>> recipe_for(name="run", balance="oversample").oversample
        True
    """
    recipe = get_recipe(base) if base else Recipe(name=name)
    changes = {key: value for key, value in settings.items() if value is not None}
    if balance is not None:
        if balance not in BALANCES:
            raise UnknownNameError("balance", balance, list(BALANCES))
        changes["class_weight"] = "balanced" if balance == "weights" else None
        changes["oversample"] = balance == "oversample"
    if not base:
        changes.setdefault("description", f"{changes.get('arch', recipe.arch)} trained with "
                                          "`pneumozoo train`")
    return recipe.with_(**changes)

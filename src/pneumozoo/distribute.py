"""Distributed training: ``fit(..., strategy="mirrored" | "data-parallel" | "multiworker")``.

Per backend: on TensorFlow a ``tf.distribute`` strategy (``mirrored``/``data-parallel``:
MirroredStrategy over the local GPUs; ``multiworker``); on JAX ``keras.distribution.DataParallel``
over ``jax.devices()`` (``mirrored`` and ``data-parallel`` both mean it; each global batch is
split evenly over the devices). PyTorch: one device (Keras's torch trainer has no data
parallelism). TensorFlow is imported only on the TensorFlow backend.

Change one argument, not your code: :func:`pneumozoo.fit` with a ``strategy`` rebuilds your
model inside the strategy's scope (:func:`replicate_model`), trains that replica, and copies
the trained weights back into the model you passed, so everything after ``fit`` (predict,
evaluate, save) works on your own object as it does without a strategy.

Semantics worth knowing:

* **Batch size is per replica.** ``fit(batch_size=32)`` on 4 GPUs trains with global batches
  of 128 (:func:`global_batch_size`), 32 per device: the devices stay as busy as one device
  was, and an epoch has 4x fewer steps. The learning rate is not scaled for you. Datasets
  you build yourself are used as they are: their batches are global batches.
* **Sharding is by element** (``AutoShardPolicy.DATA``, set in
  :func:`pneumozoo.data.make_dataset`): the pipeline starts from a tensor of file names
  (``from_tensor_slices``), not from file-reading datasets, so ``FILE`` sharding cannot apply
  (``AUTO`` would try it, log a warning and fall back). ``DATA`` also gives every worker the
  same number of batches, so no all-reduce waits for a worker whose shard ran out. The price:
  each worker decodes every file in the first epoch (the cache keeps them after that).
* **Multi-worker**: run the same script on every machine with ``TF_CONFIG`` describing the
  cluster and this machine's task. TensorFlow must create the strategy before it runs
  anything, so call ``get_strategy("multiworker")`` at the start of the program (before
  building the model); ``fit(strategy="multiworker")`` then reuses it. Only the chief writes
  to ``checkpoint_dir``; the other workers write to a temporary folder that is removed after
  training (the TensorFlow guide's rule). To resume, ``checkpoint_dir`` must be readable by
  every worker (a shared filesystem): the other workers start from the chief's last epoch.
  Every worker starts from the chief's weights (broadcast before training), so trainable
  weights stay identical everywhere; BatchNorm moving statistics are each worker's own
  (ordinary, non-synchronized BatchNorm), and the chief's are the ones saved.

Example:
    >>> strategy = get_strategy("mirrored")  # doctest: +SKIP
    >>> result = pneumozoo.fit(model, train, val, strategy=strategy)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import keras
from keras import tree

from pneumozoo.errors import PneumozooError, UnknownNameError
from pneumozoo.recipe import STRATEGY_NAMES

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

class _Result(Protocol):
    """What the training function given to :func:`replicate_model` returns (a ``FitResult``)."""

    extra: dict[str, Any]


_R = TypeVar("_R", bound=_Result)

__all__ = [
    "STRATEGY_NAMES",
    "data_parallel",
    "get_strategy",
    "global_batch_size",
    "is_chief",
    "num_workers",
    "replicate_model",
    "worker_checkpoint_dir",
]

logger = logging.getLogger(__name__)


# TensorFlow allows one MultiWorkerMirroredStrategy per process, created before any op runs.
_MULTIWORKER: Any = None


def _is_keras_distribution(strategy: Any) -> bool:
    # keras.distribution exports DataParallel and ModelParallel, not their base class.
    return isinstance(strategy, (keras.distribution.DataParallel, keras.distribution.ModelParallel))


def _is_tf_strategy(strategy: Any) -> bool:
    if keras.backend.backend() != "tensorflow":
        return False
    # lazy: TensorFlow's own (not imported under JAX or PyTorch)
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.Strategy)


def data_parallel(devices_: list[str] | None = None) -> Any:
    """Synchronous data parallelism over this machine's devices, in the backend's own way.

    JAX: ``keras.distribution.DataParallel`` over ``jax.devices()`` (or ``devices_``, e.g.
    ``["cpu:0", "cpu:1"]``). TensorFlow: ``tf.distribute.MirroredStrategy``
    (:func:`get_strategy`). PyTorch: not supported by Keras's trainer (one device; a
    one-line error).

    Args:
        devices_: The devices to replicate over (default: every local device).

    Returns:
        A ``keras.distribution.DataParallel`` (JAX) or a ``tf.distribute.MirroredStrategy``.

    Raises:
        PneumozooError: On the torch backend.
    """
    backend = keras.backend.backend()
    if backend not in ("jax", "tensorflow"):
        raise PneumozooError(f"data parallelism is not available on the {backend} backend; use "
                             "KERAS_BACKEND=jax (keras.distribution.DataParallel) or tensorflow "
                             "(tf.distribute)")
    return get_strategy("mirrored", devices=devices_)


def get_strategy(name_or_strategy: str | Any, *, devices: Sequence[str] | None = None) -> Any:
    """Turn a strategy name into a ``tf.distribute.Strategy`` (strategies pass through).

    Args:
        name_or_strategy: ``"mirrored"`` (synchronous data parallelism over this machine's
            devices), ``"multiworker"`` (the same across machines, cluster read from the
            ``TF_CONFIG`` environment variable), or a strategy object, returned as is.
        devices: For ``"mirrored"``: the devices to replicate over, e.g.
            ``["/gpu:0", "/gpu:1"]``. Default: every local GPU, or every logical CPU device
            when there is no GPU (one, unless you split the CPU with
            ``tf.config.set_logical_device_configuration``).

    Returns:
        The strategy. ``"multiworker"`` returns the same object every time in a process.

    Raises:
        UnknownNameError: For a name that is not in :data:`STRATEGY_NAMES`.
        PneumozooError: If ``TF_CONFIG`` is not valid JSON, or if ``"multiworker"`` is
            first asked for after TensorFlow already ran something.
        ValueError: If ``devices`` is given for ``"multiworker"``.

    Example:
        >>> get_strategy("mirrored").num_replicas_in_sync >= 1  # doctest: +SKIP
        True
    """
    if _is_keras_distribution(name_or_strategy) or _is_tf_strategy(name_or_strategy):
        return name_or_strategy
    name = str(name_or_strategy).strip().lower()
    if name not in STRATEGY_NAMES:
        raise UnknownNameError("distribution strategy", str(name_or_strategy), list(STRATEGY_NAMES))
    backend = keras.backend.backend()
    if backend == "jax":
        if name == "multiworker":
            raise PneumozooError("multiworker training is TensorFlow's (tf.distribute); on JAX "
                                 "use strategy='data-parallel' on one machine")
        devs = list(devices) if devices is not None else keras.distribution.list_devices()
        return keras.distribution.DataParallel(devices=devs)
    if backend != "tensorflow":
        raise PneumozooError(f"distributed training is not available on the {backend} backend; "
                             "use KERAS_BACKEND=jax or tensorflow")
    # lazy: TensorFlow's own (not imported under JAX or PyTorch)
    import tensorflow as tf

    if name in ("mirrored", "data-parallel"):
        if devices is None:
            found = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
            devices = [d.name for d in found]
        return tf.distribute.MirroredStrategy(devices=list(devices))
    if name == "multiworker":
        if devices is not None:
            raise ValueError("multiworker uses every local device of each worker; "
                             "devices= only applies to 'mirrored'")
        return _multiworker()
    raise UnknownNameError("distribution strategy", str(name_or_strategy), list(STRATEGY_NAMES))


def _multiworker() -> Any:
    # lazy: TensorFlow's own (not imported under JAX or PyTorch)
    import tensorflow as tf

    global _MULTIWORKER
    if _MULTIWORKER is not None:
        return _MULTIWORKER
    raw = os.environ.get("TF_CONFIG")
    if raw:
        try:
            json.loads(raw)
        except json.JSONDecodeError as e:
            raise PneumozooError(f"TF_CONFIG is not valid JSON ({e.msg} at char {e.pos})") from None
    else:
        logger.warning("multiworker: TF_CONFIG is not set; training on this machine alone")
    try:
        _MULTIWORKER = tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as e:
        if "startup" not in str(e):
            raise
        raise PneumozooError(
            "multiworker: TensorFlow must create the strategy before it runs anything; call "
            "pneumozoo.distribute.get_strategy('multiworker') at the start of the program "
            "(before build_model or load_pretrained)") from None
    return _MULTIWORKER


def num_workers(strategy: Any) -> int:
    """Number of machines (chief and worker tasks) training together.

    Args:
        strategy: Any ``tf.distribute.Strategy``.

    Returns:
        The task count from the strategy's cluster, or 1 for local strategies.

    Example:
        >>> num_workers(tf.distribute.get_strategy())
        1
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not hasattr(resolver, "cluster_spec"):
        return 1
    spec = resolver.cluster_spec()
    jobs = spec.jobs
    return max(1, sum(spec.num_tasks(job) for job in ("chief", "worker") if job in jobs))


def is_chief(strategy: Any) -> bool:
    """True on the task that writes checkpoints and logs (always, for local strategies).

    The chief is the ``chief`` task if the cluster has one, else ``worker`` 0, as in the
    TensorFlow multi-worker guide.

    Args:
        strategy: Any ``tf.distribute.Strategy``.

    Returns:
        Whether this process is the chief.

    Example:
        >>> is_chief(tf.distribute.get_strategy())
        True
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or getattr(resolver, "task_type", None) is None:
        return True
    if resolver.task_type == "chief":
        return True
    if resolver.task_type == "worker":
        return int(resolver.task_id or 0) == 0 and "chief" not in resolver.cluster_spec().jobs
    return False


def replicas_of(strategy: Any) -> int:
    """Devices a strategy (``tf.distribute``) or distribution (``keras.distribution``) spans."""
    if strategy is None:
        return 1
    if _is_keras_distribution(strategy):
        return int(strategy.device_mesh.devices.size)
    return int(strategy.num_replicas_in_sync)


def global_batch_size(batch_size: int, strategy: Any | None) -> int:
    """Global batch size for a per-replica ``batch_size`` (``batch_size x replicas``).

    Args:
        batch_size: Images per replica.
        strategy: The strategy training runs under, or None (one replica).

    Returns:
        Images per global batch.

    Raises:
        ValueError: If ``batch_size`` is below 1.

    Example:
        >>> global_batch_size(32, None)
        32
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return batch_size * replicas_of(strategy)


@contextlib.contextmanager
def worker_checkpoint_dir(checkpoint_dir: str | Path | None,
                          strategy: Any) -> Iterator[Path | None]:
    """The folder this worker may write checkpoints to while training.

    The chief (and every local strategy) gets ``checkpoint_dir`` itself. Other workers get
    a temporary folder, seeded with the chief's resume state when ``checkpoint_dir`` holds
    one (so every worker resumes from the same epoch), and removed on exit.

    Args:
        checkpoint_dir: The checkpoint folder :func:`pneumozoo.fit` was given, or None.
        strategy: The strategy training runs under.

    Yields:
        The folder to pass to the training loop (None when ``checkpoint_dir`` is None).

    Example:
        >>> with worker_checkpoint_dir("ckpt", get_strategy("multiworker")) as d:  # doctest: +SKIP
        ...     fit(model, train, checkpoint_dir=d)
    """
    if checkpoint_dir is None or is_chief(strategy):
        yield None if checkpoint_dir is None else Path(checkpoint_dir)
        return
    resolver = strategy.cluster_resolver
    scratch = Path(tempfile.mkdtemp(prefix=f"pneumozoo-{resolver.task_type}{resolver.task_id}-"))
    try:
        _seed_resume_state(Path(checkpoint_dir), scratch)
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _seed_resume_state(shared: Path, scratch: Path) -> None:
    state_file = shared / "state.json"
    if not state_file.is_file():
        return
    state = json.loads(state_file.read_text())
    for name in (str(state.get("weights", "")), "best.weights.h5", "history.json"):
        if name and (shared / name).is_file():
            shutil.copy2(shared / name, scratch / name)
    shutil.copy2(state_file, scratch / "state.json")  # last: it points at the files above


@contextlib.contextmanager
def _policy_of(model: keras.Model) -> Iterator[None]:
    # A Functional config does not record the model's own dtype policy, which decides
    # whether compile() adds loss scaling (mixed_float16): rebuild under the same policy.
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(model.dtype_policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def replicate_model(model: keras.Model, strategy: str | Any,
                    run: Callable[[keras.Model], _R]) -> _R:
    """Train a copy of ``model`` under ``strategy``, then give ``model`` its weights.

    The copy is rebuilt from ``model.get_config()`` inside ``strategy.scope()`` (so its
    variables are mirrored) with ``model``'s weights and dtype policy. ``run`` is called
    inside the scope too: Keras 3 refuses a model compiled outside the scope its variables
    were made in ("Mixing different tf.distribute.Strategy objects"), so compiling there is
    required, not a style choice. Afterwards the trained weights are copied into ``model``,
    which is compiled like the replica if it was not compiled yet.

    Args:
        model: The user's model (e.g. from :func:`pneumozoo.build_model`).
        strategy: A name for :func:`get_strategy` or a ``tf.distribute.Strategy``.
        run: Trains the replica and returns the result; :func:`pneumozoo.fit` passes
            itself with ``strategy=None``.

    Returns:
        What ``run`` returned, with ``extra["strategy"]`` and ``extra["replicas"]`` set.

    Raises:
        PneumozooError: If the model cannot be rebuilt from its config (a subclassed
            model without ``get_config``).

    Example:
        >>> result = replicate_model(model, "mirrored", lambda m: fit(m, train))  # doctest: +SKIP
    """
    strategy = get_strategy(strategy)
    if _is_keras_distribution(strategy):
        return _replicate_keras(model, strategy, run)
    with strategy.scope():
        replica = _rebuild(model, strategy)
        if num_workers(strategy) > 1:
            # Each worker built (or loaded) its own model: start them all from the chief's.
            replica.set_weights(_from_first_replica(replica.get_weights(), strategy))
        with _keras_multiworker_fixes(replica, strategy):
            result = run(replica)
    model.set_weights(replica.get_weights())
    _compile_like(replica, model)
    result.extra["strategy"] = type(strategy).__name__
    result.extra["replicas"] = int(strategy.num_replicas_in_sync)
    return result


def _rebuild(model: keras.Model, distribution: Any) -> keras.Model:
    """``model`` rebuilt from its config in its own dtype policy, with its weights; called
    inside the strategy's (or distribution's) scope, so the variables get its placement."""
    with _policy_of(model):
        try:
            replica = model.__class__.from_config(model.get_config())
        except (NotImplementedError, TypeError, ValueError, KeyError) as e:
            raise PneumozooError(
                f"cannot rebuild model {model.name!r} inside {type(distribution).__name__}: "
                f"{type(e).__name__}: {e}".splitlines()[0]) from e
    replica.set_weights(model.get_weights())
    return replica


def _replicate_keras(model: keras.Model, distribution: Any,
                     run: Callable[[keras.Model], _R]) -> _R:
    """``replicate_model`` for a ``keras.distribution`` (JAX): the replica's variables are
    made inside the distribution's scope, so they get its layouts (replicated for
    ``DataParallel``), and every batch is split over the devices."""
    with distribution.scope():
        replica = _rebuild(model, distribution)
        result = run(replica)
    model.set_weights(replica.get_weights())
    _compile_like(replica, model)
    result.extra["strategy"] = type(distribution).__name__
    result.extra["replicas"] = replicas_of(distribution)
    return result


def _from_first_replica(weights: list[Any], strategy: Any) -> list[Any]:
    """Every worker gets replica 0's (the chief's) ``weights``: one all-reduce, others add 0."""
    # lazy: TensorFlow's own (not imported under JAX or PyTorch)
    import tensorflow as tf

    values = [tf.convert_to_tensor(w) for w in weights]

    def step(*local: tf.Tensor) -> Any:
        ctx = tf.distribute.get_replica_context()
        first = tf.equal(ctx.replica_id_in_sync_group, 0)
        return ctx.all_reduce(tf.distribute.ReduceOp.SUM,
                              [tf.where(first, v, tf.zeros_like(v)) for v in local])

    out = tf.function(lambda *v: strategy.run(step, args=v))(*values)
    return [strategy.experimental_local_results(v)[0].numpy() for v in out]


def _compile_like(replica: keras.Model, model: keras.Model) -> None:
    if getattr(model, "compiled", False) or not getattr(replica, "compiled", False):
        return
    try:
        model.compile_from_config(replica.get_compile_config())
    except (TypeError, ValueError, AttributeError) as e:  # the weights are copied either way
        logger.warning("could not compile %s like its trained replica: %s", model.name, e)


def _first_local(value: Any, strategy: Any) -> Any:
    # lazy: TensorFlow's own (not imported under JAX or PyTorch)
    import tensorflow as tf

    if isinstance(value, tf.distribute.DistributedValues):
        return strategy.experimental_local_results(value)[0]
    return value


@contextlib.contextmanager
def _keras_multiworker_fixes(replica: keras.Model, strategy: Any) -> Iterator[None]:
    """Work around two Keras 3 bugs that break ``model.fit`` under multi-worker training.

    keras-team/keras#20585 and tensorflow/tensorflow#72388 (Keras 3.15 still has both):

    1. Before the first step, Keras all-reduces a whole data batch across workers only to
       learn its shapes, and the reduction fails on the ``PerReplica`` batch. The replica
       builds from its local batch instead (same shapes, no communication).
    2. Each step's scalar logs are reduced with ``axis=0``, which fails on scalars
       ("Invalid reduction dimension 0 for input with 0 dimensions"). Scalars are averaged
       across workers with ``axis=None`` instead; everything else goes to Keras.

    Applied only while a multi-worker strategy with more than one worker trains.
    """
    # lazy: TensorFlow's own (not imported under JAX or PyTorch)
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or \
            num_workers(strategy) < 2:
        yield
        return

    # No public API reaches Keras's per-replica log reduction: this private hook is the
    # narrowest place to fix it, and is put back when training ends.
    # lazy: TensorFlow's own (not imported under JAX or PyTorch)
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original_reduce = getattr(tf_trainer, "reduce_per_replica", None)

    def symbolic_build(self: Any, iterator: Any = None, data_batch: Any = None) -> None:
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tree.map_structure(lambda v: _first_local(v, strategy),
                                                next(batches))
                break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values: Any, strat: Any, reduction: str = "auto") -> Any:
        assert original_reduce is not None
        if reduction not in ("auto", "mean"):
            return original_reduce(values, strat, reduction)

        def one(v: Any) -> Any:
            local = v.values[0] if isinstance(v, tf.distribute.DistributedValues) else v
            if getattr(getattr(local, "shape", None), "rank", None) == 0:
                return strat.reduce("MEAN", v, axis=None)
            return original_reduce(v, strat, reduction)

        return tree.map_structure(one, values)

    # On the trainer class, not the replica: fit may train a model that wraps the replica
    # (pneumozoo.train.training_model, which augments uint8 films on the device).
    trainer_class = tf_trainer.TensorFlowTrainer
    original_build = trainer_class.__dict__.get("_maybe_symbolic_build")
    patched_build = original_build is not None and hasattr(replica, "_symbolic_build")
    if patched_build:
        trainer_class._maybe_symbolic_build = symbolic_build  # type: ignore[method-assign, assignment, unused-ignore]
    if original_reduce is not None:
        tf_trainer.reduce_per_replica = reduce_per_replica
    try:
        yield
    finally:
        if original_reduce is not None:
            tf_trainer.reduce_per_replica = original_reduce
        if patched_build:
            trainer_class._maybe_symbolic_build = original_build  # type: ignore[method-assign, unused-ignore]

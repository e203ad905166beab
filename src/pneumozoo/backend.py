"""Which Keras backend runs, what devices it sees, which precision fits it.

One place answers the backend questions the rest of pneumozoo asks, each from the backend's
own device query and without importing another backend (no TensorFlow import under JAX or
PyTorch):

* :func:`name` -- ``"tensorflow"``, ``"jax"`` or ``"torch"`` (``keras.backend.backend()``).
* :func:`devices` / :func:`accelerators` -- what the backend computes on.
* :func:`precision_policy` -- ``mixed_bfloat16`` on GPUs with bfloat16 (compute capability
  >= 8.0: A100, H100, H200...), ``mixed_float16`` on older GPUs, ``float32`` on CPU.
* :func:`deterministic` -- seeds everything (``keras.utils.set_random_seed``) and turns on
  deterministic kernels where the backend has such a switch (TensorFlow, PyTorch).

Data parallelism, which builds on these answers, is :mod:`pneumozoo.distribute`'s
(:func:`pneumozoo.distribute.data_parallel`).

Example:
    >>> from pneumozoo import backend
    >>> backend.name() in ("tensorflow", "jax", "torch")
    True
    >>> backend.precision_policy() in ("float32", "mixed_float16", "mixed_bfloat16")
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras

from pneumozoo.errors import UnknownNameError

__all__ = [
    "PRECISIONS",
    "Device",
    "accelerators",
    "deterministic",
    "devices",
    "name",
    "precision_policy",
    "resolve_precision",
]

#: Precision names :func:`resolve_precision` accepts (``auto`` asks :func:`precision_policy`).
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


@dataclass(frozen=True)
class Device:
    """One device a backend computes on.

    Attributes:
        kind: ``"gpu"`` or ``"cpu"`` (TPUs and others: the backend's own word, lower case).
        name: The backend's name for it (``"/GPU:0"``, ``"cuda:0"``, ``"gpu:0"``...).
        compute_capability: ``(major, minor)`` for NVIDIA GPUs when known, else None.
        description: The device's model name when known (``"NVIDIA H200"``).

    Example:
        >>> Device("gpu", "gpu:0", (9, 0), "NVIDIA H200").has_bfloat16
        True
        >>> Device("cpu", "cpu").has_bfloat16
        False
    """

    kind: str
    name: str
    compute_capability: tuple[int, int] | None = None
    description: str = ""

    @property
    def has_bfloat16(self) -> bool:
        """True for GPUs with fast bfloat16 (NVIDIA compute capability >= 8.0)."""
        return self.kind == "gpu" and self.compute_capability is not None and \
            self.compute_capability >= (8, 0)


def name() -> str:
    """The running Keras backend: ``"tensorflow"``, ``"jax"`` or ``"torch"``.

    Returns:
        ``keras.backend.backend()``, as a string.

    Example:
        >>> name() in ("tensorflow", "jax", "torch")
        True
    """
    return str(keras.backend.backend())


def _capability(text: Any) -> tuple[int, int] | None:
    try:
        major, minor = str(text).split(".")[:2]
        return int(major), int(minor)
    except (ValueError, TypeError):
        return None


def devices() -> list[Device]:
    """The devices the running backend computes on, accelerators first.

    TensorFlow: ``tf.config`` physical GPUs (with ``get_device_details``), else the CPU.
    JAX: ``jax.devices()``. PyTorch: every ``torch.cuda`` device, else the CPU.

    Returns:
        One :class:`Device` per device (never empty: a CPU-only machine gives its CPU).

    Example:
        >>> [d.kind for d in devices()]  # doctest: +SKIP
        ['gpu']
    """
    backend = name()
    if backend == "jax":
        # lazy: JAX's own (not imported under TensorFlow or PyTorch)
        import jax

        out = []
        for d in jax.devices():
            kind = str(d.platform).lower()
            kind = "gpu" if kind in ("gpu", "cuda", "rocm") else kind
            cc = _capability(getattr(d, "compute_capability", None)) if kind == "gpu" else None
            out.append(Device(kind, f"{kind}:{d.id}", cc, str(getattr(d, "device_kind", ""))))
        return out
    if backend == "torch":
        # lazy: PyTorch's own (not imported under TensorFlow or JAX)
        import torch

        if torch.cuda.is_available():
            return [Device("gpu", f"cuda:{i}", tuple(torch.cuda.get_device_capability(i)),  # type: ignore[arg-type, unused-ignore]
                           torch.cuda.get_device_name(i)) for i in range(torch.cuda.device_count())]
        return [Device("cpu", "cpu")]
    if backend == "tensorflow":
        # lazy: TensorFlow's own (not imported under JAX or PyTorch)
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        out = []
        for i, g in enumerate(gpus):
            details = tf.config.experimental.get_device_details(g)
            cc = details.get("compute_capability")
            out.append(Device("gpu", f"/GPU:{i}", tuple(cc) if cc else None,  # type: ignore[arg-type, unused-ignore]
                              str(details.get("device_name", ""))))
        return out or [Device("cpu", "/CPU:0")]
    return [Device("cpu", "cpu")]


def accelerators() -> list[Device]:
    """The GPUs (and other non-CPU devices) of :func:`devices`; empty on a CPU-only machine.

    Returns:
        The :class:`Device` entries of :func:`devices` whose kind is not ``"cpu"``.

    Example:
        >>> [d.name for d in accelerators()]  # doctest: +SKIP
        ['/GPU:0']
    """
    return [d for d in devices() if d.kind != "cpu"]


def precision_policy(devices_: list[Device] | None = None) -> str:
    """The Keras dtype policy that fits the devices.

    ``mixed_bfloat16`` when every GPU has bfloat16 (compute capability >= 8.0: no loss
    scaling, float32's range), ``mixed_float16`` on older GPUs (with loss scaling, which
    :func:`pneumozoo.train.compile_model` adds), ``float32`` on CPU (mixed precision is
    slower there).

    Args:
        devices_: The devices to decide for (default: :func:`accelerators`).

    Returns:
        ``"mixed_bfloat16"``, ``"mixed_float16"`` or ``"float32"``.

    Example:
        >>> precision_policy([Device("gpu", "gpu:0", (9, 0))])
        'mixed_bfloat16'
        >>> precision_policy([Device("gpu", "gpu:0", (7, 0))])
        'mixed_float16'
        >>> precision_policy([])
        'float32'
    """
    found = accelerators() if devices_ is None else [d for d in devices_ if d.kind != "cpu"]
    gpus = [d for d in found if d.kind == "gpu"]
    if not gpus:
        return "float32"
    return "mixed_bfloat16" if all(d.has_bfloat16 for d in gpus) else "mixed_float16"


def resolve_precision(precision: str) -> str:
    """``auto`` -> :func:`precision_policy`; other names of :data:`PRECISIONS` as they are.

    Args:
        precision: One of :data:`PRECISIONS`.

    Returns:
        A Keras dtype policy name.

    Raises:
        UnknownNameError: For another value.

    Example:
        >>> resolve_precision("mixed_bfloat16")
        'mixed_bfloat16'
    """
    if precision not in PRECISIONS:
        raise UnknownNameError("precision", precision, list(PRECISIONS))
    return precision_policy() if precision == "auto" else precision


def deterministic(seed: int | None = None, *, ops: bool = True) -> None:
    """Repeatable runs: ``keras.utils.set_random_seed(seed)`` on every backend (Python, NumPy
    and the backend's generators) and, with ``ops``, deterministic kernels where the backend
    has such a switch: TensorFlow's ``enable_op_determinism`` (process-wide, and Keras then
    refuses XLA), PyTorch's ``use_deterministic_algorithms(warn_only=True)``. JAX's CPU and
    GPU kernels are deterministic for a fixed program already.

    Args:
        seed: Seed of Python's, NumPy's and the backend's generators (None: leave them).
        ops: Also turn on deterministic kernels (TensorFlow, PyTorch); the switch lasts for
            the rest of the process.

    Example:
        >>> deterministic(42)  # doctest: +SKIP
    """
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    if not ops:
        return
    backend = name()
    if backend == "tensorflow":
        # lazy: TensorFlow's own (not imported under JAX or PyTorch)
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif backend == "torch":
        # lazy: PyTorch's own (not imported under TensorFlow or JAX)
        import torch

        torch.use_deterministic_algorithms(True, warn_only=True)

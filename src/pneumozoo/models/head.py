"""The head every pneumozoo model ends with: class names, task, temperature, threshold, guard.

Being a layer, its settings live in the saved Keras config (``config.json``) and its domain
guard in the weights file, so a model loaded with plain ``keras.saving.load_model`` knows how
to label a film and when not to trust itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from pneumozoo.errors import ModelConfigError
from pneumozoo.rules import (
    BINARY_CLASSES,
    TEMPERATURE_RANGE,
    TEMPERATURE_RULE,
    THRESHOLD_RULE,
    Task,
    decide,
    is_temperature,
    is_threshold,
    pneumonia_scores,
    task_of_names,
)

__all__ = ["GUARD_MAX_COMPONENTS", "GUARD_PROJECTED_COMPONENTS", "TEMPERATURE_RANGE", "ClassifierHead", "PooledStats"]



def check_temperature(temperature: Any) -> float:
    """A softmax temperature as a float, refused unless :func:`pneumozoo.rules.is_temperature`."""
    if not is_temperature(temperature):
        raise ModelConfigError(f"temperature must be {TEMPERATURE_RULE}, got {temperature!r}")
    return float(temperature)


def check_threshold(threshold: Any, what: str = "threshold") -> float:
    """A decision threshold as a float, refused unless :func:`pneumozoo.rules.is_threshold`."""
    if not is_threshold(threshold):
        raise ModelConfigError(f"{what} must be {THRESHOLD_RULE}, got {threshold!r}")
    return float(threshold)


#: Guard blocks wider than this are projected onto their first principal components...
GUARD_MAX_COMPONENTS = 512
#: ... this many of them (a 9216-d flattened feature map would need a 340 MB precision matrix),
#: after scaling each row to unit length.
GUARD_PROJECTED_COMPONENTS = 64


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit Euclidean length (zero rows stay zero)."""
    return np.asarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12))


@keras.saving.register_keras_serializable(package="pneumozoo")
class PooledStats(keras.layers.Layer):
    """Mean and standard deviation of a feature map over space: ``(N, H, W, C) -> (N, 2C)``.

    What the domain guard reads of a convolutional stage (in float32).

    Example:
        >>> import numpy as np
        >>> PooledStats()(np.ones((1, 4, 4, 3))).shape
        TensorShape([1, 6])
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, inputs: Any) -> Any:
        x = ops.cast(inputs, "float32")
        return ops.concatenate([ops.mean(x, axis=(1, 2)), ops.std(x, axis=(1, 2))], axis=-1)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (input_shape[0], 2 * input_shape[-1])


@keras.saving.register_keras_serializable(package="pneumozoo")
class ClassifierHead(keras.layers.Layer):
    """Softmax over the logits with the model's settings; carries the domain guard.

    Called on ``[features, logits]`` (the penultimate features feed the guard), it returns
    the class probabilities, computed in float32 with the fitted temperature.

    The guard (see :mod:`pneumozoo.guard`) reads blocks of features (the pooled activations
    of several stages, then the penultimate features): per block, a Mahalanobis distance to
    the training films' features (blocks wider than :data:`GUARD_MAX_COMPONENTS` after a
    projection onto their principal components), standardised by the validation films'
    distances; the sum is the guard's score. Its arrays are non-trainable weights, saved with
    the model and checked by sha256 like the rest. ``guard_cutoff`` is ``None`` until a guard
    is fitted.

    Args:
        class_names: Output names in order; 2 (normal, pneumonia) or 3 (normal, bacteria,
            virus), unique and non-empty. Index 0 is the normal class.
        temperature: Logits are divided by it before the softmax.
        threshold: Decision threshold on P(pneumonia) = 1 - P(normal), in ``[0, 1]``.
        guard_blocks: Width of each block of the guard's input, in order.
        guard_cutoff: Score above which a film is out of domain (``None``: no guard).
        guard_median: The validation films' median score (``domain_score`` is 0 there and 1
            at the cut-off).
        guard_info: What the guard was fitted on (quantile, films), for the model card.
        prior: Share of pneumonia films in the data the probabilities were calibrated on
            (the prior a prevalence shift is measured against; ``None`` if unknown).

    Example:
        >>> import numpy as np
        >>> head = ClassifierHead(("normal", "pneumonia"), temperature=2.0)
        >>> [round(float(p), 3) for p in head([np.zeros((1, 4)), np.array([[0.0, 2.0]])])[0]]
        [0.269, 0.731]
    """

    def __init__(
        self,
        class_names: Sequence[str] = BINARY_CLASSES,
        temperature: float = 1.0,
        threshold: float = 0.5,
        guard_blocks: Sequence[int] = (),
        guard_cutoff: float | None = None,
        guard_median: float = 0.0,
        guard_info: dict[str, Any] | None = None,
        prior: float | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("dtype", "float32")  # softmax in float32 under mixed precision
        kwargs.setdefault("name", "head")
        super().__init__(**kwargs)

        if isinstance(class_names, str) or not isinstance(class_names, Sequence):
            raise ModelConfigError(f"class_names must be a list of 2 or 3 names, got {class_names!r}")
        names = list(class_names)
        if (len(names) not in (2, 3) or not all(isinstance(n, str) and n.strip() for n in names)
                or len(set(names)) != len(names)):
            raise ModelConfigError(f"class_names must be 2 or 3 unique non-empty names, got {names!r}")
        self.class_names = names
        self.temperature = check_temperature(temperature)
        self.threshold = check_threshold(threshold)
        if isinstance(guard_blocks, (str, bytes)) or not all(
                isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 65536 for d in guard_blocks):
            raise ModelConfigError(f"guard_blocks must be a list of block widths in 1..65536, got {guard_blocks!r}")
        self.guard_blocks = [int(d) for d in guard_blocks]
        median = float(guard_median)
        if not math.isfinite(median):
            raise ModelConfigError(f"guard_median must be a finite number, got {guard_median!r}")
        if guard_cutoff is not None:
            c = float(guard_cutoff)
            if not (math.isfinite(c) and c > median):
                raise ModelConfigError(f"guard_cutoff must be a finite number above guard_median, got {guard_cutoff!r}")
            guard_cutoff = c
        self.guard_cutoff = guard_cutoff
        self.guard_median = median
        self.guard_info = dict(guard_info or {})
        if prior is not None:
            p = float(prior)
            if not (math.isfinite(p) and 0.0 < p < 1.0):
                raise ModelConfigError(f"prior must be a number in (0, 1), got {prior!r}")
            prior = p
        self.prior = prior

    @property
    def task(self) -> Task:
        """``"binary"`` or ``"3class"``."""
        return task_of_names(self.class_names)

    def build(self, input_shape: Any) -> None:
        width = int(input_shape[0][-1])
        blocks = self.guard_blocks or [width]
        if sum(blocks) != width:
            raise ModelConfigError(f"guard_blocks {blocks} do not add up to the guard input's width {width}")
        self.guard_blocks = blocks
        guard: list[tuple[Any, Any, Any]] = []
        for i, d in enumerate(blocks):
            k = d if d <= GUARD_MAX_COMPONENTS else GUARD_PROJECTED_COMPONENTS
            mean = self.add_weight(shape=(d,), initializer="zeros", trainable=False, name=f"guard{i}_mean")
            proj = (self.add_weight(shape=(d, k), initializer="zeros", trainable=False,
                                    name=f"guard{i}_projection") if k < d else None)
            prec = self.add_weight(shape=(k, k), initializer="zeros", trainable=False, name=f"guard{i}_precision")
            guard.append((mean, proj, prec))
        # Not a tracked attribute: the variables are tracked once, by add_weight.
        object.__setattr__(self, "_guard", guard)
        # Per block: mean and standard deviation of the validation films' distances.
        self.guard_scale = self.add_weight(shape=(len(blocks), 2), initializer="ones",
                                           trainable=False, name="guard_scale")

    def call(self, inputs: Any) -> Any:
        _, logits = inputs
        logits = ops.cast(logits, "float32")
        if self.temperature != 1.0:
            logits = logits / self.temperature
        return ops.softmax(logits, axis=-1)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape[1]

    # -- decisions, on the host -------------------------------------------------------------
    def label(self, probabilities: np.ndarray, threshold: float | None = None) -> list[str]:
        """Labels of a ``(N, classes)`` probability matrix at ``threshold`` (default: the head's).

        Pneumonia when P(pneumonia) >= threshold; then, for 3-class models, the more likely of
        bacteria and virus.

        Args:
            probabilities: ``(N, classes)`` softmax outputs.
            threshold: Decision threshold on P(pneumonia) (default: the head's own).

        Returns:
            One class name per row.
        """
        t = self.threshold if threshold is None else check_threshold(threshold)
        p = np.asarray(probabilities, dtype=np.float64)
        sick = decide(pneumonia_scores(p), t)
        which = 1 + np.argmax(p[:, 1:], axis=1)
        return [self.class_names[int(w)] if s else self.class_names[0]
                for s, w in zip(sick, which, strict=True)]

    def block_distances(self, features: np.ndarray) -> list[np.ndarray]:
        """Each guard block's Mahalanobis distance for ``(N, D)`` guard features.

        Args:
            features: ``(N, D)`` guard features.

        Returns:
            One ``(N,)`` array of distances per block.
        """
        f = np.asarray(features, dtype=np.float64)
        out, start = [], 0
        for d, (mean, proj, prec) in zip(self.guard_blocks, self._guard, strict=True):
            x = f[:, start:start + d]
            if proj is not None:  # wide blocks: directions matter, not magnitudes
                x = _unit_rows(x)
            z = x - np.asarray(mean, np.float64)
            if proj is not None:
                z = z @ np.asarray(proj, np.float64)
            q = np.einsum("ij,jk,ik->i", z, np.asarray(prec, np.float64), z)
            out.append(np.sqrt(np.maximum(q, 0.0)))
            start += d
        return out

    def guard_score(self, features: np.ndarray) -> np.ndarray:
        """The guard's raw score: the sum of the standardised block distances.

        Args:
            features: ``(N, D)`` guard features.

        Returns:
            ``(N,)`` raw scores.
        """
        scale = np.asarray(self.guard_scale, np.float64)
        dist = self.block_distances(features)
        return np.asarray(sum((d - scale[i, 0]) / scale[i, 1] for i, d in enumerate(dist)))

    def domain_distance(self, features: np.ndarray) -> np.ndarray | None:
        """``domain_score`` of each row of ``(N, D)`` guard features: 0 at the validation
        films' median, 1 at the cut-off, above 1 out of domain (``None`` without a guard).

        Args:
            features: ``(N, D)`` guard features.

        Returns:
            ``(N,)`` domain scores, or ``None`` for a head without a guard.
        """
        if self.guard_cutoff is None:
            return None
        return (self.guard_score(features) - self.guard_median) / (self.guard_cutoff - self.guard_median)

    def set_guard(self, blocks: Sequence[tuple[np.ndarray, np.ndarray | None, np.ndarray]],
                  scale: np.ndarray, cutoff: float, median: float, info: dict[str, Any]) -> None:
        """Install a fitted guard (see :func:`pneumozoo.guard.fit_guard`).

        Args:
            blocks: ``(mean, projection or None, precision)`` of each feature block.
            scale: Per block, the location and scale its distances are standardised by.
            cutoff: Raw score above which a film is out of domain.
            median: Raw score of the median validation film (``domain_score`` 0).
            info: What the guard was fitted on, for the model card.
        """
        for (mean, proj, prec), (v_mean, v_proj, v_prec) in zip(blocks, self._guard, strict=True):
            v_mean.assign(np.asarray(mean, np.float32))
            if v_proj is not None:
                v_proj.assign(np.asarray(proj, np.float32))
            v_prec.assign(np.asarray(prec, np.float32))
        self.guard_scale.assign(np.asarray(scale, np.float32))
        self.guard_cutoff = float(cutoff)
        self.guard_median = float(median)
        self.guard_info = dict(info)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "class_names": list(self.class_names),
            "temperature": self.temperature,
            "threshold": self.threshold,
            "guard_blocks": list(self.guard_blocks),
            "guard_cutoff": self.guard_cutoff,
            "guard_median": self.guard_median,
            "guard_info": dict(self.guard_info),
            "prior": self.prior,
        }

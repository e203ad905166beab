"""The zoo's rules, each written once: class names, the ranges of a model's settings,
P(pneumonia), the decision, and "in domain".

The lowest room of the model side (NumPy only): the model's head, the model-folder schema, the
preprocessor, the data records, evaluation, prediction and plots import these instead of
restating them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

__all__ = [
    "BINARY_CLASSES",
    "INPUT_SIZE_RANGE",
    "INPUT_SIZE_RULE",
    "MAX_COLOURFULNESS",
    "TASKS",
    "TASK_CLASSES",
    "TEMPERATURE_RANGE",
    "TEMPERATURE_RULE",
    "THREE_CLASSES",
    "THRESHOLD_RULE",
    "Task",
    "decide",
    "default_class_names",
    "in_domain",
    "is_colour_picture",
    "is_input_size",
    "is_temperature",
    "is_threshold",
    "pneumonia_probability",
    "pneumonia_scores",
    "task_of_names",
]

#: ``binary`` (normal vs pneumonia) or ``3class`` (normal / bacteria / virus).
Task = Literal["binary", "3class"]
#: The tasks, in order.
TASKS: tuple[str, ...] = ("binary", "3class")
#: Class names of a binary model, class 0 first (class 0 is always ``normal``).
BINARY_CLASSES: tuple[str, ...] = ("normal", "pneumonia")
#: Class names of a 3-class model.
THREE_CLASSES: tuple[str, ...] = ("normal", "bacteria", "virus")
#: How many class names each task has.
TASK_CLASSES: dict[str, int] = {"binary": len(BINARY_CLASSES), "3class": len(THREE_CLASSES)}

#: Square input sizes (pixels) a model may declare or resize to.
INPUT_SIZE_RANGE = (16, 2048)
#: Softmax temperatures accepted (outside it every film gets one label or NaN).
TEMPERATURE_RANGE = (0.01, 100.0)

#: What a decision threshold must be (the words of every error message about one).
THRESHOLD_RULE = "a finite number in [0, 1]"
#: What a softmax temperature must be.
TEMPERATURE_RULE = f"a finite number in [{TEMPERATURE_RANGE[0]:g}, {TEMPERATURE_RANGE[1]:g}]"
#: What an input size must be.
INPUT_SIZE_RULE = f"an integer in {INPUT_SIZE_RANGE[0]}..{INPUT_SIZE_RANGE[1]}"


def default_class_names(num_classes: int) -> tuple[str, ...]:
    """The zoo's class names for 2 or 3 classes (``class_i`` for other counts).

    Args:
        num_classes: How many classes.

    Returns:
        The class names, class 0 first.

    Example:
        >>> default_class_names(3)
        ('normal', 'bacteria', 'virus')
    """
    defaults = {2: BINARY_CLASSES, 3: THREE_CLASSES}
    return defaults.get(num_classes, tuple(f"class_{i}" for i in range(num_classes)))


def task_of_names(class_names: Sequence[str]) -> Task:
    """``"binary"`` for 2 class names, ``"3class"`` for 3 (the one place this is decided).

    Args:
        class_names: The model's class names.

    Returns:
        The task.

    Example:
        >>> task_of_names(("normal", "bacteria", "virus"))
        '3class'
    """
    return "binary" if len(class_names) == TASK_CLASSES["binary"] else "3class"


def _finite_in(value: Any, lo: float, hi: float) -> bool:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    try:
        x = float(value)
    except (OverflowError, ValueError):
        return False
    return math.isfinite(x) and lo <= x <= hi


def is_threshold(value: Any) -> bool:
    """Whether ``value`` is a decision threshold (:data:`THRESHOLD_RULE`).

    Args:
        value: Anything.

    Returns:
        True for a finite real number (not a bool) in ``[0, 1]``.

    Example:
        >>> is_threshold(0.5), is_threshold(1.5), is_threshold(True)
        (True, False, False)
    """
    return _finite_in(value, 0.0, 1.0)


def is_temperature(value: Any) -> bool:
    """Whether ``value`` is a softmax temperature (:data:`TEMPERATURE_RULE`).

    Args:
        value: Anything.

    Returns:
        True for a finite real number in :data:`TEMPERATURE_RANGE`.

    Example:
        >>> is_temperature(1.0), is_temperature(0.0)
        (True, False)
    """
    return _finite_in(value, *TEMPERATURE_RANGE)


def is_input_size(value: Any) -> bool:
    """Whether ``value`` is an input size (:data:`INPUT_SIZE_RULE`).

    Args:
        value: Anything.

    Returns:
        True for an integer (not a bool) in :data:`INPUT_SIZE_RANGE`.

    Example:
        >>> is_input_size(192), is_input_size(8), is_input_size(192.0)
        (True, False, False)
    """
    lo, hi = INPUT_SIZE_RANGE
    return (isinstance(value, numbers.Integral) and not isinstance(value, bool)
            and lo <= int(value) <= hi)


def pneumonia_probability(probabilities: Any) -> Any:
    """P(pneumonia) from softmax outputs: ``1 - P(normal)``, class 0 being ``normal``.

    The one place the zoo turns class probabilities into P(pneumonia). For a binary model this
    is the pneumonia column; for normal/bacteria/virus it is bacteria + virus. Works on NumPy
    arrays and on Keras/TensorFlow tensors (the last axis holds the classes).

    Args:
        probabilities: Softmax outputs ``(..., k)``; a nested list is turned into an array.

    Returns:
        P(pneumonia) with the class axis dropped (``(n,)`` for ``(n, k)``).

    Example:
        >>> import numpy as np
        >>> pneumonia_probability(np.array([[0.75, 0.25], [0.25, 0.5]])).tolist()
        [0.25, 0.75]
    """
    if isinstance(probabilities, (list, tuple)):
        probabilities = np.asarray(probabilities, dtype=np.float64)
    return 1.0 - probabilities[..., 0]


def pneumonia_scores(probabilities: np.ndarray | Sequence[Any]) -> np.ndarray:
    """P(pneumonia) per row of softmax outputs, as float64; 1-D scores pass through.

    Args:
        probabilities: Softmax outputs ``(n, k)`` (class 0 normal) or P(pneumonia) ``(n,)``.

    Returns:
        ``(n,)`` float64 P(pneumonia) (:func:`pneumonia_probability` of 2-D input).

    Example:
        >>> pneumonia_scores([[0.75, 0.25]]).tolist(), pneumonia_scores([0.3]).tolist()
        ([0.25], [0.3])
    """
    p = np.asarray(probabilities, dtype=np.float64)
    return np.asarray(pneumonia_probability(p)) if p.ndim == 2 else p


def decide(scores: Any, threshold: float) -> np.ndarray:
    """The decision: pneumonia where P(pneumonia) ``>= threshold``.

    Args:
        scores: P(pneumonia) per film.
        threshold: The decision threshold.

    Returns:
        A boolean array, True for pneumonia.

    Example:
        >>> decide([0.2, 0.5, 0.9], 0.5).tolist()
        [False, True, True]
    """
    return np.asarray(scores, dtype=np.float64) >= threshold


#: Mean absolute difference between colour channels (0..255) above which a file is a colour
#: picture, not a radiograph. Radiographs have R = G = B (0); JPEG chroma noise stays below 2.
MAX_COLOURFULNESS = 6.0


def is_colour_picture(image: np.ndarray) -> bool:
    """True for an RGB ``uint8`` image whose channels differ like a photograph's.

    The guard's features see the model's grey luminance, which hides colour: this check on
    the file's own pixels flags colour pictures whatever their grey version looks like, and
    :func:`in_domain` counts it.

    Args:
        image: The file's pixels, as :func:`pneumozoo.read_xray` returns them.

    Returns:
        True when the mean difference between colour channels exceeds
        :data:`MAX_COLOURFULNESS`.

    Example:
        >>> is_colour_picture(np.zeros((8, 8, 3), np.uint8))
        False
    """
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[-1] != 3:
        return False
    step = max(1, min(a.shape[0], a.shape[1]) // 256)  # a subsample is plenty
    x = a[::step, ::step].astype(np.int16)
    diff = np.abs(x[..., 0] - x[..., 1]).mean() + np.abs(x[..., 1] - x[..., 2]).mean()
    return bool(diff / 2.0 > MAX_COLOURFULNESS)


def in_domain(domain_scores: Any, colour: Sequence[bool] | np.ndarray | None = None) -> np.ndarray:
    """Which films are in the model's domain: guard score (distance / cut-off) at most 1.0,
    and not a colour picture where that is known.

    Args:
        domain_scores: The head's domain score per film (1.0 at the guard's cut-off).
        colour: Per film, whether its own pixels are a colour picture
            (:func:`is_colour_picture`); ``None`` when not known.

    Returns:
        A boolean array.

    Example:
        >>> in_domain([0.5, 1.5, 0.9], colour=[False, False, True]).tolist()
        [True, False, False]
    """
    inside = np.asarray(domain_scores, dtype=np.float64) <= 1.0
    if colour is not None:
        inside &= ~np.asarray(colour, dtype=bool)
    return inside

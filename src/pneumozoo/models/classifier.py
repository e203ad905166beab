"""``PneumoniaClassifier``: preprocessor + backbone + head, as one Keras model.

In the manner of keras-hub's ``Task``: the model owns its :class:`XrayPreprocessor` (so
``model.predict`` takes raw films of any size) and its :class:`ClassifierHead` (class names,
task, temperature, threshold, domain guard). Code that needs a setting asks the model.
"""

from __future__ import annotations

import weakref
from typing import Any

import keras
import numpy as np

from pneumozoo.data.records import Task
from pneumozoo.models.head import ClassifierHead, check_threshold
from pneumozoo.models.preprocessor import XrayPreprocessor

__all__ = ["PneumoniaClassifier", "as_classifier"]

# model -> keras.Model(inputs, [probabilities, features]); not an attribute, which Keras would
# track as a sub-layer of a built model.
_FEATURE_MODELS: weakref.WeakKeyDictionary[Any, tuple[float, keras.Model]] = weakref.WeakKeyDictionary()
# model -> the head temperature its cached predict/test functions were traced with. The
# temperature is a Python float read when tracing, so a changed one must retrace them.
_TRACED_TEMPERATURE: weakref.WeakKeyDictionary[Any, dict[str, float]] = weakref.WeakKeyDictionary()


@keras.saving.register_keras_serializable(package="pneumozoo")
class PneumoniaClassifier(keras.Model):
    """A functional Keras model that knows its preprocessing, its classes and its decision.

    Build one with :func:`pneumozoo.build_model`, load one with
    :func:`pneumozoo.load_pretrained` or plain ``keras.saving.load_model``. Inputs are raw
    pixels in 0..255; ``model.predict`` also takes a single film ``(H, W)``, ``(H, W, 1)``
    or ``(H, W, 3)``, a list of films of different sizes, or a ``(N, H, W, 1)`` batch.

    Example:
        >>> import numpy as np
        >>> model = build_model("cnn4", input_size=64)  # doctest: +SKIP
        >>> model.predict(np.zeros((300, 200), np.uint8), verbose=0).shape  # doctest: +SKIP
        (1, 2)
        >>> model.class_names, model.task, model.threshold, model.input_size  # doctest: +SKIP
        (('normal', 'pneumonia'), 'binary', 0.5, 64)
    """

    @property
    def preprocessor(self) -> XrayPreprocessor:
        """The model's :class:`XrayPreprocessor` (its first layer after the input)."""
        return self.get_layer("preprocessor")

    @property
    def head(self) -> ClassifierHead:
        """The model's :class:`ClassifierHead` (its last layer)."""
        return self.get_layer("head")

    @property
    def class_names(self) -> tuple[str, ...]:
        """Output names in order (index 0 is the normal class)."""
        return tuple(self.head.class_names)

    @property
    def task(self) -> Task:
        """``"binary"`` or ``"3class"``."""
        return self.head.task

    @property
    def input_size(self) -> int:
        """Side of the square the backbone sees."""
        return self.preprocessor.input_size

    @property
    def threshold(self) -> float:
        """Decision threshold on P(pneumonia), saved with the model."""
        return self.head.threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        self.head.threshold = check_threshold(value)

    @property
    def temperature(self) -> float:
        """Softmax temperature fitted by calibration (1.0: uncalibrated)."""
        return self.head.temperature

    @property
    def has_guard(self) -> bool:
        """True when a domain guard has been fitted."""
        return self.head.guard_cutoff is not None

    def prepare(self, film: Any, name: str = "array") -> np.ndarray:
        """One raw film -> the ``uint8 (size, size, C)`` pixels this model's graph sees.

        Arrays go through :func:`pneumozoo.io.to_rgb_uint8` first, as in
        :func:`pneumozoo.predict`: floats in 0..1 are rescaled to 0..255.

        Args:
            film: One film: ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``, any size.
            name: How the film is named in an error message.

        Returns:
            ``uint8 (input_size, input_size, channels)`` pixels.
        """
        from pneumozoo.io import to_rgb_uint8

        return self.preprocessor.prepare(to_rgb_uint8(film, name))

    def _retrace_if_recalibrated(self, kind: str, force: bool) -> bool:
        traced = _TRACED_TEMPERATURE.setdefault(self, {})
        t = self.head.temperature
        if traced.get(kind) != t:
            traced[kind] = t
            return True
        return force

    def make_predict_function(self, force: bool = False) -> Any:
        # A temperature set after a predict (calibration) must not be served stale.
        return super().make_predict_function(
            force=self._retrace_if_recalibrated("predict", force))

    def make_test_function(self, force: bool = False) -> Any:
        return super().make_test_function(
            force=self._retrace_if_recalibrated("test", force))

    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = "auto",
                steps: int | None = None, callbacks: Any = None) -> Any:
        """``keras.Model.predict`` that also takes raw films (see the class docstring).

        Args:
            x: One film, a list of films of any sizes, a ``(N, H, W, C)`` batch, or anything
                ``keras.Model.predict`` takes (a dataset...).
            batch_size: As in ``keras.Model.predict``.
            verbose: As in ``keras.Model.predict``.
            steps: As in ``keras.Model.predict``.
            callbacks: As in ``keras.Model.predict``.

        Returns:
            The ``(N, classes)`` probabilities, with the model's temperature applied.
        """
        return super().predict(self._as_batch(x), batch_size=batch_size, verbose=verbose,
                               steps=steps, callbacks=callbacks)

    def _as_batch(self, x: Any) -> Any:
        """Films and lists of films -> one prepared batch; batches and datasets unchanged."""
        if isinstance(x, (list, tuple)) and x and all(isinstance(f, np.ndarray) for f in x):
            return _rgb(np.stack([self.prepare(f, f"array {i}") for i, f in enumerate(x)]))
        if isinstance(x, np.ndarray):
            if x.ndim in (2, 3):  # one film
                return _rgb(self.prepare(x)[None])
            if x.ndim == 4:
                if x.shape[-1] not in (1, 3):
                    from pneumozoo.errors import InvalidImageError

                    raise InvalidImageError("array", f"expected (N, H, W, 1) or (N, H, W, 3) films, got shape {x.shape}")
                lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
                if np.issubdtype(x.dtype, np.floating) and lo >= 0.0 and 0.0 < hi <= 1.0:
                    x = x * 255.0  # 0..1 floats, as read_xray reads them
                return x if x.shape[-1] == 3 else np.repeat(x, 3, axis=-1)
        return x

    def scores(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities and guard distances of a prepared ``(N, size, size, C)`` batch.

        One forward pass gives both (the guard reads the penultimate features).

        Args:
            batch: Prepared pixels (see :meth:`prepare`), ``(N, size, size, 1 | 3)``.

        Returns:
            ``(probabilities, distances)``: float64 ``(N, classes)`` and the guard's ``(N,)``
            distances (``None`` for a model without a guard).
        """
        head = self.head
        x = _rgb(batch)
        if head.guard_cutoff is None:
            return np.asarray(self.predict_on_batch(x), np.float64), None
        cached = _FEATURE_MODELS.get(self)
        if cached is None or cached[0] != head.temperature:  # rebuilt for a new temperature
            cached = (head.temperature, keras.Model(self.inputs, [self.outputs[0], head.input[0]]))
            _FEATURE_MODELS[self] = cached
        sub = cached[1]
        probs, feats = sub.predict_on_batch(x)
        return np.asarray(probs, np.float64), head.domain_distance(np.asarray(feats))

    def features(self, batch: np.ndarray) -> np.ndarray:
        """Penultimate features (the head's input) of a prepared batch, float64.

        Args:
            batch: Prepared pixels (see :meth:`prepare`), ``(N, size, size, 1 | 3)``.

        Returns:
            ``(N, D)`` float64 features, what the domain guard measures.
        """
        head = self.head
        sub = keras.Model(self.inputs, head.input[0])
        x = np.asarray(batch, dtype=np.float32)
        if x.shape[-1] == 1:
            x = np.repeat(x, 3, axis=-1)
        return np.asarray(sub.predict_on_batch(x), np.float64)


def _rgb(batch: np.ndarray) -> np.ndarray:
    """A prepared ``(N, S, S, 1 | 3)`` batch as the float32 RGB the model's input takes."""
    x = np.asarray(batch, dtype=np.float32)
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


def as_classifier(model: Any, what: str = "model") -> PneumoniaClassifier:
    """``model`` if it is a pneumozoo classifier, else a one-line error saying what to pass.

    Args:
        model: What the caller passed as a model.
        what: How the argument is named in the error message.

    Returns:
        ``model`` itself, a :class:`PneumoniaClassifier`.

    Raises:
        PneumozooError: For a name, a path, or a Keras model that is not a pneumozoo model.

    Example:
        >>> as_classifier("xraynet-binary-v2")
        Traceback (most recent call last):
        ...
        pneumozoo.errors.PneumozooError: model must be a loaded model, got the name 'xraynet-binary-v2'; load it first: model = pneumozoo.load_pretrained('xraynet-binary-v2')
    """
    from pneumozoo.errors import PneumozooError

    if isinstance(model, PneumoniaClassifier) or getattr(type(model), "is_pneumozoo_model", False):
        return model
    if isinstance(model, str) or hasattr(model, "__fspath__"):
        raise PneumozooError(f"{what} must be a loaded model, got the name {str(model)!r}; "
                             f"load it first: model = pneumozoo.load_pretrained({str(model)!r})")
    if isinstance(model, keras.Model):
        raise PneumozooError(f"{what} {model.name!r} is a plain Keras model, not a pneumozoo model; "
                             "build one with pneumozoo.build_model(arch) or load one with "
                             "pneumozoo.load_pretrained(name)")
    raise PneumozooError(f"{what} must be a pneumozoo model (pneumozoo.load_pretrained() or "
                         f"pneumozoo.build_model(arch)), got {type(model).__name__}")

"""``PneumoniaClassifier``: preprocessor + backbone + head, as one Keras model.

In the manner of keras-hub's ``Task``: the model owns its :class:`XrayPreprocessor` (so
``model.predict`` takes raw films of any size) and its :class:`ClassifierHead` (class names,
task, temperature, threshold, domain guard). Code that needs a setting asks the model.
"""

from __future__ import annotations

import os
import weakref
from typing import Any

import keras
import numpy as np

from pneumozoo.errors import InvalidImageError, PneumozooError
from pneumozoo.io import to_rgb_uint8
from pneumozoo.models.head import ClassifierHead, check_threshold
from pneumozoo.models.preprocessor import XrayPreprocessor
from pneumozoo.rules import Task

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
    :func:`pneumozoo.load_pretrained` or plain ``keras.saving.load_model``; the same model runs
    on every Keras backend (TensorFlow, JAX, PyTorch). Inputs are pixel arrays in 0..255 (or
    floats in 0..1): ``model.predict`` takes one film ``(H, W)``, ``(H, W, 1)`` or
    ``(H, W, 3)``, a list of such films of different sizes, or an ``(N, H, W, 1 | 3)`` batch
    (any size, uint8 or float). It does not read files: for paths, bytes or PIL images use
    :func:`pneumozoo.predict` (or :func:`pneumozoo.read_xray` to get the array).

    :meth:`predict_prepared` is the one inference method every pneumozoo path uses
    (:func:`pneumozoo.predict`, evaluation, the domain guard, test-time augmentation): a
    prepared ``uint8 (N, size, size, 1 | 3)`` batch (see :meth:`prepare`) in, probabilities
    and guard features out (:meth:`scores` turns the features into domain scores).

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

        Arrays go through :func:`pneumozoo.pixels.to_rgb_uint8` first, as in
        :func:`pneumozoo.predict`: floats in 0..1 are rescaled to 0..255.

        Args:
            film: One film: ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``, any size.
            name: How the film is named in an error message.

        Returns:
            ``uint8 (input_size, input_size, channels)`` pixels.
        """
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
            x: One film ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``, a list of films of any
                sizes, an ``(N, H, W, 1 | 3)`` batch (0..255, or floats in 0..1), or anything
                ``keras.Model.predict`` takes (a dataset...). Not paths, bytes or PIL images:
                :func:`pneumozoo.predict` reads those.
            batch_size: As in ``keras.Model.predict``.
            verbose: As in ``keras.Model.predict``.
            steps: As in ``keras.Model.predict``.
            callbacks: As in ``keras.Model.predict``.

        Returns:
            The ``(N, classes)`` probabilities, with the model's temperature applied.

        Raises:
            PneumozooError: For a path, bytes or a PIL image (one line saying what to use).
        """
        _refuse_files(x)
        return super().predict(self._as_batch(x), batch_size=batch_size, verbose=verbose,
                               steps=steps, callbacks=callbacks)

    def _as_batch(self, x: Any) -> Any:
        """Films and lists of films -> one prepared batch; batches and datasets unchanged."""
        if isinstance(x, (list, tuple)) and x and all(isinstance(f, np.ndarray) for f in x):
            return np.stack([self.prepare(f, f"array {i}") for i, f in enumerate(x)])
        if isinstance(x, np.ndarray):
            if x.ndim in (2, 3):  # one film
                return self.prepare(x)[None]
            if x.ndim == 4:
                if x.shape[-1] not in (1, 3):
                    raise InvalidImageError("array", f"expected (N, H, W, 1) or (N, H, W, 3) films, got shape {x.shape}")
                lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
                if np.issubdtype(x.dtype, np.floating) and lo >= 0.0 and 0.0 < hi <= 1.0:
                    x = x * 255.0  # 0..1 floats, as read_xray reads them
                return x
        return x

    def _scoring_model(self) -> keras.Model:
        """``image -> [probabilities, guard features]``, cached per head temperature."""
        head = self.head
        cached = _FEATURE_MODELS.get(self)
        if cached is None or cached[0] != head.temperature:  # rebuilt for a new temperature
            cached = (head.temperature, keras.Model(self.inputs[0], [self.outputs[0], head.input[0]]))
            _FEATURE_MODELS[self] = cached
        return cached[1]

    def _prepared(self, batch: Any) -> np.ndarray:
        """A batch as the model's inference takes it: ``(N, size, size, 1 | 3)`` films; other
        sizes are prepared on the host first (:meth:`XrayPreprocessor.prepare_batch`)."""
        x = np.asarray(batch)
        if x.ndim == 3:
            x = x[..., None]
        if x.ndim != 4 or x.shape[-1] not in (1, 3):
            raise InvalidImageError("batch", f"expected prepared films (N, {self.input_size}, "
                                    f"{self.input_size}, 1 | 3), got shape {x.shape}")
        if (x.shape[1] != self.input_size or x.shape[2] != self.input_size
                or x.shape[-1] != self.preprocessor.channels):  # one traced shape per model
            x = self.preprocessor.prepare_batch(x)
        return x

    def predict_prepared(self, batch: Any) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and guard features of a prepared batch, in one forward pass.

        The one call every pneumozoo inference path ends in (:meth:`scores`,
        :meth:`features`, :func:`pneumozoo.predict`, evaluation, the guard, TTA).

        Args:
            batch: Prepared pixels ``(N, size, size, 1 | 3)`` (see :meth:`prepare`), uint8
                (or whole-valued floats) in 0..255.

        Returns:
            ``(probabilities, features)``: float64 ``(N, classes)`` and ``(N, D)``.
        """
        x = self._prepared(batch)
        if len(x) == 0:
            return np.zeros((0, len(self.class_names))), np.zeros((0, int(self.head.input[0].shape[-1])))
        probs, feats = self._scoring_model().predict_on_batch(x)
        return (np.asarray(keras.ops.convert_to_numpy(probs), np.float64),
                np.asarray(keras.ops.convert_to_numpy(feats), np.float64))

    def scores(self, batch: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities and domain scores of a prepared ``(N, size, size, 1 | 3)`` batch.

        One forward pass gives both (the guard reads the penultimate features).

        Args:
            batch: Prepared pixels (see :meth:`prepare`), ``(N, size, size, 1 | 3)``.

        Returns:
            ``(probabilities, distances)``: float64 ``(N, classes)`` and the guard's ``(N,)``
            domain scores (``None`` for a model without a guard).
        """
        probs, feats = self.predict_prepared(batch)
        return probs, self.head.domain_distance(feats)

    def features(self, batch: Any) -> np.ndarray:
        """Penultimate features (the head's input) of a prepared batch, float64.

        Args:
            batch: Prepared pixels (see :meth:`prepare`), ``(N, size, size, 1 | 3)``.

        Returns:
            ``(N, D)`` float64 features, what the domain guard measures.
        """
        return self.predict_prepared(batch)[1]


def _refuse_files(x: Any) -> None:
    """A one-line error for what ``model.predict`` cannot read (paths, bytes, PIL images)."""
    def is_file_like(v: Any) -> bool:
        return (isinstance(v, (str, os.PathLike, bytes, bytearray, memoryview))
                or type(v).__module__.startswith("PIL."))

    if is_file_like(x) or (isinstance(x, (list, tuple)) and any(is_file_like(v) for v in x)):
        what = "a PIL image" if type(x).__module__.startswith("PIL.") else (
            "bytes" if isinstance(x, (bytes, bytearray, memoryview)) else
            "a path" if isinstance(x, (str, os.PathLike)) else "a list of files or images")
        raise PneumozooError(
            f"model.predict takes pixel arrays (a film (H, W) or (H, W, C), a list of films, or an "
            f"(N, H, W, C) batch, 0..255), not {what}; use pneumozoo.predict(model, inputs) for "
            "paths, folders, bytes and PIL images, or pneumozoo.read_xray(source) to get the array")


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

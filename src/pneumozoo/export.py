"""Export a zoo model for serving: TensorFlow SavedModel or TensorFlow Lite (float32/16, int8).

Every export takes float32 ``(N, S, S, 3)`` images in 0..255, RGB, where ``S`` is the
model's input size (``model.input_size``), and returns the softmax probabilities. Fixing the
side at ``S`` removes the resampling from the exported graph (prepare films first with
``model.prepare(film)``, or use :class:`TFLiteModel`, which does it with the same
preprocessor); colour policy, rounding and normalisation stay inside. Beside each export,
``<path>.json`` (for a SavedModel folder: ``<folder>/pneumozoo-export.json``) records the
class names, size, colour policy and threshold.

``tflite-int8`` quantises weights and activations to int8 after training, calibrated on
real X-rays (``calibration``), and keeps float32 inputs and outputs, so callers never
quantise by hand. Its graph starts after the preprocessor: :class:`TFLiteModel` prepares and
normalises on the host (the same ops, in float32), because quantising the normalisation
(per-image mean and standard deviation) both moved probabilities by up to 0.24 and kept the
convolutions off the fast int8 path (about 10x slower than float; see
``benchmarks/bench_export.py``).

Exporting needs the TensorFlow backend (``KERAS_BACKEND=tensorflow``, the default); on JAX or
PyTorch :func:`export_model` stops with one line saying so. :class:`TFLiteModel` runs an
exported file on any backend (with ``ai_edge_litert`` or TensorFlow installed).

Example:
    >>> from pneumozoo import load_pretrained
    >>> path = export_model(load_pretrained(), "xraynet.tflite", format="tflite")  # doctest: +SKIP
    >>> TFLiteModel(path).predict(images).shape  # doctest: +SKIP
    (8, 2)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pneumozoo.errors import DataError, InvalidImageError, PneumozooError, UnknownNameError
from pneumozoo.io import expand_inputs, read_xray
from pneumozoo.rules import default_class_names

if TYPE_CHECKING:
    import keras

    from pneumozoo.models.preprocessor import XrayPreprocessor

__all__ = [
    "EXPORT_FORMATS",
    "TFLiteModel",
    "calibration_images",
    "export_model",
    "metadata_path",
]

#: Formats :func:`export_model` writes.
EXPORT_FORMATS: tuple[str, ...] = ("savedmodel", "tflite", "tflite-float16", "tflite-int8")
_METADATA_IN_FOLDER = "pneumozoo-export.json"


def metadata_path(path: str | Path) -> Path:
    """Where the JSON describing an export (class names, input size, format) lives.

    Args:
        path: The export: a SavedModel folder or a ``.tflite`` file.

    Returns:
        ``<folder>/pneumozoo-export.json`` for a folder, ``<file>.json`` for a file.

    Example:
        >>> metadata_path("exports/xraynet.tflite").name
        'xraynet.tflite.json'
    """
    path = Path(path)
    return path / _METADATA_IN_FOLDER if path.is_dir() else path.with_name(path.name + ".json")


def calibration_images(source: str | Path | Sequence[Any] | np.ndarray,
                       size: int | XrayPreprocessor, *, limit: int = 100,
                       seed: int = 0) -> np.ndarray:
    """Real images for int8 calibration, read and prepared like the model's inputs.

    Args:
        source: A folder (walked recursively), a list of image paths/arrays, or an array
            ``(N, H, W, 3)``.
        size: The model's preprocessor (or, for a luminance model, its input size).
        limit: Use at most this many images (a random, seeded subset of a larger folder).
        seed: Seed for that subset.

    Returns:
        float32 ``(n, size, size, 3)`` in 0..255.

    Raises:
        DataError: If no readable image is found.

    Example:
        >>> calibration_images(np.zeros((4, 64, 64, 3), np.uint8), 32).shape
        (4, 32, 32, 3)
    """
    # lazy: loads Keras; the command line lists EXPORT_FORMATS without it
    from pneumozoo.models.preprocessor import XrayPreprocessor

    pre = size if isinstance(size, XrayPreprocessor) else XrayPreprocessor(int(size))

    items: list[Any]
    if isinstance(source, np.ndarray):
        items = list(source)
    elif isinstance(source, (str, os.PathLike)):
        folder = Path(source)
        if not folder.is_dir():
            raise DataError(f"{folder}: calibration folder not found")
        files, _ = expand_inputs([folder])
        items = list(files)
    else:
        items = list(source)
    if len(items) > limit:
        rng = np.random.default_rng(seed)
        items = [items[i] for i in sorted(rng.choice(len(items), limit, replace=False))]
    out = []
    for item in items:
        try:
            pixels = pre.prepare(read_xray(item))
            out.append(np.repeat(pixels, 3 // pixels.shape[-1], axis=-1).astype(np.float32))
        except InvalidImageError:
            continue
    if not out:
        raise DataError(f"{source if isinstance(source, (str, os.PathLike)) else 'calibration'}: "
                        "no readable images to calibrate int8 quantisation on")
    return np.stack(out)


def export_model(model: keras.Model, path: str | Path, *, format: str = "savedmodel",
                 calibration: str | Path | Sequence[Any] | np.ndarray | None = None,
                 calibration_limit: int = 100) -> Path:
    """Write ``model`` as a SavedModel folder or a ``.tflite`` file.

    Args:
        model: A zoo model (built, trained or loaded with :func:`pneumozoo.load_pretrained`).
        path: Output folder (``savedmodel``) or file (TFLite formats); replaced if present.
        format: One of :data:`EXPORT_FORMATS`: ``savedmodel`` (serving signature
            ``serve``), ``tflite`` (float32), ``tflite-float16`` (float16 weights, half the
            size) or ``tflite-int8`` (int8 weights and activations, float32 inputs/outputs).
        calibration: Real X-rays for ``tflite-int8`` (folder, paths or an array); see
            :func:`calibration_images`.
        calibration_limit: At most this many calibration images.

    Returns:
        ``path``.

    Raises:
        UnknownNameError: For an unknown ``format``.
        DataError: If ``tflite-int8`` is asked for without ``calibration``, or its images
            cannot be read.

    Example:
        >>> export_model(build_model("cnn4", input_size=64), "cnn4.tflite", format="tflite")  # doctest: +SKIP
        PosixPath('cnn4.tflite')
    """
    # lazy: loads Keras; the command line lists EXPORT_FORMATS without it
    import keras

    # lazy: loads Keras and its backend
    from pneumozoo.models.classifier import as_classifier
    from pneumozoo.models.preprocessor import normalize_pixels

    if format not in EXPORT_FORMATS:
        raise UnknownNameError("export format", format, list(EXPORT_FORMATS))
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise PneumozooError(f"export to {format} needs the TensorFlow backend; this process runs "
                             f"Keras on {backend}: run it again with KERAS_BACKEND=tensorflow")
    if format == "tflite-int8" and calibration is None:
        raise DataError("tflite-int8 needs calibration images (a folder of real X-rays)")
    path = Path(path)
    clf = as_classifier(model)
    serving = clf
    size = clf.input_size
    mode = clf.preprocessor.normalization
    calib = (np.asarray(keras.ops.convert_to_numpy(normalize_pixels(calibration_images(
        calibration, clf.preprocessor, limit=calibration_limit), mode, "float32")))
             if format == "tflite-int8" and calibration is not None else None)
    path.parent.mkdir(parents=True, exist_ok=True)
    if format == "savedmodel":
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        _write_saved_model(serving, path, size)
    else:
        with tempfile.TemporaryDirectory(prefix="pneumozoo-export-") as tmp:
            saved = Path(tmp) / "savedmodel"
            # int8 cannot quantise the colour policy and rounding (PIL's luminance weights,
            # floor, round: every output collapses to one value), nor the normalisation well
            # (per-image statistics), so that graph starts after the normalisation and
            # TFLiteModel does those steps on the host (same ops, float32).
            _write_saved_model(serving, saved, size, prepared=format == "tflite-int8")
            path.write_bytes(_convert_tflite(saved, format, calib))
    meta = {"format": format, "input_size": size, "class_names": list(clf.class_names),
            "color": clf.preprocessor.color, "threshold": clf.threshold,
            "model": clf.name, "input": f"float32 (N, {size}, {size}, 3), RGB 0..255"
            + (f", prepared (model.prepare: colour policy and rounding done) and normalised "
               f"({mode!r})" if format == "tflite-int8" else ""),
            "output": "float32 (N, classes) softmax probabilities"}
    if format == "tflite-int8":
        meta["host_normalization"] = mode
    metadata_path(path).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return path


def _write_saved_model(model: keras.Model, path: Path, size: int, *, prepared: bool = False) -> None:
    import keras  # lazy: loaded by export_model, the only caller
    import tensorflow as tf  # lazy: TensorFlow's own (SavedModel, TFLite)

    # lazy: loads Keras and its backend
    from pneumozoo.models.classifier import as_classifier

    # An explicit training=False, so no export can ever run BatchNorm in training mode.
    archive = keras.export.ExportArchive()
    if prepared:  # inputs already prepared and normalised: the backbone and head only
        clf = as_classifier(model)
        body = keras.Model(clf.preprocessor.output, clf.output, name=clf.name)
        archive.track(body)
        serve = lambda x: body(x, training=False)  # noqa: E731
    else:
        archive.track(model)
        serve = lambda x: model(x, training=False)  # noqa: E731
    archive.add_endpoint("serve", serve,
                         input_signature=[tf.TensorSpec((None, size, size, 3), tf.float32,
                                                        name="images")])
    archive.write_out(str(path), verbose=False)


def _convert_tflite(saved: Path, format: str, calib: np.ndarray | None) -> bytes:
    # lazy: loads TensorFlow
    import tensorflow as tf

    def converter() -> Any:
        conv = tf.lite.TFLiteConverter.from_saved_model(str(saved), signature_keys=["serve"])
        if format == "tflite-float16":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.target_spec.supported_types = [tf.float16]
        elif format == "tflite-int8":
            assert calib is not None

            def representative() -> Iterator[list[np.ndarray]]:
                for image in calib:
                    yield [image[None]]

            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = representative
        return conv

    conv = converter()
    if format != "tflite-int8":
        return bytes(conv.convert())
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    try:
        return bytes(conv.convert())
    except Exception:  # an op without an int8 kernel: keep that op in float
        warnings.warn("some ops have no int8 kernel; they stay float32", stacklevel=3)
        return bytes(converter().convert())


def _interpreter_class() -> Any:
    try:  # LiteRT, TensorFlow Lite's successor, when installed
        # lazy: optional (the TFLite interpreter)
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:
        # lazy: loads TensorFlow
        import tensorflow as tf
    except ImportError:
        raise PneumozooError("running a .tflite file needs ai_edge_litert (pip install "
                             "ai-edge-litert) or TensorFlow") from None
    return tf.lite.Interpreter


class TFLiteModel:
    """Run a ``.tflite`` export like the Keras model it came from.

    ``predict`` takes what a zoo model takes (uint8 or float RGB, 0..255, any size: images
    not already ``S x S`` are prepared by the model's own :class:`XrayPreprocessor`, rebuilt
    from the sidecar JSON) and returns the float32 probabilities; it carries the model's
    class names and threshold (in a :class:`ClassifierHead`), so ``pneumozoo.predict`` and
    ``pneumozoo.evaluate`` accept it too. The domain guard is not exported.

    Args:
        path: The ``.tflite`` file (its ``.json`` sidecar, if present, gives class names).
        num_threads: Interpreter threads (default: every CPU core).

    Example:
        >>> model = TFLiteModel("xraynet-int8.tflite")  # doctest: +SKIP
        >>> model.predict(np.zeros((2, 192, 192, 3), np.float32)).shape  # doctest: +SKIP
        (2, 2)
    """

    def __init__(self, path: str | Path, *, num_threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such TFLite file")
        with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice
            warnings.simplefilter("ignore")
            self._interpreter = _interpreter_class()(
                model_path=str(self.path), num_threads=num_threads or os.cpu_count() or 1)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self.input_size = int(self._input["shape_signature"][1])
        n_out = int(self._output["shape_signature"][-1])
        meta_file = metadata_path(self.path)
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        # lazy: loads Keras; the command line lists EXPORT_FORMATS without it
        from pneumozoo.models.head import ClassifierHead
        from pneumozoo.models.preprocessor import XrayPreprocessor

        class_names: tuple[str, ...] = tuple(meta.get("class_names", default_class_names(n_out)))
        self.name = str(meta.get("model", self.path.stem))
        self._batch = -1
        # An int8 graph starts at the normalisation (older exports) or after it (those with
        # host_normalization): colour policy, rounding (and normalisation) happen here.
        self._host_pixels = meta.get("format") == "tflite-int8"
        self._host_normalization: str | None = meta.get("host_normalization")
        self.preprocessor = XrayPreprocessor(self.input_size, color=str(meta.get("color", "rgb")))
        self.head = ClassifierHead(class_names, threshold=float(meta.get("threshold", 0.5)))
        self.input_shape = (None, self.input_size, self.input_size, 3)
        self.output_shape = (None, len(class_names))

    #: Accepted by :func:`pneumozoo.predict` and :func:`pneumozoo.evaluate` like a model.
    is_pneumozoo_model = True

    @property
    def class_names(self) -> tuple[str, ...]:
        """Output names in order."""
        return tuple(self.head.class_names)

    @property
    def task(self) -> str:
        """``"binary"`` or ``"3class"``."""
        return self.head.task

    @property
    def threshold(self) -> float:
        """The exported model's decision threshold."""
        return self.head.threshold

    @property
    def temperature(self) -> float:
        """1.0: the exported probabilities are already calibrated."""
        return 1.0

    def scores(self, batch: np.ndarray) -> tuple[np.ndarray, None]:
        """Probabilities of a prepared batch, and no guard distances.

        Args:
            batch: Prepared pixels, ``(N, size, size, 1 | 3)``.

        Returns:
            ``(probabilities, None)``: a TFLite file carries no domain guard.
        """
        return np.asarray(self.predict_on_batch(batch), np.float64), None

    def predict_prepared(self, batch: Any) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities of a prepared batch and (empty) guard features, as
        :meth:`pneumozoo.models.PneumoniaClassifier.predict_prepared` (used by TTA).

        Args:
            batch: Prepared pixels, ``(N, size, size, 1 | 3)``.

        Returns:
            ``(probabilities, features)``: float64 ``(N, classes)`` and an empty ``(N, 0)``
            array (a TFLite file carries no guard features).
        """
        probs = np.asarray(self.predict_on_batch(batch), np.float64)
        return probs, np.zeros((len(probs), 0))

    def _prepare(self, batch: Any) -> np.ndarray:
        x = np.asarray(batch)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[-1] not in (1, 3):
            raise ValueError(f"expected images (N, H, W, 3), got shape {x.shape}")
        if self._host_pixels or x.shape[1:3] != (self.input_size, self.input_size):
            x = self.preprocessor.prepare_batch(x)  # numpy: the same pixels on any backend
        if x.shape[-1] == 1:
            x = np.repeat(x, 3, axis=-1)
        if self._host_normalization is not None:
            import keras  # lazy: loaded with the preprocessor in __init__

            # lazy: loads Keras and its backend
            from pneumozoo.models.preprocessor import normalize_pixels

            x = np.asarray(keras.ops.convert_to_numpy(
                normalize_pixels(x, self._host_normalization, "float32")))
        return np.ascontiguousarray(x, dtype=np.float32)

    def predict_on_batch(self, batch: Any) -> np.ndarray:
        """Probabilities for one batch of images.

        Args:
            batch: ``(N, H, W, 3)`` or one ``(H, W, 3)`` image, RGB 0..255.

        Returns:
            float32 ``(N, classes)``.
        """
        x = self._prepare(batch)
        if x.shape[0] != self._batch:
            self._interpreter.resize_tensor_input(self._input["index"], list(x.shape))
            self._interpreter.allocate_tensors()
            self._batch = x.shape[0]
        self._interpreter.set_tensor(self._input["index"], x)
        self._interpreter.invoke()
        return np.array(self._interpreter.get_tensor(self._output["index"]), dtype=np.float32)

    def predict(self, x: Any, batch_size: int = 32, verbose: Any = 0) -> np.ndarray:
        """Like ``keras.Model.predict``: an array of images or a dataset of image batches.

        Args:
            x: ``(N, H, W, 3)`` images, or a ``tf.data.Dataset`` of image batches (or of
                ``(images, labels)`` batches).
            batch_size: Images per interpreter call for arrays.
            verbose: Ignored (for signature compatibility).

        Returns:
            float32 ``(N, classes)`` probabilities.
        """
        del verbose
        if hasattr(x, "as_numpy_iterator"):  # a tf.data.Dataset
            parts = []
            for element in x.as_numpy_iterator():
                images = element[0] if isinstance(element, tuple) else element
                parts.append(self.predict_on_batch(images))
            return np.concatenate(parts) if parts else np.empty((0, len(self.class_names)))
        x = np.asarray(x)
        if x.ndim == 3:
            x = x[None]
        parts = [self.predict_on_batch(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
        return np.concatenate(parts) if parts else np.empty((0, len(self.class_names)))

    def __call__(self, x: Any) -> np.ndarray:
        """Same as :meth:`predict`."""
        return self.predict(x)

    def __repr__(self) -> str:
        return f"TFLiteModel({str(self.path)!r}, input_size={self.input_size})"

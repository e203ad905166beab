"""pneumozoo: a Keras 3 model zoo for pneumonia classification from chest X-rays.

Names are imported lazily, so ``import pneumozoo`` and ``pneumozoo --help`` stay fast and
TensorFlow loads only when a model is needed.

Example:
    >>> from pneumozoo import load_pretrained, predict
    >>> model = load_pretrained()  # the bundled default, offline  # doctest: +SKIP
    >>> predict(model, "xray.jpeg")[0].label  # doctest: +SKIP
    'pneumonia'
"""

from __future__ import annotations

import contextlib
import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "AdaptResult": "pneumozoo.adapt",
    "adapt": "pneumozoo.adapt",
    "adapt_unlabelled": "pneumozoo.adapt",
    "estimate_prevalence": "pneumozoo.adapt",
    "augment": "pneumozoo.augment",
    "Record": "pneumozoo.data",
    "class_weights": "pneumozoo.data",
    "make_dataset": "pneumozoo.data",
    "patient_split": "pneumozoo.data",
    "scan_folder": "pneumozoo.data",
    "scan_split": "pneumozoo.data",
    "DataError": "pneumozoo.errors",
    "DownloadError": "pneumozoo.errors",
    "IntegrityError": "pneumozoo.errors",
    "InvalidImageError": "pneumozoo.errors",
    "ModelConfigError": "pneumozoo.errors",
    "OutOfDomainError": "pneumozoo.errors",
    "PneumozooError": "pneumozoo.errors",
    "UnknownNameError": "pneumozoo.errors",
    "UnsafeModelError": "pneumozoo.errors",
    "EvaluationReport": "pneumozoo.evaluation",
    "evaluate": "pneumozoo.evaluation",
    "grad_cam": "pneumozoo.explain",
    "read_xray": "pneumozoo.io",
    "ModelInfo": "pneumozoo.models",
    "PneumoniaClassifier": "pneumozoo.models",
    "build_model": "pneumozoo.models",
    "list_models": "pneumozoo.models",
    "set_backbone_trainable": "pneumozoo.models",
    "Prediction": "pneumozoo.prediction",
    "predict": "pneumozoo.prediction",
    "PretrainedConfig": "pneumozoo.pretrained",
    "list_pretrained": "pneumozoo.pretrained",
    "load_pretrained": "pneumozoo.pretrained",
    "push_to_hub": "pneumozoo.hub",
    "Recipe": "pneumozoo.recipe",
    "get_recipe": "pneumozoo.recipe",
    "list_recipes": "pneumozoo.recipe",
    "FitResult": "pneumozoo.train",
    "fit": "pneumozoo.train",
}

__all__ = [
    "AdaptResult",
    "DataError",
    "DownloadError",
    "EvaluationReport",
    "FitResult",
    "IntegrityError",
    "InvalidImageError",
    "ModelConfigError",
    "ModelInfo",
    "OutOfDomainError",
    "PneumoniaClassifier",
    "PneumozooError",
    "Prediction",
    "PretrainedConfig",
    "Recipe",
    "Record",
    "UnknownNameError",
    "UnsafeModelError",
    "__version__",
    "adapt",
    "adapt_unlabelled",
    "augment",
    "build_model",
    "class_weights",
    "estimate_prevalence",
    "evaluate",
    "fit",
    "get_recipe",
    "grad_cam",
    "list_models",
    "list_pretrained",
    "list_recipes",
    "load_pretrained",
    "make_dataset",
    "patient_split",
    "predict",
    "push_to_hub",
    "read_xray",
    "scan_folder",
    "scan_split",
    "set_backbone_trainable",
]

if TYPE_CHECKING:  # pragma: no cover
    from pneumozoo import augment
    from pneumozoo.adapt import AdaptResult, adapt, adapt_unlabelled, estimate_prevalence
    from pneumozoo.data import (
        Record,
        class_weights,
        make_dataset,
        patient_split,
        scan_folder,
        scan_split,
    )
    from pneumozoo.errors import (
        DataError,
        DownloadError,
        IntegrityError,
        InvalidImageError,
        ModelConfigError,
        OutOfDomainError,
        PneumozooError,
        UnknownNameError,
        UnsafeModelError,
    )
    from pneumozoo.evaluation import EvaluationReport, evaluate
    from pneumozoo.explain import grad_cam
    from pneumozoo.hub import push_to_hub
    from pneumozoo.io import read_xray
    from pneumozoo.models import (
        ModelInfo,
        PneumoniaClassifier,
        build_model,
        list_models,
        set_backbone_trainable,
    )
    from pneumozoo.prediction import Prediction, predict
    from pneumozoo.pretrained import PretrainedConfig, list_pretrained, load_pretrained
    from pneumozoo.recipe import Recipe, get_recipe, list_recipes
    from pneumozoo.train import FitResult, fit


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pneumozoo' has no attribute {name!r}")
    if name == "augment":
        value: Any = importlib.import_module(module)
    else:
        _quiet_tensorflow()
        value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


def _quiet_tensorflow(level: str | None = None, *, hide_startup: bool = False) -> None:
    """Hide TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices).

    The one place pneumozoo sets TensorFlow's log level; call it before TensorFlow is
    imported. Library use (``level=None``) keeps a level the user chose and otherwise hides
    info and warning lines. The command line passes ``level="3"`` and ``hide_startup=True``
    (unless ``--verbose``): TensorFlow 2.16+ logs a few lines while it loads, before its log
    level applies, so the first import of ``tensorflow`` then runs with the process's stderr
    (file descriptor 2) sent to a temporary file, replayed only if the import fails.
    ``TF_ENABLE_ONEDNN_OPTS`` is left alone: setting it to 0 would silence the oneDNN notice
    but also change the kernels (speed and float round-off).

    Args:
        level: Value for ``TF_CPP_MIN_LOG_LEVEL`` (``"3"``: errors hidden too); ``None``
            keeps the user's and defaults to ``"2"``.
        hide_startup: Capture the start-up lines of the first ``import tensorflow``.
    """
    import os
    import sys

    if level is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    else:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = level
        if level == "3":  # TensorFlow's Python warnings too (e.g. tf.function retracing notes)
            import logging

            logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if hide_startup and "tensorflow" not in sys.modules and not any(
        isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path
    ):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())


class _QuietTensorFlowFinder:
    """Meta-path finder for the first ``import tensorflow``: runs it with fd 2 captured."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        import importlib.util
        import sys

        if name != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)  # one-shot: later imports are the ordinary ones
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)  # type: ignore[assignment]
        return spec


class _QuietLoader:
    """Wraps the real loader of ``tensorflow``; the module ends up with the real one."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        import os
        import sys
        import tempfile

        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no usable fd 2: nothing to hide
            self._loader.exec_module(module)
            return
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                self._loader.exec_module(module)
            except BaseException:
                _restore_stderr(saved)
                captured.seek(0)
                os.write(2, captured.read())  # a broken install keeps its diagnostics
                raise
            finally:
                _restore_stderr(saved)
                os.close(saved)


def _restore_stderr(saved: int) -> None:
    import os
    import sys

    with contextlib.suppress(Exception):
        sys.stderr.flush()  # Python-level writes made during the import stay hidden too
    os.dup2(saved, 2)

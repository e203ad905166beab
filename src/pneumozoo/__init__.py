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

import importlib
from typing import TYPE_CHECKING, Any

from pneumozoo._version import __version__
from pneumozoo.utils import quiet_tensorflow

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
    "ModelInfo": "pneumozoo.zoo",
    "PneumoniaClassifier": "pneumozoo.models",
    "build_model": "pneumozoo.models",
    "list_models": "pneumozoo.zoo",
    "set_backbone_trainable": "pneumozoo.models",
    "Prediction": "pneumozoo.prediction",
    "predict": "pneumozoo.prediction",
    "PretrainedConfig": "pneumozoo.zoo",
    "list_pretrained": "pneumozoo.zoo",
    "load_pretrained": "pneumozoo.pretrained",
    "push_to_hub": "pneumozoo.hub",
    "Recipe": "pneumozoo.recipe",
    "screen": "pneumozoo.screening",
    "get_recipe": "pneumozoo.zoo",
    "list_recipes": "pneumozoo.zoo",
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
    "screen",
    "set_backbone_trainable",
]

if TYPE_CHECKING:  # pragma: no cover
    from pneumozoo import adapt, augment
    from pneumozoo.adapt import AdaptResult, adapt_unlabelled, estimate_prevalence
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
    from pneumozoo.models import PneumoniaClassifier, build_model, set_backbone_trainable
    from pneumozoo.prediction import Prediction, predict
    from pneumozoo.pretrained import load_pretrained
    from pneumozoo.recipe import Recipe
    from pneumozoo.screening import screen
    from pneumozoo.train import FitResult, fit
    from pneumozoo.zoo import (
        ModelInfo,
        PretrainedConfig,
        get_recipe,
        list_models,
        list_pretrained,
        list_recipes,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pneumozoo' has no attribute {name!r}")
    if name in ("augment", "adapt"):  # modules; `adapt` is also callable as the function
        value: Any = importlib.import_module(module)
    else:
        quiet_tensorflow()
        value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

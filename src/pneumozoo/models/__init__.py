"""Architecture builders behind one registry (``build_model``, ``list_models``), and the model
object they build: :class:`PneumoniaClassifier` = :class:`XrayPreprocessor` + backbone +
:class:`ClassifierHead`."""

from pneumozoo.models import custom as _custom  # noqa: F401  (registers the builders)
from pneumozoo.models import transfer as _transfer  # noqa: F401
from pneumozoo.models.classifier import PneumoniaClassifier, as_classifier
from pneumozoo.models.head import ClassifierHead
from pneumozoo.models.layers import ClassifierOutput, Normalize
from pneumozoo.models.preprocessor import NORMALIZATIONS, XrayPreprocessor
from pneumozoo.models.registry import (
    ModelInfo,
    build_model,
    class_names_of,
    get_model_info,
    input_size_of,
    list_models,
    register_model,
    resolve_precision,
)
from pneumozoo.models.transfer import set_backbone_trainable

__all__ = [
    "NORMALIZATIONS",
    "ClassifierHead",
    "ClassifierOutput",
    "ModelInfo",
    "Normalize",
    "PneumoniaClassifier",
    "XrayPreprocessor",
    "as_classifier",
    "build_model",
    "class_names_of",
    "get_model_info",
    "input_size_of",
    "list_models",
    "register_model",
    "resolve_precision",
    "set_backbone_trainable",
]

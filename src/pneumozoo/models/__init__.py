"""Architecture builders (``build_model``; the architectures themselves are listed in the zoo's
registry, :mod:`pneumozoo.zoo.registry`, re-exported here), and the model object they build:
:class:`PneumoniaClassifier` = :class:`XrayPreprocessor` + backbone + :class:`ClassifierHead`."""

from pneumozoo.models.build import (
    build_model,
    class_names_of,
    input_size_of,
    resolve_precision,
)
from pneumozoo.models.classifier import PneumoniaClassifier, as_classifier
from pneumozoo.models.head import ClassifierHead
from pneumozoo.models.layers import ClassifierOutput, Normalize
from pneumozoo.models.preprocessor import NORMALIZATIONS, XrayPreprocessor
from pneumozoo.models.transfer import set_backbone_trainable
from pneumozoo.zoo.registry import ModelInfo, get_model_info, list_models, register_model

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

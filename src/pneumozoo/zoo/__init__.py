"""The zoo's catalogue, free of Keras: one registry of architectures, recipes and pretrained
weights (:mod:`pneumozoo.zoo.registry`), the typed config every model folder carries
(:mod:`pneumozoo.zoo.config`), its schema (:mod:`pneumozoo.zoo.schema`) and the model card
written from it (:mod:`pneumozoo.zoo.card`).

Building a model is :mod:`pneumozoo.models`' job; loading and writing model folders is
:mod:`pneumozoo.pretrained`'s.
"""

from pneumozoo.zoo.card import model_card
from pneumozoo.zoo.config import CONFIG_FILE, MODEL_SETTINGS, WEIGHT_FILES, PretrainedConfig
from pneumozoo.zoo.registry import (
    BUNDLED_DIR,
    DEFAULT_MODEL,
    ModelInfo,
    ZooEntry,
    get_entry,
    get_model_info,
    get_pretrained_config,
    get_recipe,
    list_entries,
    list_models,
    list_pretrained,
    list_recipes,
    register_model,
)

__all__ = [
    "BUNDLED_DIR",
    "CONFIG_FILE",
    "DEFAULT_MODEL",
    "MODEL_SETTINGS",
    "WEIGHT_FILES",
    "ModelInfo",
    "PretrainedConfig",
    "ZooEntry",
    "get_entry",
    "get_model_info",
    "get_pretrained_config",
    "get_recipe",
    "list_entries",
    "list_models",
    "list_pretrained",
    "list_recipes",
    "model_card",
    "register_model",
]

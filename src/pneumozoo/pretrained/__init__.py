"""Pretrained models: typed configs, the registry, model folders in Keras's Hub layout."""

from pneumozoo.pretrained.card import model_card
from pneumozoo.pretrained.config import CONFIG_FILE, WEIGHT_FILES, PretrainedConfig
from pneumozoo.pretrained.folder import (
    check_config_safe,
    load_folder,
    load_model_file,
    save_folder,
    verify_folder,
)
from pneumozoo.pretrained.registry import (
    BUNDLED_DIR,
    DEFAULT_MODEL,
    get_pretrained_config,
    list_pretrained,
    load_pretrained,
    parse_hf_uri,
)

__all__ = [
    "BUNDLED_DIR",
    "CONFIG_FILE",
    "DEFAULT_MODEL",
    "WEIGHT_FILES",
    "PretrainedConfig",
    "check_config_safe",
    "get_pretrained_config",
    "list_pretrained",
    "load_folder",
    "load_model_file",
    "load_pretrained",
    "model_card",
    "parse_hf_uri",
    "save_folder",
    "verify_folder",
]

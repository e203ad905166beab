"""The zoo: one registry of architecture, recipe and weights per name; model folders.

Typed configs (``pneumozoo.json``) and model folders in Keras's Hub layout.
"""

from typing import TYPE_CHECKING, Any

from pneumozoo.pretrained.card import model_card
from pneumozoo.pretrained.config import CONFIG_FILE, WEIGHT_FILES, PretrainedConfig
from pneumozoo.pretrained.registry import (
    BUNDLED_DIR,
    DEFAULT_MODEL,
    ZooEntry,
    get_entry,
    get_pretrained_config,
    get_recipe,
    list_entries,
    list_pretrained,
    list_recipes,
    load_pretrained,
    parse_hf_uri,
)

__all__ = [
    "BUNDLED_DIR",
    "CONFIG_FILE",
    "DEFAULT_MODEL",
    "WEIGHT_FILES",
    "PretrainedConfig",
    "ZooEntry",
    "check_config_safe",
    "get_entry",
    "get_pretrained_config",
    "get_recipe",
    "list_entries",
    "list_pretrained",
    "list_recipes",
    "load_folder",
    "load_keras_file",
    "load_model_file",
    "load_pretrained",
    "model_card",
    "parse_hf_uri",
    "save_folder",
    "verify_folder",
]

# The folder functions need Keras (and so TensorFlow): imported on first use, so listing the
# registry (``pneumozoo models``) stays free of TensorFlow.
_FOLDER_NAMES = frozenset(
    {"check_config_safe", "load_folder", "load_keras_file", "load_model_file", "save_folder",
     "verify_folder"}
)

if TYPE_CHECKING:  # pragma: no cover
    from pneumozoo.pretrained.folder import (
        check_config_safe,
        load_folder,
        load_keras_file,
        load_model_file,
        save_folder,
        verify_folder,
    )


def __getattr__(name: str) -> Any:
    if name not in _FOLDER_NAMES:
        raise AttributeError(f"module 'pneumozoo.pretrained' has no attribute {name!r}")
    # lazy: loads Keras and its backend
    from pneumozoo.pretrained import folder

    value = getattr(folder, name)
    globals()[name] = value
    return value

"""Pretrained models on disk and on the Hub: loading (:func:`load_pretrained`), model folders in
Keras's Hub layout with their checks (:mod:`pneumozoo.pretrained.folder`), model cards and
releases.

What the zoo has (its registry and the typed :class:`PretrainedConfig`) is
:mod:`pneumozoo.zoo`; its names are re-exported here.
"""

from typing import TYPE_CHECKING, Any

from pneumozoo.pretrained.loading import load_pretrained, parse_hf_uri
from pneumozoo.zoo import (
    BUNDLED_DIR,
    CONFIG_FILE,
    DEFAULT_MODEL,
    WEIGHT_FILES,
    PretrainedConfig,
    ZooEntry,
    get_entry,
    get_pretrained_config,
    get_recipe,
    list_entries,
    list_pretrained,
    list_recipes,
)
from pneumozoo.zoo.card import model_card

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

"""The zoo's one registry: architectures, recipes and pretrained weights, keyed by name.

In the spirit of timm's ``_registry``: one module holds what the zoo has and answers every
question about it without loading Keras.

* **Architectures**: a :class:`ModelInfo` per name (default input size, normalisation, what
  the builder accepts, the layers the domain guard reads). The builder itself is named by its
  entry point (``"pneumozoo.models.custom:cnn4"``) and imported only when a model is built;
  :func:`register_model` adds your own. :func:`list_models` and :func:`get_model_info` read it.
* **Zoo entries**: a :class:`ZooEntry` per zoo name (``xraynet-binary-v2``) ties together the
  architecture it is built from, the :class:`~pneumozoo.recipe.Recipe` that trains it
  (:data:`pneumozoo.recipe.ZOO_RECIPES`) and the :class:`~pneumozoo.zoo.PretrainedConfig` of its
  bundled weights (read from ``pneumozoo/pretrained/bundled/<name>/``, so the registry and the
  folders cannot drift). :func:`list_pretrained`, :func:`get_pretrained_config`,
  :func:`list_recipes` and :func:`get_recipe` are views of it; ``list_models(pretrained=True)``
  keeps the architectures the zoo has weights for.

Loading weights is :func:`pneumozoo.load_pretrained`'s job (:mod:`pneumozoo.pretrained`).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pneumozoo.errors import PneumozooError, UnknownNameError
from pneumozoo.recipe import ZOO_RECIPES, Recipe
from pneumozoo.zoo.config import CONFIG_FILE, PretrainedConfig

__all__ = [
    "BUNDLED_DIR",
    "DEFAULT_MODEL",
    "Builder",
    "ModelInfo",
    "ZooEntry",
    "get_entry",
    "get_model_info",
    "get_pretrained_config",
    "get_recipe",
    "list_entries",
    "list_models",
    "list_pretrained",
    "list_recipes",
    "register_model",
]

#: Where the bundled model folders live inside the installed package.
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "pretrained" / "bundled"
#: Name of the model :func:`pneumozoo.load_pretrained` returns when given no name.
DEFAULT_MODEL = "xraynet-binary-v2"

#: A builder: ``(inputs, *, input_size, **kwargs) -> penultimate features`` (see :func:`register_model`).
Builder = Callable[..., Any]


# --- architectures ------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows of one architecture.

    Attributes:
        name: Registry name, e.g. ``"cnn5"``.
        family: ``"custom"`` (trained from scratch here) or ``"transfer"`` (a
            ``keras.applications`` backbone with a classification head).
        input_size: Default square input size in pixels.
        normalization: How raw 0..255 pixels are normalised inside the graph.
        description: One line on what it is and where it comes from.
        pretrainable: True if ``weights="imagenet"`` is accepted.
        guard_layers: Layers whose pooled activations (mean and standard deviation over
            space) feed the domain guard, besides the penultimate features.
        entry_point: The builder, or where it lives (``"module:function"``, imported when a
            model is built: the builders load Keras).

    Example:
        >>> info = get_model_info("xraynet")
        >>> info.family, info.input_size, info.normalization
        ('custom', 192, 'unit')
    """

    name: str
    family: str
    input_size: int
    normalization: str
    description: str
    pretrainable: bool = False
    guard_layers: tuple[str, ...] = ()
    entry_point: str | Builder = field(default="", repr=False, compare=False)

    @property
    def builder(self) -> Builder:
        """The builder function (use :func:`pneumozoo.build_model` instead)."""
        if callable(self.entry_point):
            return self.entry_point
        module, _, name = self.entry_point.partition(":")
        builder: Builder = getattr(importlib.import_module(module), name)
        return builder


def _transfer(name: str, input_size: int, normalization: str, description: str) -> ModelInfo:
    return ModelInfo(name, "transfer", input_size, normalization,
                     description + "; GAP/1024/BN/100/Dropout/BN head.", pretrainable=True,
                     entry_point=f"pneumozoo.models.transfer:{name}")


_ARCHITECTURES: dict[str, ModelInfo] = {m.name: m for m in (
    ModelInfo("cnn4", "custom", 128, "unit",
              "4-block VGG-like CNN (filters 32->256, max-pool halving), as in 004 (128 px).",
              # Without block4: its 6x6 maps add noise, not domain (benchmarks/research/README.md).
              guard_layers=("block1_pool", "block2_pool", "block3_pool"),
              entry_point="pneumozoo.models.custom:cnn4"),
    ModelInfo("cnn5", "custom", 150, "unit",
              "5-block CNN of 001: 2 conv + 4 separable-conv blocks with BN, dense 512/128/64.",
              guard_layers=("block1_pool", "block2_pool", "block3_pool", "block4_pool",
                            "block5_pool"),
              entry_point="pneumozoo.models.custom:cnn5"),
    ModelInfo("xraynet", "custom", 192, "unit",
              "pneumozoo's fast default: strided stem + max-pool, 4 residual stages 32-256, GAP.",
              guard_layers=("stem_pool", "stage1_out", "stage2_out", "stage3_out", "stage4_out"),
              entry_point="pneumozoo.models.custom:xraynet"),
    _transfer("vgg16", 224, "caffe", "VGG16 backbone (003)"),
    _transfer("vgg19", 224, "caffe", "VGG19 backbone with the 000 head (000, 002)"),
    _transfer("resnet50", 224, "caffe", "ResNet50 backbone (003)"),
    _transfer("xception", 299, "symmetric", "Xception backbone (003: best at 0.95)"),
    _transfer("densenet121", 224, "imagenet", "DenseNet121 backbone (003)"),
    _transfer("inceptionv3", 299, "symmetric", "InceptionV3 backbone (Kermany et al. 2018)"),
    _transfer("mobilenetv2", 224, "symmetric", "MobileNetV2 backbone: small and fast"),
    _transfer("efficientnetb0", 224, "none", "EfficientNetB0 backbone: small and fast"),
)}


def register_model(
    name: str,
    *,
    family: str,
    input_size: int,
    normalization: str,
    description: str,
    pretrainable: bool = False,
    guard_layers: Sequence[str] = (),
) -> Callable[[Builder], Builder]:
    """Decorator adding your own architecture to the registry.

    The builder takes ``(inputs, *, input_size, **kwargs)`` where ``inputs`` are already
    resized and normalised, and returns the penultimate feature vector (``(N, D)``): the
    classifier (``logits``) and the head are added by :func:`pneumozoo.build_model`; builders
    of pretrainable models also take ``weights`` and ``freeze_backbone``, and a ``dropout``
    keyword, when present, can be overridden by :func:`pneumozoo.build_model`.

    Args:
        name: Registry name (an existing one is replaced).
        family: ``"custom"`` or ``"transfer"``.
        input_size: Default square input size in pixels.
        normalization: How raw 0..255 pixels are normalised before the builder's layers:
            ``unit``, ``symmetric``, ``imagenet``, ``caffe`` or ``none``.
        description: One line for :func:`list_models` and the docs.
        pretrainable: The builder accepts ``weights="imagenet"``.
        guard_layers: Layers (convolutional stages) whose pooled activations feed the
            domain guard, besides the penultimate features.

    Returns:
        The decorator; it returns the builder unchanged.

    Example:
        >>> from keras import layers
        >>> from pneumozoo import build_model
        >>> @register_model("tiny", family="custom", input_size=64, normalization="unit",
        ...                 description="a toy")
        ... def tiny(x, *, input_size):
        ...     return layers.GlobalAveragePooling2D()(layers.Conv2D(8, 3)(x))
        >>> build_model("tiny").output_shape
        (None, 2)
    """

    def deco(fn: Builder) -> Builder:
        _ARCHITECTURES[name] = ModelInfo(name, family, input_size, normalization, description,
                                         pretrainable=pretrainable,
                                         guard_layers=tuple(guard_layers), entry_point=fn)
        return fn

    return deco


def list_models(*, family: str | None = None, pretrainable: bool | None = None,
                pretrained: bool | None = None) -> list[ModelInfo]:
    """Every architecture, sorted by name, optionally filtered (no Keras needed).

    Args:
        family: Keep only ``"custom"`` or ``"transfer"`` models.
        pretrainable: Keep only models that do (True) or do not (False) accept ImageNet weights.
        pretrained: Keep only architectures the zoo has (True) or has not (False) bundled
            weights for (their names: :func:`list_pretrained`).

    Returns:
        The :class:`ModelInfo` of each architecture.

    Example:
        >>> [m.name for m in list_models(family="custom")]
        ['cnn4', 'cnn5', 'xraynet']
        >>> [m.name for m in list_models(pretrained=True)]
        ['cnn4', 'cnn5', 'xraynet']
    """
    out = sorted(_ARCHITECTURES.values(), key=lambda m: m.name)
    if family is not None:
        out = [m for m in out if m.family == family]
    if pretrainable is not None:
        out = [m for m in out if m.pretrainable == pretrainable]
    if pretrained is not None:
        with_weights = {c.architecture for c in list_pretrained()}
        out = [m for m in out if (m.name in with_weights) == pretrained]
    return out


def get_model_info(arch: str) -> ModelInfo:
    """Registry entry of an architecture.

    Args:
        arch: Registry name, e.g. ``"cnn5"``.

    Returns:
        Its :class:`ModelInfo`.

    Raises:
        UnknownNameError: For an unknown name; the message lists the valid ones.

    Example:
        >>> get_model_info("cnn5").input_size
        150
    """
    try:
        return _ARCHITECTURES[arch]
    except KeyError:
        raise UnknownNameError("architecture", arch, list(_ARCHITECTURES)) from None


# --- zoo entries --------------------------------------------------------------------------
@dataclass(frozen=True)
class ZooEntry:
    """One zoo model: its architecture, the recipe that trains it and its pretrained weights.

    Attributes:
        name: Zoo name, e.g. ``"xraynet-binary-v2"``.
        architecture: Name of the architecture it is built from (see :attr:`arch`).
        recipe: The recipe that trains it (None for a model trained by its own script, such
            as ``xraynet-adult``).
        pretrained: The config of its bundled weights (None for a recipe not yet released).
        folder: The bundled model folder (None without weights).

    Example:
        >>> entry = get_entry("cnn4-binary")
        >>> entry.architecture, entry.recipe.epochs, entry.pretrained.input_size
        ('cnn4', 20, 128)
    """

    name: str
    architecture: str
    recipe: Recipe | None = None
    pretrained: PretrainedConfig | None = None
    folder: Path | None = field(default=None, compare=False)

    @property
    def arch(self) -> ModelInfo:
        """The architecture's :class:`ModelInfo`."""
        return get_model_info(self.architecture)


@functools.lru_cache(maxsize=1)
def _zoo() -> dict[str, ZooEntry]:
    configs: dict[str, tuple[PretrainedConfig, Path]] = {}
    if BUNDLED_DIR.is_dir():
        for path in sorted(BUNDLED_DIR.iterdir()):
            if (path / CONFIG_FILE).is_file():
                read = PretrainedConfig.read(path, source="bundled")
                configs[read.name] = (read, path)
    names = sorted(set(configs) | set(ZOO_RECIPES), key=lambda n: (n != DEFAULT_MODEL, n))
    out: dict[str, ZooEntry] = {}
    for name in names:
        recipe = ZOO_RECIPES.get(name)
        cfg: PretrainedConfig | None = configs[name][0] if name in configs else None
        folder: Path | None = configs[name][1] if name in configs else None
        architecture = cfg.architecture if cfg is not None else ZOO_RECIPES[name].arch
        if cfg is not None and recipe is not None and recipe.arch != cfg.architecture:
            raise PneumozooError(f"zoo entry {name!r}: its recipe builds {recipe.arch} but its "
                                 f"weights are {cfg.architecture}")
        out[name] = ZooEntry(name, architecture, recipe, cfg, folder)
    return out


def list_entries() -> list[ZooEntry]:
    """Every zoo entry, the default model first.

    Returns:
        The :class:`ZooEntry` of each zoo name (bundled weights, zoo recipe, or both).

    Example:
        >>> [e.name for e in list_entries() if e.recipe is None]
        ['xraynet-adult']
    """
    return list(_zoo().values())


def get_entry(name: str) -> ZooEntry:
    """The zoo entry of a name.

    Args:
        name: A zoo name (see :func:`list_entries`).

    Returns:
        Its :class:`ZooEntry`.

    Raises:
        UnknownNameError: If no entry has that name; the message lists the valid ones.

    Example:
        >>> get_entry("xraynet-3class").recipe.init_from
        'xraynet-binary'
    """
    try:
        return _zoo()[name]
    except KeyError:
        raise UnknownNameError("zoo model", name, list(_zoo())) from None


def list_pretrained(*, task: str | None = None, architecture: str | None = None) -> list[PretrainedConfig]:
    """Typed configs of every pretrained model, default first, optionally filtered.

    A view of the zoo: the entries with bundled weights.

    Args:
        task: Keep only ``"binary"`` or ``"3class"`` models.
        architecture: Keep only models of that architecture.

    Returns:
        The :class:`PretrainedConfig` of each bundled model (an empty list if none is
        bundled).

    Example:
        >>> [c.name for c in list_pretrained(task="3class")]  # doctest: +SKIP
        ['xraynet-3class']
    """
    configs = [e.pretrained for e in _zoo().values() if e.pretrained is not None]
    if task is not None:
        configs = [c for c in configs if c.task == task]
    if architecture is not None:
        configs = [c for c in configs if c.architecture == architecture]
    return configs


def _pretrained_names() -> list[str]:
    return sorted(e.name for e in _zoo().values() if e.pretrained is not None)


def get_pretrained_config(name: str) -> PretrainedConfig:
    """Config of a registry entry, without loading the model.

    Args:
        name: A registry name (see :func:`list_pretrained`).

    Returns:
        Its :class:`PretrainedConfig`.

    Raises:
        UnknownNameError: If no entry has that name; the message lists the valid ones.

    Example:
        >>> get_pretrained_config("xraynet-binary").input_size  # doctest: +SKIP
        192
    """
    entry = _zoo().get(name)
    if entry is None or entry.pretrained is None:
        raise UnknownNameError("pretrained model", name, _pretrained_names())
    return entry.pretrained


def list_recipes() -> list[Recipe]:
    """Every zoo recipe, the default model's first.

    A view of the zoo: the entries with a recipe.

    Returns:
        The :class:`~pneumozoo.recipe.Recipe` of every zoo model.

    Example:
        >>> list_recipes()[0].name
        'xraynet-binary-v2'
    """
    return [e.recipe for e in _zoo().values() if e.recipe is not None]


def get_recipe(name: str) -> Recipe:
    """The recipe of a zoo model.

    Args:
        name: A zoo model's name (see :func:`list_recipes`).

    Returns:
        Its :class:`~pneumozoo.recipe.Recipe`.

    Raises:
        UnknownNameError: Listing the zoo's recipes.

    Example:
        >>> get_recipe("cnn4-binary").epochs
        20
    """
    entry = _zoo().get(name)
    if entry is None or entry.recipe is None:
        raise UnknownNameError("recipe", name, [r.name for r in list_recipes()])
    return entry.recipe

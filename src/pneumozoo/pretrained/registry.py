"""The zoo's one registry: architecture, recipe and pretrained weights keyed by one name.

In the spirit of timm's ``_registry``: each zoo name (``xraynet-binary-v2``) is one typed
:class:`ZooEntry` that ties together the architecture it is built from (registered by its
builder with :func:`pneumozoo.models.register_model`), the :class:`~pneumozoo.recipe.Recipe`
that trains it (:data:`pneumozoo.recipe.ZOO_RECIPES`) and the :class:`PretrainedConfig` of its
bundled weights (``pneumozoo/pretrained/bundled/<name>/pneumozoo.json``, so the registry and
the folders cannot drift). :func:`list_pretrained`, :func:`get_pretrained_config`,
:func:`list_recipes` and :func:`get_recipe` are views of it; :func:`load_pretrained` loads an
entry's weights. Any ``hf://owner/repo[@revision]`` repo in the same format, or a local folder,
loads too.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pneumozoo.errors import PneumozooError, UnknownNameError
from pneumozoo.hub import download_model
from pneumozoo.pretrained.config import CONFIG_FILE, PretrainedConfig
from pneumozoo.recipe import ZOO_RECIPES, Recipe

if TYPE_CHECKING:  # listing the zoo needs no TensorFlow; loading imports it (folder.py)
    import keras

    from pneumozoo.models.registry import ModelInfo

__all__ = [
    "BUNDLED_DIR",
    "DEFAULT_MODEL",
    "ZooEntry",
    "get_entry",
    "get_pretrained_config",
    "get_recipe",
    "list_entries",
    "list_pretrained",
    "list_recipes",
    "load_pretrained",
    "parse_hf_uri",
]

#: Where the bundled model folders live inside the installed package.
BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
#: Name of the model :func:`load_pretrained` returns when given no name.
DEFAULT_MODEL = "xraynet-binary-v2"


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
        """The architecture's :class:`~pneumozoo.models.ModelInfo` (imports Keras)."""
        # Keras-heavy: listing the zoo ('pneumozoo models') must not import TensorFlow.
        from pneumozoo.models import get_model_info

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


def parse_hf_uri(uri: str) -> tuple[str, str | None]:
    """Split ``hf://owner/repo@revision`` into ``("owner/repo", "revision")``.

    Args:
        uri: ``hf://owner/repo`` or ``hf://owner/repo@revision``.

    Returns:
        ``(repo_id, revision)``; revision is None when absent.

    Raises:
        ValueError: If the repo part is not ``owner/name``.

    Example:
        >>> parse_hf_uri("hf://me/xraynet@v1"), parse_hf_uri("hf://me/xraynet")
        (('me/xraynet', 'v1'), ('me/xraynet', None))
    """
    body = uri[len("hf://"):]
    repo, _, revision = body.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ValueError(f"{uri}: expected hf://owner/repo or hf://owner/repo@revision")
    return repo, revision or None


def load_pretrained(
    name: str | Path | None = None,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
) -> keras.Model:
    """Load a pretrained model, ready for ``model.predict`` on raw X-rays.

    The model (a :class:`~pneumozoo.models.PneumoniaClassifier`) takes raw films (grey or
    RGB, 0..255, any size) and returns calibrated class probabilities; it carries its class
    names, input size, decision threshold and domain guard itself. Provenance and metrics
    are in its :class:`PretrainedConfig` (:func:`get_pretrained_config`).

    Args:
        name: A registry name (see :func:`list_pretrained`; None means the default model),
            ``hf://owner/repo`` or ``hf://owner/repo@revision`` for a Hub repo in pneumozoo's
            format, a local model folder, or a ``.keras`` file saved with ``model.save`` (the
            model carries its settings; loaded with ``safe_mode`` and the same safety check;
            its sha256 is computed and logged, and kept as ``model.source_sha256``, but there
            is no published hash to check it against, as a folder has).
        revision: Hub revision (branch, tag or commit) when ``name`` is ``hf://`` without one.
        cache_dir: Hub cache folder (defaults to the usual Hugging Face cache).

    Returns:
        The model.

    Raises:
        UnknownNameError: For an unknown registry name (the message lists valid ones; an
            architecture name gets a hint to use :func:`pneumozoo.build_model`).
        IntegrityError: If a file's sha256 does not match ``pneumozoo.json``.
        UnsafeModelError: If the model config would run code.
        DownloadError: If a Hub download fails.

    Example:
        >>> from pneumozoo import load_pretrained
        >>> model = load_pretrained()
        >>> model.class_names
        ('normal', 'pneumonia')
    """
    # lazy: loads Keras and its backend
    from pneumozoo.pretrained.folder import load_folder

    if name is None:
        name = DEFAULT_MODEL
    text = str(name)
    if text.startswith("hf://"):
        try:
            repo_id, rev = parse_hf_uri(text)
        except ValueError as e:  # a user mistake: one line, not a traceback
            raise PneumozooError(str(e)) from None
        folder = download_model(repo_id, revision=rev or revision, cache_dir=cache_dir)
        return load_folder(folder, source=text if rev or not revision else f"{text}@{revision}")
    path = Path(text).expanduser()
    if path.is_dir():
        return load_folder(path, source=str(path))
    if path.is_file() and path.suffix == ".keras":
        # lazy: loads Keras and its backend
        from pneumozoo.pretrained.folder import load_keras_file

        return load_keras_file(path)
    entry = _zoo().get(text)
    if entry is not None and entry.folder is not None:
        return load_folder(entry.folder, source="bundled")
    # lazy: loads Keras and its backend
    from pneumozoo.models import list_models

    if text in {m.name for m in list_models()}:
        raise PneumozooError(f"{text!r} is an architecture, not a pretrained model: build it with "
                             f"pneumozoo.build_model({text!r}), or load a pretrained model (see "
                             f"'pneumozoo models'): {', '.join(_pretrained_names())}")
    raise UnknownNameError("pretrained model (or folder, or hf://owner/repo)", text, _pretrained_names())

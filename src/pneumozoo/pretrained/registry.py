"""The pretrained registry: ``list_pretrained`` and ``load_pretrained``.

Entries are the model folders bundled in the package (``pneumozoo/pretrained/bundled/``);
each folder's ``pneumozoo.json`` is the entry, so the registry and the folders cannot drift.
Any ``hf://owner/repo[@revision]`` repo in the same format, or a local folder, loads too.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from pneumozoo.errors import PneumozooError, UnknownNameError
from pneumozoo.pretrained.config import CONFIG_FILE, PretrainedConfig

if TYPE_CHECKING:  # listing configs needs no TensorFlow; loading imports it (folder.py)
    import keras

__all__ = [
    "BUNDLED_DIR",
    "DEFAULT_MODEL",
    "get_pretrained_config",
    "list_pretrained",
    "load_pretrained",
    "parse_hf_uri",
]

#: Where the bundled model folders live inside the installed package.
BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
#: Name of the model :func:`load_pretrained` returns when given no name.
DEFAULT_MODEL = "xraynet-binary-v2"


@functools.lru_cache(maxsize=1)
def _entries() -> dict[str, tuple[PretrainedConfig, Path]]:
    out: dict[str, tuple[PretrainedConfig, Path]] = {}
    if BUNDLED_DIR.is_dir():
        for folder in sorted(BUNDLED_DIR.iterdir()):
            if (folder / CONFIG_FILE).is_file():
                cfg = PretrainedConfig.read(folder, source="bundled")
                out[cfg.name] = (cfg, folder)
    return out


def list_pretrained(*, task: str | None = None, architecture: str | None = None) -> list[PretrainedConfig]:
    """Typed configs of every pretrained model, default first, optionally filtered.

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
    configs = [cfg for cfg, _ in _entries().values()]
    configs.sort(key=lambda c: (c.name != DEFAULT_MODEL, c.name))
    if task is not None:
        configs = [c for c in configs if c.task == task]
    if architecture is not None:
        configs = [c for c in configs if c.architecture == architecture]
    return configs


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
    try:
        return _entries()[name][0]
    except KeyError:
        raise UnknownNameError("pretrained model", name, list(_entries())) from None


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
    from pneumozoo.pretrained.folder import load_folder

    if name is None:
        name = DEFAULT_MODEL
    text = str(name)
    if text.startswith("hf://"):
        from pneumozoo.hub import download_model

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
        from pneumozoo.pretrained.folder import load_keras_file

        return load_keras_file(path)
    if text in _entries():
        _, folder = _entries()[text]
        return load_folder(folder, source="bundled")
    from pneumozoo.models import list_models

    if text in {m.name for m in list_models()}:
        raise PneumozooError(f"{text!r} is an architecture, not a pretrained model: build it with "
                             f"pneumozoo.build_model({text!r}), or load a pretrained model (see "
                             f"'pneumozoo models'): {', '.join(_entries())}")
    raise UnknownNameError("pretrained model (or folder, or hf://owner/repo)", text, list(_entries()))

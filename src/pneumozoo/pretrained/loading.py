"""Loading a pretrained model by zoo name, ``hf://`` repo, model folder or ``.keras`` file.

What the zoo has is :mod:`pneumozoo.zoo.registry`; this module fetches and loads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pneumozoo.errors import PneumozooError, UnknownNameError
from pneumozoo.hub import download_model
from pneumozoo.zoo.registry import DEFAULT_MODEL, ZooEntry, get_entry, list_models, list_pretrained

if TYPE_CHECKING:
    import keras

__all__ = ["load_pretrained", "parse_hf_uri"]


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
    are in its :class:`~pneumozoo.zoo.PretrainedConfig`
    (:func:`~pneumozoo.zoo.get_pretrained_config`).

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
    from pneumozoo.pretrained.folder import load_folder, load_keras_file

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
        return load_keras_file(path)
    try:
        entry: ZooEntry | None = get_entry(text)
    except UnknownNameError:
        entry = None
    if entry is not None and entry.folder is not None:
        return load_folder(entry.folder, source="bundled")
    names = [c.name for c in list_pretrained()]
    if text in {m.name for m in list_models()}:
        raise PneumozooError(f"{text!r} is an architecture, not a pretrained model: build it with "
                             f"pneumozoo.build_model({text!r}), or load a pretrained model (see "
                             f"'pneumozoo models'): {', '.join(names)}")
    raise UnknownNameError("pretrained model (or folder, or hf://owner/repo)", text, names)

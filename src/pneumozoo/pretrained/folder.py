"""Model folders in Keras's native Hub layout, plus ``pneumozoo.json`` and a model card.

::

    <name>/
      config.json        Keras model config      (keras.saving, zipped=False)
      metadata.json      Keras version, date
      model.weights.h5   weights (no optimizer)
      pneumozoo.json     provenance, metrics and sha256s (the settings are the model's own)
      README.md          model card with Hub metadata

Loading verifies every sha256 first, refuses configs that would run code (``Lambda`` layers,
objects outside Keras and pneumozoo), and keeps Keras ``safe_mode`` on.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import keras

import pneumozoo.zoo.schema as schema
from pneumozoo.errors import IntegrityError, ModelMetadataError, PneumozooError
from pneumozoo.models.classifier import PneumoniaClassifier
from pneumozoo.models.legacy import is_legacy, upgrade_legacy
from pneumozoo.pretrained.allowlist import check_keras_config
from pneumozoo.utils import default_mode, sha256_file
from pneumozoo.zoo.config import CONFIG_FILE, WEIGHT_FILES, PretrainedConfig

__all__ = [
    "check_config_safe",
    "load_folder",
    "load_model_file",
    "read_config_json",
    "save_folder",
    "stored_files",
    "verify_folder",
]

def check_config_safe(config: dict[str, Any], source: str) -> None:
    """Refuse a Keras model config that asks for anything outside pneumozoo's allow-list.

    See :mod:`pneumozoo.pretrained.allowlist`: only pneumozoo's registered classes, Keras
    built-in layers / activations / initializers / regularizers / constraints / dtype
    policies and built-in functions by name pass; resize layers must stay in 16..2048 px.

    Args:
        config: The parsed ``config.json`` of a Keras model.
        source: Where it comes from, for the error message.

    Raises:
        UnsafeModelError: For ``Lambda`` layers, serialized functions, or classes from
            modules other than Keras and pneumozoo.
        ModelMetadataError: For a resize size or a pneumozoo layer setting out of range.

    Example:
        >>> check_config_safe({"class_name": "Lambda", "config": {}}, "model/config.json")
        Traceback (most recent call last):
        ...
        pneumozoo.errors.UnsafeModelError: model/config.json: model config holds a Lambda layer (<root>); pneumozoo only loads models that run no stored code
    """
    check_keras_config(config, source)


def load_model_file(path: str | Path) -> keras.Model:
    """Load a ``.keras`` file or a Keras folder with ``safe_mode`` and the safety check.

    No sha256 check happens here (a bare Keras file has no published hashes); use
    :func:`load_folder` for pneumozoo model folders.

    Args:
        path: A ``.keras`` file or a folder saved with ``keras.saving.save_model(...,
            zipped=False)``.

    Returns:
        The uncompiled model.

    Raises:
        UnsafeModelError: If the config would run code.
        PneumozooError: If the file cannot be read as a Keras model.

    Example:
        >>> model = load_model_file("checkpoints/model.keras")  # doctest: +SKIP
    """
    path = Path(path)
    _check_keras_files(path)
    return _keras_load(path)


def _check_keras_files(path: Path) -> None:
    """Read a ``.keras`` file's or a Keras folder's config (bounded) and refuse it unless it
    passes the allow-list; a folder's ``metadata.json`` must be plain too."""
    limit = schema.MAX_KERAS_CONFIG_BYTES
    try:
        if path.is_dir():
            config = schema.read_json(path / "config.json", max_bytes=limit)
            if (path / "metadata.json").exists():
                _check_metadata(schema.read_json(path / "metadata.json", max_bytes=1 << 16),
                                str(path / "metadata.json"))
        else:
            with zipfile.ZipFile(path) as z:
                if z.getinfo("config.json").file_size > limit:  # a zip bomb stops here
                    raise ModelMetadataError(f"{path}!config.json", "",
                                                    f"is more than the {limit} bytes allowed")
                with z.open("config.json") as f:
                    raw = f.read(limit + 1)
            config = schema.loads_json(raw, f"{path}!config.json", max_bytes=limit)
    except (OSError, KeyError, zipfile.BadZipFile) as e:
        raise PneumozooError(f"{path}: not a Keras model ({type(e).__name__}: {e})") from None
    check_config_safe(config, str(path / "config.json") if path.is_dir() else str(path))


def _keras_load(path: Path) -> keras.Model:
    """``keras.saving.load_model`` with ``safe_mode``, once :func:`_check_keras_files` passed."""
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # Keras raises many types for a broken file
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise PneumozooError(f"{path}: cannot load model ({msg})") from None


def _check_metadata(data: Any, file: str) -> None:
    """``metadata.json`` (Keras version, date): a small object of plain strings."""
    if not isinstance(data, dict):
        raise ModelMetadataError(file, "", "must hold a JSON object")
    for key, value in data.items():
        if not isinstance(value, (str, int, float, bool)) and value is not None:
            raise ModelMetadataError(file, key, "must be a string or a number")


def stored_files(folder: str | Path) -> dict[str, str]:
    """The sha256s ``pneumozoo.json`` publishes, its own fields checked first.

    Args:
        folder: The model folder.

    Returns:
        File name -> sha256 hex digest (empty when the file lists none).

    Raises:
        ModelMetadataError: If ``pneumozoo.json`` is not bounded JSON or a field it holds
            breaks its rule (one line naming the file and the field).
    """
    path = Path(folder) / CONFIG_FILE
    data = schema.read_json(path, max_bytes=schema.MAX_CONFIG_BYTES)
    return dict(schema.validate(data, str(path), partial=True).get("files", {}))


def verify_folder(folder: str | Path, config: PretrainedConfig | None = None) -> None:
    """Check every file's sha256 against the published ones.

    Args:
        folder: The model folder.
        config: Its config (``config.files`` maps file names to sha256 hex digests); by
            default the hashes are read from the folder's ``pneumozoo.json``
            (:func:`stored_files`), so nothing else of the folder is read before its hashes
            are checked.

    Raises:
        IntegrityError: On a missing file, a missing hash, or a mismatch.

    Example:
        >>> verify_folder("models/my-cnn4")  # doctest: +SKIP
    """
    folder = Path(folder)
    published = config.files if config is not None else stored_files(folder)
    for name in WEIGHT_FILES:
        expected = published.get(name)
        path = folder / name
        if not expected:
            raise IntegrityError(f"{folder}: {CONFIG_FILE} has no sha256 for {name}")
        if not path.is_file():
            raise IntegrityError(f"{path}: missing")
        actual = sha256_file(path)
        if actual != expected:
            raise IntegrityError(f"{path}: sha256 {actual[:12]}... does not match the published "
                                 f"{expected[:12]}...; refusing to load (corrupt or tampered file)")


def load_folder(folder: str | Path, *, source: str = "") -> keras.Model:
    """Load a pneumozoo model folder: verify sha256s, check safety, load with ``safe_mode``.

    The model carries its settings itself (``model.class_names``, ``model.threshold``, its
    domain guard); :class:`PretrainedConfig` (``PretrainedConfig.read(folder)``) keeps the
    provenance and metrics. A folder saved by pneumozoo 0.1 is upgraded on the fly.
    :func:`pneumozoo.load_pretrained` calls this for every kind of source.

    Args:
        folder: The model folder.
        source: What to record as ``config.source`` (default: the folder path).

    Returns:
        The uncompiled ``keras.Model``.

    Raises:
        PneumozooError: If the folder has no readable ``pneumozoo.json`` or no Keras model.
        IntegrityError: If a file does not match its sha256.
        UnsafeModelError: If the model config would run code.

    Example:
        >>> model = load_folder("runs/xraynet/model")  # doctest: +SKIP
        >>> model.threshold  # doctest: +SKIP
    """
    folder = Path(folder)
    if not (folder / CONFIG_FILE).exists():
        _no_config(folder)
    # A hostile folder meets the checks in this order, before anything trusts what it reads:
    # pneumozoo.json's own fields, every sha256, the Keras files' checks; only then are the
    # model's settings read from its config (PretrainedConfig.read) and Keras loads it.
    verify_folder(folder)
    _check_keras_files(folder)
    config = PretrainedConfig.read(folder, source=source or str(folder))
    model = _keras_load(folder)
    _check_outputs(model, config, folder)
    return _as_current(model, config, folder)


def _no_config(folder: Path) -> None:
    """A folder without ``pneumozoo.json``: say what it is and how to make a release folder."""
    keras_files = sorted(p.name for p in folder.glob("*.keras"))
    how = ("make a release folder with: from pneumozoo.pretrained import PretrainedConfig, "
           "save_folder; save_folder(model, 'DIR', PretrainedConfig.from_model(model, "
           "name='NAME'))")
    if keras_files:
        raise PneumozooError(f"{folder}: not a pneumozoo model folder (no {CONFIG_FILE}); it "
                             f"holds {', '.join(keras_files)}: load that file itself "
                             f"(load_pretrained('{folder / keras_files[0]}')), or {how}")
    raise PneumozooError(f"{folder}: not a pneumozoo model folder (no {CONFIG_FILE}); {how}")


def load_keras_file(path: str | Path) -> keras.Model:
    """Load a pneumozoo model saved with ``model.save("mine.keras")``.

    The model carries its settings (class names, threshold, guard) in its Keras config, so
    the file is enough: it is loaded with ``safe_mode`` and the same safety check as a
    folder. A bare file has no published sha256 to verify; its sha256 is computed, logged
    (logger ``pneumozoo.pretrained``) and kept as ``model.source_sha256``, so a run can
    record exactly which weights it used.

    Args:
        path: The ``.keras`` file.

    Returns:
        The uncompiled :class:`~pneumozoo.models.PneumoniaClassifier`.

    Raises:
        UnsafeModelError: If the config would run code.
        PneumozooError: If the file is not a Keras model or not a pneumozoo model.

    Example:
        >>> model = load_keras_file("mine.keras")  # doctest: +SKIP
        >>> model.source_sha256  # doctest: +SKIP
    """
    path = Path(path)
    digest = sha256_file(path)
    model = load_model_file(path)
    if not isinstance(model, PneumoniaClassifier):
        raise PneumozooError(f"{path}: not a pneumozoo model (its Keras config holds a "
                             f"{type(model).__name__}, not a PneumoniaClassifier); build one "
                             "with pneumozoo.build_model")
    model.source_sha256 = digest
    logging.getLogger("pneumozoo.pretrained").info("loaded %s (sha256 %s; a bare .keras file "
                                                   "has no published hash to check)", path, digest)
    return model


def _check_outputs(model: keras.Model, config: PretrainedConfig, folder: Path) -> None:
    """Refuse a folder whose ``class_names`` do not match the model's outputs."""
    outputs = getattr(model, "outputs", None) or []
    width = outputs[0].shape[-1] if len(outputs) == 1 and outputs[0].shape else None
    if width != len(config.class_names):
        got = f"{width} outputs" if len(outputs) == 1 else f"{len(outputs)} output tensors"
        # the names come from the model's head, or from pneumozoo.json for a 0.1 model
        where = "config.json" if isinstance(model, PneumoniaClassifier) else CONFIG_FILE
        raise ModelMetadataError(str(folder / where), "class_names",
                                 f"lists {len(config.class_names)} classes but the model has "
                                 f"{got}")


def _as_current(model: keras.Model, config: PretrainedConfig, folder: Path) -> keras.Model:
    """The loaded model as a PneumoniaClassifier (a pneumozoo 0.1 model is upgraded)."""
    if is_legacy(model):
        return upgrade_legacy(model, architecture=config.architecture, threshold=config.threshold)
    if not isinstance(model, PneumoniaClassifier):
        raise PneumozooError(f"{folder}: not a pneumozoo model (its Keras config holds a "
                             f"{type(model).__name__}, not a PneumoniaClassifier)")
    return model  # its settings are the config's: PretrainedConfig.read took them from it


def _inference_copy(model: keras.Model) -> keras.Model:
    """The model without optimizer state (smaller, and nothing a user does not need)."""
    clone = type(model).from_config(model.get_config())
    clone.set_weights(model.get_weights())
    return clone


def save_folder(model: keras.Model, folder: str | Path, config: PretrainedConfig,
                card: str | None = None) -> PretrainedConfig:
    """Write ``model`` and its config as a model folder (atomically: temp folder, rename).

    The sha256 of each Keras file is computed and stored in ``pneumozoo.json``. The model is
    saved without optimizer state; an existing folder is replaced.

    Args:
        model: The model to save (any zoo model).
        folder: Where the folder goes; its parent is created.
        config: Its config; ``files`` and ``params`` are filled in here.
        card: Text of the ``README.md`` model card (see
            :func:`pneumozoo.zoo.card.model_card`), or None for no card.

    Returns:
        The config as written, with ``files`` filled in.

    Example:
        >>> cfg = PretrainedConfig(name="mine", architecture="cnn4", task="binary",
        ...                        class_names=("normal", "pneumonia"), input_size=64)
        >>> written = save_folder(build_model("cnn4", input_size=64), "models/mine", cfg)  # doctest: +SKIP
        >>> sorted(written.files)  # doctest: +SKIP
        ['config.json', 'metadata.json', 'model.weights.h5']
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        keras.saving.save_model(_inference_copy(model), tmp, zipped=False)
        assets = tmp / "assets"
        if assets.is_dir() and not any(assets.iterdir()):
            assets.rmdir()  # the Hub keeps no empty folders; keep local and remote identical
        files = {name: sha256_file(tmp / name) for name in WEIGHT_FILES}

        if isinstance(model, PneumoniaClassifier):  # the model's own settings are the truth
            config = config.with_settings_of(model)
        written = replace(config, files=files, params=_network_params(model))
        written.write(tmp)
        if card is not None:
            (tmp / "README.md").write_text(card, encoding="utf-8")

        tmp.chmod(default_mode(directory=True))  # mkdtemp's folder is private
        for f in tmp.iterdir():
            if f.is_file():
                f.chmod(default_mode())
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return written


def _network_params(model: keras.Model) -> int:
    """Parameters of the network itself: the head's guard arrays are fitted statistics."""
    total = int(model.count_params())
    if isinstance(model, PneumoniaClassifier):
        total -= sum(int(w.size) for w in model.head.get_weights())
    return total


def read_config_json(folder: str | Path) -> dict[str, Any]:
    """The raw ``pneumozoo.json`` of a folder, as a dict."""
    return dict(json.loads((Path(folder) / CONFIG_FILE).read_text(encoding="utf-8")))


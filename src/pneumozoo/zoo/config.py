"""The typed config every pretrained model carries (``pneumozoo.json`` in its folder).

One store per setting: how a model decides (task, class names, input size, threshold,
temperature, colour policy, normalisation) lives in the model itself, in its Keras
``config.json``; ``pneumozoo.json`` keeps only provenance, metrics and hashes. Reading a folder
joins the two, so a :class:`PretrainedConfig` still shows the settings without loading Keras.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import pneumozoo.zoo.schema as schema
from pneumozoo.errors import ModelMetadataError, PneumozooError
from pneumozoo.rules import task_of_names
from pneumozoo.utils import atomic_write_json

__all__ = ["CONFIG_FILE", "MODEL_SETTINGS", "WEIGHT_FILES", "PretrainedConfig", "model_settings",
           "settings_of"]

#: Name of the pneumozoo config inside a model folder.
CONFIG_FILE = "pneumozoo.json"
#: Files of Keras's native folder format, all checked against their sha256.
WEIGHT_FILES = ("config.json", "metadata.json", "model.weights.h5")
#: Fields read off the model (its Keras config), never stored in ``pneumozoo.json``.
MODEL_SETTINGS = ("task", "class_names", "input_size", "threshold", "preprocessing")

_HEAD = "pneumozoo>ClassifierHead"
_PREPROCESSOR = "pneumozoo>XrayPreprocessor"


def _settings(head: Mapping[str, Any], preprocessor: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`MODEL_SETTINGS` of a model, from its head's and preprocessor's configs."""
    class_names = tuple(head["class_names"])
    size = preprocessor["input_size"]
    return {
        "task": task_of_names(class_names),
        "class_names": class_names,
        "input_size": size,
        "threshold": head["threshold"],
        "preprocessing": {
            "input": "grey or RGB, uint8 or float, 0..255, any size",
            "color": preprocessor["color"],
            "resize": f"bilinear with antialiasing to {size}x{size}, rounded to whole pixel "
                      "values, inside the model",
            "normalization": f"{preprocessor['normalization']}, inside the model",
            "temperature": round(float(head["temperature"]), 6),
            "reader": "pneumozoo.read_xray (EXIF orientation, 16-bit, palette, RGBA, DICOM)",
        },
    }


def settings_of(model: Any) -> dict[str, Any]:
    """The :data:`MODEL_SETTINGS` of a live model (what :func:`model_settings` reads once it is
    saved).

    Args:
        model: A :class:`~pneumozoo.models.PneumoniaClassifier`.

    Returns:
        ``task``, ``class_names``, ``input_size``, ``threshold`` and ``preprocessing``.

    Raises:
        PneumozooError: If ``model`` is not a pneumozoo model.
    """
    head, preprocessor = getattr(model, "head", None), getattr(model, "preprocessor", None)
    if not (hasattr(head, "get_config") and hasattr(preprocessor, "get_config")):
        what = getattr(model, "name", None) or type(model).__name__
        raise PneumozooError(f"{what!r} is not a pneumozoo model (it has no head and "
                             "preprocessor); build one with pneumozoo.build_model or load one "
                             "with pneumozoo.load_pretrained")
    return _settings(head.get_config(), preprocessor.get_config())  # type: ignore[union-attr]


def _same(stored: Any, setting: Any) -> bool:
    """A setting an older ``pneumozoo.json`` repeats agrees with the model's (floats to 1e-6)."""
    if isinstance(setting, float):
        return abs(float(stored) - setting) <= 1e-6
    return bool(stored == setting)


def _layers(node: Any) -> Iterator[Mapping[str, Any]]:
    """Every serialized layer in a Keras config, nested models included."""
    if isinstance(node, Mapping):
        if isinstance(node.get("registered_name"), str):
            yield node
        for value in node.values():
            yield from _layers(value)
    elif isinstance(node, list):
        for value in node:
            yield from _layers(value)


def model_settings(folder: str | Path) -> dict[str, Any] | None:
    """The settings a saved model holds, read from its ``config.json`` without Keras.

    Args:
        folder: A model folder.

    Returns:
        The :data:`MODEL_SETTINGS` (checked by the schema), or None when the folder has no
        ``config.json`` or the model has no pneumozoo head (a pneumozoo 0.1 model, whose
        settings are still in ``pneumozoo.json``).

    Raises:
        ModelMetadataError: If ``config.json`` is not bounded JSON, holds more than one head,
            or a setting breaks its rule (one line naming the file and the setting).
    """
    path = Path(folder) / "config.json"
    if not path.is_file():
        return None
    config = schema.read_json(path, max_bytes=schema.MAX_KERAS_CONFIG_BYTES)
    found: dict[str, list[Mapping[str, Any]]] = {_HEAD: [], _PREPROCESSOR: []}
    for layer in _layers(config):
        if layer["registered_name"] in found and isinstance(layer.get("config"), Mapping):
            found[layer["registered_name"]].append(layer["config"])
    heads, preprocessors = found[_HEAD], found[_PREPROCESSOR]
    if not heads or not preprocessors:
        return None
    if len(heads) > 1 or len(preprocessors) > 1:
        raise ModelMetadataError(str(path), "", "holds more than one pneumozoo head or "
                                 "preprocessor; a pneumozoo model has one of each")
    try:
        settings = _settings(heads[0], preprocessors[0])
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise ModelMetadataError(str(path), "", f"the model's head or preprocessor lacks a "
                                 f"valid setting ({type(e).__name__}: {e})") from None
    return schema.validate(settings, str(path), partial=True)


@dataclass(frozen=True)
class PretrainedConfig:
    """Everything needed to use one pretrained model correctly.

    Attributes:
        name: Registry name, e.g. ``"xraynet-binary"``.
        architecture: Architecture in :func:`pneumozoo.list_models`.
        task: ``"binary"`` or ``"3class"``.
        class_names: Output names in order (index 0 is ``normal``).
        input_size: Square side the model resizes inputs to.
        threshold: Decision threshold on P(pneumonia) chosen on validation data.
        metrics: Test-split metrics measured by the recipe (with 95% CIs where known).
        preprocessing: The input contract (pixel range, colour, resize filter,
            normalisation); all of it happens inside the model.
        training: Data, split and recipe the weights come from.
        files: sha256 of each file of the folder (``config.json``, ``metadata.json``,
            ``model.weights.h5``), checked before loading.
        description: One line on the model.
        source: Where the folder comes from: ``bundled``, a local path or ``hf://repo@rev``
            (filled in at load time; not stored).
        license: Licence of the weights.
        params: Number of parameters (filled in by ``save_folder``).

    Example:
        >>> cfg = PretrainedConfig(name="mine", architecture="cnn4", task="binary",
        ...                        class_names=("normal", "pneumonia"), input_size=64)
        >>> PretrainedConfig.from_dict(cfg.to_dict()) == cfg
        True
    """

    name: str
    architecture: str
    task: str
    class_names: tuple[str, ...]
    input_size: int
    threshold: float = 0.5
    metrics: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    description: str = ""
    source: str = ""
    license: str = "cc-by-4.0"
    params: int = 0

    def __post_init__(self) -> None:
        """Check every field against :data:`pneumozoo.zoo.schema.FIELDS` (and
        normalise: ``class_names`` a tuple, numbers as ``int``/``float``).

        Raises:
            ModelMetadataError: For the first field that breaks its rule.
        """
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, value in schema.validate(values, "PretrainedConfig").items():
            object.__setattr__(self, key, value)

    @classmethod
    def from_model(cls, model: Any, *, name: str, **extra: Any) -> PretrainedConfig:
        """A config whose settings are read off a pneumozoo model (the single source of them).

        Args:
            model: A :class:`~pneumozoo.models.PneumoniaClassifier`.
            name: The release name.
            **extra: Any other field (``metrics``, ``training``, ``description``...).

        Returns:
            The config: architecture, task, class names, input size and threshold from the
            model, ``preprocessing`` from its preprocessor and head (the same reading as
            :func:`model_settings` makes of the saved model).
        """
        settings = settings_of(model)  # refuses anything but a pneumozoo model
        return cls(name=name, **{"architecture": model.name, **extra, **settings})

    def with_settings_of(self, model: Any) -> PretrainedConfig:
        """This config with the settings (:data:`MODEL_SETTINGS`) read off ``model``.

        Args:
            model: A :class:`~pneumozoo.models.PneumoniaClassifier`.

        Returns:
            A new config; what ``PretrainedConfig.read`` gives once the model is saved beside it.
        """
        return replace(self, **settings_of(model))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``pneumozoo models --json`` prints)."""
        out = asdict(self)
        out["class_names"] = list(self.class_names)
        return out

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "", file: str = CONFIG_FILE) -> PretrainedConfig:
        """Build from a parsed ``pneumozoo.json``, checked against the schema.

        Unknown keys are ignored (newer configs stay loadable); every known one must pass
        :data:`pneumozoo.zoo.schema.FIELDS`.

        Args:
            data: The parsed ``pneumozoo.json``.
            source: Value for ``source`` (where the folder came from).
            file: The file it was read from, named in error messages.

        Returns:
            The config.

        Raises:
            ModelMetadataError: If ``data`` is not an object, a required field is missing or
                a field breaks its rule (one line naming ``file`` and the field).
        """
        kwargs = schema.validate(data, file)
        if source:
            kwargs["source"] = source
        try:
            return cls(**kwargs)
        except ModelMetadataError as e:  # only `source`: the file's fields passed above
            raise ModelMetadataError(file, e.field, e.reason) from None

    @classmethod
    def read(cls, folder: str | Path, *, source: str = "") -> PretrainedConfig:
        """Read ``pneumozoo.json`` from a model folder.

        Args:
            folder: The model folder.
            source: Value for ``source`` (default: the folder path).

        Returns:
            The config.

        The model's settings (:data:`MODEL_SETTINGS`) come from its ``config.json``; a
        ``pneumozoo.json`` written before they moved there must agree with it.

        Raises:
            PneumozooError: If the file is missing.
            ModelMetadataError: If it is not a small UTF-8 JSON object whose fields pass the
                schema, or it disagrees with the model (one line naming the file and the field).
        """
        path = Path(folder) / CONFIG_FILE
        try:
            data = schema.read_json(path, max_bytes=schema.MAX_CONFIG_BYTES)
        except FileNotFoundError:
            raise PneumozooError(f"{folder}: not a pneumozoo model folder (no {CONFIG_FILE})") from None
        settings = model_settings(folder)
        if settings is not None and isinstance(data, Mapping):
            stored = schema.validate(data, str(path), partial=True)
            for key in ("task", "class_names", "input_size", "threshold"):
                if key in stored and not _same(stored[key], settings[key]):  # written before 0.4
                    raise ModelMetadataError(str(path), key, f"is {stored[key]!r} but the model "
                                             f"in config.json has {settings[key]!r}")
            data = {**data, **settings}
        return cls.from_dict(data, source=source or str(folder), file=str(path))

    def write(self, folder: str | Path) -> None:
        """Write ``pneumozoo.json`` into ``folder``: provenance, metrics and hashes.

        ``source`` is not stored, nor are the model's settings (:data:`MODEL_SETTINGS`) when
        the folder's ``config.json`` holds a pneumozoo model, whose head and preprocessor are
        their one store; a model without them (a pneumozoo 0.1 model) keeps them here.
        Write the Keras files first (:func:`pneumozoo.pretrained.save_folder` does).

        Args:
            folder: The model folder (written atomically).
        """
        data = self.to_dict()
        in_model = model_settings(folder) is not None
        for key in ("source", *(MODEL_SETTINGS if in_model else ())):
            data.pop(key, None)
        atomic_write_json(Path(folder) / CONFIG_FILE, data)

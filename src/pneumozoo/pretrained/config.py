"""The typed config every pretrained model carries (``pneumozoo.json`` in its folder)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pneumozoo.errors import ModelMetadataError, PneumozooError
from pneumozoo.pretrained import schema

__all__ = ["CONFIG_FILE", "WEIGHT_FILES", "PretrainedConfig"]

#: Name of the pneumozoo config inside a model folder.
CONFIG_FILE = "pneumozoo.json"
#: Files of Keras's native folder format, all checked against their sha256.
WEIGHT_FILES = ("config.json", "metadata.json", "model.weights.h5")


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
        """Check every field against :data:`pneumozoo.pretrained.schema.FIELDS` (and
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
            model, ``preprocessing`` from its preprocessor and head.
        """
        from pneumozoo.models.classifier import as_classifier

        clf = as_classifier(model)
        pre = clf.preprocessor
        preprocessing = {
            "input": "grey or RGB, uint8 or float, 0..255, any size",
            "color": pre.color,
            "resize": f"bilinear with antialiasing to {pre.input_size}x{pre.input_size}, "
                      "rounded to whole pixel values, inside the model",
            "normalization": f"{pre.normalization}, inside the model",
            "temperature": round(float(clf.temperature), 6),
            "reader": "pneumozoo.read_xray (EXIF orientation, 16-bit, palette, RGBA, DICOM)",
        }
        return cls(name=name, architecture=extra.pop("architecture", clf.name), task=clf.task,
                   class_names=tuple(clf.class_names), input_size=pre.input_size,
                   threshold=float(clf.threshold), preprocessing=preprocessing, **extra)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``pneumozoo models --json`` prints)."""
        out = asdict(self)
        out["class_names"] = list(self.class_names)
        return out

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "", file: str = CONFIG_FILE) -> PretrainedConfig:
        """Build from a parsed ``pneumozoo.json``, checked against the schema.

        Unknown keys are ignored (newer configs stay loadable); every known one must pass
        :data:`pneumozoo.pretrained.schema.FIELDS`.

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

        Raises:
            PneumozooError: If the file is missing.
            ModelMetadataError: If it is not a small UTF-8 JSON object whose fields pass the
                schema (one line naming the file and the field).
        """
        path = Path(folder) / CONFIG_FILE
        try:
            data = schema.read_json(path, max_bytes=schema.MAX_CONFIG_BYTES)
        except FileNotFoundError:
            raise PneumozooError(f"{folder}: not a pneumozoo model folder (no {CONFIG_FILE})") from None
        return cls.from_dict(data, source=source or str(folder), file=str(path))

    def write(self, folder: str | Path) -> None:
        """Write ``pneumozoo.json`` into ``folder`` (``source`` is not stored).

        Args:
            folder: The model folder (written atomically).
        """
        from pneumozoo.utils import atomic_write_json

        data = self.to_dict()
        data.pop("source", None)
        atomic_write_json(Path(folder) / CONFIG_FILE, data)

"""The typed config every pretrained model carries (``pneumozoo.json`` in its folder)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pneumozoo.errors import PneumozooError

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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``pneumozoo models --json`` prints)."""
        out = asdict(self)
        out["class_names"] = list(self.class_names)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "") -> PretrainedConfig:
        """Build from a dict, ignoring unknown keys (newer configs stay loadable).

        Args:
            data: The parsed ``pneumozoo.json``.
            source: Value for ``source`` (where the folder came from).

        Returns:
            The config.

        Raises:
            PneumozooError: If a required field is missing.
        """
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["class_names"] = tuple(kwargs.get("class_names", ()))
        if source:
            kwargs["source"] = source
        try:
            return cls(**kwargs)
        except TypeError as e:
            raise PneumozooError(f"invalid {CONFIG_FILE}: {e}") from None

    @classmethod
    def read(cls, folder: str | Path, *, source: str = "") -> PretrainedConfig:
        """Read ``pneumozoo.json`` from a model folder.

        Args:
            folder: The model folder.
            source: Value for ``source`` (default: the folder path).

        Returns:
            The config.

        Raises:
            PneumozooError: If the file is missing or not valid JSON.
        """
        path = Path(folder) / CONFIG_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PneumozooError(f"{folder}: not a pneumozoo model folder (no {CONFIG_FILE})") from None
        except (OSError, json.JSONDecodeError) as e:
            raise PneumozooError(f"{path}: cannot read ({e})") from None
        return cls.from_dict(data, source=source or str(folder))

    def write(self, folder: str | Path) -> None:
        """Write ``pneumozoo.json`` into ``folder`` (``source`` is not stored).

        Args:
            folder: The model folder (written atomically).
        """
        from pneumozoo.utils import atomic_write_json

        data = self.to_dict()
        data.pop("source", None)
        atomic_write_json(Path(folder) / CONFIG_FILE, data)

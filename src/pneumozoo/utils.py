"""Small shared helpers: atomic writes and hashing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "atomic_write_json", "quiet_tensorflow", "sha256_file"]


def default_mode(directory: bool = False) -> int:
    """The mode a plain ``open``/``mkdir`` would give under the current umask (temporary
    files and folders are created private; a finished file should not stay so)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    A crash or kill before the rename leaves ``target`` untouched (the old version, or none),
    never half-written. ``suffix`` keeps the extension libraries check (``.weights.h5``).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    if suffix:  # some writers insist on the file name ending in their extension
        tmp_path.unlink()
        tmp_path = tmp_path.with_name(tmp_path.name[: -len(".tmp")])
    try:
        yield tmp_path
        if tmp_path.is_file():
            tmp_path.chmod(default_mode())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_json(target: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def json_safe(value: Any) -> Any:
    """``value`` ready for strict JSON: every non-finite float (NaN, inf) becomes ``None``,
    NumPy scalars become Python numbers, tuples become lists (recursively).

    Example:
        >>> json_safe({"auc": float("nan"), "n": (1, 2.5)})
        {'auc': None, 'n': [1, 2.5]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:
        return json_safe(value.item())  # NumPy scalars
    return value


def quiet_tensorflow(level: str | None = None) -> None:
    """Set TensorFlow's C++ log level before TensorFlow is imported.

    Library use (``level=None``) keeps a level the user chose and otherwise hides info and
    warning lines. The command line passes ``level="3"`` (unless ``--verbose``) and also runs
    its one ``import keras`` with stderr captured (``pneumozoo.cli``), which hides the lines
    TensorFlow prints before its log level applies. There is deliberately no import hook: a
    meta-path finder runs inside every import of the process, and one that imported
    ``importlib.util`` there recursed forever in a fresh virtual environment (issue 21).

    Args:
        level: Value for ``TF_CPP_MIN_LOG_LEVEL`` (``"3"``: errors hidden too); ``None``
            keeps the user's and defaults to ``"2"``.
    """
    if level is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = level
    if level == "3":  # TensorFlow's Python warnings too (e.g. tf.function retracing notes)
        logging.getLogger("tensorflow").setLevel(logging.ERROR)

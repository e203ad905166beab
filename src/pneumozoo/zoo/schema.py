"""The one schema of ``pneumozoo.json``, and the bounded JSON reader of every model file.

Every field a model folder declares is checked here, by type and range, before anything
uses it; :class:`~pneumozoo.zoo.config.PretrainedConfig` runs these checks when it is
built (from a file or in code), so no reader can skip them. A bad field is refused with a
:class:`~pneumozoo.errors.ModelMetadataError` whose one-line message names the file, the field
and the rule, e.g. ``m/pneumozoo.json: field 'threshold' must be a finite number in [0, 1],
got 7``.

The same field checks serve the Keras ``config.json`` (see
:mod:`pneumozoo.pretrained.allowlist`): resize sizes, and the class names, temperature and
threshold a pneumozoo layer carries.
"""

from __future__ import annotations

import json
import numbers
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pneumozoo.errors import ModelMetadataError
from pneumozoo.rules import (
    INPUT_SIZE_RANGE,
    INPUT_SIZE_RULE,
    TASK_CLASSES,
    TEMPERATURE_RANGE,
    TEMPERATURE_RULE,
    THRESHOLD_RULE,
    is_input_size,
    is_temperature,
    is_threshold,
)

__all__ = [
    "FIELDS",
    "INPUT_SIZE_RANGE",
    "MAX_CONFIG_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_KERAS_CONFIG_BYTES",
    "TASKS",
    "TEMPERATURE_RANGE",
    "Invalid",
    "check_class_names",
    "check_file_name",
    "check_input_size",
    "check_temperature",
    "check_threshold",
    "loads_json",
    "read_json",
    "validate",
]

#: Largest ``pneumozoo.json`` read (bytes); the bundled ones are under 10 KB.
MAX_CONFIG_BYTES = 1 << 20
#: Largest Keras ``config.json`` read (bytes); the bundled ones are under 50 KB.
MAX_KERAS_CONFIG_BYTES = 32 << 20
#: Deepest nesting of objects and arrays accepted in any model JSON file.
MAX_JSON_DEPTH = 64
#: Tasks and the number of class names each has (the rule lives in :mod:`pneumozoo.rules`).
TASKS = TASK_CLASSES

_HEX64 = re.compile(r"[0-9a-f]{64}")
_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
_FORBIDDEN_IN_NAMES = set('/\\:*?"<>|\0')


class Invalid(ValueError):
    """A value breaks a field's rule (the message is the rule, without file or field)."""


# --- field checks ------------------------------------------------------------------------
def _text(value: Any, *, limit: int, what: str = "a string") -> str:
    if not isinstance(value, str):
        raise Invalid(f"must be {what}, got {_show(value)}")
    if len(value) > limit:
        raise Invalid(f"must be at most {limit} characters, got {len(value)}")
    if not value.isprintable():
        raise Invalid(f"must hold no control characters, got {_show(value)}")
    return value


def _show(value: Any) -> str:
    """A short repr of a value for a message (never a megabyte of JSON)."""
    text = repr(value)
    kind = type(value).__name__
    kind = {"str": "string", "dict": "object", "list": "list", "tuple": "list",
            "NoneType": "null", "bool": "boolean"}.get(kind, kind)
    if len(text) > 60:
        text = text[:57] + "..."
    return text if kind in ("string", "int", "float") else f"{kind} {text}"


def check_threshold(value: Any) -> float:
    """A decision threshold (:func:`pneumozoo.rules.is_threshold`)."""
    if not is_threshold(value):
        raise Invalid(f"must be {THRESHOLD_RULE}, got {_show(value)}")
    return float(value)


def check_temperature(value: Any) -> float:
    """A softmax temperature (:func:`pneumozoo.rules.is_temperature`)."""
    if not is_temperature(value):
        raise Invalid(f"must be {TEMPERATURE_RULE}, got {_show(value)}")
    return float(value)


def check_input_size(value: Any) -> int:
    """A side in pixels (:func:`pneumozoo.rules.is_input_size`)."""
    if not is_input_size(value):
        raise Invalid(f"must be {INPUT_SIZE_RULE}, got {_show(value)}")
    return int(value)


def check_class_names(value: Any) -> tuple[str, ...]:
    """2 or 3 unique, non-empty class names (strings of at most 64 characters)."""
    if not isinstance(value, (list, tuple)):
        raise Invalid(f"must be a list of 2 or 3 names, got {_show(value)}")
    if not 2 <= len(value) <= 3:
        raise Invalid(f"must list 2 or 3 names, got {len(value)}")
    names = []
    for i, name in enumerate(value):
        try:
            text = _text(name, limit=64)
        except Invalid as e:
            raise Invalid(f"[{i}] {e}") from None
        if not text.strip():
            raise Invalid(f"[{i}] must be a non-empty name, got {_show(name)}")
        names.append(text)
    if len(set(names)) != len(names):
        raise Invalid(f"must be unique, got {names}")
    return tuple(names)


def check_file_name(value: Any) -> str:
    """A plain file name: no path separator, no ``..``, no control or reserved characters."""
    text = _text(value, limit=255, what="a file name")
    if not text or text in (".", "..") or text.startswith(".") or set(text) & _FORBIDDEN_IN_NAMES \
            or text != text.strip():
        raise Invalid(f"must be a plain file name (no path, no leading dot), got {_show(value)}")
    return text


def _name(value: Any) -> str:
    text = _text(value, limit=128)
    if not text.strip() or set(text) & _FORBIDDEN_IN_NAMES or text in (".", ".."):
        raise Invalid(f"must be a non-empty name without path characters, got {_show(value)}")
    return text


def _identifier(value: Any) -> str:
    if not isinstance(value, str) or not _IDENT.fullmatch(value):
        raise Invalid(f"must be an architecture name (letters, digits, '.-_+'), got {_show(value)}")
    return value


def _task(value: Any) -> str:
    if not isinstance(value, str) or value not in TASKS:
        raise Invalid(f"must be one of {', '.join(TASKS)}, got {_show(value)}")
    return value


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise Invalid(f"must be a JSON object, got {_show(value)}")
    return dict(value)


def _metrics(value: Any) -> dict[str, Any]:
    out = _object(value)
    for split, entry in out.items():
        if isinstance(entry, Mapping) and "threshold" in entry:
            try:
                check_threshold(entry["threshold"])
            except Invalid as e:
                raise Invalid(f"[{split!r}]['threshold'] {e}") from None
    return out


def _preprocessing(value: Any) -> dict[str, Any]:
    out = _object(value)
    if "temperature" in out:
        try:
            check_temperature(out["temperature"])
        except Invalid as e:
            raise Invalid(f"['temperature'] {e}") from None
    return out


def _files(value: Any) -> dict[str, str]:
    out = _object(value)
    for name, digest in out.items():
        try:
            check_file_name(name)
        except Invalid as e:
            raise Invalid(f"key {e}") from None
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise Invalid(f"[{name!r}] must be a sha256 (64 lower-case hex digits), got {_show(digest)}")
    return out


def _description(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 4096:
        raise Invalid(f"must be a string of at most 4096 characters, got {_show(value)}")
    return value


def _params(value: Any) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) \
            or not 0 <= int(value) <= 10**12:
        raise Invalid(f"must be an integer in 0..10^12, got {_show(value)}")
    return int(value)


@dataclass(frozen=True)
class Field:
    """One field of ``pneumozoo.json``: its check (returns the normalised value) and whether
    a file must hold it."""

    check: Callable[[Any], Any]
    required: bool = False


#: The schema: every field ``pneumozoo.json`` may declare. Unknown keys are ignored (a newer
#: pneumozoo may add fields), but the file as a whole is bounded in size and depth.
FIELDS: dict[str, Field] = {
    "name": Field(_name, required=True),
    "architecture": Field(_identifier, required=True),
    "task": Field(_task, required=True),
    "class_names": Field(check_class_names, required=True),
    "input_size": Field(check_input_size, required=True),
    "threshold": Field(check_threshold),
    "metrics": Field(_metrics),
    "preprocessing": Field(_preprocessing),
    "training": Field(_object),
    "files": Field(_files),
    "description": Field(_description),
    "source": Field(lambda v: _text(v, limit=2048)),
    "license": Field(lambda v: _text(v, limit=128)),
    "params": Field(_params),
}


def validate(data: Any, file: str, *, partial: bool = False) -> dict[str, Any]:
    """Check a parsed ``pneumozoo.json`` against :data:`FIELDS`.

    Args:
        data: The parsed JSON (or a dataclass's fields, with ``partial=True``).
        file: The file, named in error messages.
        partial: Skip the "required field" check (the dataclass has defaults).

    Returns:
        The known fields, normalised (``class_names`` a tuple, numbers as ``int``/``float``).

    Raises:
        ModelMetadataError: On the first field that breaks its rule (message names
            ``file`` and the field).

    Example:
        >>> validate({"name": "m", "architecture": "cnn4", "task": "binary",
        ...           "class_names": ["normal", "pneumonia"], "input_size": 7}, "m.json")
        Traceback (most recent call last):
        ...
        pneumozoo.errors.ModelMetadataError: m.json: field 'input_size' must be an integer in 16..2048, got 7
    """
    if not isinstance(data, Mapping):
        raise ModelMetadataError(file, "", f"must hold a JSON object, got {_show(data)}")
    out: dict[str, Any] = {}
    for key, spec in FIELDS.items():
        if key not in data:
            if spec.required and not partial:
                raise ModelMetadataError(file, key, "is missing")
            continue
        try:
            out[key] = spec.check(data[key])
        except Invalid as e:
            raise ModelMetadataError(file, key, str(e)) from None
    if "task" in out and "class_names" in out and TASKS[out["task"]] != len(out["class_names"]):
        raise ModelMetadataError(file, "class_names", f"must list {TASKS[out['task']]} names for "
                                 f"task {out['task']!r}, got {len(out['class_names'])}")
    return out


# --- bounded JSON reader -----------------------------------------------------------------
def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise Invalid(f"holds the key {key!r} twice")
        out[key] = value
    return out


def _too_deep(node: Any, limit: int) -> bool:
    stack = [(node, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def read_json(path: str | Path, *, max_bytes: int = MAX_CONFIG_BYTES,
              max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a model JSON file, refusing what would hang, exhaust memory or be ambiguous.

    Refused: anything but a regular file (a FIFO, ``/dev/zero`` behind a symlink), more than
    ``max_bytes``, text that is not UTF-8, invalid JSON, a key given twice in one object,
    nesting deeper than ``max_depth``.

    Args:
        path: The file.
        max_bytes: Largest size accepted.
        max_depth: Deepest nesting accepted.

    Returns:
        The parsed JSON.

    Raises:
        FileNotFoundError: If there is no such file.
        ModelMetadataError: For everything listed above (one line naming the file).
    """
    file = str(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise ModelMetadataError(file, "", f"cannot be read ({e.strerror or e})") from None
    if not stat.S_ISREG(info.st_mode):
        raise ModelMetadataError(file, "", "is not a regular file")
    if info.st_size > max_bytes:
        raise ModelMetadataError(file, "", f"is {info.st_size} bytes, more than the "
                                 f"{max_bytes} allowed")
    try:
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as e:
        raise ModelMetadataError(file, "", f"cannot be read ({e.strerror or e})") from None
    return loads_json(raw, file, max_bytes=max_bytes, max_depth=max_depth)


def loads_json(raw: bytes, file: str, *, max_bytes: int = MAX_CONFIG_BYTES,
               max_depth: int = MAX_JSON_DEPTH) -> Any:
    """:func:`read_json` for bytes already read (e.g. from a ``.keras`` zip); ``file`` names
    them in error messages."""
    if len(raw) > max_bytes:
        raise ModelMetadataError(file, "", f"is more than the {max_bytes} bytes allowed")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ModelMetadataError(file, "", f"is not UTF-8 text (byte {e.start})") from None
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except Invalid as e:
        raise ModelMetadataError(file, "", str(e)) from None
    except json.JSONDecodeError as e:
        raise ModelMetadataError(file, "", f"is not valid JSON ({e.msg} at line {e.lineno} "
                                 f"column {e.colno})") from None
    except RecursionError:
        raise ModelMetadataError(file, "", f"is nested more than {max_depth} levels deep") from None
    if _too_deep(data, max_depth):
        raise ModelMetadataError(file, "", f"is nested more than {max_depth} levels deep")
    return data

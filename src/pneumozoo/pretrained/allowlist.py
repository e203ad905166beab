"""What a Keras ``config.json`` may ask to build: an allow-list, checked before Keras sees it.

Keras's ``safe_mode`` refuses lambdas, but it resolves any ``module`` under ``keras`` (so a
``Dense`` whose activation is ``{"module": "keras.datasets.mnist", "class_name": "function",
"config": "load_data"}`` loads, and downloads MNIST at predict time) and any class a
third-party import registered. :func:`check_keras_config` walks the JSON first and allows only:

* pneumozoo's own registered classes (``registered_name`` ``"pneumozoo>..."``, found in the
  Keras registry);
* Keras built-in layers, activations, initializers, regularizers, constraints and dtype
  policies (``module`` ``keras``, ``keras.<family>`` or ``keras.src.<family>...``), resolved
  to a class of that family; optimizers, losses and metrics only inside ``compile_config``
  (which pneumozoo never compiles);
* built-in functions referred to by name (``"relu"``, or ``class_name: "function"`` naming a
  Keras activation, loss or metric);
* ``__keras_tensor__`` references between layers.

Anything else (a dotted function path, a lambda, ``Lambda`` / ``TFSMLayer`` / wrapper layers
that run foreign code, a module outside Keras, an unknown registered name) is refused with a
one-line :class:`~pneumozoo.errors.UnsafeModelError` naming the file and the entry. Resize
layers (``height`` / ``width``) must resize to 16..2048 pixels, and the class names,
temperature, threshold and input size a pneumozoo layer carries must pass the same checks as
``pneumozoo.json``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pneumozoo.zoo.schema as schema
from pneumozoo.errors import ModelMetadataError, UnsafeModelError

__all__ = ["CODE_CLASSES", "check_keras_config"]

#: Layers that run code or load models from outside the weights file.
CODE_CLASSES = frozenset({"Lambda", "TFOpLambda", "SlicingOpLambda", "TFSMLayer",
                          "TorchModuleWrapper", "JaxLayer", "FlaxLayer", "__lambda__"})
_MODEL_FAMILIES = frozenset({"layers", "activations", "initializers", "regularizers",
                             "constraints", "dtype_policies", "models"})
_COMPILE_FAMILIES = frozenset({"optimizers", "losses", "metrics"})
_FUNCTION_FAMILIES = ("activations", "losses", "metrics")
# Keys whose string value Keras looks up as an object of a family.
_NAMED = {"activation": "activations", "recurrent_activation": "activations"}
_NAMED_SUFFIXES = {"_initializer": "initializers", "_regularizer": "regularizers",
                   "_constraint": "constraints"}
_SAFE = "pneumozoo only loads models that run no stored code"


def _walk(node: Any, where: str, in_compile: bool) -> Iterator[tuple[str, Any, bool]]:
    stack = [(node, where, in_compile)]
    while stack:
        item, path, compiling = stack.pop()
        yield path, item, compiling
        if isinstance(item, dict):
            children = list(item.items())
            stack.extend((v, f"{path}.{k}" if path else str(k), compiling or k == "compile_config")
                         for k, v in reversed(children))
        elif isinstance(item, list):
            stack.extend((v, f"{path}[{i}]", compiling) for i, v in reversed(list(enumerate(item))))


def _family(module: str) -> str | None:
    """``layers`` for ``keras.layers`` / ``keras.src.layers.core.dense``; ``""`` for ``keras``;
    None for anything outside Keras."""
    parts = module.split(".")
    if parts[0] != "keras" or not all(p.isidentifier() for p in parts):
        return None
    if len(parts) == 1:
        return ""
    if parts[1] == "src":
        return parts[2] if len(parts) > 2 else None
    return parts[1]


def _bases(compiling: bool) -> tuple[type, ...]:
    # lazy: loads Keras and its backend
    import keras

    bases: list[type] = [keras.layers.Layer, keras.initializers.Initializer,
                         keras.regularizers.Regularizer, keras.constraints.Constraint,
                         keras.DTypePolicy]
    if compiling:
        bases += [keras.optimizers.Optimizer, keras.optimizers.schedules.LearningRateSchedule,
                  keras.losses.Loss, keras.metrics.Metric]
    return tuple(bases)


def _resolve_builtin(module: str, name: str) -> Any:
    """The Keras object ``module.name``, looked up without importing anything new."""
    # lazy: loads Keras and its backend
    from keras.src.api_export import get_symbol_from_name

    obj = get_symbol_from_name(f"{module}.{name}")
    if obj is None and module.startswith("keras.src.") and module in sys.modules:
        obj = vars(sys.modules[module]).get(name)
    return obj


def _builtin_function(name: Any) -> bool:
    if not isinstance(name, str) or not name.isidentifier():
        return False
    # lazy: loads Keras and its backend
    from keras.src.api_export import get_symbol_from_name

    return any(callable(get_symbol_from_name(f"keras.{fam}.{name}")) for fam in _FUNCTION_FAMILIES)


def _named_ok(family: str, name: str) -> bool:
    # lazy: loads Keras and its backend
    import keras

    lookup = {"activations": keras.activations, "initializers": keras.initializers,
              "regularizers": keras.regularizers, "constraints": keras.constraints}[family]
    try:
        return lookup.get(name) is not None
    except (ValueError, TypeError):
        return False


def _check_pneumozoo_config(config: Any, file: str, where: str) -> None:
    if not isinstance(config, dict):
        return
    checks = {"class_names": schema.check_class_names, "temperature": schema.check_temperature,
              "threshold": schema.check_threshold, "input_size": schema.check_input_size}
    for key, check in checks.items():
        if key in config:
            try:
                check(config[key])
            except schema.Invalid as e:
                raise ModelMetadataError(file, f"{where}.config.{key}", str(e)) from None


def _check_sizes(config: Any, file: str, where: str) -> None:
    if not isinstance(config, dict) or not ("height" in config and "width" in config):
        return
    for key in ("height", "width"):
        try:
            schema.check_input_size(config[key])
        except schema.Invalid as e:
            raise ModelMetadataError(file, f"{where}.config.{key}", str(e)) from None


def _check_object(node: dict[str, Any], file: str, where: str, compiling: bool) -> None:
    # lazy: loads Keras and its backend
    import keras

    cls = node["class_name"]
    if not isinstance(cls, str):
        raise UnsafeModelError(f"{file}: {where}: class_name must be a string; {_SAFE}")
    if cls == "__keras_tensor__" and node.get("module") is None:
        return
    if cls in CODE_CLASSES:
        what = "a Python lambda" if cls == "__lambda__" else f"a {cls} layer"
        raise UnsafeModelError(f"{file}: model config holds {what} ({where}); {_SAFE}")
    module = node.get("module")
    registered = node.get("registered_name")
    label = f"{module}.{cls}" if module else cls
    if cls.startswith("__"):
        raise UnsafeModelError(f"{file}: {where}: {cls} entries are not allowed; {_SAFE}")
    if cls == "function":
        fn = node.get("config")
        if isinstance(fn, str) and fn.startswith("pneumozoo>") \
                and keras.saving.get_registered_object(fn) is not None:
            return
        family = _family(module) if isinstance(module, str) else None
        if (module == "builtins" or family in _FUNCTION_FAMILIES) and _builtin_function(fn) \
                and registered in (None, fn, "function"):
            return
        raise UnsafeModelError(f"{file}: {where}: function {module}.{fn} is not a Keras built-in "
                               f"activation, loss or metric; {_SAFE}")
    if isinstance(registered, str) and registered.startswith("pneumozoo>"):
        if not (isinstance(module, str) and module.split(".")[0] == "pneumozoo"):
            raise UnsafeModelError(f"{file}: {where}: model config needs {label} (registered as "
                                   f"{registered!r}), which is neither Keras nor pneumozoo; {_SAFE}")
        if keras.saving.get_registered_object(registered) is None:
            raise UnsafeModelError(f"{file}: {where}: unknown pneumozoo object {registered!r}; "
                                   "a newer pneumozoo may know it")
        _check_pneumozoo_config(node.get("config"), file, where)
        _check_sizes(node.get("config"), file, where)
        return
    if registered not in (None, cls):
        raise UnsafeModelError(f"{file}: {where}: model config needs the custom object "
                               f"{registered!r} from {module}, which is neither Keras nor "
                               f"pneumozoo; {_SAFE}")
    family = _family(module) if isinstance(module, str) else None
    allowed = _MODEL_FAMILIES | (_COMPILE_FAMILIES if compiling else frozenset())
    obj = None
    if isinstance(module, str) and family is not None and (family == "" or family in allowed):
        obj = _resolve_builtin(module, cls)
    if not (isinstance(obj, type) and issubclass(obj, _bases(compiling))
            and obj.__module__.split(".")[0] == "keras" and obj.__name__ not in CODE_CLASSES):
        raise UnsafeModelError(f"{file}: {where}: model config needs {label}, which is not a "
                               "Keras built-in layer, activation, initializer, regularizer, "
                               f"constraint or dtype policy; {_SAFE}")
    _check_sizes(node.get("config"), file, where)


def check_keras_config(config: Any, file: str) -> None:
    """Refuse a Keras model config that asks for anything outside the allow-list.

    Args:
        config: The parsed ``config.json``.
        file: Its path, named in error messages.

    Raises:
        UnsafeModelError: An entry that is not a pneumozoo class, a Keras built-in or a
            built-in function by name (message names the file and the entry's JSON path).
        ModelMetadataError: A resize layer outside 16..2048 pixels, or a pneumozoo layer with
            invalid class names, temperature or threshold.

    Example:
        >>> check_keras_config({"module": "keras.layers", "class_name": "Lambda",
        ...                     "config": {}}, "m/config.json")
        Traceback (most recent call last):
        ...
        pneumozoo.errors.UnsafeModelError: m/config.json: model config holds a Lambda layer (<root>); pneumozoo only loads models that run no stored code
    """
    # lazy: loads Keras; registers pneumozoo's Keras classes (a fresh process needs them)
    import pneumozoo.models  # noqa: F401

    if not isinstance(config, dict) or "class_name" not in config:
        raise UnsafeModelError(f"{file}: not a Keras model config (no top-level class_name)")
    for where, node, compiling in _walk(config, "", False):
        here = where or "<root>"
        if isinstance(node, dict):
            if "class_name" in node:
                _check_object(node, file, here, compiling)
            for key, value in node.items():
                if not isinstance(value, str) or not isinstance(key, str):
                    continue
                family = _NAMED.get(key) or next(
                    (fam for suffix, fam in _NAMED_SUFFIXES.items() if key.endswith(suffix)), None)
                if family and not _named_ok(family, value):
                    raise UnsafeModelError(f"{file}: {here}.{key}: {value!r} is not a Keras "
                                           f"built-in {family[:-1]}; {_SAFE}")

"""Building a model: ``build_model`` turns an architecture of the zoo's registry
(:mod:`pneumozoo.zoo.registry`) into a :class:`~pneumozoo.models.PneumoniaClassifier`."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import keras

from pneumozoo.backend import resolve_precision
from pneumozoo.errors import ModelConfigError, PneumozooError, UnknownNameError
from pneumozoo.models.classifier import PneumoniaClassifier, as_classifier
from pneumozoo.models.head import ClassifierHead, PooledStats
from pneumozoo.models.preprocessor import NORMALIZATIONS, XrayPreprocessor
from pneumozoo.rules import default_class_names
from pneumozoo.zoo.registry import get_model_info, list_models

__all__ = [
    "build_model",
    "class_names_of",
    "input_size_of",
    "wrap_classifier",
]


@contextlib.contextmanager
def _dtype_policy(precision: str) -> Iterator[None]:
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(resolve_precision(precision))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def wrap_classifier(
    features_fn: Callable[[Any], Any],
    *,
    num_classes: int,
    input_size: int,
    normalization: str,
    class_names: Sequence[str],
    name: str,
    color: str = "luminance",
    guard_layers: Sequence[str] = (),
) -> PneumoniaClassifier:
    """Build ``raw pixels -> preprocessor -> features_fn -> logits -> head`` as one model.

    The input takes any height and width (0..255 RGB); the :class:`XrayPreprocessor` applies
    the colour policy, resizes to ``input_size`` and normalises, in the graph. The head also
    receives the domain guard's features: the pooled activations of ``guard_layers`` and the
    penultimate features, concatenated.
    """
    inputs = keras.Input(shape=(None, None, 3), name="image")
    x = XrayPreprocessor(input_size, normalization, color, name="preprocessor")(inputs)
    features = features_fn(x)
    logits = keras.layers.Dense(num_classes, name="logits")(features)
    trunk = keras.Model(inputs, features)  # to reach the stages' outputs by name
    blocks = [PooledStats(name=f"guard_{layer}")(trunk.get_layer(layer).output)
              for layer in guard_layers]
    blocks.append(features)
    guard_input = (keras.layers.Concatenate(name="guard_features", dtype="float32")(blocks)
                   if len(blocks) > 1 else blocks[0])
    dims = [int(b.shape[-1]) for b in blocks]
    outputs = ClassifierHead(class_names, guard_blocks=dims, name="head")([guard_input, logits])
    return PneumoniaClassifier(inputs, outputs, name=name)


def build_model(
    arch: str,
    *,
    num_classes: int = 2,
    class_names: Sequence[str] | None = None,
    input_size: int | None = None,
    weights: str | Path | None = None,
    freeze_backbone: bool = False,
    dropout: float | None = None,
    precision: str = "float32",
    normalization: str | None = None,
    color: str = "luminance",
) -> PneumoniaClassifier:
    """Build an architecture of the zoo, ready to train or load weights into.

    The model takes raw pixels (``uint8`` or float, 0..255, grey or RGB, any size) and returns
    the softmax over ``class_names``; its :class:`~pneumozoo.models.XrayPreprocessor` does the
    colour policy, resizing and normalisation inside the graph.

    Args:
        arch: Registry name (see :func:`list_models`).
        num_classes: Number of outputs; 2 for normal/pneumonia, 3 for normal/bacteria/virus.
        class_names: Output names; defaults to the task's names for 2 or 3 classes.
        input_size: Square input size; defaults to the architecture's own.
        weights: ``None`` (random init), ``"imagenet"`` (transfer backbones only, downloaded
            by ``keras.applications``), or a path to a ``.weights.h5``/``.keras`` checkpoint.
        freeze_backbone: Freeze the pretrained backbone (transfer models only); see
            :func:`pneumozoo.models.set_backbone_trainable` to unfreeze for fine-tuning.
        dropout: Override the head's dropout rate.
        precision: ``float32``, ``mixed_float16``, ``mixed_bfloat16`` or ``auto``
            (mixed_float16 when a GPU is present).
        normalization: Override the architecture's input normalisation, one of
            :data:`pneumozoo.models.preprocessor.NORMALIZATIONS` (e.g. ``per-image``); keep the
            default with ``weights="imagenet"``, whose backbone expects its own.
        color: ``luminance`` (default: one grey channel per film, as radiographs are) or
            ``rgb`` (keep a file's colours).

    Returns:
        An uncompiled :class:`~pneumozoo.models.PneumoniaClassifier`.

    Raises:
        UnknownNameError: If ``arch`` or ``normalization`` is not registered.
        ModelConfigError: If ``weights="imagenet"`` is asked of a model trained from scratch,
            or the architecture cannot be built at ``input_size`` (a ``ValueError``).

    Example:
        >>> model = build_model("cnn4", input_size=64)
        >>> model.output_shape
        (None, 2)
    """
    info = get_model_info(arch)
    size = int(input_size or info.input_size)
    if class_names is None:
        class_names = default_class_names(num_classes)
    if len(class_names) != num_classes:
        raise ModelConfigError(f"{len(class_names)} class names given for {num_classes} classes")
    backbone_weights = "imagenet" if weights == "imagenet" else None
    if backbone_weights and not info.pretrainable:
        raise ModelConfigError(f"{arch} is trained from scratch; weights='imagenet' needs one of: "
                         + ", ".join(m.name for m in list_models(pretrainable=True)))
    if normalization is not None and normalization not in NORMALIZATIONS:
        raise UnknownNameError("normalization", normalization, list(NORMALIZATIONS))
    kwargs: dict[str, Any] = {"input_size": size}
    if dropout is not None:
        kwargs["dropout"] = dropout
    if info.pretrainable:
        kwargs["weights"] = backbone_weights
        kwargs["freeze_backbone"] = freeze_backbone
    try:
        with _dtype_policy(precision):
            model = wrap_classifier(
                lambda x: info.builder(x, **kwargs),
                num_classes=num_classes,
                input_size=size,
                normalization=normalization or info.normalization,
                class_names=class_names,
                name=arch,
                color=color,
                guard_layers=info.guard_layers,
            )
    except PneumozooError:
        raise
    except ValueError as e:  # e.g. feature maps shrinking to nothing at a tiny input size
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelConfigError(f"cannot build {arch} at {size} px: {first}") from e
    if weights is not None and weights != "imagenet":
        model.load_weights(str(weights)) if str(weights).endswith(".weights.h5") else _load_into(model, Path(weights))
    return model


def _load_into(model: keras.Model, path: Path) -> None:
    """Copy the weights of a ``.keras`` file (or a Keras folder) into ``model``.

    Only the weights are read (``model.load_weights``): the file's config is never run, so a
    checkpoint needs none of the model-folder checks of :mod:`pneumozoo.pretrained`.
    """
    source = path / "model.weights.h5" if path.is_dir() else path
    if not source.is_file():
        raise ModelConfigError(f"{path}: no Keras weights there (expected a .keras file, a "
                               ".weights.h5 file or a Keras folder with model.weights.h5)")
    model.load_weights(str(source))


def class_names_of(model: keras.Model) -> tuple[str, ...]:
    """Deprecated: use ``model.class_names``.

    Args:
        model: A pneumozoo model.

    Returns:
        Its class names (a ``DeprecationWarning`` is issued).

    Example:
        >>> class_names_of(build_model("cnn4", input_size=48))  # doctest: +SKIP
        ('normal', 'pneumonia')
    """
    warnings.warn("class_names_of(model) is deprecated; use model.class_names",
                  DeprecationWarning, stacklevel=2)
    return as_classifier(model).class_names


def input_size_of(model: keras.Model) -> int:
    """Deprecated: use ``model.input_size``.

    Args:
        model: A pneumozoo model.

    Returns:
        Its square input size (a ``DeprecationWarning`` is issued).

    Example:
        >>> input_size_of(build_model("cnn4", input_size=48))  # doctest: +SKIP
        48
    """
    warnings.warn("input_size_of(model) is deprecated; use model.input_size",
                  DeprecationWarning, stacklevel=2)
    return as_classifier(model).input_size

"""Upgrade models saved by pneumozoo 0.1 (``Resizing``/``Normalize``/``ClassifierOutput``).

Such a model is rebuilt as a :class:`~pneumozoo.models.PneumoniaClassifier` of the same
architecture and its weights are copied layer by layer (the layer names are unchanged), with
the temperature of its old output layer and the threshold of its ``pneumozoo.json``.
"""

from __future__ import annotations

from typing import Any

import keras

from pneumozoo.errors import ModelConfigError
from pneumozoo.models.build import build_model
from pneumozoo.models.classifier import PneumoniaClassifier
from pneumozoo.models.layers import ClassifierOutput, Normalize, Resizing

__all__ = ["is_legacy", "upgrade_legacy"]


def is_legacy(model: Any) -> bool:
    """True for a pneumozoo 0.1 model (it ends with a ``ClassifierOutput`` layer)."""
    return not isinstance(model, PneumoniaClassifier) and isinstance(
        model, keras.Model) and any(isinstance(layer, ClassifierOutput) for layer in model.layers)


def upgrade_legacy(model: keras.Model, *, architecture: str, threshold: float = 0.5) -> PneumoniaClassifier:
    """Rebuild a pneumozoo 0.1 model as a :class:`PneumoniaClassifier` with the same weights.

    Args:
        model: The old model.
        architecture: Its registry architecture (``pneumozoo.json``'s ``architecture``).
        threshold: Its decision threshold (``pneumozoo.json``'s ``threshold``).

    Returns:
        The upgraded model: same predictions on the same pixels.

    Raises:
        ModelConfigError: If a layer of the old model has no counterpart in the new one.
    """
    out = next(layer for layer in model.layers if isinstance(layer, ClassifierOutput))
    resize = next((layer for layer in model.layers if isinstance(layer, Resizing)), None)
    norm = next((layer for layer in model.layers if isinstance(layer, Normalize)), None)
    new = build_model(
        architecture,
        num_classes=len(out.class_names),
        class_names=out.class_names,
        input_size=int(resize.height) if resize is not None else None,
        normalization=norm.mode if norm is not None else None,
    )
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights or isinstance(layer, (ClassifierOutput, Normalize, Resizing)):
            continue
        try:
            new.get_layer(layer.name).set_weights(weights)
        except (ValueError, KeyError) as e:
            raise ModelConfigError(f"cannot upgrade {model.name!r}: layer {layer.name!r} ({e})") from None
    new.head.temperature = float(out.temperature)
    new.threshold = threshold
    return new

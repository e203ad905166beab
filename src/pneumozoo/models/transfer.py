"""Transfer-learning models: a ``keras.applications`` backbone with a classification head."""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

__all__ = ["BACKBONE_LAYER", "densenet121", "efficientnetb0", "inceptionv3", "mobilenetv2", "resnet50",
           "set_backbone_trainable", "vgg16", "vgg19", "xception"]

#: Name of the backbone sub-model inside every transfer model.
BACKBONE_LAYER = "backbone"


def _head(x: Any, dropout: float) -> Any:
    """The head of 000: GAP -> Dense 1024 -> BN -> Dense 100 -> Dropout -> BN (then logits)."""
    x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    x = layers.Dense(1024, activation="relu", name="head_fc1024")(x)
    x = layers.BatchNormalization(name="head_bn1")(x)
    x = layers.Dense(100, activation="relu", name="head_fc100")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    x = layers.BatchNormalization(name="head_bn2")(x)
    return x


def _make_builder(ctor_name: str) -> Any:
    def build(
        x: Any,
        *,
        input_size: int,
        weights: str | None = None,
        freeze_backbone: bool = False,
        dropout: float = 0.5,
    ) -> Any:
        ctor = getattr(keras.applications, ctor_name)
        backbone = ctor(include_top=False, weights=weights, input_shape=(input_size, input_size, 3))
        backbone.name = BACKBONE_LAYER
        backbone.trainable = not freeze_backbone
        # training=False keeps frozen BatchNorm statistics fixed, as fine-tuning needs.
        features = backbone(x, training=False) if freeze_backbone else backbone(x)
        return _head(features, dropout)

    return build


# The builders the zoo's registry names (pneumozoo.zoo.registry: sizes, normalisation, notes).
vgg16 = _make_builder("VGG16")
vgg19 = _make_builder("VGG19")
resnet50 = _make_builder("ResNet50")
xception = _make_builder("Xception")
densenet121 = _make_builder("DenseNet121")
inceptionv3 = _make_builder("InceptionV3")
mobilenetv2 = _make_builder("MobileNetV2")
efficientnetb0 = _make_builder("EfficientNetB0")


def set_backbone_trainable(model: keras.Model, trainable: bool = True, *, last_n: int | None = None) -> None:
    """Freeze or unfreeze the backbone of a transfer model, for fine-tuning in two stages.

    Args:
        model: A model built by :func:`pneumozoo.build_model` with a transfer architecture.
        trainable: Unfreeze (True) or freeze (False).
        last_n: With ``trainable=True``, unfreeze only the last ``last_n`` backbone layers.
            BatchNormalization layers stay frozen, as Keras's fine-tuning guide advises.

    Recompile the model afterwards (``pneumozoo.fit`` does when given ``learning_rate``).

    Raises:
        ValueError: If the model has no backbone.

    Example:
        >>> model = build_model("densenet121", weights="imagenet", freeze_backbone=True)  # doctest: +SKIP
        >>> fit(model, train, val, epochs=5)  # the head only  # doctest: +SKIP
        >>> set_backbone_trainable(model, True, last_n=40)  # doctest: +SKIP
        >>> fit(model, train, val, epochs=10, learning_rate=1e-5)  # doctest: +SKIP
    """
    try:
        backbone = model.get_layer(BACKBONE_LAYER)
    except ValueError:
        raise ValueError(f"model {model.name!r} has no {BACKBONE_LAYER!r} layer to (un)freeze") from None
    backbone.trainable = trainable
    if trainable:
        inner = backbone.layers
        cut = len(inner) - last_n if last_n is not None else 0
        for i, layer in enumerate(inner):
            layer.trainable = i >= cut and not isinstance(layer, layers.BatchNormalization)

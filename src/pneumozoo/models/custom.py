"""Architectures trained from scratch: the reference CNNs and the zoo's fast default.

Their facts (default size, normalisation, guard layers) are in the zoo's registry
(:mod:`pneumozoo.zoo.registry`), which names these builders as entry points."""

from __future__ import annotations

from typing import Any

from keras import layers

__all__ = ["cnn4", "cnn5", "xraynet"]


def cnn4(x: Any, *, input_size: int, dropout: float = 0.0) -> Any:
    for i, filters in enumerate((32, 64, 128, 256)):
        x = layers.Conv2D(filters, 3, activation="relu", name=f"block{i + 1}_conv")(x)
        x = layers.MaxPooling2D(2, name=f"block{i + 1}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    return x


def cnn5(x: Any, *, input_size: int, dropout: float = 0.2) -> Any:
    x = layers.Conv2D(16, 3, activation="relu", padding="same", name="block1_conv1")(x)
    x = layers.Conv2D(16, 3, activation="relu", padding="same", name="block1_conv2")(x)
    x = layers.MaxPooling2D(2, name="block1_pool")(x)
    for i, filters in enumerate((32, 64, 128, 256), start=2):
        x = layers.SeparableConv2D(filters, 3, activation="relu", padding="same", name=f"block{i}_sep1")(x)
        x = layers.SeparableConv2D(filters, 3, activation="relu", padding="same", name=f"block{i}_sep2")(x)
        x = layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
        if i >= 4:
            x = layers.Dropout(dropout, name=f"block{i}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    for units, rate in ((512, 0.7), (128, 0.5), (64, 0.3)):
        x = layers.Dense(units, activation="relu", name=f"fc{units}")(x)
        x = layers.Dropout(rate, name=f"fc{units}_dropout")(x)
    return x


def _conv_bn(x: Any, filters: int, kernel: int, stride: int, name: str, relu: bool = True) -> Any:
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _res_block(x: Any, filters: int, stride: int, name: str) -> Any:
    """A ResNet basic block. Plain 3x3 convs: on CPU they beat depthwise ones per FLOP."""
    y = _conv_bn(x, filters, 3, stride, f"{name}_a")
    y = _conv_bn(y, filters, 3, 1, f"{name}_b", relu=False)
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, stride, f"{name}_proj", relu=False)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([shortcut, y]))


def xraynet(
    x: Any,
    *,
    input_size: int,
    dropout: float = 0.3,
    widths: tuple[int, ...] = (32, 64, 128, 256),
) -> Any:
    # Downsample x4 before any residual stage: most of a CNN's CPU time is spent at full
    # resolution, and a chest film's findings are larger than 4 px at 192 px.
    x = _conv_bn(x, 16, 3, 2, "stem")
    x = layers.MaxPooling2D(2, name="stem_pool")(x)
    for s, filters in enumerate(widths, start=1):
        x = _res_block(x, filters, 2, f"stage{s}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    return x

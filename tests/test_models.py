"""The architecture registry: every model builds, predicts on raw pixels of any size, carries
its class names, saves and loads safely, trains a step; freezing, filters, precision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from pneumozoo.data import BINARY_CLASSES, THREE_CLASSES
from pneumozoo.errors import ModelConfigError, UnknownNameError
from pneumozoo.models import (
    ClassifierHead,
    PneumoniaClassifier,
    XrayPreprocessor,
    build_model,
    get_model_info,
    list_models,
    set_backbone_trainable,
)
from pneumozoo.models.transfer import BACKBONE_LAYER
from pneumozoo.train import compile_model

# Keras converts tensors with np.array(), which numpy 2 flags on every call; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

ARCHS = [m.name for m in list_models()]
CUSTOM = [m.name for m in list_models(family="custom")]
TRANSFER = [m.name for m in list_models(family="transfer")]
#: Smallest sizes each architecture accepts (keras.applications minimums; cnn4's valid convs).
MIN_SIZE = {"xception": 71, "inceptionv3": 75, "cnn4": 48}
#: Deep backbones: their training step runs with the backbone frozen (an eager backward pass
#: through hundreds of layers costs seconds and tests Keras, not pneumozoo); vgg16/19 and
#: mobilenetv2 (BatchNorm, depthwise convolutions) train in full.
DEEP = {"densenet121", "efficientnetb0", "inceptionv3", "xception", "resnet50"}
#: Cases that can take more than 10 s on a busy 2-core machine.
SLOW = {*DEEP, "mobilenetv2"}


def small(arch: str) -> int:
    return MIN_SIZE.get(arch, 32)


def numpy(x: Any) -> np.ndarray:
    """A TensorFlow tensor as an array (keras.ops.convert_to_numpy warns under numpy 2)."""
    return np.asarray(x.numpy())


def values(weights: list[keras.Variable]) -> list[np.ndarray]:
    return [np.array(w.value.numpy()) for w in weights]


def cases() -> list[object]:
    """Custom models with 2 and 3 classes; transfer models once each, alternating 2 and 3
    classes (they share one head, so both counts are still covered for that family)."""
    out: list[object] = []
    for arch in CUSTOM:
        out += [pytest.param(arch, 2, id=f"{arch}-2"), pytest.param(arch, 3, id=f"{arch}-3")]
    for i, arch in enumerate(TRANSFER):
        marks = [pytest.mark.slow] if arch in SLOW else []
        out.append(pytest.param(arch, 2 + i % 2, id=f"{arch}-{2 + i % 2}", marks=marks))
    return out


@pytest.mark.parametrize(("arch", "num_classes"), cases())
def test_architecture_end_to_end(arch: str, num_classes: int, tmp_path: Path) -> None:
    size = small(arch)
    model = build_model(arch, num_classes=num_classes, input_size=size)
    names = BINARY_CLASSES if num_classes == 2 else THREE_CLASSES
    assert model.name == arch
    assert model.output_shape == (None, num_classes)
    assert isinstance(model, PneumoniaClassifier)
    assert model.class_names == names
    assert model.input_size == size
    assert isinstance(model.preprocessor, XrayPreprocessor)
    assert model.preprocessor.normalization == get_model_info(arch).normalization
    assert isinstance(model.layers[-1], ClassifierHead) and model.layers[-1] is model.head

    # raw uint8-range pixels, not square and not the input size: resized inside the graph
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2, size + 13, size + 5, 3)).astype("uint8")
    probs = numpy(model(x, training=False))
    assert probs.shape == (2, num_classes)
    assert np.all(probs >= 0) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    if arch not in DEEP:
        np.testing.assert_allclose(numpy(model(x.astype("float32"), training=False)), probs,
                                   atol=1e-6)
        # what the data pipeline feeds: the preprocessor's pixels, repeated to RGB
        pre_resized = np.repeat(numpy(model.preprocessor.to_pixels(x)), 3, axis=-1)
        assert pre_resized.shape == (2, size, size, 3)
        np.testing.assert_allclose(numpy(model(pre_resized, training=False)), probs, atol=1e-5)

    path = tmp_path / f"{arch}.keras"
    keras.saving.save_model(model, path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, PneumoniaClassifier)
    assert loaded.class_names == names
    assert loaded.input_size == size
    assert loaded.preprocessor.normalization == model.preprocessor.normalization
    np.testing.assert_allclose(numpy(loaded(x, training=False)), probs, atol=1e-6)

    if arch in DEEP:
        set_backbone_trainable(model, False)
    compile_model(model, learning_rate=1e-3, jit_compile=False)
    model.run_eagerly = True  # one step: tracing a graph would cost more than the step
    before = values(model.trainable_weights)
    logs = model.train_on_batch(x.astype("float32"), np.arange(2) % num_classes,
                                return_dict=True)
    assert np.isfinite(logs["loss"]) and logs["loss"] > 0
    assert {"accuracy", "auc"} <= set(logs)
    after = values(model.trainable_weights)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def test_class_names_are_configurable_and_travel(tmp_path: Path) -> None:
    model = build_model("cnn4", num_classes=2, class_names=("healthy", "sick"), input_size=48)
    assert model.class_names == ("healthy", "sick")
    model.save(tmp_path / "m.keras")
    assert keras.saving.load_model(tmp_path / "m.keras").class_names == ("healthy", "sick")
    # The head knows two tasks only: binary and 3-class (normal / bacteria / virus).
    with pytest.raises(ModelConfigError, match="2 or 3"):
        build_model("cnn4", num_classes=4, input_size=48)
    with pytest.raises(ValueError, match="3 class names given for 2 classes"):
        build_model("cnn4", num_classes=2, class_names=THREE_CLASSES, input_size=48)


def test_weights_from_a_checkpoint_or_model_file(tmp_path: Path) -> None:
    model = build_model("cnn4", input_size=48)
    compile_model(model, jit_compile=False)
    model.run_eagerly = True
    x = np.random.default_rng(1).integers(0, 256, (2, 48, 48, 3)).astype("float32")
    model.train_on_batch(x, np.array([0, 1]))  # the file then holds optimizer state too
    expected = numpy(model(x, training=False))
    model.save_weights(tmp_path / "w.weights.h5")
    model.save(tmp_path / "m.keras")
    for weights in (tmp_path / "w.weights.h5", str(tmp_path / "m.keras")):
        rebuilt = build_model("cnn4", input_size=48, weights=weights)
        np.testing.assert_allclose(numpy(rebuilt(x, training=False)), expected, atol=1e-6)


def test_unknown_architecture_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownNameError) as e:
        build_model("resnet18")
    msg = str(e.value)
    assert "'resnet18'" in msg and "\n" not in msg
    for arch in ARCHS:
        assert arch in msg
    with pytest.raises(KeyError):
        get_model_info("resnet18")


@pytest.mark.parametrize("arch", CUSTOM)
def test_imagenet_weights_on_a_custom_model_is_a_value_error(arch: str) -> None:
    with pytest.raises(ValueError, match="imagenet") as e:
        build_model(arch, weights="imagenet", input_size=48)
    assert all(name in str(e.value) for name in TRANSFER)


def test_list_models_filters() -> None:
    everything = list_models()
    custom = [m.name for m in list_models(family="custom")]
    transfer = [m.name for m in list_models(family="transfer")]
    assert [m.name for m in everything] == sorted(m.name for m in everything)
    assert {"cnn4", "cnn5", "xraynet"} <= set(custom)
    assert {"vgg16", "vgg19", "resnet50", "xception", "densenet121", "inceptionv3",
            "mobilenetv2", "efficientnetb0"} <= set(transfer)
    assert sorted(custom + transfer) == [m.name for m in everything]
    assert all(m.family == "custom" and not m.pretrainable for m in list_models(family="custom"))
    assert {m.name for m in list_models(pretrainable=True)} == set(transfer)
    assert {m.name for m in list_models(pretrainable=False)} == set(custom)
    assert list_models(family="custom", pretrainable=True) == []
    assert list_models(family="nope") == []
    for m in everything:
        assert m.input_size >= 32 and m.description and get_model_info(m.name) == m


def test_freeze_and_unfreeze_the_backbone() -> None:
    model = build_model("mobilenetv2", input_size=32, freeze_backbone=True)
    backbone = model.get_layer(BACKBONE_LAYER)
    assert isinstance(backbone, keras.Model)
    assert not backbone.trainable and not backbone.trainable_weights
    head = {id(w) for w in model.trainable_weights}
    assert head and not head & {id(w) for w in backbone.weights}
    assert all(w.path.startswith(("head_", "logits")) for w in model.trainable_weights)

    set_backbone_trainable(model, True, last_n=10)
    inner = backbone.layers
    assert backbone.trainable
    for i, layer in enumerate(inner):
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        assert layer.trainable == (i >= len(inner) - 10 and not is_bn), layer.name
    bns = [la for la in inner if isinstance(la, keras.layers.BatchNormalization)]
    assert bns and not any(la.trainable for la in bns)
    n_unfrozen = len(model.trainable_weights)
    assert len(head) < n_unfrozen < len(head) + sum(len(la.weights) for la in inner[-10:]) + 1

    set_backbone_trainable(model, True)  # everything but BatchNorm
    assert all(la.trainable != isinstance(la, keras.layers.BatchNormalization) for la in inner)
    set_backbone_trainable(model, False)
    assert not backbone.trainable_weights and len(model.trainable_weights) == len(head)
    with pytest.raises(ValueError, match="backbone"):
        set_backbone_trainable(build_model("cnn4", input_size=48))


def test_a_frozen_backbone_does_not_move_in_training() -> None:
    model = build_model("vgg16", input_size=32, freeze_backbone=True)
    backbone = model.get_layer(BACKBONE_LAYER)
    frozen = values(backbone.weights)
    compile_model(model, jit_compile=False)
    model.run_eagerly = True
    x = np.random.default_rng(2).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    model.train_on_batch(x, np.array([0, 1]))
    for before, after in zip(frozen, values(backbone.weights), strict=True):
        np.testing.assert_array_equal(before, after)


def test_mixed_precision_policy_is_restored() -> None:
    assert keras.config.dtype_policy().name == "float32"
    model = build_model("xraynet", input_size=32, precision="mixed_float16")
    assert keras.config.dtype_policy().name == "float32"
    assert model.get_layer("stem_conv").compute_dtype == "float16"
    assert model.layers[-1].compute_dtype == "float32"  # softmax in float32
    x = np.zeros((1, 40, 40, 3), "uint8")
    assert numpy(model(x, training=False)).dtype == np.float32
    try:
        keras.config.set_dtype_policy("mixed_bfloat16")
        plain = build_model("cnn4", input_size=48, precision="float32")
        assert plain.get_layer("block1_conv").compute_dtype == "float32"
        assert keras.config.dtype_policy().name == "mixed_bfloat16", "the caller's policy"
    finally:
        keras.config.set_dtype_policy("float32")
    with pytest.raises(ValueError):  # too small for cnn4's four valid convolutions
        build_model("cnn4", input_size=16, precision="mixed_float16")
    assert keras.config.dtype_policy().name == "float32", "restored after a failed build"
    with pytest.raises(UnknownNameError, match="mixed_float16"):
        build_model("cnn4", input_size=48, precision="float64")


def test_per_image_normalization_ignores_exposure_and_contrast(tmp_path: Path) -> None:
    from pneumozoo.models.preprocessor import normalize_pixels

    rng = np.random.default_rng(0)
    x = rng.uniform(40, 200, (2, 32, 32, 3)).astype("float32")
    z = keras.ops.convert_to_numpy(normalize_pixels(x, "per-image"))
    np.testing.assert_allclose(z.mean(axis=(1, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=(1, 2, 3)), 1.0, atol=1e-3)
    brighter = 0.8 * x + 30.0  # another exposure and contrast of the same film
    np.testing.assert_allclose(keras.ops.convert_to_numpy(normalize_pixels(brighter, "per-image")), z,
                               atol=1e-3)
    flat = np.full((1, 8, 8, 3), 77.0, dtype="float32")
    assert np.all(keras.ops.convert_to_numpy(normalize_pixels(flat, "per-image")) == 0.0)

    model = build_model("cnn4", input_size=64, normalization="per-image")
    assert model.preprocessor.normalization == "per-image"
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.preprocessor.normalization == "per-image"
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    with pytest.raises(UnknownNameError, match="per-image"):
        build_model("cnn4", input_size=64, normalization="nope")


def test_label_smoothing_loss_matches_keras_categorical() -> None:
    from pneumozoo.keras_metrics import SmoothedSparseCrossentropy

    y = np.array([0, 1, 1])
    p = np.array([[0.9, 0.1], [0.3, 0.7], [0.05, 0.95]], dtype="float32")
    onehot = np.eye(2, dtype="float32")[y]
    for smoothing in (0.0, 0.1, 0.3):
        expected = keras.losses.CategoricalCrossentropy(label_smoothing=smoothing)(onehot, p)
        got = SmoothedSparseCrossentropy(smoothing)(y, p)
        np.testing.assert_allclose(float(got), float(expected), rtol=1e-5)
    # smoothing penalises a confident right answer: the loss there grows with it
    assert float(SmoothedSparseCrossentropy(0.2)(y[2:], p[2:])) > float(
        SmoothedSparseCrossentropy(0.0)(y[2:], p[2:]))
    with pytest.raises(ValueError, match="label_smoothing"):
        SmoothedSparseCrossentropy(1.0)
    model = build_model("cnn4", input_size=64)
    compile_model(model, label_smoothing=0.1)
    assert isinstance(model.loss, SmoothedSparseCrossentropy) and model.loss.label_smoothing == 0.1

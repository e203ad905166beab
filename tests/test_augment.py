"""Augmentation presets: every preset builds, keeps shapes and the pixel range, augments only
when training, is seeded; RandomAffine serialises."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from pneumozoo.augment import RandomAffine, RandomGamma, get_preset, list_presets, preset_info
from pneumozoo.errors import UnknownNameError

PRESETS = list_presets()


def film_batch(n: int = 8, size: int = 32, seed: int = 0) -> np.ndarray:
    """Float images 0..255 with structure (lungs, a gradient) so every transform shows."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    base = 30 + 150 * np.exp(-(((xx - 0.3) / 0.15) ** 2 + ((yy - 0.5) / 0.3) ** 2)) + 60 * yy
    batch = base[None, :, :, None] + rng.uniform(0, 40, (n, size, size, 1))
    return np.repeat(np.clip(batch, 0, 255), 3, axis=-1).astype("float32")


def test_presets_are_registered() -> None:
    assert {"affine-sharpen", "zoom-vflip", "heavy", "rotate-zoom-shift", "xray", "none"} <= set(
        PRESETS)
    assert sorted(PRESETS) == PRESETS
    for name in PRESETS:
        info = preset_info(name)
        assert info.name == name and info.description


@pytest.mark.parametrize("name", PRESETS)
def test_preset_runs_in_range_and_only_when_training(name: str) -> None:
    x = film_batch()
    layer = get_preset(name, seed=1)
    assert isinstance(layer, keras.layers.Layer)
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    assert out.shape == x.shape
    assert np.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 255.0 + 1e-3, (out.min(), out.max())
    changed = np.abs(out - x).reshape(len(x), -1).max(axis=1) > 1.0
    if name == "none":
        np.testing.assert_array_equal(out, x)
    else:
        assert changed.sum() >= len(x) - 1, f"{name} left {len(x) - changed.sum()} images as is"
    same = keras.ops.convert_to_numpy(layer(x, training=False))
    np.testing.assert_array_equal(same, x)


@pytest.mark.parametrize("name", [p for p in PRESETS if p != "none"])
def test_preset_is_reproducible_from_a_seed(name: str) -> None:
    x = film_batch()
    a = keras.ops.convert_to_numpy(get_preset(name, seed=3)(x, training=True))
    b = keras.ops.convert_to_numpy(get_preset(name, seed=3)(x, training=True))
    np.testing.assert_allclose(a, b, atol=1e-4)
    layer = get_preset(name, seed=3)
    first = keras.ops.convert_to_numpy(layer(x, training=True))
    second = keras.ops.convert_to_numpy(layer(x, training=True))
    assert np.abs(first - second).max() > 1.0, "each call draws new parameters"
    other = keras.ops.convert_to_numpy(get_preset(name, seed=4)(x, training=True))
    assert np.abs(a - other).max() > 1.0


def test_unknown_preset_lists_the_valid_names() -> None:
    with pytest.raises(UnknownNameError) as e:
        get_preset("rotate")
    msg = str(e.value)
    assert "'rotate'" in msg and "\n" not in msg
    for name in PRESETS:
        assert name in msg
    assert isinstance(e.value, KeyError)


def top_minus_bottom(images: np.ndarray) -> np.ndarray:
    h = images.shape[1]
    return images[:, : h // 3].mean(axis=(1, 2, 3)) - images[:, -(h // 3):].mean(axis=(1, 2, 3))


def left_minus_right(images: np.ndarray) -> np.ndarray:
    w = images.shape[2]
    return images[:, :, : w // 3].mean(axis=(1, 2, 3)) - images[:, :, -(w // 3):].mean(
        axis=(1, 2, 3))


def test_zoom_vflip_really_flips_vertically_sometimes() -> None:
    x = np.zeros((32, 32, 32, 3), dtype="float32")
    x[:, :16] = 200.0  # bright top half
    out = keras.ops.convert_to_numpy(get_preset("zoom-vflip", seed=0)(x, training=True))
    diff = top_minus_bottom(out)
    flipped = diff < -50
    kept = diff > 50
    assert (flipped | kept).all(), "every image is either upright or upside down"
    assert 4 <= flipped.sum() <= 28, f"{flipped.sum()} of 32 flipped"
    # zoom-vflip never mirrors left-right
    y = np.zeros_like(x)
    y[:, :, :16] = 200.0
    out = keras.ops.convert_to_numpy(get_preset("zoom-vflip", seed=0)(y, training=True))
    assert (left_minus_right(out) > 50).all()


@pytest.mark.parametrize("name", ["xray", "xray-strong"])
def test_xray_presets_never_flip(name: str) -> None:
    x = np.zeros((32, 32, 32, 3), dtype="float32")
    x[:, :, :16] = 200.0  # heart on the left
    out = keras.ops.convert_to_numpy(get_preset(name, seed=5)(x, training=True))
    assert (left_minus_right(out) > 30).all()
    y = np.zeros_like(x)
    y[:, :16] = 200.0  # apices at the top
    out = keras.ops.convert_to_numpy(get_preset(name, seed=5)(y, training=True))
    assert (top_minus_bottom(out) > 30).all()


def test_random_gamma_is_a_tone_curve_within_its_range() -> None:
    ramp = np.linspace(0, 255, 64, dtype="float32")
    x = np.broadcast_to(ramp[None, None, :, None], (32, 1, 64, 3)).copy()
    out = keras.ops.convert_to_numpy(RandomGamma(1.5, seed=0)(x, training=True))
    # black and white stay put, the curve is monotone, every image gets its own gamma
    np.testing.assert_allclose(out[:, 0, 0], 0.0, atol=1e-4)
    np.testing.assert_allclose(out[:, 0, -1], 255.0, atol=1e-3)
    assert (np.diff(out[:, 0, :, 0], axis=1) >= -1e-4).all()
    mid = ramp[32] / 255.0
    gammas = np.log(out[:, 0, 32, 0] / 255.0) / np.log(mid)
    assert (gammas >= 1 / 1.5 - 1e-3).all() and (gammas <= 1.5 + 1e-3).all()
    assert gammas.min() < 0.9 and gammas.max() > 1.1
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(
        RandomGamma(1.5, seed=0)(x, training=False)), x)
    with pytest.raises(ValueError, match="max_gamma"):
        RandomGamma(0.5)
    layer = RandomGamma(1.3, seed=4, name="g")
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(revived, RandomGamma) and revived.get_config() == layer.get_config()


def test_horizontal_flip_presets_do_flip() -> None:
    x = np.zeros((32, 32, 32, 3), dtype="float32")
    x[:, :, :16] = 200.0
    out = keras.ops.convert_to_numpy(RandomAffine(horizontal_flip=True, seed=2)(x, training=True))
    flipped = left_minus_right(out) < -150
    assert 4 <= flipped.sum() <= 28
    np.testing.assert_array_equal(out[flipped][:, :, ::-1], x[flipped])
    np.testing.assert_array_equal(out[~flipped], x[~flipped])


def test_random_affine_identity_and_uint8_input() -> None:
    x = film_batch(4)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(RandomAffine(seed=0)(x, training=True)), x, atol=1e-3)
    as_uint8 = x.round().astype("uint8")
    out = keras.ops.convert_to_numpy(RandomAffine(rotation=20, seed=0)(as_uint8, training=True))
    assert out.dtype == np.float32 and out.shape == x.shape


def test_random_affine_config_round_trips() -> None:
    layer = RandomAffine(rotation=12.5, zoom=0.2, independent_zoom=False, shear=4.0,
                         translate=0.05, horizontal_flip=True, vertical_flip=True,
                         fill_mode="nearest", seed=11, name="aff")
    cfg = layer.get_config()
    for key, value in {"rotation": 12.5, "zoom": 0.2, "independent_zoom": False, "shear": 4.0,
                       "translate": 0.05, "horizontal_flip": True, "vertical_flip": True,
                       "fill_mode": "nearest", "seed": 11, "name": "aff"}.items():
        assert cfg[key] == value, key
    clone = RandomAffine.from_config(cfg)
    assert clone.get_config() == cfg
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(revived, RandomAffine) and revived.get_config() == cfg
    x = film_batch(4)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(x, training=True)),
        keras.ops.convert_to_numpy(clone(x, training=True)), atol=1e-4)


def test_preset_survives_a_model_save(tmp_path: Path) -> None:
    """A preset inside a saved model reloads with safe_mode (no custom_objects needed)."""
    inputs = keras.Input((16, 16, 3))
    outputs = get_preset("heavy", seed=0)(inputs)
    model = keras.Model(inputs, outputs)
    path = tmp_path / "aug.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = film_batch(2, 16)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), x)  # inference: identity
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x, training=False)), x)
    assert np.abs(keras.ops.convert_to_numpy(loaded(x, training=True)) - x).max() > 1.0

"""Grad-CAM / Grad-CAM++ on every architecture, feature maps, overlays and ``pneumozoo explain``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pneumozoo.errors import UnknownNameError
from pneumozoo.explain import (
    apply_colormap,
    feature_layers,
    feature_map_grid,
    feature_maps,
    grad_cam,
    overlay,
    save_explanation,
)
from pneumozoo.models import build_model, list_models

FIXTURES = Path(__file__).parent / "fixtures" / "kermany"
XRAY = FIXTURES / "test" / "PNEUMONIA" / "person8_virus_28.jpeg"

# Smallest sizes each backbone builds at (weights=None); custom models at 64 px.
SIZES = {"vgg16": 32, "vgg19": 32, "resnet50": 32, "densenet121": 32, "mobilenetv2": 32,
         "efficientnetb0": 32, "xception": 71, "inceptionv3": 75}
# Building and differentiating these takes more than ~10 s on a busy 2-core machine.
SLOW = {"resnet50", "densenet121", "efficientnetb0", "xception", "inceptionv3"}


def _arch_params() -> list:
    return [pytest.param(m.name, marks=pytest.mark.slow) if m.name in SLOW else m.name
            for m in list_models()]


@pytest.mark.parametrize("arch", _arch_params())
def test_grad_cam_on_every_architecture(arch: str) -> None:
    model = build_model(arch, input_size=SIZES.get(arch, 64))
    image = (np.random.default_rng(0).random((50, 70)) * 255).astype(np.uint8)  # not square
    for method in ("gradcam", "gradcam++"):
        heat = grad_cam(model, image, method=method)
        assert heat.shape == (50, 70) and heat.dtype == np.float32
        assert np.isfinite(heat).all()
        assert heat.min() >= 0.0 and heat.max() <= 1.0


def test_transfer_model_layers_backbone_and_inside_it() -> None:
    model = build_model("vgg16", input_size=64)
    layers = feature_layers(model)
    assert layers[-1] == "backbone" and "backbone/block5_conv3" in layers
    for layer in ("backbone", "backbone/block5_conv3", "block4_conv3"):  # bare inner names too
        heat = grad_cam(model, XRAY, layer=layer)
        assert heat.shape == (224, 224) and np.isfinite(heat).all()


# --- a model that has learned where to look ----------------------------------------------
def _squares(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise films; class 1 has a bright square, in the left or right half (``side``)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(40, 10, (n, 64, 64, 3)).clip(0, 255).astype(np.float32)
    y = np.arange(n) % 2
    side = rng.integers(0, 2, n)
    for i in np.flatnonzero(y):
        r, c = rng.integers(4, 48), rng.integers(2, 18) + 32 * side[i]
        x[i, r:r + 12, c:c + 12, :] = 220
    return x, y, side


@pytest.fixture(scope="module")
def trained():
    import keras

    keras.utils.set_random_seed(0)
    model = build_model("cnn4", input_size=64)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy")
    x, y, _ = _squares(80, seed=0)
    model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    return model


def test_trained_model_is_good_enough_to_explain(trained) -> None:
    x, y, _ = _squares(20, seed=1)
    assert (trained.predict(x, verbose=0).argmax(1) == y).mean() >= 0.9


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_heatmap_mass_lies_on_the_square(trained, method: str) -> None:
    x, y, side = _squares(20, seed=1)
    hits = []
    for i in np.flatnonzero(y):
        heat = grad_cam(trained, x[i], class_index="pneumonia", method=method)
        assert heat.max() > heat.min()  # not constant
        left, right = heat[:, :32].sum(), heat[:, 32:].sum()
        hits.append((right > left) == bool(side[i]))
    assert np.mean(hits) >= 0.8


def test_class_selection(trained) -> None:
    x, _, _ = _squares(2, seed=2)
    by_name = grad_cam(trained, x[1], class_index="pneumonia")
    np.testing.assert_array_equal(by_name, grad_cam(trained, x[1], class_index=1))
    with pytest.raises(UnknownNameError, match="pneumonia"):
        grad_cam(trained, x[1], class_index="covid")
    with pytest.raises(ValueError, match="out of range"):
        grad_cam(trained, x[1], class_index=5)
    with pytest.raises(UnknownNameError, match="gradcam"):
        grad_cam(trained, x[1], method="saliency")
    with pytest.raises(UnknownNameError, match="block1_conv"):
        grad_cam(trained, x[1], layer="nope")


def test_three_class_model() -> None:
    model = build_model("xraynet", num_classes=3, input_size=64)
    heat = grad_cam(model, XRAY, class_index="virus", method="gradcam++")
    assert heat.shape == (224, 224) and 0.0 <= heat.min() <= heat.max() <= 1.0


# --- feature maps, colours, overlays -----------------------------------------------------
def test_feature_maps_and_grid(trained) -> None:
    maps = feature_maps(trained, XRAY, ["block1_conv", "block2_conv"], max_channels=4)
    assert list(maps) == ["block1_conv", "block2_conv"]
    assert maps["block1_conv"].shape == (62, 62, 4) and maps["block2_conv"].shape == (29, 29, 4)
    default = feature_maps(trained, XRAY)
    assert list(default) == ["block1_conv", "block2_conv", "block3_conv", "block4_conv"]
    assert all(m.shape[-1] <= 16 for m in default.values())
    grid = feature_map_grid(maps, tile=32, pad=2)
    assert grid.dtype == np.uint8 and grid.shape == (2 + 2 * (14 + 32 + 2), 2 + 4 * 34, 3)
    assert grid.std() > 0
    with pytest.raises(UnknownNameError):
        feature_maps(trained, XRAY, ["block9_conv"])


def test_feature_maps_inside_a_backbone() -> None:
    model = build_model("vgg16", input_size=32)
    maps = feature_maps(model, XRAY, ["backbone/block1_conv1", "block2_conv1", "backbone"],
                        max_channels=3)
    assert [m.shape for m in maps.values()] == [(32, 32, 3), (16, 16, 3), (1, 1, 3)]


def test_colormap_and_overlay() -> None:
    assert apply_colormap(np.array([0.0, 1.0])).tolist() == [[0, 0, 128], [128, 0, 0]]
    image = np.full((30, 40), 100, dtype=np.uint8)
    heat = np.zeros((3, 4))
    heat[:, 2:] = 1.0
    out = overlay(image, heat, alpha=0.5)
    assert out.shape == (30, 40, 3) and out.dtype == np.uint8
    assert out[15, 35, 0] > out[15, 35, 2]  # hot: red
    assert out[15, 2, 2] > out[15, 2, 0]  # cold: blue
    np.testing.assert_array_equal(overlay(image, heat, alpha=0.0)[..., 0], image)
    with pytest.raises(ValueError):
        overlay(image, heat, alpha=1.5)


def test_save_explanation_writes_a_png_the_size_of_the_input(trained, tmp_path) -> None:
    film = Image.open(XRAY).convert("L").resize((150, 100))
    out = save_explanation(trained, film, tmp_path / "sub" / "heat.png", method="gradcam++")
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (150, 100)


# --- the command -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_folder(trained, tmp_path_factory):
    from pneumozoo.pretrained import PretrainedConfig, save_folder

    folder = tmp_path_factory.mktemp("explain") / "cnn4-squares"
    save_folder(trained, folder, PretrainedConfig(
        name="cnn4-squares", architecture="cnn4", task="binary",
        class_names=("normal", "pneumonia"), input_size=64))
    return folder


def test_cli_explain_writes_heatmap_and_feature_grid(model_folder, tmp_path, capsys) -> None:
    from pneumozoo.cli import main

    x, _, _ = _squares(2, seed=3)
    film = tmp_path / "film.png"
    Image.fromarray(x[1].astype(np.uint8)).resize((96, 80)).save(film)
    rc = main(["explain", str(film), "--model", str(model_folder), "--out", str(tmp_path / "h.png"),
               "--method", "gradcam++", "--class", "pneumonia", "--feature-maps", "block1_conv",
               "block3_conv", "--out-features", str(tmp_path / "f.png"), "--json"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert result["explained_class"] == "pneumonia" and result["label"] in ("normal", "pneumonia")
    with Image.open(tmp_path / "h.png") as img:
        assert img.size == (96, 80)
        assert np.asarray(img).std() > 0
    with Image.open(tmp_path / "f.png") as grid:
        assert grid.size[1] == 2 + 2 * (14 + 64 + 2)
        assert np.asarray(grid).std() > 0


def test_cli_explain_errors_are_one_line(model_folder, tmp_path, capsys) -> None:
    from pneumozoo.cli import main

    assert main(["explain", str(tmp_path / "missing.png"), "--model", str(model_folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.png" in err[0]
    assert main(["explain", str(XRAY), "--model", str(model_folder), "--class", "covid",
                 "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "covid" in err[0] and "pneumonia" in err[0]

"""Reduced JPEG decoding (``read_xray(min_side=...)``): the expected DCT-scaled size, the same
film to within a grey level or two, and the same prediction, in predict and the pipeline."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

SIZE = 48


def _film(w: int = 1600, h: int = 1300, mode: str = "L") -> Image.Image:
    """A synthetic radiograph-like film: gradients, bright ellipses, fine noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 60 + 80 * np.sin(xx / w * np.pi) * np.cos((yy / h - 0.5) * np.pi)
    img = Image.fromarray(np.clip(base + rng.normal(0, 6, (h, w)), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    draw.ellipse((w * 0.15, h * 0.2, w * 0.45, h * 0.85), fill=200)
    draw.ellipse((w * 0.55, h * 0.2, w * 0.85, h * 0.85), fill=170)
    draw.rectangle((w * 0.05, h * 0.05, w * 0.2, h * 0.1), fill=250)  # a marker label
    img = img.filter(ImageFilter.GaussianBlur(3))
    return img.convert(mode)


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("draft") / "big.jpeg"
    _film().save(path, quality=90)
    return path


@pytest.fixture(scope="module")
def tiny_model() -> Any:
    import keras

    import pneumozoo

    keras.utils.set_random_seed(0)
    return pneumozoo.build_model("cnn4", input_size=SIZE)


def test_draft_gives_the_smallest_dct_scale_above_min_side(big_jpeg: Path) -> None:
    from pneumozoo.io import read_xray

    assert read_xray(big_jpeg).shape == (1300, 1600, 3)
    assert read_xray(big_jpeg, min_side=SIZE).shape == (163, 200, 3)  # 1/8, short side 163 >= 48
    assert read_xray(big_jpeg, min_side=400).shape == (650, 800, 3)  # 1/2 (1/4: 325 < 400)
    assert read_xray(big_jpeg, min_side=700).shape == (1300, 1600, 3)  # no scale fits
    # bytes too; the checked read keeps the reduced size
    assert read_xray(big_jpeg.read_bytes(), min_side=SIZE, check=True).shape == (163, 200, 3)


def test_draft_leaves_other_formats_and_colour_alone(tmp_path: Path) -> None:
    from pneumozoo.io import read_xray

    png = tmp_path / "big.png"
    _film(800, 650).save(png)
    assert read_xray(png, min_side=SIZE).shape == (650, 800, 3)
    buf = io.BytesIO()
    _film(800, 650, "RGB").save(buf, "JPEG", quality=90)
    colour = read_xray(buf.getvalue(), min_side=SIZE)
    assert colour.shape == (82, 100, 3)  # an RGB JPEG is drafted in RGB
    small = tmp_path / "small.jpeg"
    _film(90, 80).save(small)
    assert read_xray(small, min_side=SIZE).shape == (80, 90, 3)  # under 2x: read in full


def test_draft_prediction_matches_full_decode(big_jpeg: Path, tiny_model: Any) -> None:
    import pneumozoo
    from pneumozoo.io import read_xray

    pre = tiny_model.preprocessor
    full = pre.prepare(read_xray(big_jpeg)).astype(np.float64)
    reduced = pre.prepare(read_xray(big_jpeg, min_side=SIZE)).astype(np.float64)
    assert np.abs(full - reduced).mean() < 1.5  # grey levels, on the model's 48 px input
    p_full = float(tiny_model.scores(full[None])[0][0, 1])
    p_draft = float(tiny_model.scores(reduced[None])[0][0, 1])
    assert abs(p_full - p_draft) < 0.05
    # predict reads the full film (one answer whatever the input type, issue 23); reduced
    # decoding is the explicit read_xray(min_side=...) option.
    (pred,) = pneumozoo.predict(tiny_model, big_jpeg)
    assert pred.probability == pytest.approx(p_full, abs=1e-5)


def test_pipeline_reads_films_like_predict(big_jpeg: Path, tiny_model: Any) -> None:
    """Training and evaluation read a film exactly as ``pneumozoo.predict`` does: a full
    decode, then the model's host preparation."""
    from pneumozoo.data.pipeline import load_films
    from pneumozoo.io import read_xray

    pre = tiny_model.preprocessor
    np.testing.assert_array_equal(load_films([big_jpeg], pre)[0], pre.prepare(read_xray(big_jpeg)))

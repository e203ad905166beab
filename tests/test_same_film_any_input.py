"""A film reads the same whatever the input type: a path, its bytes, a PIL image and
``read_xray``'s array give one prediction (P to 1e-3, domain score to 0.01). Reduced JPEG
decoding (``read_xray(min_side=...)``) is an explicit option, never the default of ``predict``."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import pneumozoo
from pneumozoo import read_xray

FIXTURES = Path(__file__).parent / "fixtures" / "kermany" / "test"


@pytest.fixture(scope="module")
def big_films(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Original-size JPEGs (as a user's files are: 1500+ px, grey): fixture films upscaled."""
    folder = tmp_path_factory.mktemp("fullres")
    out = []
    for src in (sorted((FIXTURES / "NORMAL").glob("*.jpeg"))[:2]
                + sorted((FIXTURES / "PNEUMONIA").glob("*.jpeg"))[:2]):
        img = Image.open(src).convert("L").resize((1760, 1520), Image.Resampling.BICUBIC)
        path = folder / src.name
        img.save(path, quality=92)
        out.append(path)
    return out


@pytest.fixture(scope="module")
def model() -> Any:
    return pneumozoo.load_pretrained()


def test_every_input_type_reads_the_same_film_the_same(model: Any, big_films: list[Path]) -> None:
    for path in big_films:
        sources = [path, str(path), path.read_bytes(), Image.open(path), read_xray(path)]
        preds = pneumozoo.predict(model, sources)
        probs = [p.probability for p in preds]
        scores = [p.domain_score for p in preds]
        assert max(probs) - min(probs) < 1e-3, (path.name, probs)
        assert max(scores) - min(scores) < 0.01, (path.name, scores)


def test_reduced_decoding_is_an_explicit_option(model: Any, big_films: list[Path]) -> None:
    path = big_films[0]
    full = read_xray(path)
    reduced = read_xray(path, min_side=model.input_size)  # the documented opt-in
    assert reduced.shape[0] < full.shape[0]
    (default,) = pneumozoo.predict(model, path)
    (as_array,) = pneumozoo.predict(model, full)
    assert default.probability == pytest.approx(as_array.probability, abs=1e-6)
    (fast,) = pneumozoo.predict(model, reduced)
    assert fast.probability == pytest.approx(default.probability, abs=0.05)  # close, not equal


def test_pil_image_bytes_and_path_of_a_colour_jpeg(model: Any, tmp_path: Path) -> None:
    src = sorted((FIXTURES / "NORMAL").glob("*.jpeg"))[0]
    img = Image.open(src).convert("RGB").resize((1600, 1400), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    path = tmp_path / "colour.jpeg"
    path.write_bytes(buf.getvalue())
    preds = pneumozoo.predict(model, [path, buf.getvalue(), Image.open(path)])
    assert np.ptp([p.probability for p in preds]) < 1e-3
    assert np.ptp([p.domain_score for p in preds]) < 0.01

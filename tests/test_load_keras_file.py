"""``load_pretrained("mine.keras")``: a model saved with ``model.save`` loads (safe_mode, the
safety check, its sha256 kept); a folder holding only ``model.keras`` says what to do."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    import keras

    import pneumozoo

    keras.utils.set_random_seed(0)
    model = pneumozoo.build_model("cnn4", input_size=48)
    model.threshold = 0.37
    path = tmp_path_factory.mktemp("keras") / "mine.keras"
    model.save(path)
    return model, path


def test_a_keras_file_loads_with_its_settings_and_sha256(tiny: tuple[Any, Path]) -> None:
    from pneumozoo import load_pretrained

    model, path = tiny
    loaded = load_pretrained(str(path))
    assert tuple(loaded.class_names) == tuple(model.class_names)
    assert loaded.threshold == pytest.approx(0.37)
    assert loaded.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    film = np.random.default_rng(0).integers(0, 255, (1, 80, 70, 1)).astype(np.uint8)
    np.testing.assert_allclose(loaded.predict(film, verbose=0), model.predict(film, verbose=0),
                               atol=1e-6)
    assert load_pretrained(path).threshold == pytest.approx(0.37)  # a Path too


def test_a_keras_file_gets_the_safety_check(tmp_path: Path) -> None:
    import keras

    from pneumozoo import load_pretrained
    from pneumozoo.errors import PneumozooError

    inp = keras.Input((4,))
    plain = keras.Model(inp, keras.layers.Lambda(lambda x: x * 2)(inp))
    path = tmp_path / "lambda.keras"
    plain.save(path)
    with pytest.raises(PneumozooError, match="Lambda"):
        load_pretrained(path)


def test_a_folder_with_only_model_keras_says_how_to_make_a_release_folder(
        tiny: tuple[Any, Path], tmp_path: Path) -> None:
    from pneumozoo import load_pretrained
    from pneumozoo.errors import PneumozooError

    (tmp_path / "model.keras").write_bytes(tiny[1].read_bytes())
    with pytest.raises(PneumozooError) as e:
        load_pretrained(tmp_path)
    msg = str(e.value)
    assert "no pneumozoo.json" in msg and "model.keras" in msg
    assert "save_folder" in msg and "PretrainedConfig.from_model" in msg
    (tmp_path / "model.keras").unlink()
    with pytest.raises(PneumozooError, match="save_folder"):
        load_pretrained(tmp_path)

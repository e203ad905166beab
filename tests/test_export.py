"""Export: SavedModel and TFLite (float32, float16, int8) agree with the Keras model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "kermany"
SIZE = 32


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    from pneumozoo.io import read_xray
    from pneumozoo.models import XrayPreprocessor

    pre = XrayPreprocessor(SIZE)  # what the models below (luminance) do to a film
    files = sorted((FIXTURES / "test").rglob("*.jpeg")) + sorted((FIXTURES / "train").rglob("*.jpeg"))[:8]
    return np.stack([np.repeat(pre.prepare(read_xray(f)), 3, axis=-1) for f in files]).astype(np.float32)


@pytest.fixture(scope="module")
def model(images: np.ndarray) -> Any:
    import keras

    import pneumozoo

    keras.utils.set_random_seed(0)
    m = pneumozoo.build_model("xraynet", input_size=SIZE)
    rng = np.random.default_rng(0)
    weights = []
    for w in m.weights:
        value = np.asarray(w.value)
        if w.path.endswith("moving_mean"):  # non-trivial statistics: a BatchNorm exported in
            value = rng.normal(0.0, 0.2, value.shape)  # training mode would not match
        elif w.path.endswith("moving_variance"):
            value = rng.uniform(0.5, 1.5, value.shape)
        weights.append(value.astype(w.dtype))
    m.set_weights(weights)
    # Scale the logits so P(pneumonia) spreads over (0, 1) on the test images instead of
    # sitting at 0.5 (random init) or saturating at 0/1.
    p = m.predict(images, verbose=0).astype(np.float64)
    logits = m.get_layer("logits")
    kernel, bias = logits.get_weights()
    g = np.log(p[:, 1] / p[:, 0]) - (bias[1] - bias[0])  # the kernel's part of the logit gap
    scale = 2.0 / g.std()
    logits.set_weights([kernel * scale, np.array([0.0, -scale * g.mean()], bias.dtype)])
    return m


@pytest.fixture(scope="module")
def exported(model: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from pneumozoo.export import export_model

    out = tmp_path_factory.mktemp("export")
    return {
        "savedmodel": export_model(model, out / "sm", format="savedmodel"),
        "tflite": export_model(model, out / "m.tflite", format="tflite"),
        "tflite-float16": export_model(model, out / "m16.tflite", format="tflite-float16"),
        "tflite-int8": export_model(model, out / "m8.tflite", format="tflite-int8",
                                    calibration=FIXTURES / "train"),
    }


def test_savedmodel_matches_keras(model: Any, images: np.ndarray,
                                  exported: dict[str, Path]) -> None:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(exported["savedmodel"]))
    got = loaded.serve(tf.constant(images)).numpy()
    want = model.predict(images, verbose=0)
    assert want[:, 1].std() > 0.15, "P(pneumonia) should spread over the test images"
    np.testing.assert_allclose(got, want, atol=1e-4)
    meta = json.loads((exported["savedmodel"] / "pneumozoo-export.json").read_text())
    assert meta["input_size"] == SIZE and meta["class_names"] == ["normal", "pneumonia"]


# (max |diff|, mean |diff|, decision margin, agreement beyond the margin). int8 is looser:
# this tiny random network's logit gaps are small next to its int8 rounding steps, which
# trained models' are not (bench_export.py measures the real default model).
@pytest.mark.parametrize(("fmt", "max_diff", "mean_diff", "margin", "min_agree"), [
    ("tflite", 1e-4, 1e-5, 1e-4, 1.0),
    ("tflite-float16", 1e-2, 2e-3, 1e-2, 1.0),
    ("tflite-int8", 0.5, 0.15, 0.25, 0.8),
])
def test_tflite_matches_keras(model: Any, images: np.ndarray, exported: dict[str, Path],
                              fmt: str, max_diff: float, mean_diff: float, margin: float,
                              min_agree: float) -> None:
    from pneumozoo.export import TFLiteModel

    tfl = TFLiteModel(exported[fmt])
    assert tfl.input_size == SIZE and tfl.class_names == ("normal", "pneumonia")
    got = tfl.predict(images, batch_size=5)  # uneven batches: resizes the interpreter input
    want = model.predict(images, verbose=0)
    assert got.shape == want.shape and got.dtype == np.float32
    diff = np.abs(got - want)
    assert diff.max() <= max_diff and diff.mean() <= mean_diff
    assert np.corrcoef(got[:, 1], want[:, 1])[0, 1] > 0.7
    decided = np.abs(want[:, 1] - 0.5) > margin  # Keras is not near a tie
    assert decided.sum() >= len(want) // 3
    assert float(np.mean(got.argmax(1)[decided] == want.argmax(1)[decided])) >= min_agree


def test_sizes_shrink_with_quantisation(exported: dict[str, Path]) -> None:
    f32, f16, i8 = (exported[k].stat().st_size for k in ("tflite", "tflite-float16", "tflite-int8"))
    assert f16 < 0.6 * f32 and i8 < 0.35 * f32


def test_tflite_model_takes_raw_films_like_keras(model: Any, exported: dict[str, Path]) -> None:
    import pneumozoo
    from pneumozoo.export import TFLiteModel
    from pneumozoo.io import read_xray

    tfl = TFLiteModel(exported["tflite"])
    files = sorted((FIXTURES / "test").rglob("*.jpeg"))
    raw = np.stack([read_xray(f) for f in files])  # 224 px uint8: resized on the way in
    np.testing.assert_allclose(tfl.predict(raw), model.predict(raw, verbose=0), atol=1e-4)
    preds = pneumozoo.predict(tfl, files)  # the high-level API accepts it too
    keras_preds = pneumozoo.predict(model, files)
    assert [p.label for p in preds] == [p.label for p in keras_preds]
    assert [p.probability for p in preds] == pytest.approx([p.probability for p in keras_preds],
                                                           abs=1e-4)


def test_export_errors_are_clear(model: Any, tmp_path: Path) -> None:
    from pneumozoo.errors import DataError, UnknownNameError
    from pneumozoo.export import export_model

    with pytest.raises(UnknownNameError, match="savedmodel, tflite"):
        export_model(model, tmp_path / "x", format="onnx")
    with pytest.raises(DataError, match="calibration"):
        export_model(model, tmp_path / "x.tflite", format="tflite-int8")
    with pytest.raises(DataError, match="no readable images"):
        export_model(model, tmp_path / "x.tflite", format="tflite-int8", calibration=tmp_path)


def test_cli_export(model: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pneumozoo.cli import main

    source = tmp_path / "tiny.keras"
    model.save(source)
    out = tmp_path / "tiny.tflite"
    assert main(["export", str(source), "--format", "tflite-float16", "--out", str(out)]) == 0
    assert out.is_file() and (tmp_path / "tiny.tflite.json").is_file()
    assert "tflite-float16" in capsys.readouterr().out
    code = main(["export", str(source), "--format", "tflite-int8", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--calibration-dir" in err


def test_int8_graph_starts_after_the_normalisation(images: np.ndarray, tmp_path: Path) -> None:
    # Quantised per-image statistics (MEAN, SQUARED_DIFFERENCE, SQRT, DIV in int8) cost
    # accuracy and kept the int8 graph ~10x slower than float: TFLiteModel normalises on the
    # host instead, with the same ops.
    import keras
    import tensorflow as tf

    import pneumozoo
    from pneumozoo.export import TFLiteModel, export_model, metadata_path

    keras.utils.set_random_seed(0)
    m = pneumozoo.build_model("xraynet", input_size=SIZE, normalization="per-image")
    path = export_model(m, tmp_path / "pi8.tflite", format="tflite-int8",
                        calibration=FIXTURES / "train")
    meta = json.loads(metadata_path(path).read_text())
    assert meta["host_normalization"] == "per-image"
    ops = {d["op_name"] for d in tf.lite.Interpreter(model_path=str(path))._get_ops_details()}
    # (one MEAN stays: the global average pooling)
    assert "CONV_2D" in ops and not ops & {"SQUARED_DIFFERENCE", "SQRT", "DIV"}
    got = TFLiteModel(path).predict(images, batch_size=8)
    want = m.predict(images, verbose=0)
    assert got.shape == want.shape and np.abs(got - want).max() < 0.05

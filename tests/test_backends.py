"""One model, every Keras backend: the same pixels, the same probabilities, no TensorFlow off it.

- The host preprocessing (:meth:`XrayPreprocessor.prepare`) is numpy only, so every backend
  gets identical pixels; its resize is TensorFlow's antialiased bilinear resize, checked here
  against ``tf.image.resize(antialias=True)`` and ``jax.image.resize`` where installed.
- The graph preprocessing (``keras.ops``) gives the host's pixels on the current backend.
- Every bundled model gives the same P (1e-4) and the same decisions on TensorFlow, JAX and
  PyTorch, whichever of them is installed in this interpreter (each other backend runs in a
  subprocess with ``KERAS_BACKEND`` set, the same ``sys.executable``); with JAX or PyTorch,
  ``import pneumozoo``, ``load_pretrained`` and ``predict`` never import TensorFlow.
- ``model.predict`` refuses paths, bytes and PIL images with one line; TTA works on every
  bundled model, one-channel films included.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import pneumozoo
from pneumozoo.errors import PneumozooError
from pneumozoo.models.preprocessor import (
    XrayPreprocessor,
    luminance_uint8,
    resize_pixels,
    resize_weights,
)

ROOT = Path(__file__).resolve().parents[1]
FILMS = sorted(str(p) for p in (ROOT / "examples" / "xrays").glob("*.jpeg"))
BACKEND = keras.backend.backend()
OTHER_BACKENDS = [b for b, module in (("tensorflow", "tensorflow"), ("jax", "jax"), ("torch", "torch"))
                  if b != BACKEND and importlib.util.find_spec(module) is not None]
#: Host resize vs TensorFlow's, after rounding to whole pixels: at most 1 apart, on at most
#: this share of the pixels (measured: 7.8e-6 on 31 M random-film pixels, 1.6e-5 on 3 M
#: pixels of full-resolution Kermany films; float32 summation order decides exact .5 ties).
MAX_OFF_BY_ONE_SHARE = 1e-4
P_TOLERANCE = 1e-4

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


def _random_films(n: int, seed: int = 0) -> list[tuple[np.ndarray, int]]:
    """Films of random sizes, channels and content (noise and smooth), with a target size."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = (int(v) for v in rng.integers(16, 500, 2))
        c = int(rng.choice([1, 3]))
        if i % 2:
            img = rng.integers(0, 256, (h, w, c))
        else:
            yy, xx = np.mgrid[0:h, 0:w]
            img = 128 + 90 * np.sin(yy / rng.uniform(3, 30))[..., None] * np.cos(xx / rng.uniform(3, 30))[..., None]
            img = np.repeat(img, c, axis=-1) + rng.normal(0, 4, (h, w, c))
        out.append((np.clip(img, 0, 255).astype(np.uint8), int(rng.integers(16, 300))))
    return out


def _agreement(reference: Any, ours: np.ndarray) -> tuple[float, float]:
    """(max difference, share of pixels that differ) after rounding both to whole pixels."""
    a = np.round(np.clip(np.asarray(reference, np.float64), 0, 255))
    b = np.round(np.clip(np.asarray(ours, np.float64), 0, 255))
    d = np.abs(a - b)
    return float(d.max()), float((d > 0).mean())


# --- the host resize is TensorFlow's and JAX's --------------------------------------------------
def test_resize_weights_are_tensorflows_triangle_filter() -> None:
    # Shrinking by 2: output pixel 0 samples at 1.0, the triangle is stretched to 2 pixels a
    # side: 0.75, 0.75, 0.25 for the input centres 0.5, 1.5, 2.5, normalised.
    np.testing.assert_allclose(resize_weights(4, 2), np.array([[3, 3, 1, 0], [0, 1, 3, 3]]) / 7, rtol=1e-6)
    for n_in, n_out in ((1000, 192), (192, 192), (37, 211), (5, 1)):
        w = resize_weights(n_in, n_out)
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(resize_weights(50, 50), np.eye(50, dtype=np.float32))


def test_host_resize_matches_tf_image_resize_antialias() -> None:
    tf = pytest.importorskip("tensorflow")
    worst, share, n = 0.0, 0.0, 0
    for img, size in _random_films(60):
        ref = tf.image.resize(img[None].astype(np.float32), (size, size), method="bilinear",
                              antialias=True).numpy()[0]
        ours = resize_pixels(img, size)
        np.testing.assert_allclose(ours, ref, atol=1e-2)  # float32 summation order only
        d, s = _agreement(ref, ours)
        worst, share, n = max(worst, d), share + s * ref.size, n + ref.size
    assert worst <= 1.0 and share / n <= MAX_OFF_BY_ONE_SHARE, (worst, share / n)


def test_host_resize_matches_jax_image_resize_antialias() -> None:
    pytest.importorskip("jax")
    import jax

    worst, share, n = 0.0, 0.0, 0
    for img, size in _random_films(30, seed=1):
        shape = (size, size, img.shape[-1])
        ref = np.asarray(jax.image.resize(img.astype(np.float32), shape, "bilinear", antialias=True))
        ours = resize_pixels(img, size)
        np.testing.assert_allclose(ours, ref, atol=1e-2)  # float32 summation order only
        d, s = _agreement(ref, ours)
        worst, share, n = max(worst, d), share + s * ref.size, n + ref.size
    assert worst <= 1.0 and share / n <= MAX_OFF_BY_ONE_SHARE, (worst, share / n)


def test_host_luminance_is_pil_convert_l_exactly() -> None:
    from PIL import Image

    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (123, 77, 3)).astype(np.uint8)
    expected = np.asarray(Image.fromarray(rgb).convert("L"))
    np.testing.assert_array_equal(luminance_uint8(rgb)[..., 0], expected)
    np.testing.assert_array_equal(luminance_uint8(rgb.astype(np.float32))[..., 0], expected)
    np.testing.assert_array_equal(luminance_uint8(rgb[None])[0, ..., 0], expected)


@pytest.mark.parametrize("color", ["luminance", "rgb"])
def test_graph_and_host_preprocessing_agree_on_this_backend(color: str) -> None:
    """``to_pixels`` (keras.ops, this backend) and ``prepare`` (numpy) give the same pixels."""
    pre = XrayPreprocessor(64, "unit", color)
    worst, share, n = 0.0, 0.0, 0
    for img, _ in _random_films(16, seed=2):
        host = pre.prepare(img)
        graph = keras.ops.convert_to_numpy(pre.to_pixels(img[None]))[0]
        assert host.dtype == np.uint8 and host.shape == graph.shape == (64, 64, pre.channels)
        d, s = _agreement(graph, host)
        worst, share, n = max(worst, d), share + s * host.size, n + host.size
    # PyTorch's antialiased interpolate is the same filter with its own float rounding.
    assert worst <= 1.0 and share / n <= (5e-3 if BACKEND == "torch" else MAX_OFF_BY_ONE_SHARE)
    # At the model's size the host path only rounds, exactly as the graph does.
    same = np.random.default_rng(0).uniform(0, 255, (64, 64, 1)).astype(np.float32)
    np.testing.assert_array_equal(pre.prepare(same)[..., :1],
                                  keras.ops.convert_to_numpy(pre.to_pixels(same[None]))[0][..., :1])


# --- model.predict says what it takes -------------------------------------------------------------
def test_model_predict_refuses_files_with_one_line_pointing_to_pneumozoo_predict(tmp_path: Path) -> None:
    from PIL import Image

    model = pneumozoo.build_model("cnn4", input_size=48)
    path = tmp_path / "film.jpeg"
    Image.fromarray(np.zeros((60, 60), np.uint8)).save(path)
    for bad in (str(path), path, path.read_bytes(), Image.open(path), [str(path)]):
        with pytest.raises(PneumozooError) as info:
            model.predict(bad, verbose=0)
        message = str(info.value)
        assert "\n" not in message and "pneumozoo.predict" in message and "read_xray" in message
    # What it takes: one film, a list of films of any sizes, a batch.
    assert model.predict(np.zeros((70, 50), np.uint8), verbose=0).shape == (1, 2)
    assert model.predict([np.zeros((70, 50, 3)), np.zeros((40, 90))], verbose=0).shape == (2, 2)
    assert model.predict(np.zeros((3, 48, 48, 1), np.uint8), verbose=0).shape == (3, 2)


# --- one inference path: TTA on every bundled model ----------------------------------------------
def test_tta_runs_on_every_bundled_model_with_one_and_three_channel_films() -> None:
    from pneumozoo.evaluation import predict_tta

    film = pneumozoo.read_xray(FILMS[0])
    for cfg in pneumozoo.list_pretrained():
        model = pneumozoo.load_pretrained(cfg.name)
        (plain,) = pneumozoo.predict(model, film)
        (tta,) = pneumozoo.predict(model, film, tta=True)  # prepared films: 1 channel (luminance)
        assert tta.ok and plain.probability is not None and tta.probability is not None, cfg.name
        assert abs(plain.probability - tta.probability) < 0.3, cfg.name
        assert plain.domain_score == tta.domain_score  # the film's own, not the views'
        three = np.repeat(model.prepare(film)[None], 3 // model.preprocessor.channels, axis=-1)
        p = predict_tta(model, three)  # 3-channel films as well
        assert p.shape == (1, len(model.class_names)) and np.allclose(p.sum(axis=1), 1.0, atol=1e-5)
        assert abs((1.0 - p[0, 0]) - tta.probability) < 1e-4, cfg.name


# --- every bundled model, every backend ----------------------------------------------------------
_SCRIPT = r"""
import json, sys
import numpy as np
import pneumozoo
films, names = json.loads(sys.argv[1]), json.loads(sys.argv[2])
out = {"backend": __import__("keras").backend.backend(), "models": {}}
for name in names:
    model = pneumozoo.load_pretrained(name)
    preds = pneumozoo.predict(model, films)
    out["models"][name] = [[p.probability, p.label, p.domain_score] for p in preds]
if sys.argv[3] == "cam":
    cam = pneumozoo.grad_cam(pneumozoo.load_pretrained(), films[0])
    out["cam"] = [float(cam.mean()), float(cam.std()), [float(v) for v in cam[::37, ::37].ravel()]]
out["tensorflow_imported"] = "tensorflow" in sys.modules
print("RESULT " + json.dumps(out))
"""


def _run_backend(backend: str, names: list[str], films: list[str], cam: bool) -> dict[str, Any]:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, json.dumps(films), json.dumps(names),
                           "cam" if cam else "-"], capture_output=True, text=True, env=env,
                          timeout=900, cwd=ROOT)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT "):])
    assert result["backend"] == backend
    return result


def _here(names: list[str], films: list[str], cam: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"backend": BACKEND, "models": {}}
    for name in names:
        preds = pneumozoo.predict(pneumozoo.load_pretrained(name), films)
        out["models"][name] = [[p.probability, p.label, p.domain_score] for p in preds]
    if cam:
        heat = pneumozoo.grad_cam(pneumozoo.load_pretrained(), films[0])
        out["cam"] = [float(heat.mean()), float(heat.std()), [float(v) for v in heat[::37, ::37].ravel()]]
    return out


def _compare(reference: dict[str, Any], other: dict[str, Any]) -> None:
    for name, rows in reference["models"].items():
        for film, a, b in zip(FILMS, rows, other["models"][name], strict=True):
            where = f"{name} on {Path(film).name}: {reference['backend']} vs {other['backend']}"
            assert abs(a[0] - b[0]) <= P_TOLERANCE, f"{where}: P {a[0]} vs {b[0]}"
            assert a[1] == b[1], f"{where}: label {a[1]} vs {b[1]}"
            if a[2] is not None:
                assert abs(a[2] - b[2]) <= 1e-3, f"{where}: domain score {a[2]} vs {b[2]}"
    if "cam" in reference and "cam" in other:
        np.testing.assert_allclose(other["cam"][2], reference["cam"][2], atol=2e-3)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_the_default_model_on_another_backend_gives_the_same_answers_without_tensorflow(backend: str) -> None:
    """Fast: the default model and Grad-CAM in one subprocess per installed backend."""
    if backend == BACKEND or importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed here, or is this process's backend")
    name = pneumozoo.list_pretrained()[0].name
    reference = _here([name], FILMS, cam=True)
    other = _run_backend(backend, [name], FILMS, cam=True)
    assert other["tensorflow_imported"] is False, f"KERAS_BACKEND={backend} imported tensorflow"
    _compare(reference, other)


@pytest.mark.slow
def test_every_bundled_model_gives_the_same_answers_on_every_installed_backend() -> None:
    if not OTHER_BACKENDS:
        pytest.skip("only one Keras backend is installed here")
    names = [c.name for c in pneumozoo.list_pretrained()]
    reference = _here(names, FILMS, cam=False)
    for backend in OTHER_BACKENDS:
        other = _run_backend(backend, names, FILMS, cam=False)
        if backend != "tensorflow":
            assert other["tensorflow_imported"] is False, f"KERAS_BACKEND={backend} imported tensorflow"
        _compare(reference, other)

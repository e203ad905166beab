"""Training off TensorFlow: ``fit`` + evaluate on JAX with no TensorFlow import, JAX data
parallelism on two (fake) CPU devices, and the backend-neutral pieces (precision choice, the
one pipeline's batches)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pneumozoo import backend
from pneumozoo.data import FilmBatches, load_films, make_batches, scan_split

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "kermany"


def _has(module: str) -> bool:
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                          timeout=120, env={**os.environ, "KERAS_BACKEND": "jax"})
    return done.returncode == 0


needs_jax = pytest.mark.skipif(not _has("jax"), reason="jax is not installed here")

# Run in a fresh interpreter on JAX; TensorFlow, even where installed, cannot be imported.
_PRELUDE = """
import importlib.abc, json, os, sys
class _NoTF(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError("tensorflow is blocked in this test")
        return None
sys.meta_path.insert(0, _NoTF())
import keras
assert keras.backend.backend() == "jax"
"""


def _run_jax(code: str, tmp_path: Path, *, devices: int = 1, timeout: int = 900) -> dict:
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT / "src"),
           "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    script = tmp_path / "run.py"
    script.write_text(_PRELUDE + textwrap.dedent(code))
    done = subprocess.run([sys.executable, str(script), str(FIXTURES), str(tmp_path)],
                          capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@needs_jax
def test_fit_resume_and_evaluate_on_jax_without_tensorflow(tmp_path: Path) -> None:
    out = _run_jax("""
        import math
        from pathlib import Path
        import pneumozoo
        from pneumozoo.data import patient_split, scan_split
        from pneumozoo.models import build_model
        root, tmp = Path(sys.argv[1]), Path(sys.argv[2])
        train, val = patient_split(scan_split(root, "train"), val_fraction=0.25, seed=0)
        model = build_model("cnn4", input_size=48)
        ckpt = tmp / "ckpt"
        r = pneumozoo.fit(model, train, val, epochs=2, batch_size=8, verbose=0,
                          checkpoint_dir=ckpt, augment="xray-strong")
        again = build_model("cnn4", input_size=48)
        r2 = pneumozoo.fit(again, train, val, epochs=2, batch_size=8, verbose=0,
                           checkpoint_dir=ckpt, augment="xray-strong")
        report = pneumozoo.evaluate(model, scan_split(root, "test"), n_boot=20)
        print(json.dumps({"epochs": r.epochs, "loss": r.history["loss"],
                          "val_auc": r.history["val_auc"], "resumed": r2.resumed_from,
                          "files": sorted(p.name for p in ckpt.iterdir()),
                          "n": report.to_dict()["n"], "threshold": model.threshold,
                          "tf": "tensorflow" in sys.modules}))
    """, tmp_path)
    assert out["tf"] is False
    assert out["epochs"] == 2 and all(np.isfinite(out["loss"]))
    assert out["resumed"] == 2
    assert {"best.weights.h5", "state.json", "history.json"} <= set(out["files"])
    assert out["n"] == len(scan_split(FIXTURES, "test"))


@needs_jax
def test_jax_data_parallel_on_two_cpu_devices(tmp_path: Path) -> None:
    out = _run_jax("""
        import jax
        import numpy as np
        from pathlib import Path
        import pneumozoo
        from pneumozoo import distribute
        from pneumozoo.data import patient_split, scan_split
        from pneumozoo.models import build_model
        root = Path(sys.argv[1])
        train, val = patient_split(scan_split(root, "train"), val_fraction=0.25, seed=0)
        model = build_model("cnn4", input_size=48)
        before = [w.copy() for w in model.get_weights()]
        dist = distribute.data_parallel()
        r = pneumozoo.fit(model, train, val, epochs=1, batch_size=3, verbose=0, strategy=dist,
                          recalibrate=False)
        changed = any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
        p = model.predict(np.zeros((3, 48, 48, 3), np.float32), verbose=0)
        print(json.dumps({"devices": len(jax.devices()), "replicas": r.extra["replicas"],
                          "strategy": r.extra["strategy"], "changed": changed,
                          "val_auc": r.history["val_auc"], "p_shape": list(p.shape),
                          "tf": "tensorflow" in sys.modules}))
    """, tmp_path, devices=2)
    assert out["devices"] == 2 and out["replicas"] == 2
    assert out["strategy"] == "DataParallel" and out["changed"]
    assert len(out["val_auc"]) == 1 and out["p_shape"] == [3, 2]
    assert out["tf"] is False


def test_precision_policy_per_device() -> None:
    gpu = backend.Device
    assert backend.precision_policy([gpu("gpu", "gpu:0", (9, 0), "NVIDIA H200")]) == "mixed_bfloat16"
    assert backend.precision_policy([gpu("gpu", "gpu:0", (8, 0))]) == "mixed_bfloat16"
    assert backend.precision_policy([gpu("gpu", "gpu:0", (7, 5))]) == "mixed_float16"
    assert backend.precision_policy([gpu("gpu", "gpu:0", (9, 0)),
                                     gpu("gpu", "gpu:1", (7, 0))]) == "mixed_float16"
    assert backend.precision_policy([gpu("cpu", "cpu")]) == "float32"
    assert backend.resolve_precision("float32") == "float32"
    assert backend.resolve_precision("auto") == backend.precision_policy()
    assert backend.name() in ("tensorflow", "jax", "torch")


def test_film_batches_are_uint8_seeded_and_cover_every_film(tmp_path: Path) -> None:
    records = scan_split(FIXTURES, "train")
    films = load_films(records, input_size=24, cache=tmp_path / "c" / "train")
    assert films.dtype == np.uint8 and films.shape == (len(records), 24, 24, 1)
    assert list((tmp_path / "c").glob("train-24px-1ch-*.npy"))
    again = load_films(records, input_size=24, cache=tmp_path / "c" / "train")
    np.testing.assert_array_equal(films, again)

    batches = make_batches(records, input_size=24, batch_size=4, training=True, seed=3,
                           films=films, host="pydataset")
    assert isinstance(batches, FilmBatches)

    def epoch(b: FilmBatches) -> list[np.ndarray]:
        return [b[i][0] for i in range(len(b))]

    e0 = epoch(batches)
    assert all(x.dtype == np.uint8 for x in e0)
    assert sorted(float(f.sum()) for x in e0 for f in x) == sorted(float(f.sum()) for f in films)
    batches.on_epoch_end()
    e1 = epoch(batches)
    assert any(not np.array_equal(a, b) for a, b in zip(e0, e1, strict=True)), "reshuffled"
    resumed = make_batches(records, input_size=24, batch_size=4, training=True, seed=3,
                           films=films, host="pydataset")
    resumed.set_epoch(1)
    assert all(np.array_equal(a, b) for a, b in zip(e1, epoch(resumed), strict=True))

    plain = FilmBatches(films, np.arange(len(films)), 4, pad_to=3)
    x, _y, w = plain[len(plain) - 1]
    n_last = len(films) - 4 * (len(plain) - 1)
    assert len(x) % 3 == 0 and w.sum() == n_last and (w[n_last:] == 0).all()

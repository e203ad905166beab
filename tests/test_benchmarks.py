"""The benchmark scripts still run: each one's ``--quick`` mode on the fixture films.

All scripts run in one fresh process (TensorFlow loads once), with tiny models and sizes;
the assertions check the JSON each writes, not speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

# Subprocess and end-to-end runs: `python -m pytest -m slow` (CI runs them too).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
FIXTURES = Path(__file__).parent / "fixtures" / "kermany"
TIMEOUT = 900  # for the whole batch; far less on an idle machine


def _stand_in_peer(folder: Path) -> Path:
    """A tiny model with the peer's contract (180 px RGB 0..255 in, Rescaling first, one
    sigmoid out): the smoke run checks the script's plumbing; the real peer is downloaded
    by the benchmark itself."""
    import keras

    inputs = keras.Input((180, 180, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(2, 3, strides=4)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    path = folder / "stand-in-peer.keras"
    keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x)).save(path)
    return path


def _jobs(results: Path) -> dict[str, list[str]]:
    common = ["--quick", "--data", str(FIXTURES), "--results", str(results)]
    return {
        "bench_pipeline": [*common, "--limit", "16"],
        "bench_inference": [*common, "--models", "cnn4@64", "--reference", "cnn5@64",
                            "--batch-sizes", "1,4", "--images", "8",
                            "--fullres", str(FIXTURES / "test"), "--no-cli"],
        "bench_training": [*common, "--archs", "cnn4@64", "--precisions", "float32",
                           "--xla", "off", "--steps", "1"],
        "bench_memory": [*common, "--model", "cnn4@64", "--sizes", "4,8", "--train-films", "8"],
        "bench_export": [*common, "--model", "cnn4@64", "--images", "8",
                         "--calibration-images", "4"],
        # retrains cnn4-binary on the fixtures for one epoch, in a subprocess
        "bench_reproduce": ["cnn4-binary", *common],
        # two seeds of the same, each in its own subprocess
        "bench_seeds": ["cnn4-binary", *common, "--seeds", "1", "2", "--work", str(results / "seeds")],
        "bench_peer": [*common, "--peer", str(results / "stand-in-peer.keras"),
                       "--model", "cnn4@64", "--candidates", "cnn5@64"],
        "bench_fullres": [*common, "--fullres", str(FIXTURES / "test"), "--model", "cnn4@64"],
        "bench_cold_start": [*common, "--film", str(next((FIXTURES / "test").glob("*/*.jpeg")))],
    }


_DRIVER = """
import contextlib, io, json, sys, traceback
sys.path.insert(0, {bench!r})
jobs = json.loads({jobs!r})
report = {{}}
for name, argv in jobs.items():
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            __import__(name).main(argv)
        report[name] = {{"ok": True}}
    except SystemExit as e:
        report[name] = {{"ok": False, "error": f"exit: {{e}}"}}
    except Exception:
        report[name] = {{"ok": False, "error": traceback.format_exc()[-2000:]}}
    report[name]["stdout"] = out.getvalue()[-3000:]
# bench_export without a bundled default model must stop with one clear line.
import pneumozoo.pretrained as pretrained
pretrained.list_pretrained = lambda **kw: []
try:
    __import__("bench_export").main(["--quick", "--data", {fixtures!r}])
    report["missing_default"] = "no exit"
except SystemExit as e:
    report["missing_default"] = str(e)
print("REPORT " + json.dumps(report))
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    results = tmp_path_factory.mktemp("bench-results")
    _stand_in_peer(results)
    script = _DRIVER.format(bench=str(BENCH), jobs=json.dumps(_jobs(results)),
                            fixtures=str(FIXTURES))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    try:
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env,
                              capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"benchmark smoke runs took more than {TIMEOUT} s")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("REPORT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("REPORT "):]), results


def _ok(runs: tuple[dict[str, Any], Path], name: str, result: str) -> dict[str, Any]:
    report, results = runs
    assert report[name]["ok"], report[name].get("error")
    doc = json.loads((results / f"{result}.json").read_text())
    assert doc["quick"] is True and doc["environment"]["cpus"] >= 1
    assert "----" in report[name]["stdout"]  # printed a table
    return dict(doc)


def test_bench_pipeline(runs: tuple[dict[str, Any], Path]) -> None:
    doc = _ok(runs, "bench_pipeline", "pipeline")
    assert doc["images"] == 16
    assert {r["pipeline"] for r in doc["rows"]} == {
        "pneumozoo", "pneumozoo (pydataset)", "pneumozoo (host only)", "keras", "keras + .cache()"}
    assert all(r["cached_images_per_s"] > 0 for r in doc["rows"])
    assert doc["ratios"]["cached_vs_keras"] > 0


def test_bench_inference(runs: tuple[dict[str, Any], Path]) -> None:
    doc = _ok(runs, "bench_inference", "inference")
    batches = {(r["model"], r["batch"]) for r in doc["arrays"]}
    assert batches == {("cnn4@64", 1), ("cnn4@64", 4), ("cnn5@64", 1), ("cnn5@64", 4)}
    assert len(doc["files"]) == 2 and doc["ratio_default_vs_reference"]["ratio"] > 0


def test_bench_training(runs: tuple[dict[str, Any], Path]) -> None:
    doc = _ok(runs, "bench_training", "training")
    [row] = doc["rows"]
    assert row["arch"] == "cnn4@64" and row["epoch_s"] > 0 and row["speedup_vs_float32"] == 1.0


def test_bench_memory(runs: tuple[dict[str, Any], Path]) -> None:
    doc = _ok(runs, "bench_memory", "memory")
    tasks = [(r["task"], r["films"]) for r in doc["rows"]]
    assert tasks == [("predict", 4), ("predict", 8), ("train 1 epoch", 8)]
    assert all(r["peak_mb"] >= r["after_load_mb"] > 0 for r in doc["rows"])


def test_bench_export(runs: tuple[dict[str, Any], Path]) -> None:
    doc = _ok(runs, "bench_export", "export")
    formats = [r["format"] for r in doc["rows"]]
    assert formats == ["keras", "savedmodel", "tflite", "tflite-float16", "tflite-int8"]
    sizes = {r["format"]: r["size_mb"] for r in doc["rows"]}
    assert sizes["tflite-int8"] < sizes["tflite-float16"] < sizes["tflite"]


def test_bench_export_without_default_model_says_so(runs: tuple[dict[str, Any], Path]) -> None:
    message = runs[0]["missing_default"]
    assert "not bundled yet" in message and "--model" in message and "\n" not in message


def test_bench_reproduce(runs: tuple[dict[str, Any], Path]) -> None:
    doc = _ok(runs, "bench_reproduce", "reproduce-cnn4-binary")
    metrics = {r["metric"] for r in doc["rows"]}
    assert {"accuracy", "sensitivity", "specificity", "auc"} <= metrics
    for row in doc["rows"]:
        assert row["within_ci"] == (row["ci_low"] <= row["reproduced"] <= row["ci_high"])
        assert row["verdict"] in ("both", "bootstrap", "seed spread", "neither")
    assert doc["reproduced"] == all(r["verdict"] != "neither" for r in doc["rows"])
    assert doc["epochs"] == 1 and doc["seconds"] > 0


def test_bench_reproduce_names_the_valid_models() -> None:
    proc = subprocess.run([sys.executable, str(BENCH / "bench_reproduce.py"), "no-such-model"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "no recipe for 'no-such-model'" in proc.stderr and "xraynet-binary" in proc.stderr
    assert "guard-and-external" not in proc.stderr  # a tool script, not a model's recipe


def test_bench_seeds(runs: tuple[dict[str, Any], Path]) -> None:
    doc = _ok(runs, "bench_seeds", "seeds-cnn4-binary")
    assert doc["seeds"] == [1, 2] and doc["chosen"] in doc["rules"]
    for rule in doc["rules"].values():
        assert [r["seed"] for r in rule["runs"]] == [1, 2]
        spec = rule["summary"]["specificity"]
        assert spec["min"] <= spec["mean"] <= spec["max"] and spec["n"] == 2
    assert doc["rules"]["calibrated"]["summary"]["threshold"]["values"] == [0.5, 0.5]


def test_bench_peer(runs: tuple[dict[str, Any], Path]) -> None:
    doc = _ok(runs, "bench_peer", "peer")
    assert doc["peer_contract"]["input_shape"] == [None, 180, 180, 3]
    assert [r["input_size"] for r in doc["rows"]] == [180, 64, 64]
    assert all(r["images_per_s"] > 0 for r in doc["rows"]) and doc["ratio_default_vs_peer"] > 0


def test_bench_fullres(runs: tuple[dict[str, Any], Path]) -> None:
    doc = _ok(runs, "bench_fullres", "fullres")
    assert doc["rows"] and all(r.get("films_per_s", 1) > 0 for r in doc["rows"])


def test_bench_cold_start(runs: tuple[dict[str, Any], Path]) -> None:
    doc = _ok(runs, "bench_cold_start", "cold_start")
    assert {r["command"] for r in doc["rows"]} == {"predict", "models", "import tensorflow"}
    assert all(r["seconds"] > 0 for r in doc["rows"])

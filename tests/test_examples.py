"""Every script of ``examples/`` runs in fast mode, as a user would run it.

Each example runs as ``examples/<name>.py --fast --out DIR`` with its own working folder
(a fresh temp folder, so it cannot depend on being started from the repository root), its
own ``sys.argv`` and a restored environment, and must exit 0 and write its expected files.
Fast mode uses the fixture films of ``tests/fixtures/kermany``, one epoch and tiny input
sizes; an example that needs a pretrained model uses the bundled one (an untrained tiny model
only while none is bundled).

The examples run one after the other in ONE subprocess (``runpy``, as ``python script.py``
would): importing TensorFlow costs ~10 s of CPU per process, which would otherwise dominate
the suite. Set ``PNEUMOZOO_EXAMPLES_ISOLATED=1`` to start one ``python`` process per example
instead.
"""

from __future__ import annotations

import ast
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
EXAMPLES = ROOT / "examples"
BUNDLED = ROOT / "src" / "pneumozoo" / "pretrained" / "bundled"
DEFAULT_MODEL = "xraynet-binary-v2"
TIMEOUT = 540

#: example -> files it must write into --out
EXPECTED: dict[str, list[str]] = {
    "quickstart_predict.py": ["predictions.json"],
    "finetune_pretrained.py": ["model/pneumozoo.json", "model/model.weights.h5",
                               "model/README.md"],
    "train_from_scratch.py": ["report.json", "model/pneumozoo.json", "checkpoint/history.json"],
    "train_3class.py": ["report.json", "model/pneumozoo.json"],
    "evaluate_with_figures.py": ["report/report.json", "report/confusion_matrix.png",
                                 "report/roc.png", "report/reliability.png",
                                 "report/predictions.png"],
    "gradcam.py": ["feature_maps.png", "test224-normal-IM-0001-0001_gradcam.png",
                   "test224-pneumonia-person100_bacteria_475_gradcam.png"],
    "publish_to_hub.py": ["published.json"],
}


def default_model_bundled() -> bool:
    return (BUNDLED / DEFAULT_MODEL / "pneumozoo.json").is_file()


def test_every_example_is_tested_and_documented() -> None:
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert scripts == sorted(EXPECTED), "add new examples to EXPECTED (and remove deleted ones)"
    for name in scripts:
        doc = ast.get_docstring(ast.parse((EXAMPLES / name).read_text(encoding="utf-8")))
        assert doc and len(doc.splitlines()) >= 3, f"{name}: needs a module docstring"
        assert "--fast" in doc, f"{name}: the docstring should show how to run it"


_RUNNER = textwrap.dedent("""
    import contextlib, json, os, runpy, sys, time, traceback
    spec = json.load(open(sys.argv[1]))
    results = {}
    for item in spec:
        saved_env, saved_cwd, saved_argv = dict(os.environ), os.getcwd(), sys.argv
        os.chdir(item["cwd"])
        sys.argv = [item["script"], "--fast", "--out", item["out"]]
        code, start = 0, time.process_time()
        with open(item["log"], "w") as log, contextlib.redirect_stdout(log), \\
                contextlib.redirect_stderr(log):
            try:
                runpy.run_path(item["script"], run_name="__main__")
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:
                traceback.print_exc()
                code = 1
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        if "keras" in sys.modules:
            sys.modules["keras"].backend.clear_session()
        results[item["name"]] = {"code": code,
                                 "cpu_seconds": round(time.process_time() - start, 1)}
    json.dump(results, open(sys.argv[2], "w"), indent=1)
""")


def _env() -> dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
    env.pop("HF_ENDPOINT", None)
    return env


@pytest.fixture(scope="module")
def example_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Run every example once; name -> ``{"code", "out", "log"}``."""
    base = tmp_path_factory.mktemp("examples")
    spec = []
    for name in sorted(EXPECTED):
        folder = base / name.removesuffix(".py")
        (folder / "cwd").mkdir(parents=True)
        spec.append({"name": name, "script": str(EXAMPLES / name), "cwd": str(folder / "cwd"),
                     "out": str(folder / "out"), "log": str(folder / "log.txt")})
    runs: dict[str, dict[str, Any]] = {}
    if os.environ.get("PNEUMOZOO_EXAMPLES_ISOLATED") == "1":
        for item in spec:
            proc = subprocess.run(
                [sys.executable, item["script"], "--fast", "--out", item["out"]],
                cwd=item["cwd"], env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
            Path(item["log"]).write_text(proc.stdout + proc.stderr)
            runs[item["name"]] = {"code": proc.returncode}
    else:
        (base / "spec.json").write_text(json.dumps(spec))
        (base / "runner.py").write_text(_RUNNER)
        proc = subprocess.run([sys.executable, str(base / "runner.py"), str(base / "spec.json"),
                               str(base / "results.json")], cwd=base, env=_env(),
                              capture_output=True, text=True, timeout=TIMEOUT * 2)
        assert proc.returncode == 0, f"the example runner crashed:\n{proc.stderr[-4000:]}"
        runs = json.loads((base / "results.json").read_text())
    for item in spec:
        runs[item["name"]].update(out=Path(item["out"]), log=Path(item["log"]).read_text())
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_in_fast_mode(name: str, example_runs: dict[str, dict[str, Any]]) -> None:
    if name == "evaluate_with_figures.py":
        pytest.importorskip("matplotlib")
    run = example_runs[name]
    out, log = run["out"], run["log"]
    assert run["code"] == 0, f"{name} --fast exited {run['code']}\n{log[-4000:]}"
    missing = [f for f in EXPECTED[name] if not (out / f).is_file()]
    assert not missing, f"{name} did not write {missing}\n{log[-2000:]}"

    if name == "quickstart_predict.py":
        result = json.loads((out / "predictions.json").read_text())
        preds = result["predictions"]
        assert len(preds) == len(list((EXAMPLES / "xrays").glob("*.jpeg")))
        assert all("label" in p and 0.0 <= p["probability"] <= 1.0 for p in preds)
        if default_model_bundled():  # once the zoo ships its default, the example must use it
            assert result["model"] == DEFAULT_MODEL
            reference = BUNDLED / DEFAULT_MODEL / "reference_predictions.json"
            if reference.is_file():  # what the recipe recorded when it packaged the model
                expected = {r["file"]: r for r in json.loads(reference.read_text())}
                for p in preds:
                    ref = expected[Path(p["path"]).name]
                    assert p["label"] == ref["label"], (p, ref)
                    for name, value in ref["probabilities"].items():
                        assert abs(p["probabilities"][name] - value) < 1e-4, (p, ref)
    elif name == "train_3class.py":
        report = json.loads((out / "report.json").read_text())
        assert report["class_names"] == ["normal", "bacteria", "virus"]
        assert len(report["class_confusion_matrix"]) == 3
    elif name == "train_from_scratch.py":
        report = json.loads((out / "report.json").read_text())
        assert report["n"] == 8 and {"accuracy", "sensitivity", "auc"} <= set(report)
        assert "reloaded" in log
    elif name == "evaluate_with_figures.py":
        report = json.loads((out / "report" / "report.json").read_text())
        assert {"auc", "accuracy"} <= set(report["confidence_intervals"])
    elif name == "finetune_pretrained.py":
        from pneumozoo.zoo import PretrainedConfig

        config = PretrainedConfig.read(out / "model")  # the settings come from the model itself
        assert config.name == "finetuned" and 0.0 <= config.threshold <= 1.0
        assert "test" in config.metrics and "validation" in config.metrics
    elif name == "publish_to_hub.py":
        published = json.loads((out / "published.json").read_text())
        assert published["uri"].startswith("hf://me/pneumozoo-demo@")
        assert {"config.json", "model.weights.h5", "pneumozoo.json"} <= set(published["files"])

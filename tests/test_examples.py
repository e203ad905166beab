"""Every script of ``examples/`` runs in fast mode, as a user would run it.

Each example is started as ``python examples/<name>.py --fast --out DIR`` in a subprocess
(cwd a fresh temp folder, so it cannot depend on being started from the repository root)
and must exit 0 and write its expected files. Fast mode uses the fixture films of
``tests/fixtures/kermany``, one epoch and tiny input sizes; an example that needs a bundled
pretrained model uses it when one is bundled and an untrained tiny model otherwise.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
BUNDLED = ROOT / "src" / "pneumozoo" / "pretrained" / "bundled"
DEFAULT_MODEL = "xraynet-binary"
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


def run_example(name: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
    env.pop("HF_ENDPOINT", None)
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--fast", "--out", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert proc.returncode == 0, (
        f"{name} --fast exited {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}"
        f"\n--- stderr\n{proc.stderr[-3000:]}")
    missing = [f for f in EXPECTED[name] if not (out / f).is_file()]
    assert not missing, f"{name} did not write {missing}\n{proc.stdout[-2000:]}"
    return proc, out


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_in_fast_mode(name: str, tmp_path: Path) -> None:
    if name == "evaluate_with_figures.py":
        pytest.importorskip("matplotlib")
    proc, out = run_example(name, tmp_path)

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
        assert "reloaded" in proc.stdout
    elif name == "evaluate_with_figures.py":
        report = json.loads((out / "report" / "report.json").read_text())
        assert {"auc", "accuracy"} <= set(report["confidence_intervals"])
    elif name == "finetune_pretrained.py":
        config = json.loads((out / "model" / "pneumozoo.json").read_text())
        assert config["name"] == "finetuned" and 0.0 <= config["threshold"] <= 1.0
        assert "test" in config["metrics"] and "validation" in config["metrics"]
    elif name == "publish_to_hub.py":
        published = json.loads((out / "published.json").read_text())
        assert published["uri"].startswith("hf://me/pneumozoo-demo@")
        assert {"config.json", "model.weights.h5", "pneumozoo.json"} <= set(published["files"])

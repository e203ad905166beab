"""Smaller points of issue 23: the docs say what the numbers are and print them rounded, say
how coarse Grad-CAM is, cite the reference projects with authors, and ``adapt`` does not claim
a choice it did not make."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(encoding="utf-8"), re.S | re.M)


def test_readme_snippet_says_the_probability_is_p_pneumonia() -> None:
    (snippet,) = _python_blocks(ROOT / "README.md")[:1]
    assert "P(pneumonia)" in snippet and "p.probability" in snippet


def test_getting_started_prints_rounded_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    out = io.StringIO()
    namespace: dict[str, object] = {}
    with contextlib.redirect_stdout(out):
        for block in _python_blocks(DOCS / "getting-started.md"):
            exec(compile(block, "getting-started.md", "exec"), namespace)
    text = out.getvalue()
    assert "P(pneumonia)=" in text
    long_floats = re.findall(r"\d\.\d{5,}", text)
    assert not long_floats, f"getting-started prints unrounded numbers: {long_floats}\n{text}"


def test_the_grad_cam_grid_of_every_bundled_model_is_documented() -> None:
    import pneumozoo
    from pneumozoo.explain import _default_target

    page = (DOCS / "guide" / "explanations.md").read_text(encoding="utf-8")
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    for config in pneumozoo.list_pretrained():
        model = pneumozoo.load_pretrained(config.name)
        target = _default_target(model)
        side = int(target.layer.output.shape[1])
        (row,) = [r for r in rows if f"`{config.name}`" in r]
        assert f"`{target.layer.name}`" in row and f"| {side} x {side} |" in row, (config.name, row)


def test_domain_score_scale_is_documented() -> None:
    from pneumozoo.prediction import Prediction

    doc = Prediction.__doc__ or ""
    assert "0.0 at their median film" in doc and "Negative values" in doc
    page = (DOCS / "guide" / "your-hospital.md").read_text(encoding="utf-8")
    assert "0.0 is their median film" in page and "negative" in page


def test_models_archs_cites_the_reference_projects_with_authors(
        capsys: pytest.CaptureFixture[str]) -> None:
    from pneumozoo.cli import main

    assert main(["models", "--archs"]) == 0
    out = capsys.readouterr().out
    cited = set(re.findall(r"\b00\d\b", out.split("reference projects")[0]))
    assert cited, "no project cited: update this test"
    legend = out.split("reference projects", 1)[1]
    for number in cited:
        (line,) = [x for x in legend.splitlines() if x.strip().startswith(number)]
        assert "GitHub" in line or "blog" in line
    assert "katehee" in legend and "marjose2" in legend and "chency0315" in legend


def test_adapt_says_chosen_only_when_it_chose(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    import pneumozoo
    from conftest import kermany_names, synthetic_xray
    from pneumozoo.adapt import adapt

    rng = np.random.default_rng(1)
    normals, sick = kermany_names(10, 10)
    for cls, label, stems in (("NORMAL", 0, normals), ("PNEUMONIA", 1, sick)):
        (tmp_path / cls).mkdir()
        for stem in stems:
            Image.fromarray(synthetic_xray(rng, 48, label)).save(tmp_path / cls / f"{stem}.png")
    model = pneumozoo.build_model("cnn4", input_size=48)
    lines: list[str] = []
    adapt(model, tmp_path, method="recalibrate", folds=2, log=lines.append)
    assert not any("chosen" in line for line in lines), lines
    assert any("recalibrate: cross-validated AUC" in line for line in lines), lines


def test_the_adapt_module_is_callable_as_the_function() -> None:
    import pneumozoo.adapt as module
    from pneumozoo.adapt import adapt

    assert callable(module) and module.estimate_prevalence is not None
    with pytest.raises(pneumozoo_error()):
        module(object(), "nowhere/")  # the function's own argument check
    assert module.adapt is adapt


def pneumozoo_error() -> type[Exception]:
    from pneumozoo.errors import PneumozooError

    return PneumozooError


def test_pneumozoo_adapt_is_both_module_and_function_in_a_fresh_process() -> None:
    import subprocess
    import sys

    code = ("import pneumozoo\n"
            "f = pneumozoo.adapt\n"
            "assert callable(f)\n"
            "assert pneumozoo.adapt.estimate_prevalence is not None\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]

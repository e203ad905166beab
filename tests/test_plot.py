"""Figures: each file is written at the expected pixel size and is not blank; without
matplotlib every call fails with one clear error; ``pneumozoo evaluate --report``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("matplotlib")

from pneumozoo import plot
from pneumozoo.errors import PneumozooError, UnknownNameError
from pneumozoo.evaluation import report_from_predictions
from pneumozoo.prediction import Prediction

FIXTURES = Path(__file__).parent / "fixtures" / "kermany"
FILMS = sorted((FIXTURES / "test").glob("*/*.jpeg"))


def check_image(path: Path, size: tuple[int, int]) -> None:
    assert path.is_file()
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.size == size
        assert np.asarray(img.convert("RGB"), dtype=float).std() > 0  # not blank


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p1 = 1.0 / (1.0 + np.exp(-(2.0 * (2 * y - 1) + rng.normal(0, 1.5, 200))))
    return y, np.stack([1.0 - p1, p1], axis=1)


HISTORY = {"loss": [0.7, 0.5, 0.4], "val_loss": [0.72, 0.6, 0.55], "accuracy": [0.6, 0.8, 0.85],
           "val_accuracy": [0.55, 0.75, 0.8], "lr": [1e-3, 1e-3, 5e-4]}


def test_plot_history_from_dict_file_and_folder(tmp_path) -> None:
    check_image(plot.plot_history(HISTORY, tmp_path / "a.png"), (1000, 400))
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "history.json").write_text(json.dumps(HISTORY))
    out = plot.plot_history(tmp_path / "ckpt" / "history.json", tmp_path / "b.png", dpi=50)
    check_image(out, (500, 200))
    check_image(plot.plot_history(str(tmp_path / "ckpt"), tmp_path / "c.png"), (1000, 400))
    with pytest.raises(PneumozooError, match="history"):
        plot.plot_history(tmp_path / "nowhere", tmp_path / "d.png")


def test_confusion_matrix_binary_and_classes(tmp_path, data) -> None:
    y, probs = data
    report = report_from_predictions(y, probs, ["normal", "pneumonia"], threshold=0.4)
    check_image(plot.plot_confusion_matrix(report, tmp_path / "cm.png"), (500, 450))
    three = report_from_predictions([0, 1, 2, 1], np.eye(3)[[0, 1, 1, 2]] * 0.8 + 0.2 / 3,
                                    ["normal", "bacteria", "virus"])
    check_image(plot.plot_confusion_matrix(three, tmp_path / "cm3.png", all_classes=True),
                (500, 450))
    check_image(plot.plot_confusion_matrix([[5, 1], [2, 7]], tmp_path / "raw.png"), (500, 450))
    with pytest.raises(ValueError):
        plot.plot_confusion_matrix([[1, 2, 3]], tmp_path / "bad.png")


def test_roc_pr_and_reliability(tmp_path, data) -> None:
    y, probs = data
    check_image(plot.plot_roc(y, probs, tmp_path / "roc.png", threshold=0.5), (500, 500))
    check_image(plot.plot_pr(y, probs[:, 1], tmp_path / "pr.png"), (500, 500))
    check_image(plot.plot_reliability(y, probs, tmp_path / "rel.png"), (500, 600))
    with pytest.raises(ValueError, match="both"):
        plot.plot_roc(np.ones(5), np.full(5, 0.9), tmp_path / "x.png")


def test_roc_legend_holds_the_measured_auc(tmp_path, data, monkeypatch) -> None:
    from matplotlib.axes import Axes
    from sklearn.metrics import roc_auc_score

    y, probs = data
    labels: list[str] = []
    original = Axes.plot

    def spy(self, *args, **kwargs):
        labels.append(kwargs.get("label", ""))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Axes, "plot", spy)
    plot.plot_roc(y, probs, tmp_path / "roc.png")
    assert f"AUC = {roc_auc_score(y, probs[:, 1]):.3f}" in labels[0]


def test_prediction_grid(tmp_path) -> None:
    preds = [Prediction(source=str(f), label="pneumonia" if i % 2 else "normal",
                        probability=0.3 + 0.1 * i,
                        probabilities={"normal": 0.7 - 0.1 * i, "pneumonia": 0.3 + 0.1 * i})
             for i, f in enumerate(FILMS[:6])]
    truth = [f.parent.name.lower() for f in FILMS[:6]]
    check_image(plot.plot_predictions(FILMS[:6], preds, truth, tmp_path / "p.png", ncols=3),
                (900, 660))
    rows = np.array([[0.2, 0.8], [0.9, 0.1]])
    check_image(plot.plot_predictions(FILMS[:2], rows, [1, 0], tmp_path / "q.png"), (600, 330))
    with pytest.raises(ValueError):
        plot.plot_predictions(FILMS[:2], rows[:1], None, tmp_path / "r.png")


def test_augmentation_preview_for_every_preset(tmp_path) -> None:
    from pneumozoo.augment import list_presets

    for name in list_presets():
        out = plot.plot_augmentations(name, FILMS[0], tmp_path / f"{name}.png", n=5, size=64,
                                      ncols=3, dpi=40)
        check_image(out, (360, 256))
    with pytest.raises(UnknownNameError):
        plot.plot_augmentations("bogus", FILMS[0], tmp_path / "x.png")


def test_every_plot_needs_matplotlib(tmp_path, data, monkeypatch) -> None:
    y, probs = data
    report = report_from_predictions(y, probs, ["normal", "pneumonia"])
    for name in [m for m in list(sys.modules) if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    calls = [
        lambda: plot.plot_history(HISTORY, tmp_path / "a.png"),
        lambda: plot.plot_confusion_matrix(report, tmp_path / "b.png"),
        lambda: plot.plot_roc(y, probs, tmp_path / "c.png"),
        lambda: plot.plot_pr(y, probs, tmp_path / "d.png"),
        lambda: plot.plot_reliability(y, probs, tmp_path / "e.png"),
        lambda: plot.plot_predictions(FILMS[:1], probs[:1], None, tmp_path / "f.png"),
        lambda: plot.plot_augmentations("xray", FILMS[0], tmp_path / "g.png"),
        lambda: plot.save_report_figures(report, y, probs, tmp_path / "h"),
    ]
    for call in calls:
        with pytest.raises(PneumozooError) as info:
            call()
        assert str(info.value) == ("plotting needs the 'plot' extra: pip install matplotlib (or, "
                                   "in the pneumozoo clone, pip install '.[plot]')")
    assert not any(tmp_path.iterdir())


def test_cli_evaluate_report_writes_json_and_figures(tmp_path, capsys) -> None:
    from pneumozoo.cli import main
    from pneumozoo.models import build_model
    from pneumozoo.pretrained import PretrainedConfig, save_folder

    save_folder(build_model("cnn4", input_size=64), tmp_path / "m", PretrainedConfig(
        name="m", architecture="cnn4", task="binary", class_names=("normal", "pneumonia"),
        input_size=64))
    rc = main(["evaluate", str(FIXTURES / "test"), "--model", str(tmp_path / "m"), "--json",
               "--n-boot", "100", "--report", str(tmp_path / "report")])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved == printed and saved["confidence_intervals"]["auc"]
    sizes = {"confusion_matrix.png": (500, 450), "roc.png": (500, 500), "pr.png": (500, 500),
             "reliability.png": (500, 600)}
    for name, size in sizes.items():
        check_image(tmp_path / "report" / name, size)


def test_cli_evaluate_report_without_matplotlib_fails_first(tmp_path, capsys, monkeypatch) -> None:
    from pneumozoo.cli import main

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    rc = main(["evaluate", str(FIXTURES / "test"), "--model", str(tmp_path / "no-such-model"),
               "--report", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "pip install matplotlib" in err[0]
    assert not (tmp_path / "r").exists()

"""The command line, in-process: train -> evaluate -> predict on the fixture, JSON output,
exit statuses and one-line errors."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import pneumozoo
from pneumozoo.cli import main
from pneumozoo.models import list_models
from pneumozoo.pretrained import PretrainedConfig

# Keras converts tensors with np.array(), which numpy 2 flags on every call; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

TinyDataset = Callable[..., Path]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_one_line_error(err: str, *words: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("pneumozoo: error: ") and "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.fixture(scope="module")
def trained(fixture_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``pneumozoo train`` on the fixture: cnn4 at 48 px, 1 epoch. Returns (out, stdout)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["train", str(fixture_root), "--arch", "cnn4", "--input-size", "48",
                     "--epochs", "1", "--batch-size", "8", "--precision", "float32",
                     "--label-smoothing", "0.1", "--normalization", "per-image",
                     "--out", str(out)])
    assert code == 0, stdout.getvalue()
    return out, stdout.getvalue()


def test_train_writes_checkpoints_and_a_model_folder(trained: tuple[Path, str]) -> None:
    out, stdout = trained
    assert f"model folder: {out / 'model'}" in stdout
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 1
    assert (out / "checkpoint" / "best.weights.h5").is_file()
    cfg = PretrainedConfig.read(out / "model")
    assert cfg.architecture == "cnn4" and cfg.input_size == 48 and cfg.task == "binary"
    assert cfg.class_names == ("normal", "pneumonia")
    recipe = cfg.training["recipe"]  # the run's whole recipe travels in the card
    assert recipe["epochs"] == 1 and recipe["label_smoothing"] == 0.1 and recipe["seed"] == 0
    assert cfg.training["epochs_run"] == 1
    assert cfg.preprocessing["normalization"].startswith("per-image")
    assert set(cfg.files) == {"config.json", "metadata.json", "model.weights.h5"}


def test_evaluate_json(trained: tuple[Path, str], fixture_root: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = trained
    code, stdout, _ = run(["evaluate", str(fixture_root / "test"), "--model", str(out / "model"),
                           "--json", "--n-boot", "50"], capsys)
    assert code == 0
    reports = json_lines(stdout)
    assert len(reports) == 1
    report = reports[0]
    assert report["n"] == 8
    for key in ("accuracy", "sensitivity", "specificity", "auc"):
        value = report[key]
        assert isinstance(value, float) and 0.0 <= value <= 1.0, (key, value)


def test_predict_files_and_a_folder(trained: tuple[Path, str], fixture_root: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = trained
    files = sorted((fixture_root / "test" / "PNEUMONIA").iterdir())[:2]
    folder = fixture_root / "test" / "NORMAL"
    code, stdout, _ = run(["predict", *map(str, files), str(folder), "--model",
                           str(out / "model"), "--json"], capsys)
    assert code == 0
    preds = json_lines(stdout)
    expected = [*files, *sorted(folder.iterdir())]
    assert [Path(str(p["path"])) for p in preds] == expected
    for p in preds:
        assert p["label"] in ("normal", "pneumonia")
        prob = p["probability"]
        assert isinstance(prob, float) and 0.0 <= prob <= 1.0
        assert "error" not in p


def test_predict_table_output(trained: tuple[Path, str], fixture_root: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = trained
    image = sorted((fixture_root / "test" / "NORMAL").iterdir())[0]
    code, stdout, _ = run(["predict", str(image), "--model", str(out / "model")], capsys)
    assert code == 0
    lines = stdout.splitlines()
    assert len(lines) == 2 and lines[0].split()[0] == "path"
    assert str(image) in lines[1] or lines[1].startswith("...")


def test_predict_bad_and_missing_files(trained: tuple[Path, str], fixture_root: Path,
                                       tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = trained
    good = sorted((fixture_root / "test" / "PNEUMONIA").iterdir())[:2]
    bad = tmp_path / "person1_virus_1.jpeg"
    bad.write_text("not a JPEG at all")
    missing = tmp_path / "missing.png"
    code, stdout, err = run(["predict", str(good[0]), str(bad), str(good[1]), str(missing),
                             "--model", str(out / "model"), "--json"], capsys)
    assert code == 1
    preds = {str(p["path"]): p for p in json_lines(stdout)}
    assert set(preds) == {str(good[0]), str(bad), str(good[1]), str(missing)}
    for path in good:
        assert preds[str(path)]["label"] in ("normal", "pneumonia")
    for path, words in ((bad, "image"), (missing, "no such file")):
        entry = preds[str(path)]
        assert set(entry) == {"path", "error"}
        assert words in str(entry["error"]) and "\n" not in str(entry["error"])
    assert "2 of 4" in err

    # nothing to predict at all (only a missing path): a usage error, before the model loads
    code, stdout, err = run(["predict", str(missing), "--model", str(out / "model"), "--json"],
                            capsys)
    assert code == 2 and stdout == ""
    assert_one_line_error(err, str(missing), "no such file")


def test_predict_json_gives_file_names_back_exactly(
        trained: tuple[Path, str], fixture_root: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = trained
    film = sorted((fixture_root / "test" / "NORMAL").iterdir())[0]
    names = ["new\nline.jpeg", "tab\tand \\n backslash.jpeg", "r\u00f6ntgen \u00e9\u6f22.jpeg"]
    for name in names:
        shutil.copy(film, tmp_path / name)
    code, stdout, _ = run(["predict", str(tmp_path), "--model", str(out / "model"), "--json"],
                          capsys)
    assert code == 0
    assert stdout.isascii() and "NaN" not in stdout and "Infinity" not in stdout
    lines = stdout.splitlines()
    assert len(lines) == len(names)  # a newline in a name never splits a record
    assert sorted(str(p["path"]) for p in map(json.loads, lines)) == sorted(
        str(tmp_path / n) for n in names)

    code, stdout, _ = run(["predict", str(tmp_path), "--model", str(out / "model")], capsys)
    assert code == 0
    rows = stdout.splitlines()
    assert len(rows) == 1 + len(names)  # one line each: newlines are shown escaped
    assert any("new\\nline.jpeg" in row for row in rows)


def test_predict_table_keeps_its_columns_for_long_paths(
        trained: tuple[Path, str], fixture_root: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = trained
    deep = tmp_path / ("a-long-folder-name-" * 4) / "and-deeper"
    deep.mkdir(parents=True)
    film = sorted((fixture_root / "test" / "NORMAL").iterdir())[0]
    shutil.copy(film, deep / "film.jpeg")
    (deep / "broken.jpeg").write_bytes(b"not a JPEG")
    code, stdout, _ = run(["predict", str(deep), "--model", str(out / "model")], capsys)
    assert code == 1
    header, *rows = stdout.splitlines()
    label_col = header.index("label")
    assert label_col == 61
    for row in rows:
        assert row.startswith("...") and row[label_col:].split()[0] in ("normal", "pneumonia",
                                                                        "ERROR")
    assert any(row[:label_col].rstrip().endswith("and-deeper/film.jpeg") for row in rows)


def test_an_architecture_name_as_model_gets_a_hint(
        fixture_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = str(sorted((fixture_root / "test" / "NORMAL").iterdir())[0])
    code, stdout, err = run(["predict", image, "--model", "cnn4"], capsys)
    assert code == 2 and stdout == ""
    assert_one_line_error(err, "'cnn4' is an architecture", "pneumozoo models", "cnn4-binary")


def test_explain_writes_beside_out_not_in_the_working_folder(
        trained: tuple[Path, str], fixture_root: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = trained
    film = sorted((fixture_root / "test" / "PNEUMONIA").iterdir())[0]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    target = tmp_path / "figures" / "cam.png"
    code, stdout, _ = run(["explain", str(film), "--model", str(out / "model"), "--out",
                           str(target), "--feature-maps", "--json"], capsys)
    assert code == 0
    result = json.loads(stdout)
    assert Path(str(result["heatmap"])) == target and target.is_file()
    features = Path(str(result["feature_maps"]))
    assert features.parent == target.parent and features.is_file()
    assert list(work.iterdir()) == []
    assert sorted(p.name for p in target.parent.iterdir()) == sorted(
        [target.name, features.name])  # no temporary files left behind


def test_unknown_names_give_one_line_errors(fixture_root: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    image = str(sorted((fixture_root / "test" / "NORMAL").iterdir())[0])
    code, stdout, err = run(["predict", image, "--model", "no-such-model", "--json"], capsys)
    assert code == 2 and stdout == ""
    assert_one_line_error(err, "no-such-model")
    code, _, err = run(["evaluate", str(fixture_root / "test"), "--model", "no-such-model"],
                       capsys)
    assert code == 2
    assert_one_line_error(err, "no-such-model")
    code, _, err = run(["train", str(fixture_root), "--arch", "resnet18", "--out",
                        str(tmp_path / "run")], capsys)
    assert code == 2
    assert_one_line_error(err, "resnet18", "xraynet", "vgg16")
    assert not (tmp_path / "run").exists()


def test_train_checks_the_data_before_training(tiny_dataset: TinyDataset, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    root = tiny_dataset(4, 4)
    for f in (root / "train" / "NORMAL").iterdir():
        f.unlink()
    argv = ["train", str(root), "--arch", "cnn4", "--input-size", "48", "--epochs", "1",
            "--out", str(tmp_path / "run")]
    code, _, err = run(argv, capsys)
    assert code == 2
    assert_one_line_error(err, "normal=0")
    assert not (tmp_path / "run").exists()

    root = tiny_dataset(4, 4, name="broken")
    (root / "train" / "PNEUMONIA" / "person99_virus_1.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    code, _, err = run([*argv[:1], str(root), *argv[2:]], capsys)
    assert code == 2
    assert_one_line_error(err, "unreadable", "person99_virus_1.png")

    empty = tmp_path / "empty"
    (empty / "train" / "NORMAL").mkdir(parents=True)
    (empty / "train" / "PNEUMONIA").mkdir()
    code, _, err = run([*argv[:1], str(empty), *argv[2:]], capsys)
    assert code == 2
    assert_one_line_error(err, str(empty / "train"), "no images")
    shutil.rmtree(empty / "train")
    code, _, err = run([*argv[:1], str(empty), *argv[2:]], capsys)
    assert code == 2
    assert_one_line_error(err, str(empty), "'train'")
    code, _, err = run([*argv[:1], str(tmp_path / "nowhere"), *argv[2:]], capsys)
    assert code == 2
    assert_one_line_error(err, "nowhere")

    # a folder that is itself the training split is read too (the data passes its checks,
    # so the error is the architecture's)
    flat = tiny_dataset(4, 4, size=16, name="flat") / "train"
    code, _, err = run(["train", str(flat), "--arch", "nonet", "--out", str(tmp_path / "r")],
                       capsys)
    assert code == 2
    assert_one_line_error(err, "unknown architecture 'nonet'")
    code, _, err = run(["train", str(flat), "--normalization", "z", "--out", str(tmp_path / "r")],
                       capsys)
    assert code == 2
    assert_one_line_error(err, "unknown normalization 'z'", "per-image")


def test_models_archs_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run(["models", "--archs", "--json"], capsys)
    assert code == 0
    archs = json.loads(stdout)
    assert [a["name"] for a in archs] == [m.name for m in list_models()]
    for a, m in zip(archs, list_models(), strict=True):
        assert (a["family"], a["input_size"], a["pretrainable"]) == (
            m.family, m.input_size, m.pretrainable)
    code, stdout, _ = run(["models", "--archs"], capsys)
    assert code == 0
    table = stdout.split("\n\n", 1)[0]  # the table; the cited projects follow a blank line
    assert [line.split()[0] for line in table.splitlines()] == [m.name for m in list_models()]


def test_version_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"pneumozoo {pneumozoo.__version__}"
    with pytest.raises(SystemExit) as e:
        main(["predict"])  # no paths
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert_one_line_error(err, "paths", "usage", "pneumozoo predict --help")


def test_a_reader_that_stops_early_is_not_a_failure() -> None:
    # `pneumozoo ... | head -1`: the pipe closes before the output is written.
    code = "import sys; from pneumozoo.cli import main; sys.exit(main(['models', '--json']))"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0, err[-2000:]
    assert "Traceback" not in err and "BrokenPipe" not in err

"""Loading a model folder never runs stored code and never trusts a file its hash disowns."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pneumozoo.errors import IntegrityError, PneumozooError, UnsafeModelError

keras = pytest.importorskip("keras")

from pneumozoo.cli import main  # noqa: E402
from pneumozoo.models import build_model  # noqa: E402
from pneumozoo.pretrained import PretrainedConfig, load_pretrained, save_folder  # noqa: E402
from pneumozoo.utils import sha256_file  # noqa: E402
from pneumozoo.zoo.config import CONFIG_FILE, WEIGHT_FILES  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src" / "pneumozoo"
XRAY = Path(__file__).resolve().parent / "fixtures" / "kermany" / "test" / "NORMAL" / \
    "IM-0041-0001.jpeg"


def _config(**kw: Any) -> PretrainedConfig:
    return PretrainedConfig(name="t", architecture="cnn4", task="binary",
                            class_names=("normal", "pneumonia"), input_size=48, **kw)


def _rehash(folder: Path) -> None:
    """Write a pneumozoo.json whose sha256s match the files as they are now (with the
    settings a 0.1 folder kept there, for models without a pneumozoo head)."""
    data = _config(files={n: sha256_file(folder / n) for n in WEIGHT_FILES}).to_dict()
    (folder / CONFIG_FILE).write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("good") / "model"
    save_folder(build_model("cnn4", input_size=48), folder, _config())
    return folder


@pytest.fixture
def copy(good: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(good, tmp_path / "model"))


def _layers(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    config = json.loads((folder / "config.json").read_text())
    return config, config["config"]["layers"]


def test_the_good_folder_loads(good: Path) -> None:
    model = load_pretrained(good)
    assert model.input_size == 48


def test_lambda_layer_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "lambda-ran"

    def side_effect(x: Any) -> Any:
        marker.write_text("ran")
        return x * 2.0

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(side_effect, name="evil")(inputs))
    folder = tmp_path / "lambda"
    keras.saving.save_model(model, folder, zipped=False)
    _rehash(folder)
    marker.unlink()  # building the model ran it once; loading must not
    assert '"Lambda"' in (folder / "config.json").read_text()

    with pytest.raises(UnsafeModelError, match=r"Lambda layer") as info:
        load_pretrained(folder)
    assert "\n" not in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize(("module", "registered"), [
    (None, "evil>Thing"), ("os", "os>system"), ("kerasevil.layers", "kerasevil>Dense"),
    ("pneumozoo_plugin", "pneumozoo_plugin>Dense")])
def test_unknown_custom_objects_are_refused(copy: Path, module: str | None,
                                            registered: str) -> None:
    config, layers = _layers(copy)
    layer = next(la for la in layers if la["class_name"] == "Dense")
    layer.update(module=module, class_name=registered.split(">")[1], registered_name=registered)
    (copy / "config.json").write_text(json.dumps(config))
    _rehash(copy)  # hashes match: the refusal comes from the content
    with pytest.raises(UnsafeModelError, match=re.escape(registered.split(">")[0])):
        load_pretrained(copy)


def test_flipped_weight_byte_is_an_integrity_error(copy: Path) -> None:
    weights = copy / "model.weights.h5"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"model.weights.h5: sha256 .* does not match"):
        load_pretrained(copy)


def test_edited_config_without_rehash_is_an_integrity_error(copy: Path) -> None:
    (copy / "config.json").write_text((copy / "config.json").read_text() + " ")
    with pytest.raises(IntegrityError, match=r"config.json"):
        load_pretrained(copy)


def test_folder_without_pneumozoo_json(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (copy / CONFIG_FILE).unlink()
    with pytest.raises(PneumozooError, match=r"not a pneumozoo model folder \(no pneumozoo.json\)"):
        load_pretrained(copy)
    assert main(["predict", "--model", str(copy), str(XRAY)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pneumozoo: error: ")


def test_cli_refuses_unsafe_folder_in_one_line(copy: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    config, layers = _layers(copy)
    layers[-1].update(module="subprocess", class_name="Popen")
    (copy / "config.json").write_text(json.dumps(config))
    _rehash(copy)
    assert main(["predict", "--model", str(copy), str(XRAY)]) == 2
    err = capsys.readouterr().err
    assert "subprocess.Popen" in err and err.count("\n") == 1 and "Traceback" not in err


def test_no_pickle_anywhere_in_the_package() -> None:
    found = subprocess.run(["grep", "-rIl", "-e", "pickle", "-e", "marshal", str(SRC)],
                           capture_output=True, text=True, check=False)
    assert found.returncode == 1, found.stdout  # grep: 1 means no match


# --- symlink and special-file tricks in a local folder ------------------------------------
@pytest.mark.parametrize("name", [CONFIG_FILE, "config.json"])
def test_special_files_are_refused_without_blocking(copy: Path, name: str) -> None:
    """A FIFO would block a reader forever, /dev/zero behind a symlink never ends."""
    import os

    (copy / name).unlink()
    os.mkfifo(copy / name)
    with pytest.raises(PneumozooError, match=re.escape(name)) as info:
        load_pretrained(copy)
    assert "\n" not in str(info.value)
    (copy / name).unlink()
    (copy / name).symlink_to("/dev/zero")
    with pytest.raises(PneumozooError, match=re.escape(name)):
        load_pretrained(copy)


def test_an_old_pneumozoo_json_that_disagrees_with_its_model(tmp_path: Path) -> None:
    from pneumozoo.errors import ModelMetadataError
    from pneumozoo.pretrained import BUNDLED_DIR

    folder = Path(shutil.copytree(BUNDLED_DIR / "cnn4-binary", tmp_path / "m"))
    meta = json.loads((folder / CONFIG_FILE).read_text())
    assert not {"class_names", "task", "threshold", "input_size"} & set(meta)  # the model's
    meta.update(class_names=["normal", "bacteria", "virus"], task="3class")  # as 0.3 wrote it
    (folder / CONFIG_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelMetadataError, match=r"pneumozoo.json: field 'task' is '3class' but "
                       r"the model in config.json has 'binary'"):
        load_pretrained(folder)


def test_every_bundled_config_passes_the_allow_list() -> None:
    from pneumozoo.pretrained import BUNDLED_DIR
    from pneumozoo.pretrained.allowlist import check_keras_config

    folders = sorted(p for p in BUNDLED_DIR.iterdir() if (p / "config.json").is_file())
    assert folders
    for folder in folders:
        check_keras_config(json.loads((folder / "config.json").read_text()), str(folder))
        PretrainedConfig.read(folder)


def test_written_model_folders_are_not_private(tmp_path: Path) -> None:
    # Atomic writes go through private temporary files and folders; the finished folder
    # gets the modes a plain write would (a shared model folder stays readable).
    import stat

    from pneumozoo.models import build_model
    from pneumozoo.pretrained.folder import save_folder
    from pneumozoo.utils import atomic_write_json, default_mode
    from pneumozoo.zoo.config import PretrainedConfig

    cfg = PretrainedConfig(name="m", architecture="cnn4", task="binary",
                           class_names=("normal", "pneumonia"), input_size=48)
    folder = tmp_path / "m"
    save_folder(build_model("cnn4", input_size=48), folder, cfg)
    assert stat.S_IMODE(folder.stat().st_mode) == default_mode(directory=True)
    assert {stat.S_IMODE(f.stat().st_mode) for f in folder.iterdir()} == {default_mode()}
    atomic_write_json(tmp_path / "x.json", {"a": 1})
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == default_mode()


def test_a_model_without_a_pneumozoo_head_keeps_its_settings_in_pneumozoo_json(
        tmp_path: Path) -> None:
    """One store per setting: the model's head when it has one, else ``pneumozoo.json``."""
    inputs = keras.Input((4,))
    plain = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    save_folder(plain, tmp_path / "plain", _config(threshold=0.3))
    stored = json.loads((tmp_path / "plain" / CONFIG_FILE).read_text())
    assert stored["class_names"] == ["normal", "pneumonia"] and stored["threshold"] == 0.3
    assert PretrainedConfig.read(tmp_path / "plain").threshold == 0.3
    save_folder(build_model("cnn4", input_size=48), tmp_path / "zoo", _config(threshold=0.3))
    stored = json.loads((tmp_path / "zoo" / CONFIG_FILE).read_text())
    assert not {"class_names", "threshold", "input_size", "task"} & set(stored)
    assert PretrainedConfig.read(tmp_path / "zoo").threshold == 0.5  # the model's own

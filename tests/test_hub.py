"""pneumozoo.hub against a real HTTP server speaking the Hub API (tests/hubserver.py).

Nothing is mocked: the installed huggingface_hub client talks to a local server, and the cache
is a real Hugging Face cache under tmp_path.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hubserver import FakeHub
from pneumozoo.errors import DownloadError, IntegrityError, PneumozooError

keras = pytest.importorskip("keras")

from pneumozoo.cli import main  # noqa: E402
from pneumozoo.hub import download_model, push_to_hub, split_repo_ref  # noqa: E402
from pneumozoo.io import read_xray  # noqa: E402
from pneumozoo.models import build_model  # noqa: E402
from pneumozoo.pretrained import (  # noqa: E402
    PretrainedConfig,
    load_folder,
    load_pretrained,
    model_card,
    save_folder,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "kermany"
REPO = "me/tiny"


def _config(name: str = "tiny") -> PretrainedConfig:
    return PretrainedConfig(
        name=name, architecture="cnn4", task="binary", class_names=("normal", "pneumonia"),
        input_size=48, threshold=0.42, description="A tiny test model.",
        metrics={"test": {"n": 8, "threshold": 0.42, "accuracy": 0.875, "sensitivity": 0.75,
                          "specificity": 1.0, "auc": 0.9375,
                          "confidence_intervals": {"accuracy": [0.5, 1.0], "auc": [0.7, 1.0]}}},
    )


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    files = sorted((FIXTURES / "test").glob("*/*.jpeg"))
    return np.stack([read_xray(f) for f in files]).astype("float32")


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two versions of a tiny model, saved as pneumozoo folders (no README: like a fresh run)."""
    keras.utils.set_random_seed(0)
    model = build_model("cnn4", input_size=48)
    model.threshold = _config().threshold  # the head and pneumozoo.json agree
    root = tmp_path_factory.mktemp("folders")
    save_folder(model, root / "v1", _config())
    model.set_weights([w + 0.05 for w in model.get_weights()])
    save_folder(model, root / "v2", _config())
    return {"v1": root / "v1", "v2": root / "v2"}


@pytest.fixture(scope="module")
def expected(folders: dict[str, Path], images: np.ndarray) -> dict[str, np.ndarray]:
    out = {k: load_folder(v).predict(images, verbose=0) for k, v in folders.items()}
    assert not np.allclose(out["v1"], out["v2"], atol=1e-4)  # the versions are distinguishable
    return out


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as h:
        yield h


@pytest.fixture
def cache(tmp_path: Path, hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HF_ENDPOINT -> the fake hub, HF_HOME -> tmp; returns the Hub cache folder.

    pneumozoo.hub reads these variables at call time. huggingface_hub reads HF_ENDPOINT once,
    at import, also for its own side requests (agent detection): set its constants as a process
    started with HF_ENDPOINT would have them, so no test request can leave for huggingface.co.
    """
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                        hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for name in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "PNEUMOZOO_HUB_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "hf" / "hub"


def _predict(model: keras.Model, images: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(images, verbose=0))


def _storage(cache: Path, repo: str = REPO) -> Path:
    return cache / f"models--{repo.replace('/', '--')}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- download ------------------------------------------------------------------------------
def test_download_then_offline_from_cache(hub: FakeHub, cache: Path, folders: dict[str, Path],
                                          images: np.ndarray, expected: dict[str, np.ndarray],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    commit = hub.add_folder(REPO, folders["v1"])
    model = load_pretrained(f"hf://{REPO}")
    np.testing.assert_allclose(_predict(model, images), expected["v1"], atol=1e-6)
    assert model.threshold == pytest.approx(0.42)
    snapshot = _storage(cache) / "snapshots" / commit
    assert sorted(p.name for p in snapshot.iterdir()) == [
        "config.json", "metadata.json", "model.weights.h5", "pneumozoo.json"]
    assert (_storage(cache) / "refs" / "main").read_text() == commit
    agents = {r.headers.get("user-agent", "") for r in hub.requests if "/me/tiny" in r.path}
    assert agents and all(a.startswith("pneumozoo/") for a in agents), agents

    seen = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = load_pretrained(f"hf://{REPO}")
    np.testing.assert_allclose(_predict(again, images), expected["v1"], atol=1e-6)
    assert len(hub.requests) == seen  # not a single request
    hub.stop()
    assert download_model(REPO) == snapshot  # still works with the server gone


def test_offline_and_not_cached(hub: FakeHub, cache: Path, folders: dict[str, Path],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    hub.add_folder(REPO, folders["v1"])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError, match=r"not in the Hugging Face cache .*HF_HUB_OFFLINE=1"):
        download_model(REPO)
    assert hub.requests == []


def test_pinned_revision_when_main_moved_on(hub: FakeHub, cache: Path, folders: dict[str, Path],
                                            images: np.ndarray,
                                            expected: dict[str, np.ndarray]) -> None:
    c1 = hub.add_folder(REPO, folders["v1"])
    c2 = hub.add_folder(REPO, folders["v2"])
    hub.repos[REPO].refs["v1.0"] = c1  # a tag
    assert c1 != c2
    pinned = load_pretrained(f"hf://{REPO}@{c1}")
    np.testing.assert_allclose(_predict(pinned, images), expected["v1"], atol=1e-6)
    by_kwarg = load_pretrained(f"hf://{REPO}", revision=c1)
    np.testing.assert_allclose(_predict(by_kwarg, images), expected["v1"], atol=1e-6)
    np.testing.assert_allclose(_predict(load_pretrained(f"hf://{REPO}"), images), expected["v2"],
                               atol=1e-6)
    v1_weights = (folders["v1"] / "model.weights.h5").read_bytes()
    for folder in (download_model(REPO, revision=c1), download_model(REPO, revision="v1.0")):
        assert folder.name == c1 and (folder / "model.weights.h5").read_bytes() == v1_weights
    assert download_model(REPO).name == c2


def test_unknown_repo_and_revision(hub: FakeHub, cache: Path, folders: dict[str, Path]) -> None:
    hub.add_folder(REPO, folders["v1"])
    with pytest.raises(DownloadError) as info:
        load_pretrained("hf://me/nothing-here")
    assert str(info.value) == "hf://me/nothing-here: repository not found (or private)"
    with pytest.raises(DownloadError, match=r"^hf://me/tiny@nope: revision 'nope' not found$"):
        download_model(REPO, revision="nope")
    with pytest.raises(PneumozooError, match="expected owner/name"):
        download_model("just-a-name")
    with pytest.raises(PneumozooError, match="hf://owner/repo"):
        load_pretrained("hf://too/many/parts")


def test_not_a_pneumozoo_repo(hub: FakeHub, cache: Path) -> None:
    hub.add_files("me/other", {"config.json": b"{}", "README.md": b"# hi\n"})
    with pytest.raises(PneumozooError, match=r"hf://me/other: not a pneumozoo model repository"):
        download_model("me/other")


@pytest.mark.timeout(60)  # a hang fails the test; slowness does not
def test_server_error_500(hub: FakeHub, cache: Path, folders: dict[str, Path],
                          caplog: pytest.LogCaptureFixture) -> None:
    hub.add_folder(REPO, folders["v1"])
    hub.failure = "500"
    with pytest.raises(DownloadError, match=r"answered HTTP 500 \(server error\).*no cached copy"):
        download_model(REPO)
    assert not (_storage(cache) / "snapshots").exists()

    hub.failure = None
    first = download_model(REPO)
    hub.failure = "500"  # the Hub goes down again: the cached copy of main serves, with a warning
    with caplog.at_level(logging.WARNING, logger="pneumozoo.hub"):
        assert download_model(REPO) == first
    assert "HTTP 500" in caplog.text and "using the cached copy" in caplog.text


def test_truncated_file_leaves_nothing_usable(hub: FakeHub, cache: Path, folders: dict[str, Path],
                                              images: np.ndarray, expected: dict[str, np.ndarray],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    commit = hub.add_folder(REPO, folders["v1"])
    hub.failure, hub.failure_files = "truncate", {"model.weights.h5"}
    with pytest.raises(DownloadError, match=r"truncated"):
        download_model(REPO)
    weights = (folders["v1"] / "model.weights.h5").read_bytes()
    storage = _storage(cache)
    assert not (storage / "snapshots" / commit / "model.weights.h5").exists()
    assert not list(storage.rglob("*.incomplete"))
    for blob in (storage / "blobs").iterdir():  # no partial weights kept under any name
        assert weights[: blob.stat().st_size] != blob.read_bytes() or blob.stat().st_size == 0

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a later offline run does not take it as complete
    with pytest.raises(DownloadError, match="HF_HUB_OFFLINE"):
        download_model(REPO)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    hub.failure = None
    model = load_pretrained(f"hf://{REPO}")
    np.testing.assert_allclose(_predict(model, images), expected["v1"], atol=1e-6)


def test_tampered_file_is_refused_and_evicted(hub: FakeHub, cache: Path, folders: dict[str, Path],
                                              images: np.ndarray, expected: dict[str, np.ndarray],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    commit = hub.add_folder(REPO, folders["v1"])
    hub.failure = "tamper"
    hub.failure_files = {"model.weights.h5"}
    with pytest.raises(IntegrityError, match=r"sha256 of model.weights.h5 does not match"):
        load_pretrained(f"hf://{REPO}")
    storage = _storage(cache)
    assert not (storage / "snapshots" / commit / "model.weights.h5").exists()
    good = hashlib.sha256((folders["v1"] / "model.weights.h5").read_bytes()).hexdigest()
    assert not (storage / "blobs" / good).exists()  # the bad bytes are not cached under its name
    assert (storage / "snapshots" / commit / "config.json").exists()  # good files stay cached

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError):
        download_model(REPO)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    hub.failure = None
    hub.requests.clear()
    model = load_pretrained(f"hf://{REPO}")
    np.testing.assert_allclose(_predict(model, images), expected["v1"], atol=1e-6)
    fetched = [r.path.rsplit("/", 1)[-1] for r in hub.requests if r.method == "GET"
               and "/resolve/" in r.path]
    assert fetched == ["model.weights.h5"]  # only the evicted file was fetched again


@pytest.mark.timeout(60)  # a hang fails the test; slowness does not
def test_connection_refused_is_quick(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(DownloadError, match=r"^hf://me/tiny: cannot connect to http://127\.0\.0\.1"):
        load_pretrained(f"hf://{REPO}")


@pytest.mark.timeout(60)  # a hang fails the test; slowness does not
def test_hung_server_times_out(hub: FakeHub, cache: Path, folders: dict[str, Path],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    hub.add_folder(REPO, folders["v1"])
    hub.failure, hub.slow_seconds = "slow", 30
    with pytest.raises(DownloadError, match=r"did not answer within 1 s \(timeout\)"):
        download_model(REPO, timeout=1)
    monkeypatch.setenv("PNEUMOZOO_HUB_TIMEOUT", "0.5")
    with pytest.raises(DownloadError, match=r"within 0.5 s"):
        load_pretrained(f"hf://{REPO}")


# --- push ----------------------------------------------------------------------------------
def test_push_model_then_load(hub: FakeHub, cache: Path, folders: dict[str, Path],
                              images: np.ndarray, expected: dict[str, np.ndarray]) -> None:
    model = load_folder(folders["v1"])
    commit = push_to_hub(model, "me/pushed", config=_config("pushed"), private=True)
    files = hub.files("me/pushed")
    assert hub.repos["me/pushed"].private
    assert {"config.json", "metadata.json", "model.weights.h5", "pneumozoo.json",
            "README.md"} <= set(files)
    card = files["README.md"].decode()
    assert card.startswith("---\n") and "library_name: keras" in card
    assert 'load_pretrained("hf://me/pushed")' in card
    assert hub.validated[-1]["library_name"] == "keras"  # the Hub's YAML check saw the card
    loaded = load_pretrained(f"hf://me/pushed@{commit}")
    np.testing.assert_allclose(_predict(loaded, images), expected["v1"], atol=1e-6)
    assert PretrainedConfig.read(download_model("me/pushed", revision=commit)).name == "pushed"

    # a folder to a new branch: main stays as it was
    main_before = hub.repos["me/pushed"].refs["main"]
    dev = push_to_hub(folders["v2"], "me/pushed", revision="dev", commit_message="v2 on dev")
    assert hub.repos["me/pushed"].refs == {"main": main_before, "dev": dev}
    np.testing.assert_allclose(_predict(load_pretrained("hf://me/pushed@dev"), images),
                               expected["v2"], atol=1e-6)
    assert not (folders["v2"] / "README.md").exists()  # the card went to the Hub, not the folder


def test_push_needs_a_config_and_a_sound_folder(hub: FakeHub, cache: Path, tmp_path: Path,
                                                folders: dict[str, Path]) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(folders["v1"], bad)
    data = bytearray((bad / "model.weights.h5").read_bytes())
    data[len(data) // 2] ^= 0x01
    (bad / "model.weights.h5").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"model\.weights\.h5"):
        push_to_hub(bad, "me/x")
    assert "me/x" not in hub.repos  # nothing was published


def test_push_unreachable_hub(cache: Path, folders: dict[str, Path],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(PneumozooError, match=r"^push to hf://me/x: cannot connect"):
        push_to_hub(folders["v1"], "me/x")


# --- CLI -----------------------------------------------------------------------------------
def test_cli_push_and_download(hub: FakeHub, cache: Path, folders: dict[str, Path],
                               capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["hub", "push", str(folders["v1"]), "me/cli", "--message", "first upload"]) == 0
    out = capsys.readouterr().out.strip()
    commit = hub.repos["me/cli"].refs["main"]
    assert out == f"hf://me/cli@{commit}"

    assert main(["hub", "download", f"me/cli@{commit}", "--cache-dir", str(tmp_path / "c")]) == 0
    folder = Path(capsys.readouterr().out.strip())
    assert folder.is_dir() and folder.name == commit and (folder / "README.md").is_file()
    assert str(folder).startswith(str(tmp_path / "c"))

    assert main(["hub", "download", "me/absent"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "pneumozoo: error: hf://me/absent: repository not found (or private)"
    assert main(["hub", "download", "not a repo"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_split_repo_ref() -> None:
    assert split_repo_ref("me/m") == ("me/m", None)
    assert split_repo_ref("hf://me/m@abc") == ("me/m", "abc")
    with pytest.raises(PneumozooError):
        split_repo_ref("me")


# --- model card ----------------------------------------------------------------------------
def test_model_card_metadata_and_sections() -> None:
    from huggingface_hub import ModelCard

    cfg = _config()
    card = model_card(cfg, repo_id="me/tiny")
    meta = ModelCard(card).data.to_dict()
    assert meta["license"] == "cc-by-4.0" and meta["library_name"] == "keras"
    assert {"keras", "pneumozoo", "chest-x-ray", "pneumonia"} <= set(meta["tags"])
    metrics = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert metrics["accuracy"] == pytest.approx(0.875) and metrics["roc_auc"] == pytest.approx(0.9375)
    for section in ("## Intended use", "## How to use", "## Preprocessing contract",
                    "## Training data", "## Evaluation", "## Limitations", "## Files"):
        assert section in card
    assert "10.17632/rscbjbr9sj.2" in card and "Guangzhou" in card and "not a diagnosis" in card
    assert "| Accuracy | 0.875 | 0.500 – 1.000 |" in card
    assert "| Sensitivity (recall, pneumonia) | 0.750 | – |" in card
    assert "`0.420`" in card and "0: `normal`, 1: `pneumonia`" in card
    bare = model_card(PretrainedConfig(name="x", architecture="cnn4", task="binary",
                                       class_names=("normal", "pneumonia"), input_size=32))
    assert "model-index" not in bare and "No test metrics were recorded" in bare
    assert 'load_pretrained("x")' in bare


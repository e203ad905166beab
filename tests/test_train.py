"""fit(): history and best epoch, atomic checkpoints, resume (also after a SIGKILL), schedules,
class balance."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from pneumozoo.data import Record, class_weights, make_dataset, patient_split, scan_split
from pneumozoo.errors import DataError
from pneumozoo.models import build_model
from pneumozoo.train import FitResult, compile_model, fit

# Keras converts tensors with np.array(), which numpy 2 flags on every call; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

TinyDataset = Callable[..., Path]
SRC = Path(__file__).resolve().parents[1] / "src"
HISTORY_KEYS = {"loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc", "lr"}


def same_history(a: dict[str, list[float]], b: dict[str, list[float]]) -> bool:
    """Equal histories, NaN equal to NaN."""
    return a.keys() == b.keys() and all(
        len(a[k]) == len(b[k])
        and all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a[k], b[k],
                                                                           strict=True))
        for k in a)


#: The cheapest architecture to trace and train (xraynet's BatchNorms cost 3x the CPU here).
ARCH, SIZE = "cnn4", 48


def load_checkpoint(path: Path) -> keras.Model:
    """A fresh model with the weights (and optimizer state) of a fit checkpoint file."""
    model = build_model(ARCH, input_size=SIZE)
    compile_model(model)
    model.optimizer.build(model.trainable_variables)
    model.load_weights(path)
    return model


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def fixture_split(fixture_root: Path) -> tuple[list[Record], list[Record]]:
    train, val = patient_split(scan_split(fixture_root, "train"), val_fraction=0.25, seed=0)
    assert {r.label for r in val} == {0, 1}
    return train, val


def test_fit_checkpoints_and_a_rerun_does_not_retrain(
        fixture_split: tuple[list[Record], list[Record]], tmp_path: Path) -> None:
    train, val = fixture_split
    ckpt = tmp_path / "ckpt"
    model = build_model(ARCH, input_size=SIZE)
    result = fit(model, train, val, epochs=2, batch_size=8, checkpoint_dir=ckpt, verbose=0)
    assert isinstance(result, FitResult)
    assert result.epochs == 2 and result.resumed_from == 0
    assert set(result.history) >= HISTORY_KEYS
    assert all(len(v) == 2 for v in result.history.values())
    assert all(math.isfinite(v) for v in result.history["loss"])
    assert result.monitor == "val_auc" and result.checkpoint_dir == ckpt
    assert result.best_epoch in (1, 2)
    assert result.best_value == max(result.history["val_auc"])
    assert result.best_value == result.history["val_auc"][result.best_epoch - 1]

    names = sorted(p.name for p in ckpt.iterdir())
    assert names == ["best.weights.h5", "epoch-0002.weights.h5", "history.json", "state.json"]
    state = json.loads((ckpt / "state.json").read_text())
    assert state["epoch"] == 2 and state["weights"] == "epoch-0002.weights.h5"
    assert same_history(state["history"], result.history)
    assert same_history(json.loads((ckpt / "history.json").read_text()), result.history)

    # the model ends with the best epoch's weights, which best.weights.h5 holds
    x = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3)).astype("float32")
    expected = model(x, training=False).numpy()
    best = load_checkpoint(ckpt / "best.weights.h5")
    # fit recalibrated the model on val after training: the temperature is not in the weights
    assert model.temperature != 1.0 and best.temperature == 1.0
    best.head.temperature = model.temperature
    np.testing.assert_allclose(best(x, training=False).numpy(), expected,
                               atol=1e-6)
    if result.best_epoch == 2:
        assert (ckpt / "best.weights.h5").read_bytes() == (
            ckpt / "epoch-0002.weights.h5").read_bytes()

    # same command again: nothing to train, same result, files untouched
    stamps = {p.name: p.stat().st_mtime_ns for p in ckpt.iterdir()}
    again = build_model(ARCH, input_size=SIZE)
    rerun = fit(again, train, val, epochs=2, batch_size=8, checkpoint_dir=ckpt, verbose=0)
    assert rerun.resumed_from == 2 and rerun.epochs == 2
    assert same_history(rerun.history, result.history)
    assert (rerun.best_epoch, rerun.best_value) == (result.best_epoch, result.best_value)
    assert {p.name: p.stat().st_mtime_ns for p in ckpt.iterdir()} == stamps
    np.testing.assert_allclose(again(x, training=False).numpy(), expected,
                               atol=1e-6)

    # a kill during a write leaves temp files beside the real ones: a resume removes them
    (ckpt / ".state.json.k1ll3d.tmp").write_text('{"epoch": 9')
    (ckpt / ".epoch-0003.weights.h5.k1ll3d.weights.h5").write_bytes(b"\x89HDF half")
    (ckpt / "notes.txt").write_text("a user's file is left alone")
    fit(build_model(ARCH, input_size=SIZE), train, val, epochs=2, batch_size=8,
        checkpoint_dir=ckpt, verbose=0)
    assert temp_files(ckpt) == [] and (ckpt / "notes.txt").exists()
    assert {p.name: p.stat().st_mtime_ns for p in ckpt.iterdir() if p.name in stamps} == stamps


@pytest.mark.parametrize("last_is_best", [True, False])
def test_resume_redoes_a_best_copy_cut_short(tmp_path: Path, last_is_best: bool) -> None:
    """Killed between writing state.json and copying the epoch to best.weights.h5."""
    from pneumozoo.train import _Checkpointer, _resume_state

    history = {"val_auc": [0.6, 0.9 if last_is_best else 0.5], "loss": [0.7, 0.6]}
    (tmp_path / "state.json").write_text(json.dumps(
        {"epoch": 2, "weights": "epoch-0002.weights.h5", "history": history}))
    (tmp_path / "epoch-0002.weights.h5").write_bytes(b"epoch 2")
    (tmp_path / "best.weights.h5").write_bytes(b"epoch 1")
    checkpointer = _Checkpointer(tmp_path, "val_auc", "max", None, {})
    state = _resume_state(tmp_path, checkpointer)
    assert state is not None and state["epoch"] == 2
    assert checkpointer.history == history
    expected = b"epoch 2" if last_is_best else b"epoch 1"
    assert (tmp_path / "best.weights.h5").read_bytes() == expected
    (tmp_path / "fresh").mkdir()
    assert _resume_state(tmp_path / "fresh", checkpointer) is None


def test_exponential_schedule_and_restore_best_without_checkpoints(
        tiny_dataset: TinyDataset) -> None:
    records = scan_split(tiny_dataset(6, 6, size=SIZE), "train")
    model = build_model(ARCH, input_size=SIZE)
    snapshots: list[list[np.ndarray]] = []

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            snapshots.append([np.array(w) for w in self.model.get_weights()])

    lr = 0.01
    result = fit(model, records, None, epochs=4, batch_size=4, learning_rate=lr,
                 schedule="exponential", warmup_epochs=0, decay_after=2, early_stopping=None,
                 augment=None,
                 callbacks=[Snapshot()], verbose=0)
    expected = [lr, lr, lr * math.exp(-0.1), lr * math.exp(-0.2)]
    np.testing.assert_allclose(result.history["lr"], expected, rtol=1e-5)
    assert result.monitor == "auc" and result.epochs == 4
    assert 1 <= result.best_epoch <= 4
    for got, want in zip(model.get_weights(), snapshots[result.best_epoch - 1], strict=True):
        np.testing.assert_array_equal(got, want)


class FitSpy:
    """Stands in for keras.Model.fit: records what pneumozoo.fit passes, trains nothing."""

    def __init__(self) -> None:
        self.kwargs: dict[str, Any] = {}
        self.train: Any = None

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def fake_fit(model: keras.Model, train: Any, **kwargs: Any) -> None:
            self.train = train
            self.kwargs = kwargs

        monkeypatch.setattr(keras.Model, "fit", fake_fit)


def test_balanced_class_weights_are_passed_to_keras(
        tiny_dataset: TinyDataset, monkeypatch: pytest.MonkeyPatch) -> None:
    records = scan_split(tiny_dataset(4, 12, size=16), "train")
    spy = FitSpy()
    spy.install(monkeypatch)
    model = build_model(ARCH, input_size=SIZE)
    fit(model, records, epochs=1, batch_size=4, verbose=0)  # class_weight="balanced" default
    assert spy.kwargs["class_weight"] == class_weights(records) == {0: 2.0, 1: 16 / 24}
    assert spy.kwargs["epochs"] == 1 and spy.kwargs["initial_epoch"] == 0

    fit(model, records, epochs=1, class_weight={0: 3.0, 1: 1.0}, verbose=0)
    assert spy.kwargs["class_weight"] == {0: 3.0, 1: 1.0}
    fit(model, records, epochs=1, class_weight=None, verbose=0)
    assert spy.kwargs["class_weight"] is None

    # oversampling balances the data instead of weighting it
    fit(model, records, epochs=1, oversample=True, batch_size=64, augment=None, verbose=0)
    assert spy.kwargs["class_weight"] is None
    labels = np.concatenate([y.numpy() for _, y in spy.train])
    assert np.bincount(labels).tolist() == [12, 12]

    ds = make_dataset(records, input_size=SIZE)
    with pytest.raises(ValueError, match="balanced"):
        fit(model, ds, epochs=1, verbose=0)
    with pytest.raises(DataError):
        fit(model, [], epochs=1, class_weight=None, verbose=0)


# --- SIGKILL in the middle of an epoch, then resume ---------------------------------------
TRAIN_SCRIPT = textwrap.dedent('''
    import json, sys, time
    from pathlib import Path

    import keras
    import pneumozoo
    from pneumozoo.data import patient_split, scan_split

    data, ckpt, marker = (Path(a) for a in sys.argv[1:4])

    class Pace(keras.callbacks.Callback):
        """Stretch epochs by sleeping (not computing), so a kill can land inside one, and
        say when an epoch after the first is under way."""

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            time.sleep(0.2)
            if self.epoch >= 1 and batch >= 1 and not marker.exists():
                marker.write_text(str(self.epoch + 1))

    train, val = patient_split(scan_split(data, "train"), val_fraction=0.2, seed=0)
    model = pneumozoo.build_model("cnn4", input_size=48)
    result = pneumozoo.fit(model, train, val, epochs=3, batch_size=8, learning_rate=1e-3,
                           schedule="exponential", warmup_epochs=0, decay_after=1,
                           early_stopping=None,
                           augment=None, checkpoint_dir=ckpt, callbacks=[Pace()], verbose=0)
    print(json.dumps({"resumed_from": result.resumed_from, "epochs": result.epochs,
                      "best_epoch": result.best_epoch, "history": result.history}))
''')


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[bytes], timeout: float,
             log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"training ended (status {proc.returncode}) before the kill:\n"
                        + log.read_text()[-3000:])
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail("timed out waiting for the second epoch:\n" + log.read_text()[-3000:])
        time.sleep(0.05)


def saved_epoch(state_file: Path) -> int:
    try:
        return int(json.loads(state_file.read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume(tiny_dataset: TinyDataset, tmp_path: Path,
                                       tf_env: dict[str, str]) -> None:
    data = tiny_dataset(50, 50, size=48)
    ckpt, marker = tmp_path / "ckpt", tmp_path / "second-epoch-started"
    script = tmp_path / "train_run.py"
    script.write_text(TRAIN_SCRIPT)
    cmd = [sys.executable, str(script), str(data), str(ckpt), str(marker)]
    env = dict(tf_env, PYTHONPATH=os.pathsep.join([str(SRC), tf_env.get("PYTHONPATH", "")]))
    log = tmp_path / "first.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=tmp_path)
        wait_for(lambda: marker.exists() and saved_epoch(ckpt / "state.json") >= 1, proc,
                 timeout=300, log=log)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    # what the kill left is consistent: the state parses and names a complete weights file
    state = json.loads((ckpt / "state.json").read_text())
    done = state["epoch"]
    assert 1 <= done < 3
    assert (ckpt / state["weights"]).is_file()
    load_checkpoint(ckpt / state["weights"])
    load_checkpoint(ckpt / "best.weights.h5")
    before = json.loads((ckpt / "history.json").read_text())
    assert same_history(before, state["history"])
    assert all(len(v) == done for v in before.values())

    # the same command again continues from the saved epoch
    run = subprocess.run(cmd, capture_output=True, env=env, cwd=tmp_path, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stderr.decode()[-3000:]
    result = json.loads(run.stdout.decode().strip().splitlines()[-1])
    assert result["resumed_from"] == done and result["epochs"] == 3
    history = result["history"]
    assert all(len(v) == 3 for v in history.values())
    for key, values in before.items():
        assert same_history({key: history[key][:done]}, {key: values}), key
    np.testing.assert_allclose(history["lr"], [1e-3 * math.exp(-0.1 * e) for e in range(3)],
                               rtol=1e-5)
    final = json.loads((ckpt / "state.json").read_text())
    assert final["epoch"] == 3 and (ckpt / final["weights"]).is_file()
    assert sorted(p.name for p in ckpt.glob("epoch-*")) == ["epoch-0003.weights.h5"]
    assert temp_files(ckpt) == []

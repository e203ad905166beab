"""tf.distribute: ``fit(strategy=...)`` trains a replica and hands its weights back.

Strategies need TensorFlow set up before it runs anything (logical CPU devices, cluster
config), so each scenario runs in fresh Python processes; every process is bounded by a
timeout and killed on failure.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

# Subprocess and end-to-end runs: `python -m pytest -m slow` (CI runs them too).
pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures" / "kermany"
TIMEOUT = 300  # seconds per process; they finish far sooner on an idle machine

# Shared by the scripts: a tiny xraynet (32 px) on the fixture films.
_PRELUDE = """
import json, os, sys
from pathlib import Path
import numpy as np
"""

_TRAIN_TINY = """
import pneumozoo
from pneumozoo.data import scan_split
train = scan_split(FIXTURES, "train")
val = scan_split(FIXTURES, "test")
model = pneumozoo.build_model("xraynet", input_size=32)
initial = [w.copy() for w in model.get_weights()]

import keras

class CountSteps(keras.callbacks.Callback):
    steps = 0
    def on_train_batch_end(self, batch, logs=None):
        CountSteps.steps += 1
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    env.pop("TF_CONFIG", None)
    return env


def _script(tmp_path: Path, name: str, *parts: str) -> Path:
    path = tmp_path / name
    body = "".join(textwrap.dedent(part) for part in parts)
    path.write_text(_PRELUDE + f"FIXTURES = Path({str(FIXTURES)!r})\n" + body)
    return path


def _result(stdout: str) -> dict[str, Any]:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, f"no RESULT line in output:\n{stdout[-3000:]}"
    return dict(json.loads(lines[-1][len("RESULT "):]))


def _run_all(procs: list[subprocess.Popen[str]], timeout: float) -> list[tuple[int, str, str]]:
    """Wait for every process; kill them all if one fails or the time runs out."""
    deadline = time.monotonic() + timeout
    outputs: list[tuple[int, str, str]] = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            outputs.append((proc.returncode, out, err))
            if proc.returncode != 0:
                break
    except subprocess.TimeoutExpired:
        pytest.fail(f"distributed training did not finish within {timeout:.0f} s")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return outputs


def test_unknown_strategy_name_lists_valid_ones() -> None:
    from pneumozoo.distribute import get_strategy
    from pneumozoo.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="mirrored, multiworker"):
        get_strategy("horovod")


def test_batch_size_is_per_replica() -> None:
    from pneumozoo.distribute import global_batch_size, is_chief

    class TwoReplicas:
        num_replicas_in_sync = 2

    assert global_batch_size(16, None) == 16
    assert global_batch_size(16, TwoReplicas()) == 32  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        global_batch_size(0, None)
    import tensorflow as tf

    assert is_chief(tf.distribute.get_strategy())


def test_mirrored_on_two_cpus_trains_and_returns_weights(tmp_path: Path) -> None:
    script = _script(tmp_path, "mirrored.py", """
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    """, _TRAIN_TINY, """
        ckpt = Path(sys.argv[1])
        result = pneumozoo.fit(model, train, val, epochs=1, batch_size=5, strategy="mirrored",
                               checkpoint_dir=ckpt, augment="none", schedule="constant",
                               callbacks=[CountSteps()], verbose=0)
        changed = sum(not np.array_equal(a, b) for a, b in zip(initial, model.get_weights()))
        saved = pneumozoo.build_model("xraynet", input_size=32)
        saved.load_weights(ckpt / "best.weights.h5")
        # every layer but the head, whose guard fit() fits on val after training
        same_as_saved = all(np.array_equal(a, b)
                            for layer in model.layers if layer.name != "head"
                            for a, b in zip(saved.get_layer(layer.name).get_weights(),
                                            layer.get_weights(), strict=True))
        probs = model.predict(np.zeros((2, 40, 40, 3), np.float32), verbose=0)
        print("RESULT " + json.dumps({
            "history": result.history, "replicas": result.extra.get("replicas"),
            "steps": CountSteps.steps, "changed": int(changed), "n_weights": len(initial),
            "same_as_saved": same_as_saved, "compiled": bool(model.compiled),
            "guard": model.has_guard,
            "probs_sum": probs.sum(axis=1).tolist(),
            "checkpoint_dir": str(result.checkpoint_dir)}))
    """)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "ckpt")], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    [(code, out, err)] = _run_all([proc], TIMEOUT)
    assert code == 0, err[-3000:]
    r = _result(out)
    assert r["replicas"] == 2
    assert len(r["history"]["loss"]) == 1 and r["history"]["loss"][0] == pytest.approx(
        r["history"]["loss"][0])  # finite: NaN != NaN
    # 24 training films in global batches of 5 x 2 replicas: 3 steps (5 if it were global).
    assert r["steps"] == 3
    assert r["changed"] >= r["n_weights"] // 2  # trained: most tensors moved
    assert r["same_as_saved"]  # the user's model holds the replica's (best) weights
    assert r["guard"]  # and was recalibrated on val afterwards
    assert r["compiled"]
    assert r["probs_sum"] == pytest.approx([1.0, 1.0], abs=1e-5)
    assert r["checkpoint_dir"] == str(tmp_path / "ckpt")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.mark.slow
def test_multiworker_two_processes_only_chief_writes(tmp_path: Path) -> None:
    script = _script(tmp_path, "worker.py", """
        import hashlib
        from pneumozoo.distribute import get_strategy, is_chief
        strategy = get_strategy("multiworker")  # first: before TensorFlow runs anything
        import pneumozoo.train
        written = []
        _atomic_path, _atomic_json = pneumozoo.train.atomic_path, pneumozoo.train.atomic_write_json
        def atomic_path(target, *a, **k):
            written.append(str(Path(target).resolve()))
            return _atomic_path(target, *a, **k)
        def atomic_write_json(target, *a, **k):
            written.append(str(Path(target).resolve()))
            return _atomic_json(target, *a, **k)
        pneumozoo.train.atomic_path, pneumozoo.train.atomic_write_json = atomic_path, atomic_write_json
    """, _TRAIN_TINY, """
        ckpt = Path(sys.argv[1])
        result = pneumozoo.fit(model, train, val, epochs=1, batch_size=4, strategy=strategy,
                               checkpoint_dir=ckpt, augment="none", schedule="constant",
                               callbacks=[CountSteps()], verbose=0)
        def digest(ws):
            return hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in ws)).hexdigest()
        def body(m):  # every layer but the head, whose guard fit() fits on val after training
            return [w for layer in m.layers if layer.name != "head" for w in layer.get_weights()]
        changed = sum(not np.array_equal(a, b) for a, b in zip(initial, model.get_weights()))
        saved = None
        if is_chief(strategy):
            fresh = pneumozoo.build_model("xraynet", input_size=32)
            fresh.load_weights(ckpt / "best.weights.h5")
            saved = digest(body(fresh))
        print("RESULT " + json.dumps({
            "chief": is_chief(strategy), "saved": saved, "replicas": result.extra.get("replicas"),
            "history": result.history, "steps": CountSteps.steps, "written": written,
            "digest": digest(body(model)), "changed": int(changed), "guard": model.has_guard,
            "trainable": digest(w.numpy() for w in model.trainable_weights)}))
    """)
    ckpt = tmp_path / "shared-ckpt"
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = _env()
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen([sys.executable, str(script), str(ckpt)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = _run_all(procs, TIMEOUT)
    for code, _, err in outputs:
        assert code == 0, err[-3000:]
    chief, other = (_result(out) for _, out, _ in outputs)
    assert chief["chief"] and not other["chief"]
    assert chief["replicas"] == other["replicas"] == 2
    for r in (chief, other):
        assert len(r["history"]["loss"]) == 1
        assert r["steps"] == 3  # 24 films, global batch 4 x 2 = 8
        assert r["changed"] > 0
    # Synchronous training from the chief's initial weights: the same trainable weights
    # everywhere (BatchNorm moving statistics are each worker's own, as with any
    # non-synchronized BatchNorm).
    assert chief["trainable"] == other["trainable"]
    assert chief["saved"] == chief["digest"]  # the chief's model is its checkpoint
    assert chief["guard"]  # then recalibrated on val
    shared = str(ckpt.resolve())
    assert chief["written"] and all(p.startswith(shared) for p in chief["written"])
    assert other["written"], "the other worker should still checkpoint (to a temp folder)"
    assert not any(p.startswith(shared) for p in other["written"])
    scratch = {str(Path(p).parent) for p in other["written"]}
    assert not any(Path(d).exists() for d in scratch), "temp checkpoint folder left behind"
    assert {"state.json", "best.weights.h5", "history.json"} <= {p.name for p in ckpt.iterdir()}
    assert len(json.loads((ckpt / "history.json").read_text())["loss"]) == 1

"""``pneumozoo screen``: Parquet rows equal to ``predict --json``, error rows, exactly-once
resume after ``kill -9``, and the Ray Data engine on a real two-node local cluster."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

ROOT = Path(__file__).resolve().parents[1]
FILMS = sorted([*(ROOT / "tests" / "fixtures" / "kermany").rglob("*.jpeg"),
                *(ROOT / "examples" / "xrays").glob("*.jpeg")])


def _rows(out: Path) -> list[dict]:
    shards = sorted(out.glob("part-*.parquet"))
    assert shards, f"no shards in {out}"
    return pa.concat_tables([pq.read_table(s) for s in shards]).to_pylist()


def _copy_films(folder: Path, copies: int) -> list[Path]:
    """``copies`` copies of every fixture film under ``folder`` (distinct names)."""
    made = []
    for i in range(copies):
        sub = folder / f"batch{i:03d}"
        sub.mkdir(parents=True)
        for f in FILMS:
            target = sub / f"{f.parent.name}-{f.name}"
            shutil.copyfile(f, target)
            made.append(target)
    return made


def _predict_json(paths: list[Path], capsys: pytest.CaptureFixture[str]) -> dict[str, dict]:
    from pneumozoo.cli import main

    capsys.readouterr()
    status = main(["predict", "--json", *map(str, paths)])
    assert status in (0, 1)
    lines = capsys.readouterr().out.splitlines()
    return {os.path.abspath(r["path"]): r for r in map(json.loads, lines)}


def _check_against(rows: list[dict], expected: dict[str, dict]) -> None:
    by_path = {r["path"]: r for r in rows}
    assert len(by_path) == len(rows), "a film is in the output twice"
    assert set(by_path) == set(expected)
    for path, want in expected.items():
        got = by_path[path]
        if "error" in want:
            assert got["error"] and got["probability"] is None, path
            continue
        assert got["error"] is None, (path, got["error"])
        assert abs(got["probability"] - want["probability"]) <= 1e-6, path
        for name, p in want["probabilities"].items():
            assert abs(got[f"p_{name}"] - p) <= 1e-6, (path, name)
        assert got["label"] == want["label"]
        assert got["in_domain"] == want["in_domain"]
        assert abs(got["domain_score"] - want["domain_score"]) <= 1e-6
        assert got["threshold"] == pytest.approx(want["threshold"])


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture films, a corrupt one and an empty one."""
    folder = tmp_path_factory.mktemp("archive")
    _copy_films(folder, 1)
    bad = folder / "bad"
    bad.mkdir()
    (bad / "truncated.jpeg").write_bytes(FILMS[0].read_bytes()[:300])
    (bad / "empty.png").write_bytes(b"")
    return folder


def test_local_screen_matches_predict_json(archive: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from pneumozoo import __version__, screen
    from pneumozoo.pretrained import DEFAULT_MODEL, get_pretrained_config

    out = tmp_path / "out"
    result = screen(archive, out, shard_size=16)
    rows = _rows(out)
    expected = _predict_json(sorted(archive.rglob("*.*")), capsys)
    _check_against(rows, expected)
    assert result.films == result.written == len(FILMS) + 2
    assert result.errors == 2 and result.skipped == 0 and result.shards == 3
    config = get_pretrained_config(DEFAULT_MODEL)
    assert {r["model"] for r in rows} == {DEFAULT_MODEL}
    assert {r["weights_sha256"] for r in rows} == {config.files["model.weights.h5"]}
    assert {r["pneumozoo_version"] for r in rows} == {__version__}
    errors = {Path(r["path"]).name: r["error"] for r in rows if r["error"]}
    assert set(errors) == {"truncated.jpeg", "empty.png"}
    assert "empty" in errors["empty.png"]
    good = next(r for r in rows if r["error"] is None)
    stat = os.stat(good["path"])
    assert good["size"] == stat.st_size
    assert good["mtime"].timestamp() == pytest.approx(stat.st_mtime, abs=1e-6)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["films"] == len(rows) and summary["errors"] == 2
    assert summary["films_per_second"] > 0
    assert summary["first_output_seconds"] >= 0 and summary["steady_films_per_second"] >= 0

    # A rerun writes nothing; a new film is screened once; a touched film counts as new.
    again = screen(archive, out, shard_size=16)
    assert again.written == 0 and again.skipped == len(rows) and again.films == len(rows)
    extra = archive / "new.jpeg"
    shutil.copyfile(FILMS[1], extra)
    try:
        third = screen(archive, out, shard_size=16)
    finally:
        extra.unlink()
    assert third.written == 1 and third.films == len(rows) + 1


def test_list_sources_and_other_model_refused(archive: Path, tmp_path: Path) -> None:
    from pneumozoo import PneumozooError, screen

    films = sorted(p for p in archive.rglob("*.jpeg") if p.parent.name != "bad")[:5]
    listing = tmp_path / "list.csv"
    listing.write_text("id,path\n" + "".join(f"{i},{os.path.relpath(p, tmp_path)}\n"
                                             for i, p in enumerate(films)) + "9,missing.jpeg\n")
    out = tmp_path / "out"
    result = screen(listing, out)
    rows = _rows(out)
    assert result.written == 6 and result.errors == 1
    assert sorted(r["path"] for r in rows if r["error"] is None) == sorted(map(str, films))
    missing = next(r for r in rows if r["error"])
    assert missing["path"].endswith("missing.jpeg") and missing["size"] is None

    table = pa.table({"path": [str(p) for p in films]})
    pq.write_table(table, tmp_path / "list.parquet")
    assert screen(tmp_path / "list.parquet", out).written == 0  # same films: all done

    with pytest.raises(PneumozooError, match="another model"):
        screen(listing, out, model="cnn4-binary")
    with pytest.raises(PneumozooError, match="no such file"):
        screen(tmp_path / "nowhere", tmp_path / "o2")


def test_a_keras_file_screens_like_load_pretrained_reads_it(archive: Path, tmp_path: Path) -> None:
    import pneumozoo
    from pneumozoo import screen

    model = pneumozoo.build_model("cnn4", input_size=48)
    model.save(tmp_path / "mine.keras")
    films = sorted(p for p in archive.rglob("*.jpeg") if p.parent.name != "bad")[:3]
    listing = tmp_path / "list.csv"
    listing.write_text("path\n" + "".join(f"{p}\n" for p in films))
    result = screen(listing, tmp_path / "out", model=str(tmp_path / "mine.keras"))
    assert result.written == 3 and result.errors == 0
    rows = _rows(tmp_path / "out")
    assert {r["model"] for r in rows} == {str(tmp_path / "mine.keras")}
    assert len({r["weights_sha256"] for r in rows}) == 1 and rows[0]["weights_sha256"]


def test_cli_screen(archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pneumozoo.cli import main

    status = main(["screen", str(archive), "--out", str(tmp_path / "o"), "--json"])
    assert status == 1  # two films could not be read
    result = json.loads(capsys.readouterr().out)
    assert result["films"] == len(FILMS) + 2 and result["errors"] == 2


@pytest.mark.slow
def test_kill_and_rerun_is_exactly_once(tmp_path: Path, tf_env: dict[str, str]) -> None:
    folder = tmp_path / "films"
    films = _copy_films(folder, 8)  # 8 x 39 = 312 films
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pneumozoo", "screen", str(folder), "--out", str(out),
           "--shard-size", "16", "--json"]
    proc = subprocess.Popen(cmd, env=tf_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not list(out.glob("part-*.parquet")):
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline, "no shard within 240 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = len(_rows(out))
    assert 0 < first < len(films), "the kill came too late to test anything"
    done = subprocess.run(cmd, env=tf_env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    paths = [r["path"] for r in _rows(out)]
    assert len(paths) == len(set(paths)) == len(films)
    assert set(paths) == {str(p) for p in films}
    assert result["skipped"] == first and result["written"] == len(films) - first
    assert not list(out.glob(".*.tmp")) and not (out / ".screen.lock").exists()


# --- Ray: a real two-node local cluster -----------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray_bin = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if ray_bin is None:
        pytest.skip("the ray command is not installed")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    temp = tmp_path_factory.mktemp("ray")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "TF_CPP_MIN_LOG_LEVEL": "3",
           "RAY_AUTH_MODE": "disabled"}  # a local throwaway cluster: no token auth
    common = ["--num-gpus", "0", "--disable-usage-stats"]
    small = ["--object-store-memory", str(300 * 2**20), "--memory", str(3 * 2**30)]

    def stop() -> None:
        subprocess.run([ray_bin, "stop", "--force"], env=env, capture_output=True, timeout=120)

    try:
        subprocess.run([ray_bin, "start", "--head", "--node-ip-address", "127.0.0.1",
                        "--port", str(port), "--num-cpus", "2", "--include-dashboard", "false",
                        "--temp-dir", str(temp), *small, *common],
                       env=env, check=True, capture_output=True, timeout=180)
        subprocess.run([ray_bin, "start", "--address", address, "--node-ip-address", "127.0.0.1",
                        "--num-cpus", "2", *small, *common],
                       env=env, check=True, capture_output=True, timeout=180)
    except subprocess.CalledProcessError as e:
        stop()
        pytest.fail(f"ray start failed: {e.stderr.decode()[-2000:]}")
    try:
        yield address
    finally:
        stop()


@pytest.mark.slow
def test_ray_two_nodes_match_local(ray_cluster: str, archive: Path, tmp_path: Path,
                                   tf_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    env = {**tf_env, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    local = subprocess.run([sys.executable, "-m", "pneumozoo", "screen", str(archive), "--out",
                            str(tmp_path / "local"), "--json"], env=env, capture_output=True,
                           text=True, timeout=600)
    assert local.returncode == 1, local.stderr[-2000:]
    run = subprocess.run([sys.executable, "-m", "pneumozoo", "screen", str(archive), "--out",
                          str(tmp_path / "ray"), "--ray", ray_cluster, "--actors", "2",
                          "--shard-size", "8", "--json"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 1, run.stderr[-3000:]
    assert json.loads(run.stdout)["engine"] == "ray"
    ray.init(address=ray_cluster, log_to_driver=False)
    try:
        nodes = [n for n in ray.nodes() if n["Alive"]]
    finally:
        ray.shutdown()
    assert len(nodes) == 2
    want = {r["path"]: r for r in _rows(tmp_path / "local")}
    got = _rows(tmp_path / "ray")
    assert len(got) == len({r["path"] for r in got}) == len(want)
    for r in got:
        w = want[r["path"]]
        assert (r["error"] is None) == (w["error"] is None)
        assert r["label"] == w["label"] and r["in_domain"] == w["in_domain"]
        for key in ("probability", "p_normal", "p_pneumonia", "domain_score"):
            if w[key] is not None:
                assert abs(r[key] - w[key]) <= 1e-6, (r["path"], key)
    # Resume semantics are the engine's too: a rerun on the cluster writes nothing.
    again = subprocess.run([sys.executable, "-m", "pneumozoo", "screen", str(archive), "--out",
                            str(tmp_path / "ray"), "--ray", ray_cluster, "--json"],
                           env=env, capture_output=True, text=True, timeout=600)
    assert json.loads(again.stdout)["written"] == 0, again.stderr[-2000:]


@pytest.mark.slow
def test_bench_screen_quick(tmp_path: Path, tf_env: dict[str, str]) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_screen.py"), "--quick",
                           "--no-ray", "--data", str(ROOT / "tests" / "fixtures" / "kermany"),
                           "--results", str(tmp_path)],
                          env=tf_env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((tmp_path / "screen.json").read_text())
    assert doc["quick"] is True and "bench_screen.py" in doc["command"]
    assert doc["local"]["films"] == doc["predict"]["films"] == 24
    assert [m["films"] for m in doc["memory"]] == [8, 24]


def test_the_function_is_not_hidden_by_its_module() -> None:
    import pneumozoo
    import pneumozoo.screening

    assert callable(pneumozoo.screen) and pneumozoo.screen is pneumozoo.screening.screen


def test_ray_batches_amortise_and_balance() -> None:
    from pneumozoo.screening import _ray_group

    # Large batches (a multiple of batch_size, at least 4 forward passes, at most a shard) ...
    assert _ray_group(5000, 1, 32, 1024) == 640
    assert _ray_group(100, 2, 32, 1024) == 128
    assert _ray_group(10**7, 4, 32, 1024) == 1024
    # ... and about 8 per actor, so that no actor idles long at the end.
    assert _ray_group(5000, 2, 32, 1024) == 320


def test_writer_error_reaches_the_caller(tmp_path: Path) -> None:
    from pneumozoo.screening import _ModelRef, _schema, _ShardWriter

    writer = _ShardWriter(tmp_path / "missing" / "deeper", _schema(["normal", "pneumonia"]), 2,
                          _ModelRef(name="m", weights_sha256="0", spec=None))
    (tmp_path / "missing").write_text("a file, not a folder")
    with pytest.raises(Exception):  # noqa: B017 - whatever the OS says, it must surface
        for _ in range(10):
            writer.add({"path": ["a", "b"], "size": [1, 1], "mtime": [0, 0],
                        "probability": [0.5, 0.5], "p_normal": [0.5, 0.5],
                        "p_pneumonia": [0.5, 0.5], "label": ["x", "x"], "threshold": [0.5, 0.5],
                        "in_domain": [True, True], "domain_score": [0.1, 0.1],
                        "error": [None, None]})
            time.sleep(0.05)
        writer.close()
    writer.abort()

"""Screening an archive: ``pneumozoo screen`` vs ``pneumozoo predict``, Ray vs local, memory.

Every measurement is a fresh ``pneumozoo`` process on the same films (the first ``--films``
of ``train/`` in sorted order, given as one CSV list to ``screen`` and as a folder of
symbolic links to ``predict``), so both pay the same start-up and model load. Before any
timing the films are read once and one tiny ``predict`` runs (page cache and the
TensorFlow libraries warm for every run alike; on the first run only, a cold cache once cost
the local screen a third of its speed), and the two commands alternate (screen, predict,
predict, screen, ...) over ``--repeats`` rounds; medians are reported.

- films/s of the local screen vs ``pneumozoo predict --json``: whole command, wall clock
  (start-up, model load, listing and summary included): the figure the goal
  (``screen >= predict``) is judged on;
- Ray Data on this one machine (a one-node ``ray start --head`` cluster the script starts and
  stops) vs the local screen, with ``--actors`` = the CPU count and = 1. Three figures: the
  whole command (wall clock), the run (``summary.json`` ``films_per_second``: from the job's
  start, Ray actors starting and loading their models included; the driver's model load
  excluded, as for local) and the steady state (``steady_films_per_second``: after the
  first predictions come out, i.e. once the actors are up). The overhead goal (under 20%) is
  judged on the steady state, what an archive of 100,000+ films sees; the run and whole-
  command overheads are reported beside it (on 5,000 films they are dominated by the
  fixed cost of starting actors);
- peak resident memory (``ru_maxrss``) of the local screen over ``--memory-films`` (e.g.
  1,000 and 5,000) films: flat memory means the two are about equal.

Run: ``python benchmarks/bench_screen.py`` (5,000 films: tens of minutes on 2 cores) or
``--quick`` (a smoke run on a few films). Writes ``benchmarks/results/screen.json``.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import check_data, list_images, parser, print_table, repeats, write_results

_RSS = ("import resource, sys\n"
        "from pneumozoo.cli import main\n"
        "status = main(sys.argv[1:])\n"
        "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(status)\n")


def _run(argv: Sequence[str], env: dict[str, str], timeout: float = 7200) -> dict[str, Any]:
    """One ``pneumozoo`` command in a fresh process: wall seconds, peak RSS, stdout."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _RSS, *argv], env=env, capture_output=True,
                          text=True, timeout=timeout)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"error: {' '.join(argv[:3])} failed:\n{proc.stderr[-3000:]}")
    rss = next((int(ln.split()[1]) for ln in proc.stderr.splitlines()
                if ln.startswith("MAXRSS_KB")), 0)
    return {"wall_s": wall, "max_rss_mb": rss / 1024, "stdout": proc.stdout}


def _write_list(films: Sequence[Path], path: Path) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path"])
        for film in films:
            w.writerow([str(film.resolve())])
    return path


def _link_folder(films: Sequence[Path], folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i, film in enumerate(films):
        os.symlink(film.resolve(), folder / f"{i:06d}-{film.name}")
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _screen(listing: Path, out: Path, env: dict[str, str], extra: Sequence[str] = (),
            timeout: float = 7200) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    run = _run(["screen", str(listing), "--out", str(out), "--json", *extra], env, timeout)
    summary = json.loads((out / "summary.json").read_text())
    return {"wall_s": round(run["wall_s"], 2), "max_rss_mb": round(run["max_rss_mb"], 1),
            "films": summary["films"], "errors": summary["errors"],
            "films_per_s": summary["films_per_second"],
            "films_per_s_steady": summary.get("steady_films_per_second"),
            "first_output_s": summary.get("first_output_seconds"),
            "films_per_s_wall": round(summary["films"] / run["wall_s"], 2),
            "screen_seconds": summary["seconds"]}


def _predict(folder: Path, env: dict[str, str], model: Sequence[str]) -> dict[str, Any]:
    pred = _run(["predict", "--json", *model, str(folder)], env)
    predicted = sum(1 for ln in pred["stdout"].splitlines() if ln.startswith("{"))
    return {"wall_s": round(pred["wall_s"], 2), "max_rss_mb": round(pred["max_rss_mb"], 1),
            "films": predicted, "films_per_s_wall": round(predicted / pred["wall_s"], 2)}


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median whole-command films/s (the lower middle one for an even count),
    with every run's figure beside it."""
    ordered = sorted(runs, key=lambda r: r["films_per_s_wall"])
    mid = dict(ordered[(len(ordered) - 1) // 2])
    mid["films_per_s_wall_runs"] = [r["films_per_s_wall"] for r in runs]
    return mid


def _warm(films: Sequence[Path], folder: Path, env: dict[str, str], model: Sequence[str]) -> None:
    for film in films:
        film.read_bytes()
    _run(["predict", "--json", *model, str(next(iter(sorted(folder.iterdir()))))], env)


def _overhead(ray_row: dict[str, Any], local: dict[str, Any], key: str) -> float | None:
    if not ray_row.get(key) or not local.get(key):
        return None
    return round(1 - ray_row[key] / local[key], 3)


def main(argv: Sequence[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--films", type=int, default=5000, help="films screened (>= 5000 for the issue)")
    p.add_argument("--memory-films", default="1000,5000",
                   help="comma-separated film counts for the peak-memory comparison")
    p.add_argument("--model", default=None, help="model (default: the bundled default)")
    p.add_argument("--no-ray", action="store_true", help="skip the Ray measurement")
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    args = p.parse_args(argv)
    rounds = repeats(args, 2)
    data = check_data(args.data, splits=("train",))
    n = 24 if args.quick else args.films
    mem_sizes = [8, 24] if args.quick else [int(x) for x in args.memory_films.split(",")]
    films = list_images(data / "train")
    films = films[:max(n, *mem_sizes)]
    if len(films) < max(n, *mem_sizes):
        raise SystemExit(f"error: {data / 'train'} has only {len(films)} films")
    # RAY_AUTH_MODE: the throwaway 127.0.0.1 cluster runs without Ray's token auth (with a
    # ~/.ray/auth_token left by some earlier ray.init(), Ray 2.60's `ray start` turns it on
    # and the driver then fails to connect).
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", RAY_USAGE_STATS_ENABLED="0",
               RAY_AUTH_MODE="disabled")
    model = ["--model", args.model] if args.model else []
    work = Path(tempfile.mkdtemp(prefix="bench-screen-", dir=args.work))
    rows: list[dict[str, Any]] = []
    cpus = os.cpu_count() or 2
    try:
        listing = _write_list(films[:n], work / "films.csv")
        folder = _link_folder(films[:n], work / "links")
        _warm(films, folder, env, model)
        local_runs: list[dict[str, Any]] = []
        predict_runs: list[dict[str, Any]] = []
        for i in range(rounds):  # screen, predict, predict, screen, ...
            order = ("screen", "predict") if i % 2 == 0 else ("predict", "screen")
            for which in order:
                if which == "screen":
                    local_runs.append(_screen(listing, work / "local", env, model))
                else:
                    predict_runs.append(_predict(folder, env, model))
        local = _median_run(local_runs)
        predict_row = _median_run(predict_runs)
        rows.append({"run": f"screen local ({n} films, median of {rounds})", **local})
        rows.append({"run": f"predict --json ({n} films, median of {rounds})", **predict_row})

        ray_rows: list[dict[str, Any]] = []
        if not args.no_ray:
            ray_rows = _ray(listing, work, env, model, sorted({cpus, 1}, reverse=True))
            for r in ray_rows:
                rows.append({"run": f"screen --ray, one node, {r['actors']} actor(s) ({n} films)",
                             **r})

        memory = []
        for size in mem_sizes:
            if size == n:
                m = local
            else:
                m = _screen(_write_list(films[:size], work / f"films-{size}.csv"),
                            work / f"mem-{size}", env, model)
            memory.append({"films": size, "max_rss_mb": m["max_rss_mb"],
                           "films_per_s": m["films_per_s"]})
            rows.append({"run": f"screen local, memory ({size} films)", **m})
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ray_results = []
    for r in ray_rows:
        ray_results.append({**r,
                            "overhead_steady": _overhead(r, local, "films_per_s_steady"),
                            "overhead_run": _overhead(r, local, "films_per_s"),
                            "overhead_wall": _overhead(r, local, "films_per_s_wall")})
    best = min(ray_results, key=lambda r: r["overhead_steady"] if r["overhead_steady"]
               is not None else 1.0) if ray_results else None
    ratio = round(local["films_per_s_wall"] / predict_row["films_per_s_wall"], 3)
    payload: dict[str, Any] = {
        "command": " ".join([os.path.basename(sys.executable), "benchmarks/bench_screen.py",
                             *(argv if argv is not None else sys.argv[1:])]),
        "films": n,
        "model": args.model or "default",
        "rounds": rounds,
        "local": local,
        "local_runs": local_runs,
        "predict": predict_row,
        "predict_runs": predict_runs,
        "screen_vs_predict_wall": ratio,
        "screen_vs_predict_goal_met": ratio >= 1.0,
        "ray_one_node": ray_results,
        "ray_overhead_goal": 0.20,
        "ray_overhead_judged_on": "steady (films/s after the first predictions, actors up)",
        "ray_best_actors": best["actors"] if best else None,
        "ray_overhead_steady": best["overhead_steady"] if best else None,
        "ray_overhead_run": best["overhead_run"] if best else None,
        "ray_overhead_wall": best["overhead_wall"] if best else None,
        "ray_overhead_goal_met": (best["overhead_steady"] is not None
                                  and best["overhead_steady"] < 0.20) if best else None,
        "memory": memory,
        "memory_ratio_largest_vs_smallest": round(memory[-1]["max_rss_mb"] / memory[0]["max_rss_mb"], 3),
    }
    print_table(rows, ["run", "films", "films_per_s_wall", "films_per_s", "films_per_s_steady",
                       "first_output_s", "wall_s", "max_rss_mb"], title="pneumozoo screen")
    print(f"screen / predict (whole command, films/s): {ratio:.3f}")
    for r in ray_results:
        print(f"Ray, {r['actors']} actor(s), overhead vs local: steady {r['overhead_steady']}, "
              f"run {r['overhead_run']}, whole command {r['overhead_wall']}")
    out = write_results("screen", args, payload)
    print(f"wrote {out}")
    return 0


def _ray(listing: Path, work: Path, env: dict[str, str], model: Sequence[str],
         actor_counts: Sequence[int]) -> list[dict[str, Any]]:
    ray_bin = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if ray_bin is None:
        print("ray is not installed: skipping the Ray measurement", file=sys.stderr)
        return []
    port = _free_port()
    cpus = str(os.cpu_count() or 2)
    subprocess.run([ray_bin, "start", "--head", "--node-ip-address", "127.0.0.1", "--port",
                    str(port), "--num-cpus", cpus, "--num-gpus", "0", "--include-dashboard",
                    "false", "--disable-usage-stats", "--object-store-memory", str(500 * 2**20)],
                   env=env, check=True, capture_output=True, timeout=300)
    rows = []
    try:
        for actors in actor_counts:
            try:
                row = _screen(listing, work / "ray", env, [*model, "--ray", f"127.0.0.1:{port}",
                                                           "--actors", str(actors)], timeout=900)
            except (SystemExit, subprocess.TimeoutExpired) as e:  # reported, not hidden
                print(f"Ray with {actors} actor(s) failed: {e}", file=sys.stderr)
                rows.append({"actors": actors, "failed": str(e)[-500:], "films_per_s_wall": 0})
                continue
            rows.append({"actors": actors, **row})
    finally:
        subprocess.run([ray_bin, "stop", "--force"], env=env, capture_output=True, timeout=120)
    return rows


if __name__ == "__main__":
    raise SystemExit(main())

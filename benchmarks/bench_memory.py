"""Memory: peak RSS of predicting a folder of N films (N = 100, 1000), and of a short training run.

Each measurement runs in a fresh process (peak RSS is per process): it loads the model,
notes its RSS, streams :func:`pneumozoo.prediction.iter_predictions` over the folder (what
``pneumozoo predict FOLDER`` does) and reports the peak (``ru_maxrss``). The folders are
temporary: symlinks to training films (copies once the films run out). Streaming must keep
the peak flat as N grows; the table shows the growth per 100 films between the smallest
and the largest N. The training run fits the model for one epoch on ``--train-films``
films with the in-memory cache.

Run: ``python benchmarks/bench_memory.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

NAME = "memory"

_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {bench!r})
import _common as C
task, spec, target, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

model, _ = C.load_model_spec(spec)
after_load = rss_mb()
start = time.perf_counter()
if task == "predict":
    from pneumozoo.prediction import iter_predictions
    n = sum(1 for p in iter_predictions(model, target, batch_size=batch) if p.ok)
else:
    import pneumozoo
    from pneumozoo.data import scan_split
    records = scan_split(target, "train")
    pneumozoo.fit(model, records, epochs=1, batch_size=batch, cache=True, verbose=0)
    n = len(records)
print("RESULT " + json.dumps({{"images": n, "after_load_mb": after_load, "peak_mb": peak_mb(),
                              "seconds": time.perf_counter() - start}}))
"""


def _folder_of(films: list[Path], n: int, folder: Path, *, layout: bool = False) -> Path:
    """``n`` films in ``folder``: symlinks first, copies when films repeat (the loader lists
    each resolved file once). With ``layout``, keep ``train/<CLASS>/`` for training."""
    for i in range(n):
        src = films[i % len(films)]
        sub = folder / "train" / src.parent.name if layout else folder
        sub.mkdir(parents=True, exist_ok=True)
        dst = sub / f"{i:05d}_{src.name}"
        if i < len(films):
            dst.symlink_to(src.resolve())
        else:
            shutil.copyfile(src, dst)
    return folder


def _child(task: str, spec: str, target: Path, batch: int, timeout: float) -> dict[str, Any]:
    script = _CHILD.format(bench=str(Path(__file__).resolve().parent))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", script, task, spec, str(target), str(batch)],
                          env=env, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SystemExit(f"error: {task} child failed ({proc.returncode}): {tail}")
    return dict(json.loads(lines[-1][len("RESULT "):]))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--model", default=None,
                   help="bundled name, folder, .keras or arch@size (default: the bundled "
                        "default model, else xraynet@192 with random weights)")
    p.add_argument("--sizes", default=None, help="folder sizes (default 100,1000; --quick 8,24)")
    p.add_argument("--train-films", type=int, default=None,
                   help="films in the training run (default 512; --quick 16)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--timeout", type=float, default=3600, help="seconds per child process")
    args = p.parse_args(argv)
    data = C.check_data(args.data, splits=("train",))
    reps = C.repeats(args, 1)
    sizes = [int(s) for s in (args.sizes or ("8,24" if args.quick else "100,1000")).split(",")]
    n_train = args.train_films or (16 if args.quick else 512)

    from pneumozoo.pretrained import DEFAULT_MODEL, list_pretrained

    spec = args.model or (DEFAULT_MODEL if any(c.name == DEFAULT_MODEL for c in list_pretrained())
                          else "xraynet@192")
    films = C.list_images(data / "train")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        for n in sizes:
            folder = _folder_of(films, n, Path(tmp) / f"predict-{n}")
            runs = [_child("predict", spec, folder, args.batch_size, args.timeout)
                    for _ in range(reps)]
            r = min(runs, key=lambda x: x["peak_mb"])  # the least disturbed run
            assert r["images"] == n, (r["images"], n)
            rows.append({"task": "predict", "films": n, **r, "growth_mb": r["peak_mb"] - r["after_load_mb"]})
            print(f"predict {n:>5} films: peak {r['peak_mb']:7.1f} MB (after model load "
                  f"{r['after_load_mb']:.1f} MB), {r['seconds']:.1f} s", flush=True)
        sample = C.list_images(data / "train", n_train)
        train_root = _folder_of(sample, n_train, Path(tmp) / "train-root", layout=True)
        r = _child("train", spec, train_root, args.batch_size, args.timeout)
        rows.append({"task": "train 1 epoch", "films": n_train, **r,
                     "growth_mb": r["peak_mb"] - r["after_load_mb"]})
        print(f"train   {n_train:>5} films: peak {r['peak_mb']:7.1f} MB, {r['seconds']:.1f} s")

    pred = [r for r in rows if r["task"] == "predict"]
    small, large = pred[0], pred[-1]
    per_100 = ((large["peak_mb"] - small["peak_mb"]) / (large["films"] - small["films"]) * 100
               if large["films"] != small["films"] else 0.0)
    result = {"model": spec, "batch_size": args.batch_size, "rows": rows,
              "predict_peak_growth_mb_per_100_films": per_100,
              "predict_peak_ratio_largest_vs_smallest": large["peak_mb"] / small["peak_mb"],
              "target": "predict peak RSS flat in N (streaming)"}
    out = C.write_results(NAME, args, result)
    C.print_table(rows, ["task", "films", "after_load_mb", "peak_mb", "growth_mb", "seconds"],
                  f"peak RSS ({spec}, batch {args.batch_size})")
    print(f"\npredict peak grows {per_100:+.1f} MB per 100 films "
          f"({small['films']} -> {large['films']})  ->  {out}")
    return result


if __name__ == "__main__":
    main()

"""Cold start: time to the first prediction of ``pneumozoo predict`` in a fresh process, and
what the commands that need no model cost.

Each measurement is a new process (``python -m pneumozoo ...``), median of ``--repeats``
(default 5), in alternating order so a load change hits every command:

- ``predict``: ``pneumozoo predict ONE_FILM --json`` with the default model: Python start,
  imports, TensorFlow, model load, read, one prediction, output (the time a user waits);
- ``models``: ``pneumozoo models`` (lists the zoo; needs no TensorFlow);
- ``import tensorflow``: ``python -c "import tensorflow"``, the floor of any command that
  imports it.

It also checks, in a separate process, that ``pneumozoo models`` leaves ``tensorflow`` out of
``sys.modules``. Target: ``models`` under a third of ``import tensorflow``.

Run: ``python benchmarks/bench_cold_start.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

NAME = "cold_start"

_TF_CHECK = ("import contextlib, io, sys\n"
             "from pneumozoo.cli import main\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n"
             "    rc = main(['models'])\n"
             "print(int(rc), int('tensorflow' in sys.modules), int('keras' in sys.modules))\n")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--film", type=Path, default=None,
                   help="the film to predict (default: the first original-resolution sample "
                        "film, else the first test film)")
    p.add_argument("--model", default=None, help="--model for predict (default: the CLI's)")
    args = p.parse_args(argv)
    reps = C.repeats(args, 5)
    film = args.film
    if film is None:
        full = C.list_images(C.DEFAULT_FULLRES, 1) if C.DEFAULT_FULLRES.is_dir() else []
        film = full[0] if full else C.list_images(C.check_data(args.data, splits=("test",))
                                                   / "test", 1)[0]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    py = sys.executable
    predict = [py, "-m", "pneumozoo", "predict", str(film), "--json"]
    if args.model:
        predict += ["--model", args.model]
    commands = {"predict": predict, "models": [py, "-m", "pneumozoo", "models"],
                "import tensorflow": [py, "-c", "import tensorflow"]}
    runs: dict[str, list[float]] = {k: [] for k in commands}
    for r in range(reps):
        for name, cmd in commands.items():
            runs[name].append(C.timed(lambda cmd=cmd: subprocess.run(
                cmd, env=env, check=True, capture_output=True, timeout=900)))
        print(f"run {r + 1}/{reps}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in runs.items()),
              flush=True)
    check = subprocess.run([py, "-c", _TF_CHECK], env=env, check=True, capture_output=True,
                           text=True, timeout=300).stdout.split()
    rows = [{"command": k, "seconds": C.median(v), "runs": v} for k, v in runs.items()]
    sec = {r["command"]: r["seconds"] for r in rows}
    ratio = sec["models"] / sec["import tensorflow"]
    result = {"film": str(film), "repeats": reps, "rows": rows,
              "time_to_first_prediction_s": sec["predict"],
              "models_s": sec["models"], "import_tensorflow_s": sec["import tensorflow"],
              "models_vs_import_tensorflow": ratio,
              "models_imports_tensorflow": bool(int(check[1])),
              "models_imports_keras": bool(int(check[2])),
              "method": "fresh process per run, commands alternating, median",
              "target": "pneumozoo models < 1/3 of `python -c 'import tensorflow'`"}
    out = C.write_results(NAME, args, result)
    C.print_table(rows, ["command", "seconds"], f"cold processes, median of {reps}")
    print(f"\ntime to first prediction: {sec['predict']:.2f} s; `pneumozoo models` is "
          f"{ratio:.2f}x `import tensorflow` (imports tensorflow: "
          f"{result['models_imports_tensorflow']})  ->  {out}")
    return result


if __name__ == "__main__":
    main()

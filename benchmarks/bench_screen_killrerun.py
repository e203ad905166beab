"""Kill and rerun: a screen of the whole Kermany set, ``kill -9``-ed mid-run and rerun, loses
and duplicates nothing.

Over ``--data`` (train/ and test/: 5,840 films for kermany224), in fresh ``pneumozoo screen``
processes:

1. a reference screen, run to the end without interruption;
2. a screen into another folder, sent ``SIGKILL`` once ``--kill-after`` shards are on disk;
   rerun, and killed again the same way (``--kills`` times in all); then rerun to the end;
3. checks: every film of the source is in the killed-and-rerun output exactly once (no film
   lost, none twice), the rows equal the reference's (probabilities, domain score to
   ``1e-6``; label, in_domain, error exactly), each rerun skipped exactly the films already
   written, and no temporary shard or lock is left behind.

Run: ``python benchmarks/bench_screen_killrerun.py`` (minutes on 2 cores) or ``--quick``
(the fixture films). Writes ``benchmarks/results/screen-killrerun.json``; exits 1 if a check
fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import check_data, parser, write_results

_P_COLUMNS = ("probability", "p_normal", "p_pneumonia", "domain_score")


def _rows(out: Path) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    shards = sorted(out.glob("part-*.parquet"))
    if not shards:
        return []
    return list(pa.concat_tables([pq.read_table(s) for s in shards]).to_pylist())


def _cmd(data: Path, out: Path, shard_size: int, model: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "pneumozoo", "screen", str(data), "--out", str(out),
            "--shard-size", str(shard_size), "--json", *model]


def _finish(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=7200)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"error: {' '.join(cmd[2:5])} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout)
    result["wall_s"] = round(time.perf_counter() - start, 2)
    return dict(result)


def _killed(cmd: list[str], out: Path, env: dict[str, str], after: int) -> dict[str, Any]:
    """Run ``cmd`` until ``after`` more shards are on disk, then ``kill -9`` it."""
    before = len(list(out.glob("part-*.parquet")))
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while len(list(out.glob("part-*.parquet"))) < before + after:
            if proc.poll() is not None:
                raise SystemExit("error: the screen ended before it could be killed:\n"
                                 + (proc.stderr.read() if proc.stderr else b"").decode()[-3000:])
            if time.perf_counter() - start > 3600:
                raise SystemExit("error: no shard within an hour")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
    shards = len(list(out.glob("part-*.parquet")))
    return {"killed_after_s": round(time.perf_counter() - start, 2), "returncode": proc.returncode,
            "shards_on_disk": shards, "rows_on_disk": len(_rows(out)),
            "temporary_files_left": len(list(out.glob(".*.tmp"))),
            "lock_left": (out / ".screen.lock").exists()}


def _compare(got: list[dict[str, Any]], want: list[dict[str, Any]],
             source: set[str]) -> dict[str, Any]:
    paths = [r["path"] for r in got]
    unique = set(paths)
    ref = {r["path"]: r for r in want}
    max_diff = 0.0
    mismatched: list[str] = []
    for r in got:
        w = ref.get(r["path"])
        if w is None:
            continue
        same = all(r[k] == w[k] for k in ("label", "in_domain", "error", "size", "mtime"))
        for k in _P_COLUMNS:
            if (r[k] is None) != (w[k] is None):
                same = False
            elif r[k] is not None:
                max_diff = max(max_diff, abs(r[k] - w[k]))
        if not same:
            mismatched.append(r["path"])
    return {"source_films": len(source), "rows": len(paths), "unique_paths": len(unique),
            "lost": len(source - unique), "duplicated": len(paths) - len(unique),
            "not_in_source": len(unique - source), "reference_rows": len(want),
            "max_abs_diff_p_vs_reference": max_diff, "rows_unlike_reference": len(mismatched),
            "examples_unlike_reference": mismatched[:5]}


def main(argv: Sequence[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model (default: the bundled default)")
    p.add_argument("--shard-size", type=int, default=256, help="films per shard")
    p.add_argument("--kill-after", type=int, default=4,
                   help="shards a run writes before it is killed")
    p.add_argument("--kills", type=int, default=2, help="kill -9s before the run that finishes")
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    args = p.parse_args(argv)
    data = check_data(args.data)
    shard_size, kill_after = (8, 1) if args.quick else (args.shard_size, args.kill_after)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    model = ["--model", args.model] if args.model else []
    from pneumozoo.screening import iter_source

    source = set(iter_source(data))
    work = Path(tempfile.mkdtemp(prefix="bench-killrerun-", dir=args.work))
    try:
        reference = _finish(_cmd(data, work / "reference", shard_size, model), env)
        want = _rows(work / "reference")
        out = work / "killed"
        kills = []
        for _ in range(args.kills):
            kills.append(_killed(_cmd(data, out, shard_size, model), out, env, kill_after))
        final = _finish(_cmd(data, out, shard_size, model), env)
        got = _rows(out)
        check = _compare(got, want, source)
        leftovers = {"temporary_files": len(list(out.glob(".*.tmp"))),
                     "lock": (out / ".screen.lock").exists()}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    before_final = kills[-1]["rows_on_disk"] if kills else 0
    # Each kill must land mid-run (some shards written, not all); --quick's few films may
    # all be written before the kill lands, so there this is reported, not required.
    mid_run = all(0 < k["rows_on_disk"] < len(source) for k in kills)
    ok = (check["lost"] == 0 and check["duplicated"] == 0 and check["not_in_source"] == 0
          and check["rows"] == len(source) and check["reference_rows"] == len(source)
          and check["rows_unlike_reference"] == 0 and check["max_abs_diff_p_vs_reference"] <= 1e-6
          and (args.quick or mid_run)
          and final["skipped"] == before_final and final["written"] == len(source) - before_final
          and final["films"] == len(source)
          and leftovers["temporary_files"] == 0 and not leftovers["lock"])
    payload: dict[str, Any] = {
        "command": " ".join([os.path.basename(sys.executable),
                             "benchmarks/bench_screen_killrerun.py",
                             *(argv if argv is not None else sys.argv[1:])]),
        "data": str(data), "model": args.model or "default", "shard_size": shard_size,
        "kill_after_shards": kill_after,
        "reference": {k: reference[k] for k in ("films", "written", "errors", "shards",
                                                "films_per_second", "wall_s")},
        "kills": kills,
        "final": {k: final[k] for k in ("films", "written", "skipped", "errors", "shards",
                                        "wall_s")},
        "check": check, "leftovers": leftovers, "every_kill_mid_run": mid_run, "passed": ok,
    }
    out_file = write_results("screen-killrerun", args, payload)
    print(json.dumps({"check": check, "kills": kills, "final": payload["final"], "passed": ok},
                     indent=2))
    print(f"wrote {out_file}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

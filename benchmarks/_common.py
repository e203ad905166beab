"""Shared plumbing of the benchmark scripts: arguments, timing, environment, JSON, tables.

Every script writes ``benchmarks/results/<name>.json`` (``--results`` elsewhere) with the
environment it ran in (CPU, flags, versions, load average before the run) and prints a
table. Numbers are medians of ``--repeats`` runs; ratios are computed from numbers measured
in the same run. ``--quick`` is a smoke run (few images, one repeat): its numbers are not
benchmarks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "kermany224"
DEFAULT_FULLRES = REPO.parent / "shared" / "data" / "kermany-fullres-sample"
RESULTS = Path(__file__).resolve().parent / "results"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark shares."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="Kermany root with train/ and test/ (default: ../shared/data/kermany224 "
                        "beside the repository)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: few images, one repeat (checks the script, measures nothing)")
    p.add_argument("--repeats", type=int, default=None, help="runs per measurement (median)")
    p.add_argument("--results", type=Path, default=RESULTS, help="folder for <name>.json")
    return p


def repeats(args: argparse.Namespace, full: int) -> int:
    """``--repeats``, else 1 in quick mode, else ``full``."""
    return int(args.repeats or (1 if args.quick else full))


def check_data(path: Path, *, splits: Sequence[str] = ("train", "test")) -> Path:
    """Exit with one clear line when the data folder is missing."""
    missing = [s for s in splits if not (path / s).is_dir()]
    if missing:
        sys.exit(f"error: {path} has no {', '.join(missing)}/ folder; pass --data "
                 "(a Kermany root with train/ and test/, e.g. ../shared/data/kermany224)")
    return path


def environment() -> dict[str, Any]:
    """What the numbers depend on: CPU, its vector/matrix flags, core count, versions, load."""
    info: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine(),
                            "cpus": os.cpu_count()}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines()
                      if ln.startswith("model name")), None)
        flags = next((ln.split(":", 1)[1].split() for ln in cpuinfo.splitlines()
                      if ln.startswith("flags")), [])
        info["cpu"] = model
        info["cpu_flags"] = sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))
        info["bf16_hardware"] = any(f in flags for f in ("avx512_bf16", "amx_bf16"))
    except OSError:
        pass
    if hasattr(os, "getloadavg"):
        info["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
    try:
        import keras
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        info["keras"] = keras.__version__
    except ImportError:
        pass
    return info


def timed(fn: Callable[[], Any]) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median(values: Sequence[float]) -> float:
    """Median (of one value: that value)."""
    return float(statistics.median(values))


def write_results(name: str, args: argparse.Namespace, payload: dict[str, Any]) -> Path:
    """Write ``<results>/<name>.json`` with the environment and arguments; return the path."""
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"{name}.json"
    doc = {"benchmark": name, "quick": bool(args.quick),
           "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "arguments": {k: str(v) for k, v in vars(args).items()},
           "environment": environment(), **payload}
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return out


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str = "") -> None:
    """Print rows as a fixed-width table (floats with 3 significant decimals)."""
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
        return "-" if v is None else str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c)
              for i, c in enumerate(columns)]
    if title:
        print(f"\n{title}")
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def parse_spec(spec: str) -> tuple[str, int | None]:
    """``"cnn5@180"`` -> ``("cnn5", 180)``; ``"xraynet-binary"`` -> ``("xraynet-binary", None)``."""
    name, _, size = spec.partition("@")
    return name, int(size) if size else None


def load_model_spec(spec: str) -> tuple[Any, str]:
    """A model from ``arch@size`` (random weights: speed only), a pretrained name, a folder
    or a ``.keras`` file; returns ``(model, description)``."""
    name, size = parse_spec(spec)
    if size is not None:
        import pneumozoo

        return pneumozoo.build_model(name, input_size=size), f"{name} {size}px, random weights"
    path = Path(name)
    if path.suffix == ".keras" and path.is_file():
        from pneumozoo.pretrained import load_model_file

        return load_model_file(path), f"{path.name}"
    from pneumozoo.pretrained import load_pretrained

    return load_pretrained(name), f"{name} (pretrained)"


def evenly(items: Sequence[Any], limit: int | None) -> list[Any]:
    """``items`` evenly subsampled to ``limit`` (all of them without a limit or when fewer)."""
    if limit is None or len(items) <= limit:
        return list(items)
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def list_images(folder: Path, limit: int | None = None) -> list[Path]:
    """Image files under ``folder`` (sorted), evenly subsampled to ``limit``."""
    from pneumozoo.io import expand_inputs

    files, _ = expand_inputs([folder])
    return evenly(files, limit)

"""GPU benchmark (any Keras backend; written for JAX on an NVIDIA H200): one JSON of

(a) every bundled model's P on the example films against the CPU reference predictions stored
    in its folder (``reference_predictions.json``): decisions equal, max |dP|;
(b) ``fit`` through pneumozoo's own pipeline (records -> cached uint8 films -> training model)
    against the same network fed in-memory uint8 arrays, films/s and seconds per epoch, in
    float32 and mixed_bfloat16;
(c) ``evaluate`` and ``predict`` films/s;
(d) the default recipe (``xraynet-binary-v2``) retrained from scratch: wall time and test
    metrics against its model card's 95% intervals.

Run (repo root): ``python benchmarks/bench_gpu.py --data .gpudata/kermany --out OUT.json``
(``--quick``: a small subset and one recipe epoch, to check the script on a CPU).
``benchmarks/gpu/run_h200.sh`` is the exact command of the committed run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("KERAS_BACKEND", "jax")  # before Keras is imported

import keras  # noqa: E402

import pneumozoo  # noqa: E402
from pneumozoo import backend  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []
        self._t = 0.0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.times.append(time.perf_counter() - self._t)


def log(*a: Any) -> None:
    print(*a, file=sys.stderr, flush=True)


def check_references() -> dict[str, Any]:
    """(a): every bundled model on the example films vs its stored CPU predictions."""
    from pneumozoo.pretrained import list_pretrained, load_pretrained

    bundled = ROOT / "src" / "pneumozoo" / "pretrained" / "bundled"
    rows = []
    for cfg in list_pretrained():
        ref_file = bundled / cfg.name / "reference_predictions.json"
        if not ref_file.is_file():
            continue
        ref = json.loads(ref_file.read_text())
        model = load_pretrained(cfg.name)
        files = [ROOT / "examples" / "xrays" / r["file"] for r in ref]
        got = pneumozoo.predict(model, files)
        dp = max(abs(g.probabilities[n] - r["probabilities"][n])
                 for g, r in zip(got, ref, strict=True) for n in cfg.class_names)
        same = sum(g.label == r["label"] for g, r in zip(got, ref, strict=True))
        rows.append({"model": cfg.name, "films": len(ref), "decisions_equal": same == len(ref),
                     "same_decisions": same, "max_abs_dp": dp})
        log(f"(a) {cfg.name}: {same}/{len(ref)} decisions equal, max |dP| {dp:.2e}")
    return {"models": rows, "all_decisions_equal": all(r["decisions_equal"] for r in rows),
            "max_abs_dp": max((r["max_abs_dp"] for r in rows), default=float("nan"))}


def throughput(train: list[Any], test: list[Any], *, batch: int, epochs: int,
               policy: str) -> dict[str, Any]:
    """(b) and (c) for one dtype policy: pipeline fit vs in-memory fit, evaluate, predict."""
    from pneumozoo.data import load_films, make_batches
    from pneumozoo.models import build_model
    from pneumozoo.train import _loss_and_metrics, compile_model, fit, training_model

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        out: dict[str, Any] = {"policy": policy, "batch_size": batch, "epochs": epochs,
                               "train_films": len(train)}
        # pneumozoo's own pipeline, from the files
        model = build_model("xraynet", input_size=192, normalization="per-image")
        timer = EpochTimer()
        t0 = time.perf_counter()
        fit(model, train, None, epochs=epochs, batch_size=batch, augment="xray-strong",
            learning_rate=1e-3, warmup_epochs=0, restore_best=False, recalibrate=False,
            class_weight=None, callbacks=[timer], verbose=0, cache=False)
        wall = time.perf_counter() - t0
        steady = statistics.median(timer.times[1:]) if len(timer.times) > 1 else timer.times[0]
        out["pipeline"] = {"wall_s": wall, "epoch_s": timer.times,
                           "first_epoch_s": timer.times[0], "cached_epoch_s": steady,
                           "decode_and_setup_s": wall - sum(timer.times),
                           "films_per_s": len(train) / steady}
        log(f"(b) {policy} pipeline: {len(train) / steady:,.0f} films/s, epoch {steady:.2f} s, "
            f"first {timer.times[0]:.1f} s, wall {wall:.1f} s")

        # the same network on in-memory uint8 arrays (keras's own array adapter)
        films = load_films(train, model)
        y = np.asarray([r.label for r in train], np.int32)
        ref = build_model("xraynet", input_size=192, normalization="per-image")
        compile_model(ref, learning_rate=1e-3)
        trainer = training_model(ref, "xray-strong")
        trainer.compile(optimizer=ref.optimizer, **_loss_and_metrics(0.0))
        timer2 = EpochTimer()
        trainer.fit(films, y, batch_size=batch, epochs=epochs, shuffle=True, callbacks=[timer2],
                    verbose=0)
        steady2 = statistics.median(timer2.times[1:]) if len(timer2.times) > 1 else timer2.times[0]
        out["in_memory"] = {"epoch_s": timer2.times, "cached_epoch_s": steady2,
                            "films_per_s": len(train) / steady2}
        out["pipeline_vs_in_memory"] = steady2 / steady
        log(f"(b) {policy} in-memory: {len(train) / steady2:,.0f} films/s "
            f"(pipeline at {steady2 / steady:.0%} of it)")

        # (c) evaluate and predict (uint8 test films, the trained pipeline model)
        test_films = load_films(test, model)
        ty = np.asarray([r.label for r in test], np.int32)
        trainer_p = training_model(model)
        trainer_p.compile(**_loss_and_metrics(0.0))
        batches = make_batches(test, model, batch_size=batch, films=test_films, host="pydataset")
        trainer_p.evaluate(batches, verbose=0)  # compile
        t = time.perf_counter()
        reps = 5
        for _ in range(reps):
            trainer_p.evaluate(batches, verbose=0)
        out["evaluate_films_per_s"] = reps * len(test) / (time.perf_counter() - t)
        trainer_p.predict(test_films, batch_size=batch, verbose=0)
        t = time.perf_counter()
        for _ in range(reps):
            trainer_p.predict(test_films, batch_size=batch, verbose=0)
        out["predict_films_per_s"] = reps * len(test) / (time.perf_counter() - t)
        t = time.perf_counter()
        report = pneumozoo.evaluate(model, test, n_boot=200)
        out["pneumozoo_evaluate_s"] = time.perf_counter() - t
        out["pneumozoo_evaluate_n"] = report.to_dict()["n"]
        del ty
        log(f"(c) {policy} evaluate {out['evaluate_films_per_s']:,.0f} films/s, predict "
            f"{out['predict_films_per_s']:,.0f} films/s, pneumozoo.evaluate "
            f"{out['pneumozoo_evaluate_s']:.1f} s")
        return out
    finally:
        keras.config.set_dtype_policy(previous)


def retrain(data: Path, *, quick: bool, limit: int | None) -> dict[str, Any]:
    """(d): the default recipe from scratch, with its once-only test evaluation."""
    from pneumozoo.pretrained import get_recipe, list_pretrained
    from pneumozoo.run import run_recipe

    recipe = get_recipe("xraynet-binary-v2")
    if quick:
        recipe = recipe.with_(epochs=1)
    card = next(c for c in list_pretrained() if c.name == recipe.name).metrics["test"]
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        t = time.perf_counter()
        _, config = run_recipe(recipe, data, out=Path(tmp) / recipe.name, test=True, verbose=0,
                               jit_compile=True, log=log, limit=limit)
        wall = time.perf_counter() - t
    test = config.metrics["test"]
    rows = {}
    for key in ("accuracy", "sensitivity", "specificity", "auc"):
        lo, hi = card["confidence_intervals"][key]
        rows[key] = {"retrained": test[key], "card": card[key], "card_ci95": [lo, hi],
                     "inside": bool(lo <= test[key] <= hi)}
    log(f"(d) retrain {wall:.0f} s: " + ", ".join(
        f"{k} {v['retrained']:.3f} ({'in' if v['inside'] else 'OUT of'} [{v['card_ci95'][0]:.3f}, "
        f"{v['card_ci95'][1]:.3f}])" for k, v in rows.items()))
    return {"recipe": recipe.name, "epochs": recipe.epochs, "wall_s": wall,
            "threshold": test.get("threshold"), "metrics": rows,
            "all_inside": all(r["inside"] for r in rows.values())}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=ROOT / ".gpudata" / "kermany")
    p.add_argument("--out", type=Path, default=None, help="JSON file (default: stdout only)")
    p.add_argument("--quick", action="store_true", help="small subset, one recipe epoch")
    p.add_argument("--batch-size", type=int, default=None, help="default 512 (--quick: 32)")
    p.add_argument("--epochs", type=int, default=None, help="throughput epochs (default 4)")
    p.add_argument("--skip", default="", help="comma list of a,b,d to leave out")
    args = p.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    from pneumozoo.data import scan_split

    started = time.perf_counter()
    devs = backend.devices()
    result: dict[str, Any] = {
        "benchmark": "gpu", "quick": args.quick,
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "environment": {"backend": backend.name(), "keras": keras.__version__,
                        "python": platform.python_version(),
                        "devices": [d.__dict__ | {} for d in devs],
                        "auto_precision": backend.precision_policy(),
                        "tensorflow_imported": "tensorflow" in sys.modules},
    }
    if backend.name() == "jax":
        import jax

        result["environment"]["jax"] = jax.__version__
    packed = args.data / "PACKED.json"
    if packed.is_file():
        result["data"] = json.loads(packed.read_text())
    def save() -> None:  # after each part: a run stopped by its time limit keeps what it did
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            result["total_s"] = time.perf_counter() - started
            args.out.write_text(json.dumps(result, indent=1, default=str))

    if "a" not in skip:
        result["reference"] = check_references()
        save()
    train = list(scan_split(args.data, "train"))
    test = list(scan_split(args.data, "test"))
    if args.quick:
        train, test = train[::40], test[::8]
    batch = args.batch_size or (32 if args.quick else 512)
    epochs = args.epochs or (2 if args.quick else 4)
    if "b" not in skip:
        policies = ["float32", "mixed_bfloat16"]
        result["throughput"] = []
        for pol in policies:
            result["throughput"].append(throughput(train, test, batch=batch, epochs=epochs,
                                                   policy=pol))
            save()
    if "d" not in skip:
        result["retrain"] = retrain(args.data, quick=args.quick, limit=200 if args.quick else None)
    result["environment"]["tensorflow_imported"] = "tensorflow" in sys.modules
    save()
    print(json.dumps(result, indent=1, default=str))
    return result


if __name__ == "__main__":
    main()

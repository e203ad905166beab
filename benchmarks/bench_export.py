"""Exports of the default model: size, images/s and test accuracy for SavedModel and TFLite
float32 / float16 / int8, against the Keras model in the same run.

Test films are read once, resized to the model's input size and kept in memory; every
variant predicts the same arrays in batches of 32 (images/s, median of ``--repeats``).
Accuracy is normal-vs-pneumonia at the model's shipped threshold; ``max_abs_diff`` is the
largest change of any probability against Keras, ``agreement`` the share of identical
decisions. int8 is calibrated on ``--calibration-images`` training films.

Needs the bundled default model (``xraynet-binary-v2``), or ``--model`` (a bundled name, a
model folder, a ``.keras`` file, or ``arch@size`` for random weights: speed and size only).

Run: ``python benchmarks/bench_export.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

NAME = "export"
BATCH = 32


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="default: the bundled default model")
    p.add_argument("--images", type=int, default=None,
                   help="test films to evaluate (default: all; --quick 16)")
    p.add_argument("--calibration-images", type=int, default=None,
                   help="training films for int8 calibration (default 200; --quick 8)")
    args = p.parse_args(argv)
    data = C.check_data(args.data)
    reps = C.repeats(args, 5)

    from pneumozoo.pretrained import DEFAULT_MODEL, list_pretrained

    spec = args.model
    if spec is None:
        if not any(c.name == DEFAULT_MODEL for c in list_pretrained()):
            sys.exit(f"error: the default model {DEFAULT_MODEL!r} is not bundled yet; pass "
                     "--model (a bundled name, a model folder, a .keras file or arch@size)")
        spec = DEFAULT_MODEL

    import numpy as np
    import tensorflow as tf

    from pneumozoo.data import scan_split, targets
    from pneumozoo.export import EXPORT_FORMATS, TFLiteModel, calibration_images, export_model
    from pneumozoo.io import read_xray

    model, desc = C.load_model_spec(spec)
    size, threshold = model.input_size, float(model.threshold)
    records = scan_split(data, "test")
    limit = args.images or (16 if args.quick else None)
    records = C.evenly(records, limit)
    y = np.asarray(targets(records, "binary"))
    x = np.stack([model.prepare(read_xray(r.path)) for r in records])  # as predict prepares
    x = np.repeat(x, 3 // x.shape[-1], axis=-1).astype(np.float32)
    n_calib = args.calibration_images or (8 if args.quick else 200)
    calib = calibration_images(data / "train", model.preprocessor, limit=n_calib)

    def throughput(predict: Any) -> tuple[float, list[float], np.ndarray]:
        out = np.concatenate([predict(x[i:i + BATCH]) for i in range(0, len(x), BATCH)])
        runs = [len(x) / C.timed(lambda: [predict(x[i:i + BATCH])
                                          for i in range(0, len(x), BATCH)]) for _ in range(reps)]
        return C.median(runs), runs, out

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        keras_file = Path(tmp) / "model.keras"
        model.save(keras_file)
        variants: list[tuple[str, Path, Any]] = [
            ("keras", keras_file, lambda b: model.predict_on_batch(b))]
        for fmt in EXPORT_FORMATS:
            target = Path(tmp) / (fmt if fmt == "savedmodel" else f"{fmt}.tflite")
            export_model(model, target, format=fmt,
                         calibration=calib if fmt == "tflite-int8" else None,
                         calibration_limit=n_calib)
            if fmt == "savedmodel":
                loaded = tf.saved_model.load(str(target))
                variants.append((fmt, target, lambda b, f=loaded.serve: f(tf.constant(b)).numpy()))
            else:
                variants.append((fmt, target, TFLiteModel(target).predict_on_batch))
        reference: np.ndarray | None = None
        for fmt, target, predict in variants:
            ips, runs, probs = throughput(predict)
            reference = probs if reference is None else reference
            decision = (1.0 - probs[:, 0]) >= threshold
            ref_decision = (1.0 - reference[:, 0]) >= threshold
            rows.append({"format": fmt, "size_mb": _size(target) / 1e6, "images_per_s": ips,
                         "runs": runs, "accuracy": float(np.mean(decision == (y > 0))),
                         "max_abs_diff": float(np.abs(probs - reference).max()),
                         "agreement": float(np.mean(decision == ref_decision))})
            print(f"{fmt:<15} {rows[-1]['size_mb']:7.2f} MB  {ips:8.1f} img/s  "
                  f"acc {rows[-1]['accuracy']:.4f}", flush=True)
    base = rows[0]
    for r in rows:
        r["accuracy_change"] = r["accuracy"] - base["accuracy"]
        r["speedup_vs_keras"] = r["images_per_s"] / base["images_per_s"]
        r["size_vs_keras"] = r["size_mb"] / base["size_mb"]
    result = {"model": spec, "description": desc, "input_size": size, "threshold": threshold,
              "test_films": len(records), "calibration_films": len(calib), "batch_size": BATCH,
              "repeats": reps, "rows": rows}
    out = C.write_results(NAME, args, result)
    C.print_table(rows, ["format", "size_mb", "images_per_s", "speedup_vs_keras", "accuracy",
                         "accuracy_change", "max_abs_diff", "agreement"],
                  f"{spec}: {len(records)} test films at {size}px, batch {BATCH}, median of {reps}")
    print(f"-> {out}")
    return result


if __name__ == "__main__":
    main()

"""Evaluate a model on a labelled split and write a report folder with figures.

Runs ``pneumozoo.evaluate`` with ``report_dir``: the metrics with 95% bootstrap confidence
intervals (resampled by patient), calibration (ECE) and operating points go to
``report.json``, and the confusion matrix, ROC, precision-recall and reliability figures are
drawn beside it. A grid of test films with predicted and true labels is added. Needs the
``plot`` extra: ``pip install ".[plot]"`` in the pneumozoo clone (or
``pip install matplotlib``).

    python examples/evaluate_with_figures.py --data chest_xray/test
    python examples/evaluate_with_figures.py --data chest_xray/test --model cnn5-binary --tta
    python examples/evaluate_with_figures.py --fast      # CI smoke test: fixture test split

The same report from the command line: ``pneumozoo evaluate chest_xray/test --report DIR``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "kermany"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=None,
                   help="a split folder with NORMAL/ and PNEUMONIA/ (e.g. chest_xray/test)")
    p.add_argument("--model", default=None, help="registry name, hf://... or a model folder")
    p.add_argument("--tta", action="store_true", help="test-time augmentation")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the CIs")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: a temp folder)")
    p.add_argument("--fast", action="store_true", help="fixture test split, 200 resamples")
    args = p.parse_args()
    if args.fast:
        args.data = args.data or FIXTURES / "test"
        args.n_boot = 200
    if args.data is None:
        p.error("--data is required (or --fast)")
    return args


def load_model(name: str | None, fast: bool) -> Any:
    """The pretrained model; in --fast mode without a bundled one, an untrained tiny model."""
    import pneumozoo

    if name is not None or pneumozoo.list_pretrained() or not fast:
        return pneumozoo.load_pretrained(name)
    print("note: no pretrained model is bundled in this checkout; --fast evaluates an UNTRAINED "
          "cnn4 (the numbers are meaningless)")
    return pneumozoo.build_model("cnn4", input_size=64)


def main() -> None:
    args = parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import pneumozoo
    from pneumozoo.data import scan_folder
    from pneumozoo.plot import plot_predictions, require_matplotlib

    require_matplotlib()  # fail before the model runs if the plot extra is missing
    out = args.out or Path(tempfile.mkdtemp(prefix="pneumozoo-report-"))
    report_dir = out / "report"

    model = load_model(args.model, args.fast)
    report = pneumozoo.evaluate(model, args.data, tta=args.tta, n_boot=args.n_boot,
                                report_dir=report_dir)
    print(report.summary())
    for point in report.extra.get("operating_points", []):
        target = f" >= {point['target']:.2f}" if point.get("target") is not None else ""
        print(f"  {point['method']}{target}: threshold {point['threshold']:.3f}  "
              f"sensitivity {point['sensitivity']:.3f}  specificity {point['specificity']:.3f}")

    # A grid of films: predicted label and probability, true label (green right, red wrong).
    records = scan_folder(args.data)
    records = records[:: max(1, len(records) // 8)][:8]  # 8 films spread over both classes
    predictions = pneumozoo.predict(model, [r.path for r in records])
    names = model.class_names
    task = model.task
    truth = [names[r.target(task)] if r.target(task) >= 0 else "pneumonia" for r in records]
    plot_predictions([r.path for r in records], predictions, truth,
                     report_dir / "predictions.png", class_names=names)

    for path in sorted(report_dir.iterdir()):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

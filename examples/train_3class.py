"""Train a 3-class model (normal / bacterial / viral pneumonia) and report per-class metrics.

Kermany's file names carry the pneumonia subtype (``person12_bacteria_34.jpeg``,
``person8_virus_28.jpeg``); ``task="3class"`` reads it. The split is stratified on the three
classes and patient-wise; class weights balance the three classes. The report keeps the
binary normal-vs-pneumonia metrics (pneumonia = bacteria + virus) and adds per-class
precision, recall, F1 and the 3 x 3 confusion matrix.

    python examples/train_3class.py --data chest_xray --epochs 20
    python examples/train_3class.py --fast      # CI smoke test: fixture data, 1 epoch

Writes ``report.json`` and ``model/`` to ``--out``. Bacterial and viral pneumonia look alike
on a film: expect a much lower 3-class accuracy than the binary one.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "kermany"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=None, help="dataset root with train/ and test/")
    p.add_argument("--arch", default=None, help="architecture; default xraynet")
    p.add_argument("--input-size", type=int, default=None)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", type=Path, default=None, help="output folder (default: a temp folder)")
    p.add_argument("--fast", action="store_true",
                   help="smoke test: fixture data, 1 epoch, the small cnn4 at 64 px")
    args = p.parse_args()
    if args.fast:
        args.data = args.data or FIXTURES
        args.epochs, args.batch_size = 1, 8
        if args.arch is None:  # the cheapest architecture to compile
            args.arch, args.input_size = "cnn4", args.input_size or 64
    args.arch = args.arch or "xraynet"
    if args.data is None:
        p.error("--data is required (or --fast)")
    return args


def main() -> None:
    args = parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import pneumozoo
    from pneumozoo.data import THREE_CLASSES, class_weights, patient_split, scan_split
    from pneumozoo.pretrained import PretrainedConfig, save_folder

    out = args.out or Path(tempfile.mkdtemp(prefix="pneumozoo-3class-"))
    out.mkdir(parents=True, exist_ok=True)

    records = scan_split(args.data, "train")
    train, val = patient_split(records, val_fraction=0.2, seed=0, task="3class")
    test = scan_split(args.data, "test")
    weights = class_weights(train, "3class")
    print("class weights: " + ", ".join(f"{THREE_CLASSES[c]} {w:.2f}" for c, w in weights.items()))

    # num_classes=3 names the outputs normal/bacteria/virus; fit reads the task from the model
    model = pneumozoo.build_model(args.arch, num_classes=3, input_size=args.input_size)
    result = pneumozoo.fit(model, train, val, epochs=args.epochs, batch_size=args.batch_size,
                           augment="xray", schedule="cosine", checkpoint_dir=out / "checkpoint",
                           verbose=2)
    print(f"best {result.monitor} {result.best_value:.3f} at epoch {result.best_epoch}")

    report = pneumozoo.evaluate(model, test)
    print(report.summary())
    for name, row in report.per_class.items():
        print(f"  {name:<9} precision {row['precision']:.3f}  recall {row['recall']:.3f}  "
              f"f1 {row['f1']:.3f}  n={row['support']}")
    print("confusion matrix (rows true, columns predicted; normal, bacteria, virus):")
    for row in report.class_confusion_matrix:
        print("  " + " ".join(f"{v:>4}" for v in row))
    (out / "report.json").write_text(report.to_json() + "\n")

    # (task, class names, input size and threshold are read off the model)
    config = PretrainedConfig.from_model(
        model, name=f"{args.arch}-3class-example", architecture=args.arch,
        metrics={"test": report.to_dict()}, description="3-class example model",
    )
    save_folder(model, out / "model", config)
    print(f"wrote {out / 'report.json'} and {out / 'model'}")


if __name__ == "__main__":
    main()

"""Train an architecture of the zoo from scratch and evaluate it on the test split.

The whole path of a training run: scan a Kermany-style folder, carve a patient-wise
validation split from ``train``, build the architecture, train with an augmentation preset,
balanced class weights, a cosine schedule and resumable checkpoints, evaluate once on
``test``, and write a model folder that ``pneumozoo.load_pretrained`` loads.

    python examples/train_from_scratch.py --data chest_xray --arch xraynet --epochs 30
    python examples/train_from_scratch.py --data chest_xray --arch cnn5 --augment zoom-vflip
    python examples/train_from_scratch.py --fast      # CI smoke test: fixture data, 1 epoch

Re-running the same command after a crash resumes from the last finished epoch
(``<out>/checkpoint``). Writes ``report.json`` (test metrics) and ``model/`` to ``--out``.
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
    p.add_argument("--data", type=Path, default=None,
                   help="dataset root with train/ and test/ (the Kaggle chest_xray folder works)")
    p.add_argument("--arch", default=None,
                   help="architecture (see pneumozoo.list_models()); default xraynet")
    p.add_argument("--input-size", type=int, default=None, help="default: the architecture's")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--augment", default="xray", help="augmentation preset")
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
    from pneumozoo.augment import preset_info
    from pneumozoo.data import patient_split, scan_split
    from pneumozoo.pretrained import PretrainedConfig, save_folder

    out = args.out or Path(tempfile.mkdtemp(prefix="pneumozoo-scratch-"))
    out.mkdir(parents=True, exist_ok=True)

    # 1. data: records of train, split by patient (a patient's films never straddle the split)
    records = scan_split(args.data, "train")
    train, val = patient_split(records, val_fraction=0.2, seed=0)
    test = scan_split(args.data, "test")
    print(f"train {len(train)}  validation {len(val)}  test {len(test)} images")

    # 2. model: raw 0..255 pixels in, softmax out; resizing and normalisation in the graph
    model = pneumozoo.build_model(args.arch, input_size=args.input_size)
    print(f"{args.arch}: {model.count_params():,} parameters, input {model.input_size} px")
    print(f"augmentation {args.augment!r}: {preset_info(args.augment).description}")

    # 3. train: checkpoints every epoch, best epoch by validation AUC restored at the end, then
    #    temperature, threshold and domain guard fitted on the validation split
    result = pneumozoo.fit(
        model, train, val,
        epochs=args.epochs, learning_rate=args.learning_rate, batch_size=args.batch_size,
        augment=args.augment, class_weight="balanced", schedule="cosine",
        checkpoint_dir=out / "checkpoint", verbose=2,
    )
    print(f"best {result.monitor} {result.best_value:.3f} at epoch {result.best_epoch}; "
          f"threshold {model.threshold:.3f}, temperature {model.temperature:.3f}")

    # 4. evaluate once on the held-out test split
    report = pneumozoo.evaluate(model, test)
    print(report.summary())
    (out / "report.json").write_text(report.to_json() + "\n")

    # 5. package a model folder (Keras Hub layout + pneumozoo.json with sha256s)
    # (class names, input size and threshold are read off the model)
    config = PretrainedConfig.from_model(
        model, name=f"{args.arch}-scratch", architecture=args.arch,
        metrics={"test": report.to_dict()},
        training={"data": str(args.data), "epochs": result.epochs, "augment": args.augment},
        description=f"{args.arch} trained from scratch with examples/train_from_scratch.py",
    )
    save_folder(model, out / "model", config)
    reloaded = pneumozoo.load_pretrained(out / "model")
    first = pneumozoo.predict(reloaded, test[0].path)[0]
    print(f"reloaded {out / 'model'}: {Path(first.source).name} -> {first.label} "
          f"(P(pneumonia) {first.probability:.3f})")
    print(f"wrote {out / 'report.json'} and {out / 'model'}")


if __name__ == "__main__":
    main()

"""Fine-tune the default pretrained model on your own labelled folder.

Starts from pneumozoo's default model, trains it a few epochs with a small learning rate on
your films; ``pneumozoo.fit`` then re-fits the calibration (softmax temperature), re-chooses
the decision threshold and fits the domain guard on a patient-wise validation split of
*your* data (the old model's settings never carry over), and the script writes a new model
folder (with a model card) that ``pneumozoo.load_pretrained`` and ``pneumozoo push_to_hub``
take.

Your folder needs ``NORMAL/`` and ``PNEUMONIA/`` class folders, either directly or under
``train/`` (and optionally ``test/``, evaluated at the end):

    python examples/finetune_pretrained.py --data my_hospital/ --epochs 5
    python examples/finetune_pretrained.py --data chest_xray --model hf://owner/repo@v1
    python examples/finetune_pretrained.py --fast      # CI smoke test: fixture data, 1 epoch

Patient ids come from Kermany-style file names; with other names every file is its own
patient, so keep one film per patient or the validation numbers will be optimistic.
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
                   help="folder with NORMAL/ and PNEUMONIA/, or with train/ (and test/)")
    p.add_argument("--model", default=None, help="model to start from (default: the default model)")
    p.add_argument("--name", default="finetuned", help="name of the new model")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", type=Path, default=None, help="output folder (default: a temp folder)")
    p.add_argument("--fast", action="store_true", help="fixture data, 1 epoch")
    args = p.parse_args()
    if args.fast:
        args.data = args.data or FIXTURES
        args.epochs, args.batch_size = 1, 8
    if args.data is None:
        p.error("--data is required (or --fast)")
    return args


def load_start_model(name: str | None, fast: bool) -> tuple[Any, str, str]:
    """The model to fine-tune, its name and architecture; --fast without a bundled model uses
    a fresh tiny cnn4."""
    import pneumozoo
    from pneumozoo.pretrained import DEFAULT_MODEL

    if name is not None or pneumozoo.list_pretrained() or not fast:
        model = pneumozoo.load_pretrained(name)
        return model, str(name or DEFAULT_MODEL), model.name
    print("note: no pretrained model is bundled in this checkout; --fast fine-tunes a fresh cnn4")
    return pneumozoo.build_model("cnn4", input_size=64), "untrained-cnn4", "cnn4"


def scan_any(root: Path, split: str) -> list[Any] | None:
    """Records of ``root/<split>``; for ``train``, also ``root`` itself as a class folder."""
    from pneumozoo.data import scan_folder, scan_split
    from pneumozoo.errors import DataError

    try:
        return scan_split(root, split)
    except DataError:
        if split != "train":
            return None
        return scan_folder(root, split="train")


def main() -> None:
    args = parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import pneumozoo
    from pneumozoo.data import patient_split
    from pneumozoo.pretrained.release import write_release
    from pneumozoo.run import prepare_release

    out = args.out or Path(tempfile.mkdtemp(prefix="pneumozoo-finetune-"))
    out.mkdir(parents=True, exist_ok=True)

    model, start, architecture = load_start_model(args.model, args.fast)
    records = scan_any(args.data, "train") or []
    train, val = patient_split(records, val_fraction=0.2, seed=0, task=model.task)
    print(f"start: {start} ({architecture}, {model.input_size} px, threshold "
          f"{model.threshold:.3f}); train {len(train)}, validation {len(val)} images")

    before = pneumozoo.evaluate(model, val, ci=False)  # intervals only for the final test
    print(f"validation before fine-tuning: accuracy {before.accuracy:.3f}  auc {before.auc:.3f}")

    # Small learning rate, mild augmentation: adapt the model without forgetting what it knows.
    # Given validation records, fit also recalibrates the model on them at the end: calibration,
    # threshold and domain guard belong to the data, so none is kept from the start model.
    result = pneumozoo.fit(model, train, val, epochs=args.epochs, learning_rate=args.learning_rate,
                           batch_size=args.batch_size, augment="xray", schedule="cosine",
                           warmup_epochs=0, checkpoint_dir=out / "checkpoint", verbose=2)
    print(f"best {result.monitor} {result.best_value:.3f} at epoch {result.best_epoch}")
    fitted = result.extra["calibration"]
    print(f"temperature {model.temperature:.3f}; threshold {model.threshold:.3f} "
          f"({fitted['threshold_rule']})")

    model, config = prepare_release(
        model, val, name=args.name, architecture=architecture, train=train, calibration=fitted,
        description=f"{start} fine-tuned on {args.data.name} with examples/finetune_pretrained.py",
        training={"started_from": start, "data": str(args.data), "epochs": result.epochs,
                  "learning_rate": args.learning_rate})
    test = scan_any(args.data, "test")
    if test:
        report = pneumozoo.evaluate(model, test)  # at the model's new threshold
        config.metrics["test"] = report.to_dict()
        print("test:\n" + report.summary())
    write_release(model, config, out / "model")
    print(f"wrote {out / 'model'}: load it with pneumozoo.load_pretrained({str(out / 'model')!r})")


if __name__ == "__main__":
    main()

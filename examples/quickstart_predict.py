"""Quick start: load the default pretrained model and predict the example X-rays.

Loads pneumozoo's default model (bundled with the package: no download, no network), predicts
every film of ``examples/xrays/`` (or the files and folders you name) and prints the label,
P(pneumonia) and, for the example films, the true class read from the file name. The
predictions are also written to ``predictions.json`` in ``--out``.

    python examples/quickstart_predict.py
    python examples/quickstart_predict.py my_films/ --model hf://owner/repo@v1
    python examples/quickstart_predict.py --fast      # CI smoke test, writes to a temp folder

The model takes raw films of any size (JPEG, PNG, 16-bit, DICOM with the ``dicom`` extra):
resizing and normalisation happen inside it. Not a diagnosis: see the docs' limitations page.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EXAMPLE_XRAYS = HERE / "xrays"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("inputs", nargs="*", type=Path, default=[EXAMPLE_XRAYS],
                   help="films or folders (default: examples/xrays)")
    p.add_argument("--model", default=None,
                   help="registry name, hf://owner/repo[@rev] or a model folder (default model)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: a temp folder)")
    p.add_argument("--fast", action="store_true",
                   help="smoke test; if no model is bundled, use an untrained tiny model")
    return p.parse_args()


def load_model(name: str | None, fast: bool) -> tuple[Any, str]:
    """The pretrained model; in --fast mode without a bundled one, an untrained tiny model."""
    import pneumozoo

    if name is not None or pneumozoo.list_pretrained() or not fast:
        from pneumozoo.pretrained import DEFAULT_MODEL

        return pneumozoo.load_pretrained(name), str(name or DEFAULT_MODEL)
    print("note: no pretrained model is bundled in this checkout; --fast uses an UNTRAINED "
          "cnn4 (its predictions are meaningless)")
    return pneumozoo.build_model("cnn4", input_size=64), "untrained-cnn4"


def truth_from_name(path: str) -> str:
    """The example films are named ``normal-...``/``pneumonia-...`` (``test224-`` first)."""
    name = Path(path).name.removeprefix("test224-")
    return next((c for c in ("normal", "pneumonia") if name.startswith(c + "-")), "?")


def main() -> None:
    args = parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import pneumozoo

    out = args.out or Path(tempfile.mkdtemp(prefix="pneumozoo-quickstart-"))
    out.mkdir(parents=True, exist_ok=True)

    model, model_name = load_model(args.model, args.fast)
    predictions = pneumozoo.predict(model, args.inputs)  # folders are walked recursively

    print(f"model: {model_name}")
    print(f"{'file':<48} {'truth':<10} {'label':<10} P(pneumonia)")
    for p in predictions:
        if p.ok:
            print(f"{Path(p.source).name:<48} {truth_from_name(p.source):<10} {p.label:<10} "
                  f"{p.probability:.3f}")
        else:  # an unreadable file does not stop the others
            print(f"{Path(p.source).name:<48} ERROR: {p.error}")

    result = {"model": model_name, "predictions": [p.to_dict() for p in predictions]}
    (out / "predictions.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out / 'predictions.json'}")


if __name__ == "__main__":
    main()

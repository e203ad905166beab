"""Grad-CAM heatmaps and feature maps: where in the film the model's answer comes from.

For each film, predicts it, computes the Grad-CAM heatmap of the predicted class (at the
film's own resolution), and writes the film and its overlay side by side as
``<film>_gradcam.png``. The intermediate feature maps of the first film go to
``feature_maps.png``.

    python examples/gradcam.py                          # the example films, default model
    python examples/gradcam.py film.jpeg --method gradcam++ --model cnn5-binary
    python examples/gradcam.py --fast                   # CI smoke test, writes to a temp folder

A heatmap shows which regions raised the class score; it is not a segmentation of the
disease and not evidence that the model is right (see the limitations page of the docs).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EXAMPLE_XRAYS = HERE / "xrays"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("inputs", nargs="*", type=Path, default=None,
                   help="films (default: examples/xrays/*.jpeg)")
    p.add_argument("--model", default=None, help="registry name, hf://... or a model folder")
    p.add_argument("--method", default="gradcam", choices=["gradcam", "gradcam++"])
    p.add_argument("--out", type=Path, default=None, help="output folder (default: a temp folder)")
    p.add_argument("--fast", action="store_true", help="two films only")
    args = p.parse_args()
    if not args.inputs:
        args.inputs = sorted(EXAMPLE_XRAYS.glob("*.jpeg"))
        if args.fast:  # one normal and one pneumonia test film
            args.inputs = [f for f in args.inputs if f.name.startswith("test224-")]
    return args


def load_model(name: str | None, fast: bool) -> Any:
    """The pretrained model; in --fast mode without a bundled one, an untrained tiny model."""
    import pneumozoo

    if name is not None or pneumozoo.list_pretrained() or not fast:
        return pneumozoo.load_pretrained(name)
    print("note: no pretrained model is bundled in this checkout; --fast explains an UNTRAINED "
          "cnn4 (the heatmaps are meaningless)")
    return pneumozoo.build_model("cnn4", input_size=64)


def main() -> None:
    args = parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    from PIL import Image

    import pneumozoo
    from pneumozoo.explain import feature_layers, grad_cam, overlay, save_feature_maps

    out = args.out or Path(tempfile.mkdtemp(prefix="pneumozoo-gradcam-"))
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(args.model, args.fast)

    for film in args.inputs:
        pred = pneumozoo.predict(model, film)[0]
        if not pred.ok:
            print(f"{film}: {pred.error}")
            continue
        image = pneumozoo.read_xray(film)  # uint8 RGB at the film's own size
        heat = grad_cam(model, image, class_index=pred.label, method=args.method)
        side_by_side = np.concatenate([image, overlay(image, heat, alpha=0.4)], axis=1)
        target = out / f"{film.stem}_gradcam.png"
        Image.fromarray(side_by_side).save(target)
        print(f"{film.name}: {pred.label} (P(pneumonia) {pred.probability:.3f}) -> {target}")

    layers = feature_layers(model)
    print(f"{len(layers)} feature layers, last: {', '.join(layers[-3:])}")
    grid = save_feature_maps(model, args.inputs[0], out / "feature_maps.png", max_channels=8)
    print(f"wrote {grid}")


if __name__ == "__main__":
    main()

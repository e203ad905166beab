"""The command line every ``recipes/<name>.py`` shares: rerun one zoo recipe (resumes after a kill).

The library runs it (:func:`pneumozoo.run.run_zoo_recipe`); this file only reads the options.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from pneumozoo.pretrained import get_recipe
from pneumozoo.run import run_zoo_recipe


def main(name: str, argv: Sequence[str] | None = None) -> None:
    """Parse ``argv`` and rerun the zoo recipe ``name`` (``recipes/<name>.py``'s command line).

    Example:
        >>> main("cnn4-binary", ["--data", "chest_xray", "--out", "models"])  # doctest: +SKIP
    """
    recipe = get_recipe(name)
    p = argparse.ArgumentParser(description=f"Train the {name} zoo model with its recipe.")
    p.add_argument("--data", type=Path, default=Path(os.environ.get("PNEUMOZOO_DATA", "data/kermany224")),
                   help="Kermany root with train/ and test/ (default: $PNEUMOZOO_DATA)")
    p.add_argument("--out", type=Path, default=Path("models"), help="parent of the model folder")
    p.add_argument("--runs", type=Path, default=Path("runs"), help="checkpoints and logs")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--limit", type=int, default=None, help="use only N training images (smoke test)")
    p.add_argument("--seed", type=int, default=None,
                   help=f"seed of the split, weights, shuffling and augmentation (default: {recipe.seed})")
    args = p.parse_args(argv)
    run_zoo_recipe(name, args.data, models=args.out, runs=args.runs, epochs=args.epochs,
                   seed=args.seed, limit=args.limit)

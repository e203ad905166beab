"""Write each bundled model's ``reference_predictions.json``: its predictions on the example films.

The golden tests (``tests/test_pretrained_zoo.py``) check that every bundled model, loaded as
users load it, still gives these predictions through ``pneumozoo.predict``. Rerun after a
change that is meant to change them (a re-saved folder, a new decoding path), and say why in
the changelog. The example films are copies of Kermany et al. 2018 films (CC BY 4.0; see
``examples/xrays/README.md``).

    python recipes/reference_predictions.py [MODEL ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "src" / "pneumozoo" / "pretrained" / "bundled"
EXAMPLES = ROOT / "examples" / "xrays"


def main(names: list[str]) -> None:
    import pneumozoo

    for name in names or sorted(d.name for d in BUNDLED.iterdir() if d.is_dir()):
        model = pneumozoo.load_pretrained(str(BUNDLED / name))
        preds = pneumozoo.predict(model, sorted(EXAMPLES.glob("*.jpeg")))
        ref = [{"file": Path(p.source).name, "label": p.label, "probabilities": p.probabilities,
                "in_domain": p.in_domain} for p in preds]
        (BUNDLED / name / "reference_predictions.json").write_text(json.dumps(ref, indent=2) + "\n")
        print(name, [(r["label"], round(r["probabilities"][model.class_names[-1]], 3)) for r in ref])


if __name__ == "__main__":
    main(sys.argv[1:])

"""Recipe of the zoo's adult model: ``pneumozoo adapt`` on the adult NIH films.

Declared before it ran:

1. candidates: every pediatric zoo model as a starting point, with the adaptation methods
   ``recalibrate`` (new temperature and threshold) and ``probe`` (a new L2-regularised
   logistic regression on the model's frozen multi-layer features, C in {0.01, 0.1});
   ``finetune`` is left out of the search for its cost (about 10 minutes per setting per
   starting model here; measured by ``benchmarks/research/finetune.py`` on the default
   model: out-of-fold AUC about 0.62, below the probes);
2. choice: the highest out-of-fold ROC AUC of 5 patient-wise folds (stratified, seed 0) on
   ``nih-adult-dev``;
3. the chosen start and method are then adapted on all 572 films; the threshold is the
   ``youden-margin`` rule on the pooled out-of-fold scores; the domain guard is refitted on
   the adult films.

The card reports the chosen candidate's cross-validated metrics. Choosing the best of several
candidates on the same folds makes them slightly optimistic; every candidate's numbers are
kept in ``pneumozoo.json`` (``metrics.site.compared``).

Data: NIH ChestX-ray14 (Wang et al., CVPR 2017; NIH Clinical Center), 110 pneumonia / 462 no
finding adult films; NLP-mined labels; the classes differ in view (PA/AP). Usage::

    python recipes/adult.py --data ../shared/data/nih-adult-dev
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "src" / "pneumozoo" / "pretrained" / "bundled"
NAME = "xraynet-adult"
CANDIDATES = ("xraynet-binary-v2", "xraynet-binary", "xraynet-3class", "cnn5-binary", "cnn4-binary")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path(os.environ.get("PNEUMOZOO_NIH", "data/nih-adult-dev")))
    p.add_argument("--out", type=Path, default=BUNDLED / NAME)
    p.add_argument("--log", type=Path, default=None, help="also write every candidate's results here")
    args = p.parse_args()
    import pneumozoo
    from pneumozoo.adapt import adapt

    results = {}
    for name in CANDIDATES:
        model = pneumozoo.load_pretrained(name)
        method = "probe" if model.task != "binary" else "auto"
        res = adapt(model, args.data, method=method, grid=(), base_name=name)
        results[name] = res.cv
        for key, m in res.cv.items():
            print(f"{name:20s} {key:18s} AUC {m['auc']:.3f} {m['confidence_intervals']['auc']}", flush=True)
    best = max(((n, k) for n, cv in results.items() for k in cv), key=lambda nk: results[nk[0]][nk[1]]["auc"])
    print(f"chosen: {best[0]} {best[1]}", flush=True)
    method = "recalibrate" if best[1] == "recalibrate" else "probe"
    base = pneumozoo.load_pretrained(best[0])
    from pneumozoo.adapt import PROBE_C

    c = results[best[0]][best[1]].get("settings", {}).get("C")
    compared = {f"{n} {k}": {m: v.get(m) for m in ("auc", "accuracy", "sensitivity", "specificity")}
                for n, cv in results.items() for k, v in cv.items()}
    notes = {"chosen_from": compared,
             "selection": "start and method chosen by the highest out-of-fold AUC among the "
                          "candidates above (recipes/adult.py); the chosen one's numbers are "
                          "slightly optimistic for that reason"}
    chosen = adapt(base, args.data, out=args.out, name=NAME, method=method, base_name=best[0],
                   grid=(), probe_c=(c,) if c is not None else PROBE_C, notes=notes)
    print(json.dumps({"chosen": best, "cv": chosen.cv[next(iter(chosen.cv))]}, default=str)[:2000])
    if args.log:
        args.log.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()

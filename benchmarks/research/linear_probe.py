"""Part B (1): logistic-regression probe on frozen features, patient-wise 5-fold CV; zero-shot AUC for reference."""
import json
import time

import numpy as np
from common_b import OUT, folds, summarize
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import pneumozoo

y, pid, fidx = folds()
rows = []
for cfg in pneumozoo.list_pretrained():
    d = np.load(f"{OUT}/feat_{cfg.name}.npz"); L = np.load(f"{OUT}/layers_{cfg.name}.npz")
    p = d["nih__p"]
    zs = p[:, 1:].sum(1) if p.shape[1] == 3 else p[:, 1]  # 3-class: bacteria + virus
    rows.append(dict(model=cfg.name, feat="zero-shot P(pneumonia)", C=None, seconds=0, **summarize(y, pid, zs, fidx)))
    lnames = sorted({k.split("__")[1] for k in L.files if k.startswith("nih__")})
    feats = {"penultimate": d["nih__f"], "pooled conv stages (mean+std)": np.concatenate([L[f"nih__{n}"] for n in lnames], 1)}
    for fname, X in feats.items():
        for C in (0.01, 0.1, 1.0):
            t0 = time.time(); oof = np.zeros(len(y))
            for tr, te in fidx:
                steps = [StandardScaler()] + ([PCA(128, random_state=0)] if X.shape[1] > 1024 else [])
                clf = make_pipeline(*steps, LogisticRegression(C=C, class_weight="balanced", max_iter=5000))
                clf.fit(X[tr], y[tr]); oof[te] = clf.predict_proba(X[te])[:, 1]
            rows.append(dict(model=cfg.name, feat=f"{fname} ({X.shape[1]}-d)", C=C, seconds=round(time.time() - t0, 1), **summarize(y, pid, oof, fidx)))
            print(rows[-1]["model"], rows[-1]["feat"], C, f"{rows[-1]['pooled']:.3f}", flush=True)
json.dump(rows, open(f"{OUT}/linear_probe.json", "w"), indent=1)
for r in rows:
    print(f"{r['model']:18s} {r['feat']:42s} C={r['C']!s:5s} pooled {r['pooled']:.3f} [{r['ci'][0]:.3f},{r['ci'][1]:.3f}] folds {r['fold_mean']:.3f}±{r['fold_sd']:.3f} {r['seconds']}s")

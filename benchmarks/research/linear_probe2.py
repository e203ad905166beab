"""Part B (1b): probe variants on pooled conv-stage features: smaller C, per-stage, and multi-model concatenation."""
import json
import time

import numpy as np
from common_b import OUT, folds, summarize
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

y, pid, fidx = folds()
def load(name):
    L = np.load(f"{OUT}/layers_{name}.npz")
    return {k.split("__")[1]: L[k] for k in L.files if k.startswith("nih__")}
def cv(X, C):
    t0 = time.time(); oof = np.zeros(len(y))
    for tr, te in fidx:
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, class_weight="balanced", max_iter=5000))
        clf.fit(X[tr], y[tr]); oof[te] = clf.predict_proba(X[te])[:, 1]
    return summarize(y, pid, oof, fidx), time.time() - t0
rows = []
def rep(model, feat, X, C):
    s, t = cv(X, C); rows.append(dict(model=model, feat=feat, dim=X.shape[1], C=C, seconds=round(t, 1), **s))
    print(f"{model:34s} {feat:22s} {X.shape[1]:5d} C={C:<6} pooled {s['pooled']:.3f} [{s['ci'][0]:.3f},{s['ci'][1]:.3f}] folds {s['fold_mean']:.3f}±{s['fold_sd']:.3f} {t:.1f}s", flush=True)
for m in ["xraynet-binary", "xraynet-3class", "xraynet-binary-v2", "cnn5-binary"]:
    L = load(m)
    for C in (0.001, 0.003):
        rep(m, "all stages", np.concatenate(list(L.values()), 1), C)
    for n, X in L.items():
        rep(m, n, X, 0.01)
Xall = np.concatenate([np.concatenate(list(load(m).values()), 1) for m in ["xraynet-binary", "xraynet-3class", "cnn5-binary", "cnn4-binary"]], 1)
for C in (0.001, 0.003, 0.01):
    rep("concat xb+x3+cnn5+cnn4", "all stages", Xall, C)
json.dump(rows, open(f"{OUT}/linear_probe2.json", "w"), indent=1)

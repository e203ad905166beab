"""Part A, candidate recipe: multi-layer Mahalanobis (Ledoit-Wolf) on spatially pooled mean+std of every conv
stage + the penultimate vector, per-layer distances z-scored on the validation films and summed (or max)."""
import json

import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

import pneumozoo

OUT = "/tmp/research"
QS = [0.90, 0.925, 0.95, 0.975]
SYN = ["uniform_rgb", "uniform_gray", "gauss_rgb", "gauss_gray", "blobs_rgb", "blobs_gray", "photo_rgb", "constant", "near_constant", "gradient"]
SETS = ["k_val", "k_test", "nih"] + ["syn_" + s for s in SYN]
def l2(x): return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

def maha(fit, xs):
    lw = LedoitWolf().fit(fit); P, mu = lw.precision_.astype(np.float32), lw.location_.astype(np.float32)
    return {k: np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", v - mu, P, v - mu), 0)) for k, v in xs.items()}, P.size + mu.size

rows = []; mem = {}
for cfg in pneumozoo.list_pretrained():
    L = np.load(f"{OUT}/layers_{cfg.name}.npz"); F = np.load(f"{OUT}/feat_{cfg.name}.npz")
    lnames = [k.split("__")[1] for k in L.files if k.startswith("k_fit__")]
    per, nflt = {}, {}
    for n in lnames:
        per[n], nflt[n] = maha(L[f"k_fit__{n}"], {s: L[f"{s}__{n}"] for s in SETS})
    f = F["k_fit__f"]
    if f.shape[1] <= 512:
        per["pen"], nflt["pen"] = maha(f, {s: F[f"{s}__f"] for s in SETS})
    else:  # cnn4 Flatten 9216-d: L2-normalise, PCA-128, then LW
        pca = PCA(128, random_state=0).fit(l2(f))
        per["pen"], n = maha(pca.transform(l2(f)), {s: pca.transform(l2(F[f"{s}__f"])) for s in SETS})
        nflt["pen"] = n + pca.components_.size + pca.mean_.size
    z = {n: {s: (per[n][s] - per[n]["k_val"].mean()) / per[n]["k_val"].std() for s in SETS} for n in per}
    combos = {"sum(stages+pen)": (lambda s: sum(z[n][s] for n in per)),
              "sum(stages)": (lambda s: sum(z[n][s] for n in lnames)),
              "max(stages+pen)": (lambda s: np.max([z[n][s] for n in per], 0))}
    mem[cfg.name] = {"floats": int(sum(nflt.values()) + 2 * len(per) + 1), "per_layer": {n: int(v) for n, v in nflt.items()},
                     "dims": {n: int(L[f"k_fit__{n}"].shape[1]) for n in lnames}}
    for cname, fn in combos.items():
        sc = {s: fn(s) for s in SETS}
        auc = roc_auc_score(np.r_[np.zeros(len(sc["k_test"])), np.ones(len(sc["nih"]))], np.r_[sc["k_test"], sc["nih"]])
        for q in QS:
            cut = np.quantile(sc["k_val"], q)
            r = dict(model=cfg.name, method=cname, q=q, auc=float(auc), cut=float(cut))
            for s in SETS: r[s] = float(np.mean(~(sc[s] <= cut)))
            r["syn_min"] = min(r["syn_" + s] for s in SYN); rows.append(r)
json.dump(dict(rows=rows, mem=mem), open(f"{OUT}/guard_final.json", "w"), indent=1)
print(f"{'model':18s} {'method':16s} {'q':5s} {'AUC':>5s} {'val':>5s} {'test':>5s} {'nih':>5s} {'synmin':>6s} ok")
for r in sorted(rows, key=lambda r: (r["method"], r["q"])):
    ok = r["nih"] >= 0.9 and r["k_test"] <= 0.1 and r["syn_min"] == 1
    print(f"{r['model']:18s} {r['method']:16s} {r['q']:<5} {r['auc']:5.3f} {r['k_val']:5.3f} {r['k_test']:5.3f} {r['nih']:5.3f} {r['syn_min']:6.3f} {'OK' if ok else '--'}")
for k, v in mem.items(): print(k, v["floats"], f"{v['floats']*4/1e6:.2f} MB", v["per_layer"])

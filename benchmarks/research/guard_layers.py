"""Part A variant: Mahalanobis (Ledoit-Wolf) on spatially pooled mean+std of each conv stage, and their combination."""
import json

import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.metrics import roc_auc_score

import pneumozoo

OUT = "/tmp/research"
QS = [0.90, 0.95, 0.975, 0.99]
SYN = ["uniform_rgb", "uniform_gray", "gauss_rgb", "gauss_gray", "blobs_rgb", "blobs_gray", "photo_rgb", "constant", "near_constant", "gradient"]
SETS = ["k_val", "k_test", "nih"] + ["syn_" + s for s in SYN]

def maha(fit, xs):
    lw = LedoitWolf().fit(fit)
    P, mu = lw.precision_, lw.location_
    return {k: np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", v - mu, P, v - mu), 0)) for k, v in xs.items()}, lw.shrinkage_

rows = []
for cfg in pneumozoo.list_pretrained():
    L = np.load(f"{OUT}/layers_{cfg.name}.npz"); F = np.load(f"{OUT}/feat_{cfg.name}.npz")
    lnames = [k.split("__")[1] for k in L.files if k.startswith("k_fit__")]
    # log of std part keeps heavy-tailed activations tamer
    def get(s, n): return L[f"{s}__{n}"]
    per = {}
    for n in lnames:
        per[n], sh = maha(get("k_fit", n), {s: get(s, n) for s in SETS})
    per["penultimate"], _ = maha(F["k_fit__f"], {s: F[f"{s}__f"] for s in SETS}) if F["k_fit__f"].shape[1] <= 512 else (None, None)
    if per["penultimate"] is None: del per["penultimate"]
    # combination: sum over conv stages of z-scored distances (z from validation films)
    def comb(keys):
        out = {}
        for s in SETS:
            out[s] = sum((per[n][s] - per[n]["k_val"].mean()) / per[n]["k_val"].std() for n in keys)
        return out
    per["sum_stages"] = comb(lnames)
    per["sum_stages+pen"] = comb(lnames + (["penultimate"] if "penultimate" in per else []))
    for meth, sc in per.items():
        auc = roc_auc_score(np.r_[np.zeros(len(sc["k_test"])), np.ones(len(sc["nih"]))], np.r_[sc["k_test"], sc["nih"]])
        for q in QS:
            cut = np.quantile(sc["k_val"], q)
            r = dict(model=cfg.name, method=meth, q=q, auc_nih_vs_test=float(auc))
            for s in SETS: r[s] = float(np.mean(~(sc[s] <= cut)))
            r["syn_min"] = min(r["syn_" + s] for s in SYN); rows.append(r)
json.dump(rows, open(f"{OUT}/guard_layers_rows.json", "w"))
print(f"{'model':18s} {'method':15s} {'q':5s} {'AUC':>5s} {'val':>5s} {'test':>5s} {'nih':>5s} {'synmin':>6s} ok  " + " ".join(s[:7] for s in SYN))
for r in rows:
    ok = r["nih"] >= 0.9 and r["k_test"] <= 0.1 and r["syn_min"] == 1
    print(f"{r['model']:18s} {r['method']:15s} {r['q']:<5} {r['auc_nih_vs_test']:5.3f} {r['k_val']:5.3f} {r['k_test']:5.3f} {r['nih']:5.3f} {r['syn_min']:6.3f} {'OK' if ok else '--'}  "
          + " ".join(f"{r['syn_'+s]:7.2f}" for s in SYN))

"""Variant of guard_final: drop the deepest (largest, 512-d) pooled stage to cut the stored precision matrices."""

import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA

import pneumozoo

OUT = "/tmp/research"
SYN = ["uniform_rgb", "uniform_gray", "gauss_rgb", "gauss_gray", "blobs_rgb", "blobs_gray", "photo_rgb", "constant", "near_constant", "gradient"]
SETS = ["k_val", "k_test", "nih"] + ["syn_" + s for s in SYN]
def l2(x): return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
def maha(fit, xs):
    lw = LedoitWolf().fit(fit); P, mu = lw.precision_, lw.location_
    return {k: np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", v - mu, P, v - mu), 0)) for k, v in xs.items()}, P.size + mu.size
for cfg in pneumozoo.list_pretrained():
    L = np.load(f"{OUT}/layers_{cfg.name}.npz"); F = np.load(f"{OUT}/feat_{cfg.name}.npz")
    lnames = [k.split("__")[1] for k in L.files if k.startswith("k_fit__")][:-1]
    per, nf = {}, 0
    for n in lnames:
        per[n], c = maha(L[f"k_fit__{n}"], {s: L[f"{s}__{n}"] for s in SETS}); nf += c
    f = F["k_fit__f"]
    if f.shape[1] <= 512: per["pen"], c = maha(f, {s: F[f"{s}__f"] for s in SETS})
    else:
        pca = PCA(64, random_state=0).fit(l2(f)); per["pen"], c = maha(pca.transform(l2(f)), {s: pca.transform(l2(F[f"{s}__f"])) for s in SETS}); c += pca.components_.size
    nf += c
    sc = {s: sum((per[n][s] - per[n]["k_val"].mean()) / per[n]["k_val"].std() for n in per) for s in SETS}
    for q in (0.9, 0.925, 0.95):
        cut = np.quantile(sc["k_val"], q); fl = {s: np.mean(~(sc[s] <= cut)) for s in SETS}
        print(f"{cfg.name:18s} q={q:<5} test {fl['k_test']:.3f} nih {fl['nih']:.3f} synmin {min(fl['syn_'+s] for s in SYN):.3f}  {nf*4/1e6:.2f} MB  layers={lnames}+pen")

"""Part A: domain-guard scores on penultimate features; flag rates per model/method/quantile."""
import json
import time

import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA

import pneumozoo

OUT = "/tmp/research"
QS = [0.95, 0.975, 0.99]
SYN = ["uniform_rgb", "uniform_gray", "gauss_rgb", "gauss_gray", "blobs_rgb", "blobs_gray",
       "photo_rgb", "constant", "near_constant", "gradient"]

def l2(x): return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

class Maha:
    def __init__(self, k=None, norm=False, cls=False): self.k, self.norm, self.cls = k, norm, cls
    def _t(self, x):
        x = l2(x) if self.norm else x
        return self.pca.transform(x) if self.k else x
    def fit(self, x, y):
        x = l2(x) if self.norm else x
        self.pca = PCA(self.k, random_state=0).fit(x) if self.k else None
        z = self.pca.transform(x) if self.k else x
        if self.cls:
            self.mus = np.stack([z[y == c].mean(0) for c in np.unique(y)])
            zc = z - self.mus[np.searchsorted(np.unique(y), y)]
            lw = LedoitWolf(assume_centered=True).fit(zc)
        else:
            lw = LedoitWolf().fit(z); self.mus = lw.location_[None]
        self.prec, self.shrink = lw.precision_, lw.shrinkage_
        return self
    def score(self, x):
        z = self._t(x)
        d = np.stack([np.einsum("ij,jk,ik->i", z - m, self.prec, z - m) for m in self.mus], 1)
        return np.sqrt(np.maximum(d.min(1), 0))
    def nbytes(self, dim):
        k = self.k or dim
        return 4 * (k * k + len(self.mus) * k + ((dim + dim * k) if self.k else 0))

class KNN:
    def __init__(self, k=10): self.k = k
    def fit(self, x, y): self.ref = l2(x).astype(np.float32); return self
    def score(self, x):
        s = l2(x).astype(np.float32) @ self.ref.T
        return 1 - np.sort(s, 1)[:, -self.k]
    def nbytes(self, dim): return 4 * self.ref.size

def sat(x):  # colour saturation statistic: mean over pixels of max(|R-G|, |G-B|)
    x = x.astype(np.int16)
    return np.maximum(np.abs(x[..., 0] - x[..., 1]), np.abs(x[..., 1] - x[..., 2])).mean((1, 2))

rows = []
for cfg in pneumozoo.list_pretrained():
    d = np.load(f"{OUT}/feat_{cfg.name}.npz")
    fit, yfit = d["k_fit__f"], np.load(f"{OUT}/k_fit_y.npy")
    dim = fit.shape[1]
    methods = {}
    for norm in (False, True):
        for k in ([None] if dim <= 512 else []) + [kk for kk in (32, 64, 128) if kk < dim]:
            for cls in (False, True):
                name = f"maha{'_l2' if norm else ''}{'_cls' if cls else ''}_{'full' if k is None else f'pca{k}'}"
                methods[name] = Maha(k, norm, cls)
    methods["knn10_cos"] = KNN(10); methods["knn1_cos"] = KNN(1)
    for mname, m in methods.items():
        t0 = time.time(); m.fit(fit, yfit); tfit = time.time() - t0
        sc = {s: m.score(d[f"{s}__f"]) for s in ["k_val", "k_test", "nih"] + ["syn_" + s for s in SYN]}
        for q in QS:
            cut = np.quantile(sc["k_val"], q)
            r = dict(model=cfg.name, dim=dim, method=mname, q=q, cut=float(cut), fit_s=round(tfit, 2),
                     bytes=m.nbytes(dim), shrink=float(getattr(m, "shrink", np.nan)))
            for s, v in sc.items():
                r[s] = float(np.mean(~(v <= cut)))  # NaN counts as flagged
            r["syn_min"] = min(r["syn_" + s] for s in SYN)
            rows.append(r)
    print(cfg.name, "done", flush=True)
json.dump(rows, open(f"{OUT}/guard_rows.json", "w"))

# colour statistic
syn = np.load(f"{OUT}/synthetic.npz")
st = {n: sat(np.load(f"{OUT}/{n}.npy")) for n in ["k_fit", "k_val", "k_test", "nih"]}
st.update({s: sat(syn[s]) for s in SYN})
json.dump({k: [float(v.min()), float(np.quantile(v, 0.5)), float(v.max())] for k, v in st.items()},
          open(f"{OUT}/saturation.json", "w"), indent=1)

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold

OUT = "/tmp/research"

def folds(seed=0):
    y = np.load(f"{OUT}/nih_y.npy"); pid = np.load(f"{OUT}/nih_pid.npy")
    cv = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed)
    return y, pid, list(cv.split(np.zeros(len(y)), y, pid))

def summarize(y, pid, oof, fold_idx, n_boot=1000, seed=0):
    """pooled OOF AUC, patient-cluster bootstrap 95% CI, per-fold AUCs."""
    pooled = roc_auc_score(y, oof)
    per = [roc_auc_score(y[te], oof[te]) for _, te in fold_idx]
    rng = np.random.default_rng(seed); up = np.unique(pid); idx_by = {p: np.where(pid == p)[0] for p in up}
    bs = []
    for _ in range(n_boot):
        ii = np.concatenate([idx_by[p] for p in rng.choice(up, len(up))])
        if len(np.unique(y[ii])) == 2: bs.append(roc_auc_score(y[ii], oof[ii]))
    lo, hi = np.quantile(bs, [0.025, 0.975])
    return dict(pooled=float(pooled), ci=[float(lo), float(hi)], fold_mean=float(np.mean(per)),
                fold_sd=float(np.std(per)), folds=[float(a) for a in per])

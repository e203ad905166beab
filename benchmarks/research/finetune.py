"""Part B: fine-tune a zoo model on NIH adult films, patient-wise 5-fold CV; per-epoch out-of-fold AUC."""
import argparse
import json
import time

import keras
import numpy as np
from common_b import OUT, folds, summarize
from sklearn.metrics import roc_auc_score

import pneumozoo
from pneumozoo.data.pipeline import resize_images

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="xraynet-binary-v2"); ap.add_argument("--lr", type=float, default=1e-4)
ap.add_argument("--epochs", type=int, default=15); ap.add_argument("--bs", type=int, default=32)
ap.add_argument("--freeze", default="none", choices=["none", "bn", "backbone"])
ap.add_argument("--aug", default="xray"); ap.add_argument("--ls", type=float, default=0.0)
ap.add_argument("--tag", default="")
a = ap.parse_args()
cfg = {c.name: c for c in pneumozoo.list_pretrained()}[a.model]
x = np.load(f"{OUT}/nih.npy")
x = np.clip(np.rint(resize_images(x, cfg.input_size).numpy()), 0, 255).astype(np.uint8)
y, pid, fidx = folds()
oof = np.zeros((a.epochs, len(y))); fold_times = []
t_all = time.time()
for f, (tr, te) in enumerate(fidx):
    t0 = time.time(); keras.utils.set_random_seed(f)
    m = pneumozoo.load_pretrained(a.model)
    if a.freeze == "bn":
        for l in m.layers:
            if isinstance(l, keras.layers.BatchNormalization): l.trainable = False
    elif a.freeze == "backbone":
        for l in m.layers: l.trainable = l.name == "logits"
    inp = keras.Input((cfg.input_size, cfg.input_size, 3))
    h = pneumozoo.augment.get_preset(a.aug, seed=f)(inp) if a.aug != "none" else inp
    tm = keras.Model(inp, m(h))
    tm.compile(keras.optimizers.Adam(a.lr), keras.losses.CategoricalCrossentropy(label_smoothing=a.ls))
    n1 = y[tr].sum(); n0 = len(tr) - n1
    cw = {0: len(tr) / (2 * n0), 1: len(tr) / (2 * n1)}
    yoh = keras.utils.to_categorical(y[tr], 2)
    xtr = x[tr].astype(np.float32); xte = x[te].astype(np.float32)
    for e in range(a.epochs):
        tm.fit(xtr, yoh, batch_size=a.bs, epochs=1, class_weight=cw, verbose=0, shuffle=True)
        oof[e, te] = m.predict(xte, batch_size=64, verbose=0)[:, 1]
    fold_times.append(time.time() - t0)
    print(f"fold {f} {fold_times[-1]:.0f}s AUC by epoch:",
          " ".join(f"{roc_auc_score(y[te], oof[e, te]):.3f}" for e in range(a.epochs)), flush=True)
res = dict(vars(a), seconds=time.time() - t_all, fold_seconds=fold_times,
           by_epoch={e + 1: summarize(y, pid, oof[e], fidx, n_boot=300) for e in range(a.epochs)})
name = a.tag or f"ft_{a.model}_lr{a.lr:g}_e{a.epochs}_{a.freeze}_{a.aug}"
json.dump(res, open(f"{OUT}/{name}.json", "w"), indent=1); np.save(f"{OUT}/{name}_oof.npy", oof)
for e in range(a.epochs):
    s = res["by_epoch"][e + 1]
    print(f"epoch {e+1:2d} pooled {s['pooled']:.3f} [{s['ci'][0]:.3f},{s['ci'][1]:.3f}] folds {s['fold_mean']:.3f}±{s['fold_sd']:.3f}")
print("total seconds", round(res["seconds"]))

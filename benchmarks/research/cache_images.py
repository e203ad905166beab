"""Read all images once (uint8 RGB, native size) and cache them as .npy in /tmp/research."""
import glob
import os
import time

import numpy as np

import pneumozoo
from pneumozoo.data import patient_split, scan_split

OUT = "/tmp/research"
K = "/work/shared/data/kermany224"
t0 = time.time()
train = scan_split(K, "train")
tr, va = patient_split(train, val_fraction=0.15, seed=0)  # same split as the zoo's training recipes
test = scan_split(K, "test")
def load(recs):
    return np.stack([pneumozoo.read_xray(r.path) for r in recs])
for name, recs in [("k_fit", tr), ("k_val", va), ("k_test", test)]:
    x = load(recs); np.save(f"{OUT}/{name}.npy", x)
    np.save(f"{OUT}/{name}_y.npy", np.array([r.label for r in recs]))
    print(name, x.shape, time.time() - t0, flush=True)
files = sorted(glob.glob("/work/shared/data/nih-adult-dev/*/*.png"))
x = np.stack([pneumozoo.read_xray(f) for f in files])
y = np.array([1 if "/PNEUMONIA/" in f else 0 for f in files])
pid = np.array([int(os.path.basename(f).split("_")[0]) for f in files])
np.save(f"{OUT}/nih.npy", x); np.save(f"{OUT}/nih_y.npy", y); np.save(f"{OUT}/nih_pid.npy", pid)
print("nih", x.shape, y.sum(), len(set(pid)), time.time() - t0)

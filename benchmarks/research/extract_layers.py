"""Pooled (mean + std over space) activations of every conv stage, for the multi-layer guard variant."""
import time

import keras
import numpy as np
from keras import ops

import pneumozoo
from pneumozoo.data.pipeline import resize_images

OUT = "/tmp/research"
LAYERS = {"xraynet": ["stem_pool", "stage1_out", "stage2_out", "stage3_out", "stage4_out"],
          "cnn4": ["block1_pool", "block2_pool", "block3_pool", "block4_pool"],
          "cnn5": ["block1_pool", "block2_pool", "block3_pool", "block4_pool", "block5_pool"]}
syn = np.load(f"{OUT}/synthetic.npz")
sets = {n: np.load(f"{OUT}/{n}.npy") for n in ["k_fit", "k_val", "k_test", "nih"]}
sets.update({"syn_" + k: syn[k] for k in syn.files})
def prep(x, size, bs=256):
    return np.concatenate([np.clip(np.rint(resize_images(x[i:i + bs], size).numpy()), 0, 255).astype(np.uint8)
                           for i in range(0, len(x), bs)])
for cfg in pneumozoo.list_pretrained():
    t0 = time.time()
    m = pneumozoo.load_pretrained(cfg.name)
    names = LAYERS[cfg.name.split("-")[0]]
    outs = []
    for n in names:
        h = m.get_layer(n).output
        outs += [ops.mean(h, axis=(1, 2)), ops.std(h, axis=(1, 2))]
    sub = keras.Model(m.input, outs)
    res = {}
    for k, x in sets.items():
        o = sub.predict(prep(x, cfg.input_size), batch_size=64, verbose=0)
        for i, n in enumerate(names):
            res[f"{k}__{n}"] = np.concatenate([o[2 * i], o[2 * i + 1]], 1).astype(np.float32)
    np.savez(f"{OUT}/layers_{cfg.name}.npz", **res)
    print(cfg.name, names, f"{time.time() - t0:.0f}s", flush=True)

"""Synthetic non-X-rays + penultimate features (input of "logits") and probabilities for the 5 zoo models."""
import time

import keras
import numpy as np
import tensorflow as tf

import pneumozoo
from pneumozoo.data.pipeline import resize_images

OUT = "/tmp/research"
rng = np.random.default_rng(0)
N = 40

def smooth(shape_lo, size, colour):
    c = 3 if colour else 1
    lo = rng.uniform(0, 255, size=shape_lo + (c,)).astype(np.float32)
    im = tf.image.resize(lo[None], (size, size), method="bicubic")[0].numpy()
    im = np.clip(im, 0, 255)
    return np.repeat(im, 3, -1) if not colour else im

def synth():
    S = 224; out = {}
    out["uniform_rgb"] = rng.integers(0, 256, (N, S, S, 3))
    g = rng.integers(0, 256, (N, S, S, 1)); out["uniform_gray"] = np.repeat(g, 3, -1)
    out["gauss_rgb"] = np.clip(rng.normal(128, 50, (N, S, S, 3)), 0, 255)
    g = np.clip(rng.normal(128, 50, (N, S, S, 1)), 0, 255); out["gauss_gray"] = np.repeat(g, 3, -1)
    out["blobs_rgb"] = np.stack([smooth((int(k), int(k)), S, True) for k in rng.integers(3, 12, N)])
    out["blobs_gray"] = np.stack([smooth((int(k), int(k)), S, False) for k in rng.integers(3, 12, N)])
    # "photo-like": colour blobs + texture noise + a few hard-edged rectangles
    ph = []
    for i in range(N):
        im = smooth((int(rng.integers(4, 16)),) * 2, S, True) + rng.normal(0, 12, (S, S, 3))
        for _ in range(int(rng.integers(2, 6))):
            x0, y0 = rng.integers(0, S - 20, 2); w, h = rng.integers(10, 100, 2)
            im[y0:y0 + h, x0:x0 + w] = rng.uniform(0, 255, 3)
        ph.append(np.clip(im, 0, 255))
    out["photo_rgb"] = np.stack(ph)
    vals = np.linspace(0, 255, N)
    out["constant"] = np.stack([np.full((S, S, 3), v) for v in vals])
    out["near_constant"] = np.stack([np.clip(np.full((S, S, 3), v) + rng.normal(0, 2, (S, S, 3)), 0, 255) for v in vals])
    out["gradient"] = np.stack([np.repeat(np.tile(np.linspace(a, b, S)[None, :, None], (S, 1, 1)), 3, -1)
                                for a, b in zip(rng.uniform(0, 128, N), rng.uniform(128, 255, N))])
    return {k: np.rint(v).astype(np.uint8) for k, v in out.items()}

syn = synth()
np.savez_compressed(f"{OUT}/synthetic.npz", **syn)
sets = {n: np.load(f"{OUT}/{n}.npy") for n in ["k_fit", "k_val", "k_test", "nih"]}
sets.update({"syn_" + k: v for k, v in syn.items()})

def prep(x, size, bs=256):
    return np.concatenate([np.clip(np.rint(resize_images(x[i:i + bs], size).numpy()), 0, 255).astype(np.uint8)
                           for i in range(0, len(x), bs)])

for cfg in pneumozoo.list_pretrained():
    t0 = time.time()
    m = pneumozoo.load_pretrained(cfg.name)
    sub = keras.Model(m.input, [m.get_layer("logits").input, m.output])
    res = {}
    for k, x in sets.items():
        f, p = sub.predict(prep(x, cfg.input_size), batch_size=64, verbose=0)
        res[k + "__f"] = f.astype(np.float32); res[k + "__p"] = p.astype(np.float32)
    np.savez(f"{OUT}/feat_{cfg.name}.npz", **res)
    print(cfg.name, cfg.input_size, res["k_fit__f"].shape, f"{time.time() - t0:.0f}s", flush=True)

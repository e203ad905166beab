"""The published peer: pneumozoo's default model vs ``pneumonia-model-package==0.1.0`` (PyPI).

The peer's wheel holds one ``.keras`` file (Keras 3.2.1): a 5-block CNN (two Conv2D, then
four blocks of two SeparableConv2D + BatchNorm + MaxPool, Dense 512-128-64-1). Its input
contract, read from the saved config and the package's own code:

- input ``(None, 180, 180, 3)``, RGB, values 0..255 (the graph starts with
  ``Rescaling(1/255)``); output ``(None, 1)``, a sigmoid: P(pneumonia) (class names
  ``NORMAL``, ``PNEUMONIA``);
- trained on ``tf.image.decode_jpeg(channels=3)`` + ``tf.image.resize`` to 180 px
  (bilinear, no antialiasing), 0..255 floats (``data_manager.decode_img``): that is "the
  peer's way" here;
- its ``predict.py`` serves differently: ``keras.utils.load_img(target_size=180)`` (PIL,
  nearest neighbour) then ``keras.utils.normalize(axis=-1)`` (each pixel's RGB vector scaled to
  unit length, so a grey film becomes nearly constant before the model's own /255). Its AUC
  that way is reported too (``peer_served_auc``), for the record.

Speed: the same 624 test films in memory, each model's input prepared once (ours by
``model.prepare``, as :func:`pneumozoo.predict` does; the peer's by its decode + resize),
``predict_on_batch`` at batch 32, models alternating round after round; the ratio is the
median of the per-round ratios. ``--candidates`` adds zoo entries (bundled names or
``arch@size``, random weights: speed only) to the same rounds, to see which would reach 4x.

The wheel is downloaded at run time (``pip download --no-deps``) into a temporary folder,
or given with ``--peer`` (a ``.whl`` or ``.keras``); it is never committed.

Run: ``python benchmarks/bench_peer.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

NAME = "peer"
BATCH = 32
PEER = "pneumonia-model-package==0.1.0"
PEER_SIZE = 180


def _peer_keras(arg: Path | None, tmp: Path) -> Path:
    """The peer's ``.keras`` file: ``arg`` (a .keras or a .whl), else downloaded from PyPI."""
    if arg is not None and arg.suffix == ".keras":
        return arg
    wheel = arg
    if wheel is None:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", PEER,
                        "-d", str(tmp)], check=True)
        wheel = next(tmp.glob("*.whl"))
    with zipfile.ZipFile(wheel) as z:
        member = next(n for n in z.namelist() if n.endswith(".keras"))
        return Path(z.extract(member, tmp / "wheel"))


def _peer_pixels(path: Path) -> Any:
    """The peer's training-time input: decode_jpeg RGB + bilinear resize to 180, 0..255."""
    import tensorflow as tf

    img = tf.io.decode_jpeg(tf.io.read_file(str(path)), channels=3)
    return tf.image.resize(img, [PEER_SIZE, PEER_SIZE]).numpy()


def _peer_served(path: Path) -> Any:
    """The peer's ``predict.py`` input: load_img (nearest) + L2 normalisation over channels."""
    import keras
    import numpy as np

    img = keras.utils.load_img(str(path), target_size=(PEER_SIZE, PEER_SIZE))
    arr = keras.utils.img_to_array(img, dtype="float64")[None]
    return np.asarray(keras.utils.normalize(arr, axis=-1, order=2), np.float32)[0]


def _throughput(predict: Any, x: Any) -> float:
    n = (len(x) // BATCH) * BATCH or len(x)  # whole batches; all films when fewer than one
    seconds = C.timed(lambda: [predict(x[i:i + BATCH]) for i in range(0, n, BATCH)])
    return n / seconds


def _scores(predict: Any, x: Any) -> Any:
    import numpy as np

    return np.concatenate([np.asarray(predict(x[i:i + BATCH])) for i in range(0, len(x), BATCH)])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--peer", type=Path, default=None,
                   help=f"the peer's .whl or .keras (default: pip download {PEER})")
    p.add_argument("--model", default=None, help="ours (default: the bundled default model)")
    p.add_argument("--candidates", default="",
                   help="comma-separated extra zoo entries in the same rounds "
                        "(bundled names or arch@size), e.g. cnn4-binary,xraynet@128")
    p.add_argument("--images", type=int, default=None, help="test films (default all; --quick 64)")
    p.add_argument("--name", default=NAME,
                   help="results file name (default peer: the default model and the target "
                        "candidate; peer-zoo: every zoo model in the same rounds)")
    args = p.parse_args(argv)
    data = C.check_data(args.data, splits=("test",))
    rounds = C.repeats(args, 5)

    import keras
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from pneumozoo.data import scan_split, targets
    from pneumozoo.evaluation.metrics import pneumonia_scores
    from pneumozoo.io import read_xray
    from pneumozoo.pretrained import DEFAULT_MODEL

    records = scan_split(data, "test")
    limit = args.images or (64 if args.quick else None)
    records = C.evenly(records, limit)
    y = np.asarray(targets(records, "binary"))
    films = [read_xray(r.path) for r in records]

    with tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp:
        keras_file = _peer_keras(args.peer, Path(tmp))
        peer = keras.saving.load_model(keras_file, safe_mode=True, compile=False)
        peer_name = keras_file.name
    contract = {"input_shape": list(peer.input_shape), "output_shape": list(peer.output_shape),
                "first_layer": type(peer.layers[1]).__name__,
                "params": int(peer.count_params())}
    x_peer = np.stack([_peer_pixels(r.path) for r in records]).astype(np.float32)
    x_served = np.stack([_peer_served(r.path) for r in records])

    specs = [args.model or DEFAULT_MODEL, *[s for s in args.candidates.split(",") if s]]
    ours: list[dict[str, Any]] = []
    for spec in specs:
        model, desc = C.load_model_spec(spec)
        x = np.stack([model.prepare(f) for f in films])  # as pneumozoo.predict prepares,
        x = np.repeat(x, 3 // x.shape[-1], axis=-1).astype(np.float32)  # and batches
        model.predict_on_batch(x[:BATCH])  # warm-up
        pretrained = C.parse_spec(spec)[1] is None
        auc = (float(roc_auc_score(y, pneumonia_scores(_scores(model.predict_on_batch, x))))
               if pretrained else None)
        ours.append({"model": spec, "description": desc, "input_size": int(model.input_size),
                     "x": x, "predict": model.predict_on_batch, "test_auc": auc, "ips": []})
    peer.predict_on_batch(x_peer[:BATCH])  # warm-up
    peer_auc = float(roc_auc_score(y, _scores(peer.predict_on_batch, x_peer)[:, 0]))
    peer_served_auc = float(roc_auc_score(y, _scores(peer.predict_on_batch, x_served)[:, 0]))

    peer_ips: list[float] = []
    for r in range(rounds):  # alternate: peer, ours, candidates, round after round
        peer_ips.append(_throughput(peer.predict_on_batch, x_peer))
        for o in ours:
            o["ips"].append(_throughput(o["predict"], o["x"]))
        print(f"round {r + 1}/{rounds}: peer {peer_ips[-1]:.0f} img/s, "
              + ", ".join(f"{o['model']} {o['ips'][-1]:.0f}" for o in ours), flush=True)

    rows = [{"model": f"peer ({PEER})", "input_size": PEER_SIZE,
             "images_per_s": C.median(peer_ips), "runs": peer_ips, "ratio_vs_peer": 1.0,
             "test_auc": peer_auc}]
    for o in ours:
        ratios = [a / b for a, b in zip(o["ips"], peer_ips, strict=True)]
        rows.append({"model": o["model"], "input_size": o["input_size"],
                     "images_per_s": C.median(o["ips"]), "runs": o["ips"],
                     "ratio_vs_peer": C.median(ratios), "ratios": ratios,
                     "test_auc": o["test_auc"], "description": o["description"]})
    default = rows[1]
    result = {"peer": PEER, "peer_file": peer_name, "peer_contract": contract,
              "peer_preprocessing": "tf.io.decode_jpeg(channels=3) + tf.image.resize(180, "
                                    "bilinear), 0..255 (its training pipeline)",
              "peer_test_auc": peer_auc, "peer_served_auc": peer_served_auc,
              "films": len(records), "batch": BATCH, "rounds": rounds,
              "default_model": default["model"], "default_test_auc": default["test_auc"],
              "ratio_default_vs_peer": default["ratio_vs_peer"], "rows": rows,
              "method": "predict_on_batch on prepared arrays in memory, models alternating "
                        "each round, ratio = median of per-round ratios",
              "target": "test AUC >= 0.95 at >= 4x the peer's images/s (batch 32)"}
    out = C.write_results(args.name, args, result)
    C.print_table(rows, ["model", "input_size", "images_per_s", "ratio_vs_peer", "test_auc"],
                  f"{len(records)} test films in memory, batch {BATCH}, {rounds} alternating rounds")
    print(f"peer AUC as its predict.py serves (nearest resize + L2 normalize): "
          f"{peer_served_auc:.3f}")
    print(f"\n{default['model']} / peer: {default['ratio_vs_peer']:.2f}x (target 4x)  ->  {out}")
    return result


if __name__ == "__main__":
    main()

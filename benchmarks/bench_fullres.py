"""Original-resolution films: ``pneumozoo.predict`` (reduced JPEG decoding) vs a plain loop.

The films of ``--fullres`` (default ``../shared/data/kermany-fullres-sample``: 23 original
JPEGs, 1048-2202 px wide) are listed ``--loops`` times (default 10: 230 films). Three ways to
predict them, alternating round after round in one process, the model loaded and warmed up
first (so the numbers are marginal films/s, start-up excluded):

- ``pneumozoo.predict``: reads each film with ``read_xray(min_side=model.input_size)``
  (a JPEG decoded at the smallest DCT scale whose short side is still >= the model's size)
  and the model's preprocessor, two reader threads, batch 32;
- ``pneumozoo.predict, full decode``: the same with ``min_side`` ignored (what it did
  before);
- ``plain loop``: what a user writes: PIL ``open``, ``convert("RGB")``, ``resize`` to the
  model's size, ``model.predict`` on batches of 32.

Accuracy of the reduced decode: P(pneumonia) of every one of the 23 films from
``pneumozoo.predict`` vs the full decode (``max_abs_dp``; target <= 0.05). A side table gives,
per safety factor f (``min_side = f x input size``), decode+prepare films/s on one thread and
max |dP|.

Run: ``python benchmarks/bench_fullres.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

NAME = "fullres"
BATCH = 32
FACTORS = (1.0, 1.5, 2.0)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--fullres", type=Path, default=C.DEFAULT_FULLRES,
                   help="folder of original-resolution films")
    p.add_argument("--model", default=None, help="default: the bundled default model")
    p.add_argument("--loops", type=int, default=None,
                   help="times the films are listed (default 10; --quick 1)")
    args = p.parse_args(argv)
    if not args.fullres.is_dir():
        sys.exit(f"error: {args.fullres} is not a folder; pass --fullres")
    rounds = C.repeats(args, 3)
    loops = args.loops or (1 if args.quick else 10)

    import numpy as np
    from PIL import Image

    import pneumozoo
    import pneumozoo.prediction as prediction
    from pneumozoo.io import read_xray
    from pneumozoo.pretrained import DEFAULT_MODEL

    films = C.list_images(args.fullres)
    if args.quick:
        films = films[:8]
    items = films * loops
    spec = args.model or DEFAULT_MODEL
    model, desc = C.load_model_spec(spec)
    size = int(model.input_size)

    def full_read(item: Any, *, check: bool = False, min_side: int | None = None) -> Any:
        return read_xray(item, check=check)

    def predict_draft(paths: list[Path]) -> Any:
        return np.array([x.probability for x in pneumozoo.predict(model, paths, batch_size=BATCH)])

    def predict_full(paths: list[Path]) -> Any:
        prediction.read_xray = full_read  # type: ignore[assignment]
        try:
            return predict_draft(paths)
        finally:
            prediction.read_xray = read_xray

    def plain_loop(paths: list[Path]) -> Any:
        out = []
        for i in range(0, len(paths), BATCH):
            batch = []
            for f in paths[i:i + BATCH]:
                with Image.open(f) as img:
                    batch.append(np.asarray(img.convert("RGB").resize((size, size))))
            out.append(np.asarray(model.predict(np.stack(batch), batch_size=BATCH, verbose=0)))
        return np.concatenate(out)[:, -1]

    ways = {"pneumozoo.predict": predict_draft, "pneumozoo.predict, full decode": predict_full,
            "plain loop": plain_loop}
    for fn in ways.values():  # warm-up: tracing, batch shapes
        fn(films[:BATCH])
    runs: dict[str, list[float]] = {k: [] for k in ways}
    for r in range(rounds):
        for name, fn in ways.items():
            runs[name].append(len(items) / C.timed(lambda fn=fn: fn(items)))
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in runs.items()),
              flush=True)
    plain = runs["plain loop"]
    rows = [{"way": k, "films_per_s": C.median(v), "runs": v,
             "ratio_vs_plain": C.median([a / b for a, b in zip(v, plain, strict=True)])}
            for k, v in runs.items()]

    p_draft, p_full = predict_draft(films), predict_full(films)
    dp = np.abs(p_draft - p_full)
    per_film = [{"film": f.name, "size": list(Image.open(f).size),
                 "decoded": list(read_xray(f, min_side=size).shape[1::-1]),
                 "p_full": float(a), "p_draft": float(b), "abs_dp": float(d)}
                for f, a, b, d in zip(films, p_full, p_draft, dp, strict=True)]

    factors = []
    for factor in (None, *FACTORS):
        ms = None if factor is None else round(size * factor)
        seconds = C.timed(lambda ms=ms: [model.prepare(read_xray(f, min_side=ms)) for f in films])
        x = np.stack([model.prepare(read_xray(f, min_side=ms)) for f in films])
        prob = model.scores(x)[0][:, -1]  # as pneumozoo.predict runs a prepared batch
        factors.append({"factor": factor, "min_side": ms, "decode_prepare_films_per_s":
                        len(films) / seconds, "max_abs_dp": float(np.max(np.abs(prob - p_full)))})

    result = {"model": spec, "description": desc, "input_size": size,
              "films": len(films), "loops": loops, "films_per_round": len(items),
              "batch": BATCH, "rounds": rounds, "rows": rows,
              "ratio_predict_vs_plain": rows[0]["ratio_vs_plain"],
              "max_abs_dp": float(dp.max()), "mean_abs_dp": float(dp.mean()),
              "per_film": per_film, "safety_factors": factors,
              "method": "ways alternating each round, model loaded and warmed up (marginal "
                        "films/s); dp = predict (min_side = input size) vs full decode",
              "target": "predict >= 3x plain loop; |dP| <= 0.05 on every film"}
    out = C.write_results(NAME, args, result)
    C.print_table(rows, ["way", "films_per_s", "ratio_vs_plain"],
                  f"{len(items)} original-resolution films per round ({len(films)} x {loops}), "
                  f"{spec}, median of {rounds}")
    C.print_table(factors, ["factor", "min_side", "decode_prepare_films_per_s", "max_abs_dp"],
                  "reduced-decode safety factor (one thread; dP vs full decode)")
    print(f"\nmax |dP| over {len(films)} films: {dp.max():.4f}; predict / plain loop: "
          f"{rows[0]['ratio_vs_plain']:.2f}x  ->  {out}")
    return result


if __name__ == "__main__":
    main()

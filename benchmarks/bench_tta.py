"""Test-time augmentation: its cost (images/s) and its effect (test metrics) for a zoo model.

Both passes run in the same process on the same images, at the model's shipped threshold:
plain ``evaluate`` vs ``evaluate(tta=True)`` (the views of :mod:`pneumozoo.tta`).

    python benchmarks/bench_tta.py [--model NAME] [--quick]
"""

from __future__ import annotations

import time

from _common import check_data, parser, print_table, write_results


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--model", default=None,
                   help="registry name or model folder (default: the default model)")
    args = p.parse_args()
    data = check_data(args.data, splits=("test",))

    from pneumozoo import evaluate, load_pretrained
    from pneumozoo.data import scan_split

    if args.model is None:
        from pneumozoo.zoo.registry import DEFAULT_MODEL

        args.model = DEFAULT_MODEL
    model = load_pretrained(args.model)
    records = scan_split(data, "test")
    if args.quick:
        records = records[:8] + records[-8:]
    rows = []
    for tta in (False, True):
        t0 = time.perf_counter()
        report = evaluate(model, records, tta=tta, ci=False)
        seconds = time.perf_counter() - t0
        rows.append({"tta": tta, "n": report.n, "images_per_s": round(report.n / seconds, 1),
                     "accuracy": round(report.accuracy, 4), "auc": round(report.auc, 4),
                     "sensitivity": round(report.sensitivity, 4),
                     "specificity": round(report.specificity, 4)})
    cost = rows[0]["images_per_s"] / max(rows[1]["images_per_s"], 1e-9)
    print_table(rows, ["tta", "n", "images_per_s", "accuracy", "auc", "sensitivity",
                       "specificity"], title=f"TTA on {args.model} (slowdown x{cost:.1f})")
    write_results("tta", args, {"model": args.model, "rows": rows, "slowdown": cost})


if __name__ == "__main__":
    main()

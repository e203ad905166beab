"""Generate the model-zoo table from the bundled models' ``pneumozoo.json`` files.

``python docs/zoo_table.py`` rewrites the table between the ``zoo-table`` markers of
README.md; the docs build imports :func:`zoo_table_markdown` for the Model zoo page. The
numbers are the ones the recipes measured and stored; nothing here is typed by hand.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _fmt(metrics: dict, key: str) -> str:
    value = metrics.get(key)
    if not isinstance(value, (int, float)):
        return "-"
    ci = (metrics.get("confidence_intervals") or {}).get(key)
    if ci and all(isinstance(v, (int, float)) for v in ci):
        return f"{value:.3f} ({ci[0]:.3f}-{ci[1]:.3f})"
    return f"{value:.3f}"


def zoo_table_markdown() -> str:
    """A Markdown table of every bundled pretrained model (test-split metrics, 95% CIs)."""
    sys.path.insert(0, str(ROOT / "src"))
    from pneumozoo.pretrained import list_pretrained

    configs = list_pretrained()
    if not configs:
        return "_No pretrained models are bundled in this build._\n"
    head = ("| name | architecture | task | input | params | threshold | test accuracy | "
            "sensitivity | specificity | ROC AUC | 3-class accuracy |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|\n")
    rows = []
    for c in configs:
        t = c.metrics.get("test", {})
        three = f"{t['class_accuracy']:.3f}" if c.task == "3class" and "class_accuracy" in t else "-"
        rows.append(
            f"| `{c.name}` | {c.architecture} | {c.task} | {c.input_size} px | "
            f"{c.params / 1e6:.2f} M | {c.threshold:.3f} | {_fmt(t, 'accuracy')} | "
            f"{_fmt(t, 'sensitivity')} | {_fmt(t, 'specificity')} | {_fmt(t, 'auc')} | {three} |"
        )
    note = ("\nMetrics on the official Kermany test split (624 images) at the shipped threshold, "
            "with 95% patient-level bootstrap intervals.\n")
    return head + "\n".join(rows) + "\n" + note


def update_readme(readme: Path = ROOT / "README.md") -> None:
    """Replace the table between the zoo-table markers of README.md."""
    text = readme.read_text(encoding="utf-8")
    new = re.sub(r"(<!-- zoo-table:start -->\n).*?(<!-- zoo-table:end -->)",
                 lambda m: m.group(1) + zoo_table_markdown() + m.group(2), text, flags=re.S)
    readme.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    update_readme()
    print(zoo_table_markdown())

"""Model cards: the ``README.md`` of a model folder, with Hugging Face Hub metadata.

The card is generated from the folder's :class:`~pneumozoo.zoo.config.PretrainedConfig`
alone, so the numbers it shows are the ones stored in ``pneumozoo.json``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pneumozoo.zoo.config import WEIGHT_FILES, PretrainedConfig

__all__ = ["KERMANY_CITATION", "KERMANY_DOI", "TAGS", "model_card"]

#: Hub tags every pneumozoo model carries.
TAGS = ("keras", "pneumozoo", "image-classification", "medical-imaging", "chest-x-ray", "pneumonia")
#: DOI of the training data (Mendeley Data, version 2).
KERMANY_DOI = "10.17632/rscbjbr9sj.2"
#: How to cite the training data.
KERMANY_CITATION = (
    "Kermany, D. S., Zhang, K., Goldbaum, M. (2018). Labeled Optical Coherence Tomography (OCT) "
    f"and Chest X-Ray Images for Classification. Mendeley Data, v2. doi:{KERMANY_DOI}. "
    "Paper: Kermany et al., Identifying Medical Diagnoses and Treatable Diseases by Image-Based "
    "Deep Learning, Cell 172(5):1122-1131, 2018."
)

# metric key in EvaluationReport -> (Hub metric type, readable name)
_METRICS = {
    "accuracy": ("accuracy", "Accuracy"),
    "sensitivity": ("recall", "Sensitivity (recall, pneumonia)"),
    "specificity": ("specificity", "Specificity"),
    "precision": ("precision", "Precision (PPV)"),
    "npv": ("npv", "NPV"),
    "f1": ("f1", "F1"),
    "auc": ("roc_auc", "ROC AUC"),
    "pr_auc": ("pr_auc", "PR AUC"),
    "class_accuracy": ("accuracy", "Accuracy over all classes (arg-max)"),
    "macro_f1": ("f1", "Macro F1 over all classes (arg-max)"),
    "ece": ("expected_calibration_error", "ECE (calibration error, lower is better)"),
}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) or math.isinf(value) else float(value)


def _yaml_str(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid YAML scalar, quotes and all


def _front_matter(config: PretrainedConfig, test: dict[str, Any]) -> list[str]:
    lines = [
        "---",
        f"license: {config.license or 'cc-by-4.0'}",
        "library_name: keras",
        "pipeline_tag: image-classification",
        "tags:",
        *[f"- {tag}" for tag in TAGS],
        "datasets:",
        "- kermany2018-chest-xray",
    ]
    results = [(key, _number(test.get(key))) for key in _METRICS]
    results = [(k, v) for k, v in results if v is not None]
    if results:
        lines += [
            "model-index:",
            f"- name: {_yaml_str(config.name)}",
            "  results:",
            "  - task:",
            "      type: image-classification",
            "      name: Pneumonia classification from chest X-rays",
            "    dataset:",
            "      type: kermany2018-chest-xray",
            "      name: Kermany et al. 2018 pediatric chest X-rays (test split)",
            "      split: test",
            "    metrics:",
        ]
        for key, value in results:
            kind, name = _METRICS[key]
            lines += [f"    - type: {kind}", f"      value: {value:.4f}", f"      name: {_yaml_str(name)}"]
    lines.append("---")
    return lines


def _metrics_table(test: dict[str, Any]) -> list[str]:
    cis = test.get("confidence_intervals") or {}
    rows = []
    for key, (_, name) in _METRICS.items():
        value = _number(test.get(key))
        if value is None:
            continue
        ci = cis.get(key) if isinstance(cis, dict) else None
        lo = hi = None
        if isinstance(ci, (list, tuple)) and len(ci) == 2:
            lo, hi = _number(ci[0]), _number(ci[1])
        ci_text = f"{lo:.3f} – {hi:.3f}" if lo is not None and hi is not None else "–"
        rows.append(f"| {name} | {value:.3f} | {ci_text} |")
    if not rows:
        return []
    return ["| Metric | Value | 95% CI |", "|---|---|---|", *rows]


def _guard_lines(metrics: dict[str, Any]) -> list[str]:
    guard = metrics.get("guard") if isinstance(metrics, dict) else None
    if not isinstance(guard, dict):
        return []
    lines = ["", "## When not to trust it: the domain guard", "",
             "The model carries a detector of films unlike its training films: a Mahalanobis "
             f"distance on its penultimate features ({guard.get('components', '?')} principal "
             f"components, Ledoit-Wolf covariance), fitted on {guard.get('fitted_on', 'its training films')}, "
             f"with the cut-off at the {guard.get('quantile', '?')} quantile. `predict` marks films "
             "above it `in_domain: false` (`domain_score` > 1).", ""]
    flagged = guard.get("flagged") or {}
    if flagged:
        lines += ["| Films | Flagged out of domain |", "|---|---|"]
        for key, value in flagged.items():
            v = _number(value)
            lines.append(f"| {key.replace('_', ' ')} | {'–' if v is None else f'{v:.1%}'} |")
    if guard.get("targets"):
        lines += ["", f"Targets: {guard['targets']}."]
    return lines


def _seed_spread_lines(metrics: dict[str, Any]) -> list[str]:
    spread = metrics.get("seed_spread") if isinstance(metrics, dict) else None
    if not isinstance(spread, dict):
        return []
    lines = ["", "## Run-to-run spread", ""]
    table = spread.get("metrics")
    if not isinstance(table, dict) or not table:
        return [*lines, f"Not measured: {spread.get('reason', 'no retrains were run')}."]
    seeds = spread.get("seeds") or []
    lines += [f"The recipe retrained from scratch with {len(seeds)} other seeds "
              f"({', '.join(str(s) for s in seeds)}; each changes the validation split, the "
              f"initial weights and the shuffling), thresholds by the `{spread.get('rule', '?')}` "
              "rule, measured on the same test split. The bootstrap interval above is the "
              "uncertainty of *these* weights on 624 films; this spread is how far *another "
              "training run* lands. The prediction interval is where one more retrain is "
              "expected with 95% probability.", "",
              "| Metric | Mean | SD | Range | 95% prediction interval |", "|---|---|---|---|---|"]
    for key, name in (("accuracy", "Accuracy"), ("sensitivity", "Sensitivity"),
                      ("specificity", "Specificity"), ("f1", "F1"), ("auc", "ROC AUC")):
        row = table.get(key)
        if not isinstance(row, dict):
            continue
        lo, hi = row.get("prediction_interval", [None, None])
        lines.append(f"| {name} | {_number(row.get('mean')) or 0:.3f} | {_number(row.get('sd')) or 0:.3f} "
                     f"| {_number(row.get('min')) or 0:.3f} – {_number(row.get('max')) or 0:.3f} "
                     f"| {_number(lo) or 0:.3f} – {_number(hi) or 0:.3f} |")
    if spread.get("source"):
        lines += ["", f"Source: `{spread['source']}`."]
    return lines


def _speed_lines(metrics: dict[str, Any]) -> list[str]:
    speed = metrics.get("speed") if isinstance(metrics, dict) else None
    ratio = _number(speed.get("ratio_vs_peer")) if isinstance(speed, dict) else None
    if not isinstance(speed, dict) or ratio is None:
        return []
    return ["", "## Speed", "",
            f"{_number(speed.get('images_per_s')) or 0:.0f} images/s, **{ratio:.2f}x** the published "
            f"peer `{speed.get('peer', '?')}` ({_number(speed.get('peer_images_per_s')) or 0:.0f} "
            f"images/s, test AUC {_number(speed.get('peer_test_auc')) or 0:.3f}) on "
            f"{speed.get('cpu') or 'a CPU'}: {speed.get('method', '')} "
            f"(`{speed.get('source', 'benchmarks/bench_peer.py')}`, {speed.get('date', '')})."]


def _external_lines(metrics: dict[str, Any]) -> list[str]:
    external = metrics.get("external") if isinstance(metrics, dict) else None
    if not isinstance(external, dict):
        return []
    lines = ["", "## External validation", ""]
    for name, result in external.items():
        if not isinstance(result, dict):
            continue
        n = result.get("n")
        lines += [f"On `{name}`" + (f" (n = {n})" if isinstance(n, int) else "")
                  + f", at the shipped threshold: {result.get('data', '')}.", ""]
        lines += _metrics_table(result) or ["No metrics recorded."]
        sub = result.get("in_domain")
        if isinstance(sub, dict) and _number(sub.get("n")):
            lines += ["", f"Films the guard accepts (n = {sub.get('n')}): accuracy "
                      f"{_number(sub.get('accuracy')) or float('nan'):.3f}, AUC "
                      f"{_number(sub.get('auc')) or float('nan'):.3f}."]
        lines.append("")
    return lines


def model_card(config: PretrainedConfig, *, repo_id: str | None = None) -> str:
    """The ``README.md`` of a model folder: Hub YAML metadata, then the model card sections.

    Sections: model description, intended use, how to use, preprocessing contract, training
    data (Kermany et al. 2018, CC BY 4.0), evaluation (test metrics with 95% CIs when
    ``config.metrics["test"]`` holds them), external validation (``metrics["external"]``),
    the domain guard and its flag rates (``metrics["guard"]``), limitations, files and their
    sha256.

    Args:
        config: The model's config, as stored in its ``pneumozoo.json`` (with ``files`` filled
            in by :func:`~pneumozoo.pretrained.folder.save_folder` for the sha256 table).
        repo_id: Hub repo (``owner/name``) the card is written for; the usage examples then
            load ``hf://owner/name``. Without it they use ``config.source`` when it is an
            ``hf://`` URI, else the registry name ``config.name``.

    Returns:
        The Markdown text, starting with the ``---`` YAML block the Hub reads.

    Example:
        >>> from pneumozoo.pretrained import PretrainedConfig
        >>> cfg = PretrainedConfig(name="demo", architecture="cnn4", task="binary",
        ...                        class_names=("normal", "pneumonia"), input_size=224)
        >>> model_card(cfg).splitlines()[0]
        '---'
    """
    test = config.metrics.get("test") if isinstance(config.metrics, dict) else None
    test = test if isinstance(test, dict) else {}
    if repo_id:
        target = f"hf://{repo_id}"
    elif config.source.startswith("hf://"):
        target = config.source
    else:
        target = config.name
    classes = ", ".join(f"{i}: `{c}`" for i, c in enumerate(config.class_names))
    task = "3 classes (normal / bacterial / viral pneumonia)" if config.task == "3class" \
        else "2 classes (normal / pneumonia)"
    threshold_text = (
        f"`{config.threshold:.3f}` on P(pneumonia), chosen on validation data "
        "(`predict` applies it; raw softmax scores are returned as well)"
    )
    lines = _front_matter(config, test)
    lines += [
        "",
        f"# {config.name}",
        "",
        "## Model description",
        "",
        config.description or f"A `{config.architecture}` pneumonia classifier for chest X-rays.",
        "",
        f"- Architecture: `{config.architecture}` (Keras 3, saved in Keras's native folder format)",
        f"- Task: {task}",
        f"- Parameters: {config.params:,}" if config.params else "- Parameters: see `config.json`",
        "- Framework: [pneumozoo](https://pneumozoo.readthedocs.io), Keras 3",
        "",
        "## Intended use",
        "",
        "Research and teaching: benchmarking, studying model behaviour and uncertainty on pediatric",
        "chest X-rays. **Not a medical device and not a diagnosis**: do not use it to make clinical",
        "decisions.",
        "",
        "## How to use",
        "",
        "```python",
        "from pneumozoo import load_pretrained, predict",
        "",
        f'model = load_pretrained("{target}")  # verifies sha256s, runs no stored code',
        'print(predict(model, "chest_xray.jpeg")[0])',
        "```",
        "",
        "```bash",
        f"pneumozoo predict --model {target} chest_xray.jpeg",
        "```",
        "",
        "## Preprocessing contract",
        "",
        "- Input: RGB images with pixel values 0..255 (uint8 or float), **any size**; grayscale",
        "  films are repeated to 3 channels by `pneumozoo.read_xray`.",
        f"- Resizing to {config.input_size}×{config.input_size} and normalisation happen **inside** "
        "the model: do not rescale or normalise inputs yourself.",
        f"- Input size: {config.input_size} px (square).",
        f"- Output: softmax probabilities in class order {classes}.",
        f"- Decision threshold: {threshold_text}.",
    ]
    for key, value in sorted((config.preprocessing or {}).items()):
        lines.append(f"- {key}: `{value}`")
    lines += [
        "",
        "## Training data",
        "",
        "Pediatric chest X-rays (anterior-posterior) of the Guangzhou Women and Children's Medical",
        "Center, labelled by expert physicians, released under CC BY 4.0:",
        "",
        f"> {KERMANY_CITATION}",
        "",
        f"Licence of the data: [CC BY 4.0](https://creativecommons.org/licenses/by/4.0/); "
        f"doi:[{KERMANY_DOI}](https://doi.org/{KERMANY_DOI}).",
    ]
    if config.training:
        lines += ["", "Training recipe:", ""]
        lines += [f"- {key}: `{value}`" for key, value in sorted(config.training.items())]
    lines += ["", "## Evaluation", ""]
    table = _metrics_table(test)
    if table:
        n = test.get("n")
        lines.append("On the official Kermany test split"
                     + (f" (n = {n})" if isinstance(n, int) else "")
                     + f", at threshold {_number(test.get('threshold')) or config.threshold:.3f}:")
        lines += ["", *table]
        if not test.get("confidence_intervals"):
            lines += ["", "Confidence intervals were not computed for this model."]
    else:
        lines.append("No test metrics were recorded for this model.")
    lines += _seed_spread_lines(config.metrics)
    lines += _speed_lines(config.metrics)
    lines += _external_lines(config.metrics)
    lines += _guard_lines(config.metrics)
    lines += [
        "",
        "## Limitations",
        "",
        "- Trained on pediatric (age 1–5) anterior-posterior films from a single hospital in",
        "  Guangzhou, China; not validated for adults, other hospitals, scanners or populations.",
        "- The test split comes from the same hospital, so the metrics above likely overestimate",
        "  performance at other sites.",
        "- Labels are image-level; the model does not localise findings, and saliency maps are",
        "  not evidence of correct reasoning.",
        "- Not a diagnosis: any output must be reviewed by a qualified clinician.",
        "",
        "## Files",
        "",
        "| File | sha256 |",
        "|---|---|",
    ]
    for name in WEIGHT_FILES:
        digest = config.files.get(name, "")
        lines.append(f"| `{name}` | `{digest}` |" if digest else f"| `{name}` | – |")
    lines += [
        "| `pneumozoo.json` | holds the sha256s above; checked before loading |",
        "",
        f"Licence of the weights: {config.license or 'cc-by-4.0'}.",
        "",
    ]
    return "\n".join(lines)

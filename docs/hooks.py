"""MkDocs hook: the parts of the documentation that are generated from the code.

Everything that could drift from the code is generated here at build time, never typed by
hand:

* the architecture table (``pneumozoo.list_models()``);
* the augmentation preset table and one preview strip per preset (the registry of
  :mod:`pneumozoo.augment`, applied to a real example film);
* the model zoo table (``pneumozoo.list_pretrained()``, metrics and 95% CIs from each model's
  ``pneumozoo.json``, images/s from ``benchmarks/results/inference.json`` when it exists) and
  one page per bundled model card;
* the command line reference (``pneumozoo.cli.build_parser()``);
* one API reference page per module that exists (mkdocstrings), and the table of the
  top-level ``pneumozoo`` names;
* the list of example scripts (their module docstrings) and the changelog (``CHANGELOG.md``).

* the common mistakes of ``docs/mistakes.py``, each run, with the message pneumozoo gives.

Pages ask for generated content with a marker line such as ``<!-- gen:zoo -->``; an unknown
marker fails the build. The generated sections are checked in, so the Markdown sources read
like the site: ``python docs/hooks.py --write`` writes each between ``<!-- gen:NAME -->`` and
``<!-- /gen:NAME -->`` (``--check`` lists the stale pages; ``tests/test_docs_generated.py``
fails on them), and the build regenerates them. Build-time only (:data:`BUILD_ONLY`, plus the
generated pages): the augmentation previews (PNGs), the changelog (``CHANGELOG.md`` is its
readable source), the API reference pages and the model card pages (the cards are the
``README.md`` of each bundled model folder).

Nothing here needs a bundled model, a network or a GPU: with no model bundled, the zoo page
says so. Run ``mkdocs build --strict`` from the repository root.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SRC = ROOT / "src"
BUNDLED = SRC / "pneumozoo" / "pretrained" / "bundled"
EXAMPLES = ROOT / "examples"
BENCHMARK_FILE = ROOT / "benchmarks" / "results" / "inference.json"
CHANGELOG = ROOT / "CHANGELOG.md"
PREVIEW_IMAGE = EXAMPLES / "xrays" / "test224-pneumonia-person100_bacteria_475.jpeg"
PREVIEW_SIZE = 160
PREVIEW_SAMPLES = 4

log = logging.getLogger("mkdocs.hooks.pneumozoo")

#: Modules with an API reference page, in nav order: (module, nav title). A module that does
#: not exist in this checkout is left out (its page and its nav entry), so the build never
#: points at code that is not there.
API_MODULES: list[tuple[str, str]] = [
    ("pneumozoo.io", "io: reading X-rays"),
    ("pneumozoo.dicom", "dicom: DICOM films"),
    ("pneumozoo.pixels", "pixels: arrays to uint8 RGB"),
    ("pneumozoo.rules", "rules: written once"),
    ("pneumozoo.errors", "errors"),
    ("pneumozoo.data", "data"),
    ("pneumozoo.data.download", "data.download"),
    ("pneumozoo.augment", "augment"),
    ("pneumozoo.zoo", "zoo: the registry"),
    ("pneumozoo.models", "models"),
    ("pneumozoo.recipe", "recipe: training recipes"),
    ("pneumozoo.run", "run: one training run"),
    ("pneumozoo.train", "train"),
    ("pneumozoo.backend", "backend: devices and precision"),
    ("pneumozoo.distribute", "distribute"),
    ("pneumozoo.keras_metrics", "metrics (Keras)"),
    ("pneumozoo.evaluation", "evaluation"),
    ("pneumozoo.evaluation.scoring", "evaluation.scoring"),
    ("pneumozoo.evaluation.bootstrap", "evaluation.bootstrap"),
    ("pneumozoo.evaluation.thresholds", "evaluation.thresholds"),
    ("pneumozoo.evaluation.calibration", "evaluation.calibration"),
    ("pneumozoo.evaluation.external", "evaluation.external"),
    ("pneumozoo.evaluation.enrich", "evaluation.enrich"),
    ("pneumozoo.prediction", "predict"),
    ("pneumozoo.tta", "tta: test-time augmentation"),
    ("pneumozoo.guard", "guard: the domain guard"),
    ("pneumozoo.adapt", "adapt: site adaptation"),
    ("pneumozoo.screening", "screening: an archive, locally or on Ray"),
    ("pneumozoo.explain", "explain"),
    ("pneumozoo.plot", "plot"),
    ("pneumozoo.pretrained", "pretrained"),
    ("pneumozoo.zoo.card", "zoo.card: model cards"),
    ("pneumozoo.pretrained.release", "pretrained.release"),
    ("pneumozoo.hub", "hub"),
    ("pneumozoo.export", "export"),
    ("pneumozoo.cli", "cli"),
]

API_NAV_TITLE = "API reference"
ZOO_NAV_TITLE = "Model zoo"


# --------------------------------------------------------------------------------------------
# What exists
# --------------------------------------------------------------------------------------------
def module_exists(module: str) -> bool:
    """True if ``module`` (``pneumozoo.x.y``) has a source file under ``src/``."""
    base = SRC.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


_SNAPSHOT: list[tuple[str, str]] | None = None


def api_modules() -> list[tuple[str, str]]:
    """The entries of :data:`API_MODULES` whose module exists.

    During a build, the list taken when the build started (``on_config``), so the nav, the
    pages and the links agree even if a module appears or disappears meanwhile.
    """
    if _SNAPSHOT is not None:
        return list(_SNAPSHOT)
    return [(mod, title) for mod, title in API_MODULES if module_exists(mod)]


def api_page(module: str) -> str:
    """Docs path of a module's API page."""
    return f"api/{module}.md"


def bundled_cards() -> list[tuple[str, Path]]:
    """``(model name, README.md)`` of every bundled model folder that has a model card."""
    out = []
    if BUNDLED.is_dir():
        for folder in sorted(BUNDLED.iterdir()):
            if (folder / "pneumozoo.json").is_file() and (folder / "README.md").is_file():
                out.append((folder.name, folder / "README.md"))
    return out


def card_page(name: str) -> str:
    """Docs path of a bundled model's card."""
    return f"models/{name}.md"


def _import_src() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if str(SRC) not in sys.path:
        sys.path.insert(0, str(SRC))


def _rel(from_page: str, target: str) -> str:
    """Relative link from one docs page to another docs file (both docs-root relative)."""
    return os.path.relpath(target, os.path.dirname(from_page) or ".").replace(os.sep, "/")


def _cell(text: Any) -> str:
    """Text made safe for one markdown table cell (one line, no pipes, no raw HTML)."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text.replace("<", "&lt;").replace(">", "&gt;")


# --------------------------------------------------------------------------------------------
# Generated markdown
# --------------------------------------------------------------------------------------------
def architectures_table(infos: Sequence[Any] | None = None) -> str:
    """Markdown table of every registered architecture (``pneumozoo.list_models()``)."""
    if infos is None:
        _import_src()
        from pneumozoo.models import list_models

        infos = list_models()
    rows = [
        "| name | family | default input | normalisation | `weights=\"imagenet\"` | description |",
        "|---|---|---|---|---|---|",
    ]
    for m in infos:
        rows.append(
            f"| `{m.name}` | {m.family} | {m.input_size} px | `{m.normalization}` | "
            f"{'yes' if m.pretrainable else 'no'} | {_cell(m.description)} |"
        )
    return "\n".join(rows)


def presets_table(page: str, presets: Sequence[Any] | None = None, previews: bool = True) -> str:
    """Markdown table of the augmentation presets, with a preview strip per preset."""
    if presets is None:
        _import_src()
        from pneumozoo.augment import list_presets, preset_info

        presets = [preset_info(n) for n in list_presets()]
    rows = ["| name | source | what it does |", "|---|---|---|"]
    for p in presets:
        rows.append(f"| `{p.name}` | {_cell(p.source)} | {_cell(p.description)} |")
    if not previews:
        return "\n".join(rows)
    images = preset_previews()
    if images:
        rows += [
            "",
            f"Each strip shows one test film ({PREVIEW_SIZE} px) unchanged, then "
            f"{PREVIEW_SAMPLES} draws of the preset with `seed=0` (generated when these "
            "docs were built).",
            "",
        ]
        for p in presets:
            if p.name in images:
                target = _rel(page, preview_path(p.name))
                rows += [f"**`{p.name}`**", "", f"![{p.name} preview]({target})", ""]
    return "\n".join(rows)


def preview_path(name: str) -> str:
    """Docs path of a preset's preview image."""
    return f"img/augment/{name}.png"


@functools.lru_cache(maxsize=1)
def preset_previews() -> dict[str, bytes]:
    """PNG bytes per preset: the original film, then augmented draws, side by side.

    Returns an empty dict (and the page shows the table only) if the previews cannot be made.
    """
    try:
        _import_src()
        import numpy as np
        from PIL import Image

        from pneumozoo.augment import get_preset, list_presets
        from pneumozoo.data import decode_resize

        film = decode_resize(PREVIEW_IMAGE, PREVIEW_SIZE)
        batch = np.repeat(film[None].astype("float32"), PREVIEW_SAMPLES, axis=0)
        gap = 4
        out: dict[str, bytes] = {}
        for name in list_presets():
            augmented = np.asarray(get_preset(name, seed=0)(batch, training=True))
            tiles = [film] + [np.clip(np.rint(a), 0, 255).astype("uint8") for a in augmented]
            width = len(tiles) * PREVIEW_SIZE + (len(tiles) - 1) * gap
            strip = Image.new("RGB", (width, PREVIEW_SIZE), (255, 255, 255))
            for i, tile in enumerate(tiles):
                strip.paste(Image.fromarray(tile), (i * (PREVIEW_SIZE + gap), 0))
            buf = io.BytesIO()
            strip.save(buf, format="PNG", optimize=True)
            out[name] = buf.getvalue()
        return out
    except Exception as e:  # previews are a nicety; the table must still build
        log.warning("augmentation previews not generated: %s: %s", type(e).__name__, e)
        return {}


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, (int, float)) and value == value:  # not NaN
        return f"{value:.{digits}f}"
    return "-"


def _ci(interval: Any) -> tuple[float, float] | None:
    """A ``[low, high]`` pair from the shapes a bootstrap CI may be stored in."""
    if isinstance(interval, (list, tuple)) and len(interval) >= 2:
        lo, hi = interval[0], interval[1]
    elif isinstance(interval, dict):
        lo = next((interval[k] for k in ("low", "lo", "lower") if k in interval), None)
        hi = next((interval[k] for k in ("high", "hi", "upper") if k in interval), None)
    else:
        return None
    if isinstance(lo, (int, float)) and isinstance(hi, (int, float)):
        return float(lo), float(hi)
    return None


def metric_cell(test: dict[str, Any], key: str) -> str:
    """``0.912 [0.889, 0.934]``: a test metric with its 95% CI when the config has one."""
    value = test.get(key)
    if not isinstance(value, (int, float)):
        return "-"
    cis = test.get("confidence_intervals") or {}
    ci = _ci(cis.get(key)) if isinstance(cis, dict) else None
    text = _fmt(value)
    if ci is not None:
        text += f" [{_fmt(ci[0])}, {_fmt(ci[1])}]"
    return text


def _params(n: Any) -> str:
    if not isinstance(n, int) or n <= 0:
        return "-"
    if n >= 1_000_000:
        return f"{n / 1e6:.2f} M"
    return f"{n / 1e3:.0f} k" if n >= 1000 else str(n)


def benchmark_rates() -> dict[str, str]:
    """Model name -> images/s cell from ``benchmarks/results/inference.json``, if it exists.

    Reads the rows ``benchmarks/bench_inference.py`` writes under ``arrays``: the plain Keras
    variant on in-memory films, at batch 32 (or the largest batch measured). A ``--quick``
    smoke run is ignored.
    """
    if not BENCHMARK_FILE.is_file():
        return {}
    try:
        data = json.loads(BENCHMARK_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        log.warning("%s unreadable: %s", BENCHMARK_FILE, e)
        return {}
    if not isinstance(data, dict) or data.get("quick") or not isinstance(data.get("arrays"), list):
        return {}
    rows = [r for r in data["arrays"] if isinstance(r, dict) and r.get("variant", "keras") == "keras"
            and isinstance(r.get("images_per_s"), (int, float)) and isinstance(r.get("model"), str)]
    if not rows:
        return {}
    batches = {r.get("batch") for r in rows}
    batch = 32 if 32 in batches else max(b for b in batches if isinstance(b, int))
    widest = max(int(r.get("input_px") or 0) for r in rows)
    out: dict[str, str] = {}
    for r in rows:
        if r.get("batch") == batch and int(r.get("input_px") or 0) == widest:
            out.setdefault(r["model"], f"{r['images_per_s']:.0f}")
    out["__batch__"] = str(batch)
    return out


PEER_FILE = ROOT / "benchmarks" / "results" / "peer-zoo.json"


def peer_ratios() -> dict[str, str]:
    """Model name -> "N.NNx" images/s relative to the published peer, from
    ``benchmarks/results/peer-zoo.json`` (``bench_peer.py --name peer-zoo``; quick runs ignored)."""
    try:
        data = json.loads(PEER_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("quick"):
        return {}
    return {r["model"]: f"{r['ratio_vs_peer']:.2f}x" for r in data.get("rows", [])[1:]
            if isinstance(r, dict) and isinstance(r.get("ratio_vs_peer"), (int, float))}


NO_MODELS = "No pretrained models are bundled in this build."


def zoo_table(page: str = "zoo.md", configs: Sequence[Any] | None = None,
              rates: dict[str, str] | None = None, cards: Sequence[str] | None = None,
              plain: bool = False, peer: dict[str, str] | None = None) -> str:
    """Markdown table of the pretrained registry (``pneumozoo.list_pretrained()``).

    ``plain`` drops what only the docs site can show (admonitions, links to card pages), for
    the README (see ``docs/zoo_table.py``).
    """
    if configs is None:
        _import_src()
        from pneumozoo.pretrained import list_pretrained

        configs = list_pretrained()
    if not configs:
        if plain:
            return f"_{NO_MODELS}_"
        return (f"!!! note\n    {NO_MODELS} Train one with a recipe (see "
                f"[Reproducing the numbers]({_rel(page, 'reproducing.md')})) or load a model "
                "folder or `hf://` repo with `load_pretrained`.")
    if rates is None:
        rates = benchmark_rates()
    if cards is None:
        cards = [] if plain else [name for name, _ in bundled_cards()]
    header = ["model", "architecture", "task", "input", "params", "threshold",
              "accuracy", "sensitivity", "specificity", "AUC", "all-class accuracy"]
    rates = dict(rates)
    batch_note = rates.pop("__batch__", None)
    if rates:
        header.append(f"images/s (batch {batch_note})" if batch_note else "images/s")
    if peer is None:
        peer = peer_ratios()
    if peer:
        header.append("speed vs peer")
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for c in configs:
        test = c.metrics.get("test", {}) if isinstance(c.metrics, dict) else {}
        name = f"[`{c.name}`]({_rel(page, card_page(c.name))})" if c.name in cards else f"`{c.name}`"
        cells = [name, f"`{c.architecture}`", c.task, f"{c.input_size} px", _params(c.params),
                 _fmt(c.threshold), *(metric_cell(test, k) for k in
                                      ("accuracy", "sensitivity", "specificity", "auc")),
                 # arg-max over every class: normal/bacteria/virus for 3-class models
                 _fmt(test["class_accuracy"]) if c.task == "3class" and "class_accuracy" in test
                 else "-"]
        if rates:
            cells.append(rates.get(c.name, "-"))
        if peer:
            cells.append(peer.get(c.name, "-"))
        rows.append("| " + " | ".join(_cell(x) for x in cells) + " |")
    n_test = {c.metrics.get("test", {}).get("n") for c in configs if isinstance(c.metrics, dict)}
    n_text = ", ".join(str(n) for n in sorted(x for x in n_test if isinstance(x, int)))
    notes = [
        "",
        "Metrics are measured once on the official Kermany **test** split"
        + (f" (n = {n_text})" if n_text else "")
        + " at each model's threshold, which was chosen on a patient-wise validation split "
        "carved from `train`; brackets are 95% bootstrap confidence intervals (resampled by "
        "patient). For 3-class models the binary metrics score normal vs pneumonia "
        "(bacteria + virus). Everything here is read from each model's `pneumozoo.json` "
        + ("(`python docs/zoo_table.py --readme` regenerates this table)." if plain
           else "when the docs are built."),
    ]
    if rates:
        notes.append("")
        notes.append("images/s: inference throughput on the CPU of the benchmark run, films "
                     "already in memory, from `benchmarks/results/inference.json` "
                     "(`python benchmarks/bench_inference.py`).")
    if peer:
        notes += ["", "speed vs peer: images/s relative to the published `pneumonia-model-package"
                  "==0.1.0` model (5-block separable CNN, 180 px) in the same process, same 624 "
                  "test films in memory, batch 32, alternating rounds, every zoo model in the same "
                  "rounds, from `benchmarks/results/peer-zoo.json` (`python "
                  "benchmarks/bench_peer.py --name peer-zoo --candidates ...`)."]
    return "\n".join(rows + notes + domain_table(configs))


def _rate(value: Any) -> str:
    return "-" if not isinstance(value, (int, float)) else f"{value:.1%}"


def domain_table(configs: Sequence[Any]) -> list[str]:
    """Lines of the "outside the training domain" table: each model's guard flag rates, its
    metrics on the adult NIH films, and the adult model's cross-validated site metrics."""
    rows = ["", "**Outside the training domain.** Adult NIH films (`nih-adult-dev`, n = 572) and "
            "the share of films each model's domain guard flags (targets: at least 90% of the "
            "adult films, at most 10% of the Kermany test films, every non-X-ray image):", "",
            "| model | NIH AUC | NIH accuracy | NIH specificity | flagged: Kermany test | "
            "flagged: NIH adult | flagged: non-X-ray (min) |", "|---|---|---|---|---|---|---|"]
    for c in configs:
        metrics = c.metrics if isinstance(c.metrics, dict) else {}
        guard = (metrics.get("guard") or {}).get("flagged") or {}
        non_xray = [v for k, v in guard.items() if k.startswith("non_xray")]
        if "site" in metrics:  # the adult model: cross-validated on the NIH films themselves
            site = metrics["site"]
            cells = [f"`{c.name}`", metric_cell(site, "auc") + " (CV)",
                     metric_cell(site, "accuracy") + " (CV)", metric_cell(site, "specificity") + " (CV)",
                     "-", _rate(site.get("out_of_domain_fraction")) + " (CV)", "-"]
        else:
            nih = (metrics.get("external") or {}).get("nih-adult-dev") or {}
            cells = [f"`{c.name}`", metric_cell(nih, "auc"), metric_cell(nih, "accuracy"),
                     metric_cell(nih, "specificity"), _rate(guard.get("kermany_test")),
                     _rate(guard.get("nih_adult_dev")), _rate(min(non_xray) if non_xray else None)]
        rows.append("| " + " | ".join(_cell(x) for x in cells) + " |")
    rows += ["", "Pediatric models at their shipped threshold, with patient-bootstrap 95% CIs: near "
             "chance on adults, which is what the guard is for. `xraynet-adult` was made with "
             "`pneumozoo adapt` on those same films (`recipes/adult.py`): its numbers are "
             "out-of-fold (5 patient-wise folds), its guard's flag rate is of held-out adult films. "
             "NIH labels were mined from reports by NLP and the classes differ in view (PA/AP). "
             "`python recipes/guard_and_external.py` and `python benchmarks/bench_guard.py` "
             "measure all of it."]
    return rows


def _strip_front_matter(text: str) -> str:
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end != -1:
            return text[end + 4:].lstrip("\n")
    return text


_MD_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def unlink_relative(text: str) -> str:
    """Turn links to files outside the docs (``[x](src/a.py)``) into plain text.

    Absolute URLs and in-page anchors are kept; relative images are dropped.
    """

    def repl(m: re.Match[str]) -> str:
        bang, label, target = m.group(1), m.group(2), m.group(3)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("#"):
            return m.group(0)
        return "" if bang else label

    return _MD_LINK.sub(repl, text)


def card_markdown(path: Path) -> str:
    """A bundled model card as a docs page (Hub front matter and local links removed)."""
    return unlink_relative(_strip_front_matter(path.read_text(encoding="utf-8")))


def changelog_markdown() -> str:
    """``CHANGELOG.md`` as a docs page body (or a note when there is none yet)."""
    if not CHANGELOG.is_file():
        return "# Changelog\n\nNo changelog has been written yet."
    text = unlink_relative(CHANGELOG.read_text(encoding="utf-8"))
    if not text.lstrip().startswith("# "):
        text = "# Changelog\n\n" + text
    return text


def cli_reference() -> str:
    """Markdown reference of every ``pneumozoo`` subcommand, from the argparse parser."""
    _import_src()
    os.environ["COLUMNS"] = "100"  # argparse wraps help text at the terminal width
    from pneumozoo.cli import build_parser

    parser = build_parser()
    out = [
        "```text",
        parser.format_help().rstrip(),
        "```",
    ]
    for name, sub, help_text in _subparsers(parser):
        out += _render_parser(sub, f"pneumozoo {name}", 3, help_text)
    return "\n".join(out)


def _subparsers(parser: Any) -> list[tuple[str, Any, str]]:
    """``(name, parser, help)`` of every subcommand of ``parser``."""
    import argparse

    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            out.extend((name, sub, helps.get(name, "")) for name, sub in action.choices.items())
    return out


def _render_parser(parser: Any, title: str, level: int, help_text: str = "") -> list[str]:
    import argparse

    out = ["", f"{'#' * level} `{title}`", ""]
    about = parser.description or help_text
    if about:
        out += [_cell(about[0].upper() + about[1:].rstrip(".") + "."), ""]
    out += ["```text", parser.format_usage().strip(), "```", ""]
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        flags = (", ".join(f"`{o}`" for o in action.option_strings)
                 or f"`{action.metavar or action.dest}`")
        if not action.option_strings:
            kind = "positional" + (", one or more" if action.nargs == "+" else "")
        elif action.nargs == 0:
            kind = "flag"
        else:
            metavar = action.metavar or action.dest.upper()
            kind = f"`{metavar}`"
            if action.type is not None and getattr(action.type, "__name__", ""):
                kind += f" ({action.type.__name__})"
        if action.choices:
            kind += ": " + ", ".join(f"`{c}`" for c in action.choices)
        default = ""
        if action.required and action.option_strings:
            default = "required"
        elif action.default not in (None, False, argparse.SUPPRESS) and action.nargs != 0:
            default = f"`{action.default}`"
        rows.append(f"| {flags} | {kind} | {default} | {_cell(action.help or '')} |")
    if rows:
        out += ["| argument | value | default | description |", "|---|---|---|---|", *rows, ""]
    for name, sub, sub_help in _subparsers(parser):
        out += _render_parser(sub, f"{title} {name}", level + 1, sub_help)
    return out


def exports_table(page: str = "api/index.md") -> str:
    """Table of the top-level ``pneumozoo`` names, each linked to where it is documented."""
    _import_src()
    import pneumozoo

    documented = {mod for mod, _ in api_modules()}
    rows = ["| name | defined in |", "|---|---|"]
    for name, module in sorted(pneumozoo._EXPORTS.items(), key=lambda kv: (kv[1], kv[0].lower())):
        target = module if name == "augment" else f"{module}.{name}"
        if module in documented:
            link = f"[`pneumozoo.{name}`][{target}]"
            where = f"[`{module}`]({_rel(page, api_page(module))})"
        else:
            link = f"`pneumozoo.{name}`"
            where = f"`{module}` (not part of this build)"
        rows.append(f"| {link} | {where} |")
    return "\n".join(rows)


def api_modules_list(page: str = "api/index.md") -> str:
    """Bullet list of the API pages of this build."""
    lines = []
    for mod, _ in api_modules():
        first = _module_summary(mod)
        lines.append(f"- [`{mod}`]({_rel(page, api_page(mod))})" + (f": {first}" if first else ""))
    return "\n".join(lines)


def _module_summary(module: str) -> str:
    """First line of a module's docstring, read from the source (no import)."""
    import ast

    base = SRC.joinpath(*module.split("."))
    path = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    except (OSError, SyntaxError, ValueError):
        return ""
    return _cell(doc.strip().splitlines()[0]) if doc.strip() else ""


def examples_list(page: str = "examples.md") -> str:
    """One section per ``examples/*.py``: its command and its module docstring."""
    import ast

    out = []
    for path in sorted(EXAMPLES.glob("*.py")):
        try:
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        except SyntaxError:
            doc = ""
        title, _, body = doc.strip().partition("\n")
        out += [f"## `{path.name}`", "", title.strip(), "", "```bash",
                f"python examples/{path.name}", "```", ""]
        if body.strip():
            out += [body.strip(), ""]
    return "\n".join(out) if out else "No example scripts in this checkout."


def _module_file(module: str) -> Path:
    base = SRC.joinpath(*module.split("."))
    return base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"


def module_section(page: str, args: str) -> str:
    """``<!-- gen:module pneumozoo.x Title -->``: a section on an optional module.

    Empty when the module does not exist in this checkout; otherwise a heading, the first
    paragraph of the module docstring and one bullet per public function or class (with the
    first line of its docstring), each linked to the API reference.
    """
    import ast

    module, _, title = args.strip().partition(" ")
    if not module_exists(module):
        return ""
    tree = ast.parse(_module_file(module).read_text(encoding="utf-8"))
    doc = (ast.get_docstring(tree) or "").strip().split("\n\n")[0]
    exported: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__"
                                                for t in node.targets):
            exported = [str(v) for v in ast.literal_eval(node.value)]
    lines = [f"## {title or module}", "", " ".join(doc.split()), ""]
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in exported:
            first = (ast.get_docstring(node) or "").strip().split("\n")[0]
            lines.append(f"- [`{node.name}`][{module}.{node.name}]: {_cell(first)}")
    lines += ["", f"See [`{module}`]({_rel(page, api_page(module))}) in the API reference."]
    return "\n".join(lines)


def recipes() -> list[dict[str, Any]]:
    """Every zoo recipe (``pneumozoo.recipe.ZOO_RECIPES``) as a dict, with the script that
    runs it (``recipes/<name>.py``) when there is one."""
    _import_src()
    from pneumozoo.pretrained import list_recipes

    found = []
    for recipe in list_recipes():
        values = recipe.to_dict()
        script = ROOT / "recipes" / (recipe.name.replace("-", "_") + ".py")
        values["script"] = f"recipes/{script.name}" if script.is_file() else ""
        found.append(values)
    return found


def recipes_table(page: str = "reproducing.md") -> str:
    """Markdown table of the zoo's training recipes (``pneumozoo.recipe.ZOO_RECIPES``)."""
    rows = ["| model | script | architecture | task | input | epochs | batch | optimizer | "
            "schedule | augmentation | class balance | starts from |",
            "|" + "---|" * 12]
    for r in recipes():
        balance = "oversampling" if r.get("oversample") else (
            "balanced weights" if r.get("class_weight") else "none")
        warm = r.get("warmup_epochs") or 0
        schedule = str(r.get("schedule", "")) + (f" ({warm} warm-up)" if warm else "")
        cells = [f"`{r.get('name', '')}`", f"`{r['script']}`" if r["script"] else "-",
                 f"`{r.get('arch', '')}`",
                 r.get("task", ""), f"{r.get('input_size', '')} px", r.get("epochs", ""),
                 r.get("batch_size", ""), f"{r.get('optimizer', '')} {r.get('learning_rate', '')}",
                 schedule, f"`{r.get('augment', '')}`", balance,
                 f"`{r['init_from']}`" if r.get("init_from") else "-"]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(rows) if len(rows) > 2 else "No recipes in this checkout."


def benchmarks_section(page: str = "reproducing.md") -> str:
    """The benchmarks: their README, or their scripts and docstrings; empty without any."""
    import ast

    folder = ROOT / "benchmarks"
    scripts = sorted(folder.glob("*.py")) if folder.is_dir() else []
    readme = folder / "README.md"
    if not scripts and not readme.is_file():
        return ""
    lines = ["## Benchmarks", ""]
    if readme.is_file():
        text = unlink_relative(readme.read_text(encoding="utf-8"))
        body = [ln for ln in text.splitlines() if not ln.startswith("# ")]
        lines += [re.sub(r"^(#+) ", r"#\1 ", ln) for ln in body] + [""]
    for path in [] if readme.is_file() else scripts:  # the README lists them itself
        if path.name.startswith("_"):
            continue
        try:
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        except SyntaxError:
            doc = ""
        first = doc.strip().split("\n\n")[0]
        lines += [f"- `python benchmarks/{path.name}`: {' '.join(first.split())}"]
    if BENCHMARK_FILE.is_file():
        lines += ["", "The inference throughput of the [zoo table](zoo.md) is read from "
                  "`benchmarks/results/inference.json`."]
    return "\n".join(lines)


def seed_spread_section(page: str = "reproducing.md") -> str:
    """The threshold-rule study of ``benchmarks/bench_seeds.py`` (``results/seeds-*.json``)."""
    files = sorted((ROOT / "benchmarks" / "results").glob("seeds-*.json"))
    if not files:
        return "No seed study has been run in this checkout (`benchmarks/bench_seeds.py`)."
    lines = ["| model | seeds | rule | SD of logit(threshold) | validation sensitivity SD | "
             "validation specificity SD | test sensitivity (mean ± SD) | test specificity "
             "(mean ± SD) | test accuracy range |", "|" + "---|" * 9]
    chosen = []
    for path in files:
        doc = json.loads(path.read_text(encoding="utf-8"))
        seeds = ", ".join(str(x) for x in doc.get("seeds", []))
        for rule, entry in doc.get("rules", {}).items():
            s = entry["summary"]
            mark = " (chosen)" if rule == doc.get("chosen") else ""
            lines.append(
                f"| `{doc['model']}` | {seeds} | `{rule}`{mark} | {_fmt(s['threshold_logit_sd'], 2)} "
                f"| {_fmt(s['val_sensitivity']['sd'])} | {_fmt(s['val_specificity']['sd'])} "
                f"| {_fmt(s['sensitivity']['mean'])} ± {_fmt(s['sensitivity']['sd'])} "
                f"| {_fmt(s['specificity']['mean'])} ± {_fmt(s['specificity']['sd'])} "
                f"| {_fmt(s['accuracy']['min'])} – {_fmt(s['accuracy']['max'])} |")
        chosen.append(f"`{doc['model']}`: `{doc.get('chosen')}`")
    lines += ["", f"Chosen on validation only ({'; '.join(chosen)}); criterion: "
              f"{json.loads(files[0].read_text(encoding='utf-8')).get('criterion', '')}."]
    return "\n".join(lines)


def preset_previews_section(page: str) -> str:
    """One preview strip per augmentation preset (images made at build time)."""
    images = preset_previews()
    if not images:
        return ""
    _import_src()
    from pneumozoo.augment import list_presets

    rows = [f"Each strip shows one test film ({PREVIEW_SIZE} px) unchanged, then "
            f"{PREVIEW_SAMPLES} draws of the preset with `seed=0` (generated when these "
            "docs were built).", ""]
    for name in list_presets():
        if name in images:
            rows += [f"**`{name}`**", "", f"![{name} preview]({_rel(page, preview_path(name))})", ""]
    return "\n".join(rows).rstrip()


def mistakes_section(page: str = "guide/mistakes.md") -> str:
    """The common mistakes of ``docs/mistakes.py``, each run, with the message it gives."""
    import importlib.util

    _import_src()
    spec = importlib.util.spec_from_file_location("pneumozoo_docs_mistakes",
                                                  Path(__file__).with_name("mistakes.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return str(module.markdown())


MARKERS: dict[str, Callable[..., str]] = {
    "architectures": lambda page: architectures_table(),
    "module": module_section,
    "recipes": lambda page: recipes_table(page),
    "benchmarks": lambda page: benchmarks_section(page),
    "presets": lambda page: presets_table(page, previews=False),
    "preset-previews": preset_previews_section,
    "zoo": lambda page: zoo_table(page),
    "cli": lambda page: cli_reference(),
    "exports": lambda page: exports_table(page),
    "api-modules": lambda page: api_modules_list(page),
    "examples": lambda page: examples_list(page),
    "changelog": lambda page: changelog_markdown(),
    "mistakes": mistakes_section,
    "seed-spread": lambda page: seed_spread_section(page),
}
#: Sections generated at build time only, never written into the Markdown sources: the
#: preview strips (their PNGs exist only in the built site) and the changelog (a copy of
#: ``CHANGELOG.md``, which is readable as it is). Every other section is checked in between
#: ``<!-- gen:NAME -->`` and ``<!-- /gen:NAME -->`` and refreshed by
#: ``python docs/hooks.py --write``.
BUILD_ONLY = frozenset({"preset-previews", "changelog"})
WRITE_COMMAND = "python docs/hooks.py --write"

_MARKER = re.compile(r"^<!-- gen:([a-z-]+)(?: ([^>]*?))? -->$", re.MULTILINE)
_BLOCK = re.compile(r"^<!-- gen:(?P<name>[a-z-]+)(?: (?P<args>[^>]*?))? -->\n"
                    r"(?P<body>.*?)^<!-- /gen:(?P=name) -->$", re.MULTILINE | re.DOTALL)


def _generate(name: str, args: str | None, page: str) -> str:
    if name not in MARKERS:
        raise ValueError(f"{page}: unknown generated-content marker {name!r}; "
                         f"valid: {', '.join(sorted(MARKERS))}")
    return (MARKERS[name](page, args) if args else MARKERS[name](page)).strip("\n")


def _pieces(markdown: str) -> list[tuple[str, re.Match[str] | None]]:
    """The page cut into plain text and checked-in ``gen:`` blocks, in order."""
    out: list[tuple[str, re.Match[str] | None]] = []
    pos = 0
    for m in _BLOCK.finditer(markdown):
        out.append((markdown[pos:m.start()], None))
        out.append((m.group(0), m))
        pos = m.end()
    out.append((markdown[pos:], None))
    return out


def render_markers(markdown: str, page: str) -> str:
    """The page as the site shows it: every ``gen:`` block and marker line replaced by freshly
    generated markdown (a stale checked-in block is regenerated, never shown)."""

    def line(m: re.Match[str]) -> str:
        return _generate(m.group(1), m.group(2), page)

    parts = []
    for text, block in _pieces(markdown):
        if block is None:
            parts.append(_MARKER.sub(line, text))
        else:
            parts.append(_generate(block["name"], block["args"], page))
    return "".join(parts)


def written_markers(markdown: str, page: str) -> str:
    """The page as it should be checked in: every ``gen:`` section (but :data:`BUILD_ONLY`)
    between its markers, freshly generated. A lone marker line becomes such a block."""

    def block(name: str, args: str | None) -> str:
        opening = f"<!-- gen:{name}{' ' + args if args else ''} -->"
        body = _generate(name, args, page)
        return f"{opening}\n\n{body}\n\n<!-- /gen:{name} -->" if body else (
            f"{opening}\n<!-- /gen:{name} -->")

    def line(m: re.Match[str]) -> str:
        return m.group(0) if m.group(1) in BUILD_ONLY else block(m.group(1), m.group(2))

    parts = []
    for text, m in _pieces(markdown):
        parts.append(_MARKER.sub(line, text) if m is None else block(m["name"], m["args"]))
    return "".join(parts)


def generated_pages() -> list[Path]:
    """The Markdown sources under ``docs/`` that ask for generated content."""
    return [p for p in sorted(DOCS.rglob("*.md"))
            if _MARKER.search(p.read_text(encoding="utf-8"))]


def stale_pages(write: bool = False) -> list[str]:
    """Docs pages whose checked-in ``gen:`` sections differ from what the code generates now
    (rewritten in place when ``write``)."""
    stale = []
    for path in generated_pages():
        page = path.relative_to(DOCS).as_posix()
        text = path.read_text(encoding="utf-8")
        fresh = written_markers(text, page)
        if fresh != text:
            stale.append(page)
            if write:
                path.write_text(fresh, encoding="utf-8")
    return stale


# --------------------------------------------------------------------------------------------
# MkDocs events
# --------------------------------------------------------------------------------------------
def _nav_section(nav: list[Any], title: str) -> list[Any] | None:
    for item in nav:
        if isinstance(item, dict) and title in item and isinstance(item[title], list):
            return item[title]  # type: ignore[no-any-return]
    return None


def on_config(config: Any) -> Any:
    """Add the API pages of existing modules and the bundled model cards to the nav."""
    global _SNAPSHOT
    _SNAPSHOT = None
    _SNAPSHOT = api_modules()
    nav = config.get("nav") or []
    api = _nav_section(nav, API_NAV_TITLE)
    if api is not None:
        known = {next(iter(i.values())) for i in api if isinstance(i, dict)}
        api.extend({title: api_page(mod)} for mod, title in api_modules()
                   if api_page(mod) not in known)
    zoo = _nav_section(nav, ZOO_NAV_TITLE)
    if zoo is not None:
        known = {next(iter(i.values())) for i in zoo if isinstance(i, dict)}
        zoo.extend({name: card_page(name)} for name, _ in bundled_cards()
                   if card_page(name) not in known)
    return config


def on_files(files: Any, config: Any) -> Any:
    """Add the generated pages and images to the site."""
    from mkdocs.structure.files import File

    def add(path: str, content: str | bytes) -> None:
        if files.get_file_from_path(path) is None:
            files.append(File.generated(config, path, content=content))

    for mod, _ in api_modules():
        add(api_page(mod), f"::: {mod}\n    options:\n      heading_level: 1\n")
    for name, readme in bundled_cards():
        add(card_page(name), card_markdown(readme))
    for name, png in preset_previews().items():
        add(preview_path(name), png)
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Fill the ``<!-- gen:NAME -->`` markers of a page."""
    return render_markers(markdown, page.file.src_uri)


def main(argv: Sequence[str]) -> int:
    """``python docs/hooks.py --write`` refreshes the checked-in ``gen:`` sections of the
    Markdown sources; ``--check`` lists the stale pages (exit status 1 if any)."""
    write = "--write" in argv
    if not write and "--check" not in argv:
        print("usage: python docs/hooks.py --write | --check", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    stale = stale_pages(write=write)
    for page in stale:
        print(f"{'rewrote' if write else 'stale'}: docs/{page}")
    if not stale:
        print("every generated section is up to date")
    return 1 if stale and not write else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The ``pneumozoo`` command: a thin layer over the public functions.

Exit status: 0 when everything succeeded (or the reader of a pipe stopped early); 1 when some
inputs could not be read (the others are still processed and reported); 2 for a usage error
or a fatal error (a bad argument, unknown model, missing input, failed download), printed as
one line without a traceback.

Every argument is checked when the command line is parsed. Commands that need no model
(``--help``, ``--version``, ``models``, ``data``) import no TensorFlow, and TensorFlow's
start-up messages are hidden unless ``--verbose`` is given. JSON output is strict (no NaN or
Infinity: non-finite numbers are ``null``) and ASCII, so file names come back exactly.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from pneumozoo._version import __version__
from pneumozoo.adapt import ADAPT_METHODS, adapt, adapt_unlabelled
from pneumozoo.data.download import KERMANY_URL, download_kermany
from pneumozoo.errors import DataError, PneumozooError, UnknownNameError
from pneumozoo.explain import CAM_METHODS, save_explanation, save_feature_maps
from pneumozoo.export import EXPORT_FORMATS, export_model, metadata_path
from pneumozoo.guard import OUT_OF_DOMAIN_POLICIES
from pneumozoo.hub import download_model, push_to_hub, split_repo_ref
from pneumozoo.io import describe_source, expand_inputs, read_xray
from pneumozoo.plot import require_matplotlib
from pneumozoo.pretrained import load_pretrained
from pneumozoo.recipe import BALANCES, SCHEDULES, STRATEGY_NAMES, TASKS, THRESHOLD_RULES, Recipe
from pneumozoo.screening import SUMMARY_FILE, screen
from pneumozoo.utils import json_safe, quiet_tensorflow
from pneumozoo.zoo import list_models, list_pretrained

__all__ = ["main"]

EXIT_OK, EXIT_PARTIAL, EXIT_ERROR = 0, 1, 2

#: Width of the path column of the ``predict`` table; longer paths are shortened on the left.
PATH_WIDTH = 60

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: list[tuple[str, str, Callable[[argparse.ArgumentParser], None], Handler]] = []


def command(name: str, help_text: str, configure: Callable[[argparse.ArgumentParser], None]) -> Callable[[Handler], Handler]:
    """Register a subcommand (its argument setup and its handler)."""

    def deco(fn: Handler) -> Handler:
        _COMMANDS.append((name, help_text, configure, fn))
        return fn

    return deco


def _err(message: str) -> None:
    print(f"pneumozoo: error: {message}", file=sys.stderr)


# --- argument types: every value is checked when the command line is parsed ----------------
def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = "int"
    return parse


def _float_in(low: float, high: float, *, low_open: bool = False,
              high_open: bool = False) -> Callable[[str], float]:
    lo, hi = "(" if low_open else "[", ")" if high_open else "]"
    bounds = f"{lo}{low:g}, {high:g}{hi}" if math.isfinite(high) else f"{lo}{low:g}, inf)"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if value < low or value > high or (low_open and value == low) or (
                high_open and value == high):
            raise argparse.ArgumentTypeError(f"must be in {bounds}, got {text}")
        return value

    parse.__name__ = "float"
    return parse


_batch_size = _int_at_least(1)
_probability = _float_in(0.0, 1.0)


def _out_folder(text: str) -> str:
    """An output folder that exists or can be created (checked without creating anything)."""
    if not text:
        raise argparse.ArgumentTypeError("expected a folder, got an empty string")
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    parent = path
    while not parent.exists():  # the nearest existing ancestor is where the folder gets made
        if parent.parent == parent:
            break
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text} cannot be created: {parent} is a file")
    if parent.is_dir() and not os.access(parent, os.W_OK | os.X_OK):
        where = "is read-only" if parent == path else f"cannot be created in {parent} (read-only)"
        raise argparse.ArgumentTypeError(f"{text} {where}")
    return text


def _model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="registry name (see 'pneumozoo models'), hf://owner/repo[@rev], or a "
                        "model folder (default: the bundled default model)")
    p.add_argument("--revision", default=None, help="Hub revision when --model is hf://")


def _load(args: argparse.Namespace) -> Any:
    try:
        return load_pretrained(args.model, revision=getattr(args, "revision", None))
    except UnknownNameError:
        if args.model in {m.name for m in list_models()}:
            names = ", ".join(c.name for c in list_pretrained())
            raise PneumozooError(
                f"{args.model!r} is an architecture, not a pretrained model; pass a pretrained "
                f"model (see 'pneumozoo models': {names}) or train one with "
                f"'pneumozoo train DATA --arch {args.model} --out DIR'") from None
        raise


# --- output ------------------------------------------------------------------------------
def _dumps(value: Any, indent: int | None = None) -> str:
    """Strict, ASCII JSON: no NaN/Infinity (null instead); any character survives escaped."""
    return json.dumps(json_safe(value), indent=indent, allow_nan=False, ensure_ascii=True)


def _shorten(text: str, width: int = PATH_WIDTH) -> str:
    """``text`` padded to ``width``, or its end after ``...`` when it is longer.

    Characters stdout cannot encode are escaped first (``\\xfc``), so the columns line up.
    """
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    with suppress(LookupError, UnicodeError):
        text = text.encode(encoding, "backslashreplace").decode(encoding)
    return f"{text:<{width}}" if len(text) <= width else "..." + text[-(width - 3):]


def _robust_stdout() -> None:
    """Never crash on characters the terminal's encoding lacks (e.g. PYTHONIOENCODING=ascii)."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        with suppress(ValueError, OSError):  # a replaced or closed stream: leave it alone
            reconfigure(errors="backslashreplace")


# --- predict -----------------------------------------------------------------------------
def _predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", help="image files (JPEG, PNG, DICOM...) or folders (walked recursively)")
    _model_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--threshold", type=_probability, default=None,
                   help="decision threshold on P(pneumonia), in [0, 1] (default: the model's)")
    p.add_argument("--batch-size", type=_batch_size, default=32, help="images per forward pass")
    p.add_argument("--tta", action="store_true", help="average over test-time augmentations")
    _domain_arg(p)


def _domain_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--on-out-of-domain", choices=OUT_OF_DOMAIN_POLICIES, default="flag",
                   help="films the model's domain guard flags as unlike its training films: "
                        "flag them (still predicted), skip them, or fail (exit 2)")


@command("predict", "predict pneumonia for X-ray files or folders", _predict_args)
def _predict(args: argparse.Namespace) -> int:
    # lazy: loads Keras and its backend
    from pneumozoo.prediction import iter_predictions

    files, bad = expand_inputs(args.paths)
    if not files:  # nothing to predict: a usage error, found before the model loads
        if bad:
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            _err(f"{bad[0]}{more}")
        else:
            _err("no image files found in " + ", ".join(args.paths))
        return EXIT_ERROR
    model = _load(args)
    real_paths = _real_paths(files)
    failures = 0
    show_progress = sys.stderr.isatty() or len(files) > 200

    def progress(done: int, total: int) -> None:
        if show_progress:
            print(f"\r{done}/{total} images", end="" if done < total else "\n", file=sys.stderr, flush=True)

    items: list[Any] = list(files) + list(bad)
    flagged = shown_count = 0
    for pred in iter_predictions(model, items, threshold=args.threshold, batch_size=args.batch_size,
                                 tta=args.tta, progress=progress,
                                 on_out_of_domain=args.on_out_of_domain):
        if not shown_count and not args.json:
            # The header once the first film is through the model: a fatal error while loading
            # or running it leaves stdout empty (its one line goes to stderr).
            print(f"{'path':<{PATH_WIDTH}} {'label':<10} {'P(pneumonia)':>12}  domain")
        shown_count += 1
        if not pred.ok:
            failures += 1
        flagged += pred.in_domain is False
        if args.json:
            record = pred.to_dict()
            record["path"] = real_paths.get(pred.source, pred.source)  # the name, exactly
            print(_dumps(record), flush=True)
        elif pred.ok:
            prob = pred.probability
            shown = f"{prob:>12.4f}" if prob is not None and math.isfinite(prob) else f"{'-':>12}"
            domain = {True: "ok", False: "OUT", None: "-"}[pred.in_domain]
            print(f"{_shorten(pred.source)} {pred.label:<10} {shown}  {domain}", flush=True)
        else:
            print(f"{_shorten(pred.source)} {'ERROR':<10} {pred.error}", flush=True)
    skipped = len(items) - shown_count
    if flagged:
        print(f"pneumozoo: warning: {flagged} of {len(items)} film(s) are unlike the films the "
              "model was trained on (domain OUT): do not trust their predictions", file=sys.stderr)
    if skipped:
        print(f"pneumozoo: {skipped} of {len(items)} film(s) skipped as out of the model's domain",
              file=sys.stderr)
    if failures:
        print(f"pneumozoo: {failures} of {len(items)} input(s) could not be read", file=sys.stderr)
    return EXIT_PARTIAL if failures else EXIT_OK


def _real_paths(files: Sequence[Path]) -> dict[str, str]:
    """Shown name (newlines escaped, one line) -> the file's real name, for JSON output."""
    out: dict[str, str] = {}
    for f in files:
        out.setdefault(describe_source(f), str(f))
    return out


# --- evaluate ----------------------------------------------------------------------------
def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data_dir", help="a split folder with NORMAL/ and PNEUMONIA/ (e.g. chest_xray/test)")
    _model_arg(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--threshold", type=_probability, default=None,
                   help="decision threshold on P(pneumonia), in [0, 1] (default: the model's)")
    p.add_argument("--batch-size", type=_batch_size, default=32, help="images per forward pass")
    p.add_argument("--ci", action=argparse.BooleanOptionalAction, default=True,
                   help="95%% bootstrap confidence intervals, resampling patients (default: on)")
    p.add_argument("--n-boot", type=_int_at_least(1), default=1000,
                   help="bootstrap resamples")
    p.add_argument("--tta", action="store_true", help="average over test-time augmentations")
    p.add_argument("--report", metavar="DIR", default=None,
                   help="write report.json and every figure (ROC, PR, confusion, reliability) "
                        "there; figures need the 'plot' extra")
    _domain_arg(p)


@command("evaluate", "evaluate a model on a labelled split folder", _evaluate_args)
def _evaluate(args: argparse.Namespace) -> int:
    # lazy: loads scikit-learn
    from pneumozoo.evaluation import evaluate

    if args.report is not None:
        require_matplotlib()  # fail before loading the model and predicting
    model = _load(args)
    report = evaluate(model, args.data_dir, threshold=args.threshold, batch_size=args.batch_size,
                      ci=args.ci, n_boot=args.n_boot, tta=args.tta, report_dir=args.report,
                      on_out_of_domain=args.on_out_of_domain)
    if args.report is not None:
        print(f"pneumozoo: report and figures written to {args.report}", file=sys.stderr)
    if args.json:  # read back and written strictly: NaN (e.g. AUC of one class) -> null
        print(_dumps(json.loads(report.to_json(indent=None))))
    else:
        print(report.summary())
    return EXIT_OK


# --- train -------------------------------------------------------------------------------
def _train_args(p: argparse.ArgumentParser) -> None:
    d = Recipe()
    p.add_argument("data_dir", help="dataset root with train/ (or a train folder with NORMAL/ and PNEUMONIA/)")
    p.add_argument("--recipe", default=None, metavar="NAME",
                   help="rerun a zoo model's recipe (see 'pneumozoo models'); the options "
                        "below override its settings")
    p.add_argument("--arch", default=None, help=f"architecture, see 'pneumozoo models --archs' (default: {d.arch})")
    p.add_argument("--task", choices=TASKS, default=None,
                   help=f"normal vs pneumonia, or normal / bacteria / virus (default: {d.task})")
    p.add_argument("--input-size", type=_int_at_least(16), default=None,
                   help="square input side in pixels (default: the architecture's)")
    p.add_argument("--epochs", type=_int_at_least(1), default=None,
                   help=f"epochs to train, at least 1 (default: {d.epochs})")
    p.add_argument("--batch-size", type=_batch_size, default=None,
                   help=f"images per training step (default: {d.batch_size})")
    p.add_argument("--learning-rate", type=_float_in(0.0, math.inf, low_open=True), default=None,
                   help=f"peak learning rate (default: {d.learning_rate})")
    p.add_argument("--augment", default=None, help=f"augmentation preset (default: {d.augment})")
    p.add_argument("--schedule", default=None, choices=SCHEDULES,
                   help=f"learning-rate schedule (default: {d.schedule})")
    p.add_argument("--balance", default=None, choices=BALANCES,
                   help="how to balance the classes: loss weights, oversampling, or not at all "
                        "(default: weights)")
    p.add_argument("--label-smoothing", type=_float_in(0.0, 1.0, high_open=True), default=None,
                   help=f"in [0, 1), e.g. 0.1 (default: {d.label_smoothing})")
    p.add_argument("--normalization", default=None,
                   help="override the architecture's input normalisation (e.g. per-image)")
    p.add_argument("--val-fraction", type=_float_in(0.0, 1.0, low_open=True, high_open=True),
                   default=None, help=f"share of the training patients held out for validation, "
                                      f"in (0, 1) (default: {d.val_fraction})")
    p.add_argument("--threshold-rule", default=None, choices=THRESHOLD_RULES,
                   help=f"how the threshold is chosen: calibrated is 0.5 on the calibrated "
                        f"probability; the youden rules pick it on validation (default: "
                        f"{d.threshold_rule})")
    p.add_argument("--weights", default=None, help="imagenet, or a checkpoint to start from")
    p.add_argument("--freeze-backbone", action="store_true",
                   help="train only the head of a transfer model")
    p.add_argument("--precision", default="auto", help="auto, float32, mixed_float16, mixed_bfloat16")
    p.add_argument("--strategy", default=None, choices=STRATEGY_NAMES,
                   help="data parallelism over this machine's devices (mirrored, data-parallel) "
                        "or a cluster (multiworker); --batch-size is then per replica")
    p.add_argument("--jit-compile", action="store_true", help="XLA-compile the training step (gives up op determinism: Keras refuses XLA under it)")
    p.add_argument("--seed", type=_int_at_least(0), default=None,
                   help=f"seed of the split, the augmentation and the initial weights (default: {d.seed})")
    p.add_argument("--test", action="store_true",
                   help="evaluate once on DATA_DIR/test at the end and record it in the model card")
    p.add_argument("--out", required=True, type=_out_folder,
                   help="output folder: checkpoint/ (resumable) and model/ "
                        "(one training run at a time writes there)")


#: ``pneumozoo train`` options that are recipe settings (same names as the Recipe's fields).
_RECIPE_OPTIONS = ("arch", "task", "input_size", "epochs", "batch_size", "learning_rate", "augment",
                   "schedule", "label_smoothing", "normalization", "val_fraction",
                   "threshold_rule", "seed")


@command("train", "train an architecture, or rerun a zoo recipe, on a Kermany-style folder "
                  "(resumes if re-run)", _train_args)
def _train(args: argparse.Namespace) -> int:
    # lazy: loads Keras and its backend
    from pneumozoo.distribute import get_strategy
    from pneumozoo.run import check_recipe, recipe_for, run_recipe

    out = Path(args.out).expanduser()
    recipe = recipe_for(args.recipe, name=out.name, balance=args.balance,
                        **{key: getattr(args, key) for key in _RECIPE_OPTIONS})
    check_recipe(recipe)  # an unknown architecture fails now, not after decoding the data
    # Before TensorFlow runs anything (multiworker needs it first).
    strategy = get_strategy(args.strategy) if args.strategy else None
    build = {"weights": args.weights, "freeze_backbone": args.freeze_backbone,
             "precision": args.precision}
    run_recipe(recipe, args.data_dir, out=out / "model", checkpoint_dir=out / "checkpoint",
               build_kwargs=build, test=args.test, strategy=strategy,
               jit_compile=True if args.jit_compile else "auto",
               # repeatable runs; Keras refuses XLA under op determinism
               deterministic=not args.jit_compile, log=_log)
    print(f"model folder: {out / 'model'}")
    return EXIT_OK


def _log(line: str) -> None:
    """Progress lines go to stderr, so stdout stays the result."""
    print(line, file=sys.stderr, flush=True)


# --- adapt -------------------------------------------------------------------------------
def _adapt_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("site_dir", help="the site's films: NORMAL/ and PNEUMONIA/ folders (labelled), "
                                    "or any folder of films with --unlabelled")
    _model_arg(p)
    p.add_argument("--out", required=True, type=_out_folder, help="the adapted model folder to write")
    p.add_argument("--name", default=None, help="name of the adapted model (default: MODEL-SITE)")
    p.add_argument("--method", choices=ADAPT_METHODS, default="recalibrate",
                   help="refit temperature and threshold; fit a new linear classifier on the "
                        "network's features (probe); fine-tune the network (settings chosen by "
                        "cross-validation); or all of them, keeping the best (auto)")
    p.add_argument("--folds", type=_int_at_least(2), default=5,
                   help="patient-wise cross-validation folds for the site metrics")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of the folds and fine-tuning")
    p.add_argument("--unlabelled", action="store_true",
                   help="the films have no labels: estimate the site's pneumonia prevalence "
                        "(EM) and move the threshold to it")
    p.add_argument("--force", action="store_true",
                   help="with --unlabelled: write the model even when the estimate fails its "
                        "checks (EM did not converge, estimate at 0 or 1, posteriors too "
                        "uninformative, films out of the model's domain, one label for every "
                        "film); the problems are still reported")
    p.add_argument("--json", action="store_true", help="print what was measured as JSON")


@command("adapt", "adapt a model to a site's own films; report cross-validated site metrics",
         _adapt_args)
def _adapt(args: argparse.Namespace) -> int:
    model = _load(args)
    out = Path(args.out).expanduser()
    if args.unlabelled:
        with warnings.catch_warnings():  # the problems are printed below, once
            warnings.simplefilter("ignore", UserWarning)
            result = adapt_unlabelled(model, args.site_dir, out=out, name=args.name,
                                      force=args.force)
        for problem in result["problems"]:
            print(f"pneumozoo: warning: {problem} (written anyway: --force)", file=sys.stderr)
        if args.json:
            print(_dumps(result))
        else:
            ci = result["ci"]
            print(f"estimated pneumonia prevalence {result['prevalence']:.3f}"
                  + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
                  + f" (model calibrated at {result['prior']:.3f}); threshold "
                  f"{result['threshold_before']:.3f} -> {result['threshold']:.3f}")
            print(f"model folder: {out}")
        return EXIT_OK
    res = adapt(model, args.site_dir, out=out, name=args.name, method=args.method,
                folds=args.folds, seed=args.seed, base_name=args.model or "", log=_log)
    if args.json:
        print(_dumps({"method": res.method, "settings": res.settings, "films": res.films,
                      "cv": res.cv, "folder": str(out)}))
        return EXIT_OK
    print(f"adapted on {res.films['films']} films ({res.films['patients']} patients) by {res.method}"
          + (f" {res.settings}" if res.settings else ""))
    print("site metrics, out of fold (each film scored by a model adapted without it), 95% CI:")
    for key, m in res.cv.items():
        ci = m.get("confidence_intervals") or {}

        def fmt(name: str, m: dict[str, Any] = m, ci: dict[str, Any] = ci) -> str:
            lo_hi = ci.get(name)
            band = f" [{lo_hi[0]:.3f}, {lo_hi[1]:.3f}]" if lo_hi and None not in lo_hi else ""
            return f"{name} {m[name]:.3f}{band}"

        print(f"  {key}: " + ", ".join(fmt(n) for n in ("auc", "accuracy", "sensitivity", "specificity")))
    print(f"model folder: {out}")
    return EXIT_OK


# --- models ------------------------------------------------------------------------------
#: The published projects the architecture descriptions cite by number, with their authors.
REFERENCE_PROJECTS = {
    "000": "chency0315, pneumonia_classification (GitHub): VGG19 + dense head, 3 classes",
    "001": "marjose2, Pneumonia-Detection (GitHub): 5-block separable CNN, 150 px",
    "002": "\"Image Classification with Deep Learning\" (blog post, 2022-04-16): VGG19, "
           "heavy augmentation",
    "003": "katehee, X-ray_pneumonia_classification (GitHub): custom CNN and fine-tuned "
           "ResNet50/DenseNet121/VGG16/Xception/InceptionV3",
    "004": "Pneumonia_x_ray_classification (GitHub, author not named): 4-block VGG-like CNN, "
           "128 px",
}


def _models_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the configs as JSON")
    p.add_argument("--archs", action="store_true", help="list architectures instead of pretrained models")


@command("models", "list pretrained models (or architectures with --archs)", _models_args)
def _models(args: argparse.Namespace) -> int:
    if args.archs:
        infos = list_models()
        if args.json:
            print(_dumps([{"name": m.name, "family": m.family, "input_size": m.input_size,
                           "pretrainable": m.pretrainable, "description": m.description}
                          for m in infos], indent=2))
        else:
            for m in infos:
                print(f"{m.name:<16} {m.family:<9} {m.input_size:>4}px  {m.description}")
            cited = sorted({n for m in infos for n in re.findall(r"\b00\d\b", m.description)
                            if n in REFERENCE_PROJECTS})
            if cited:
                print("\nreference projects cited above (the published write-ups these "
                      "recipes reproduce):")
                for n in cited:
                    print(f"  {n}  {REFERENCE_PROJECTS[n]}")
        return EXIT_OK

    configs = list_pretrained()
    if args.json:
        print(_dumps([c.to_dict() for c in configs], indent=2))
        return EXIT_OK
    w = max([18, *(len(c.name) for c in configs)])
    print(f"{'name':<{w}} {'arch':<10} {'task':<7} {'size':>4} {'thr':>6} {'test acc':>8} {'test auc':>8}")
    for c in configs:
        acc = c.metrics.get("test", {}).get("accuracy")
        auc = c.metrics.get("test", {}).get("auc")
        fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else "-"  # noqa: E731
        print(f"{c.name:<{w}} {c.architecture:<10} {c.task:<7} {c.input_size:>4} {c.threshold:>6.3f} "
              f"{fmt(acc):>8} {fmt(auc):>8}")
    return EXIT_OK


# --- hub ---------------------------------------------------------------------------------
def _hub_args(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    push = actions.add_parser("push", help="publish a model folder (adds a model card if it has none)")
    push.add_argument("folder", help="a pneumozoo model folder (pneumozoo.json + Keras files)")
    push.add_argument("repo_id", help="Hub repo owner/name (created if missing)")
    push.add_argument("--revision", default=None, help="branch to commit to (created if missing)")
    push.add_argument("--private", action="store_true", help="create the repo as private")
    push.add_argument("--message", default=None, help="commit message")
    push.add_argument("--create-pr", action="store_true", help="open a pull request instead")
    down = actions.add_parser("download", help="fetch a model folder into the Hugging Face cache "
                              "(sha256-checked) and print its path")
    down.add_argument("repo", metavar="REPO_ID[@REV]", help="owner/name or owner/name@revision")
    down.add_argument("--revision", default=None, help="branch, tag or commit")
    down.add_argument("--cache-dir", default=None, help="Hub cache folder")


@command("hub", "push model folders to, or download them from, the Hugging Face Hub", _hub_args)
def _hub(args: argparse.Namespace) -> int:
    if args.action == "push":
        commit = push_to_hub(args.folder, args.repo_id, revision=args.revision, private=args.private,
                             commit_message=args.message, create_pr=args.create_pr)
        print(f"hf://{args.repo_id}@{commit}")
        return EXIT_OK

    repo_id, revision = split_repo_ref(args.repo)
    print(download_model(repo_id, revision=revision or args.revision, cache_dir=args.cache_dir))
    return EXIT_OK


# --- data --------------------------------------------------------------------------------
def _data_args(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    down = actions.add_parser("download", help="download Kermany et al. 2018 (ChestXRay2017.zip, "
                              "~1.2 GB, CC BY 4.0) and unpack it as DEST/<split>/<CLASS>/")
    down.add_argument("dest", help="folder to create (resumes an interrupted download)")
    down.add_argument("--url", default=None, help="archive URL (default: Mendeley Data)")
    down.add_argument("--sha256", default=None, help="expected sha256 of the archive")


@command("data", "dataset helpers: download the Kermany chest X-ray data", _data_args)
def _data(args: argparse.Namespace) -> int:
    print(download_kermany(args.dest, url=args.url or KERMANY_URL, sha256=args.sha256,
                           progress=sys.stderr.isatty()))
    return EXIT_OK


# --- explain -----------------------------------------------------------------------------
def _explain_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="one X-ray (JPEG, PNG, DICOM...)")
    _model_arg(p)
    p.add_argument("--out", default=None,
                   help="Grad-CAM overlay PNG (default: IMAGE_gradcam.png in the current folder)")
    p.add_argument("--method", choices=CAM_METHODS, default="gradcam",
                   help="how the heatmap weighs the feature maps")
    p.add_argument("--class", dest="class_name", default=None,
                   help="class to explain (default: the predicted label)")
    p.add_argument("--layer", default=None, help="feature layer (default: the last conv feature map)")
    p.add_argument("--alpha", type=_float_in(0.0, 1.0), default=0.4,
                   help="heatmap opacity in the overlay, in [0, 1]")
    p.add_argument("--feature-maps", nargs="*", metavar="LAYER", default=None,
                   help="also save a grid of these layers' feature maps (none named: a few conv "
                        "layers)")
    p.add_argument("--out-features", default=None,
                   help="feature-map grid PNG (default: IMAGE_features.png beside the overlay)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


@command("explain", "Grad-CAM heatmap (and feature maps) of one X-ray", _explain_args)
def _explain(args: argparse.Namespace) -> int:
    # lazy: loads Keras and its backend
    from pneumozoo.prediction import predict

    image = read_xray(args.image, check=True)  # one clear error line before the model loads
    model = _load(args)
    pred = predict(model, image)[0]
    explained = args.class_name or pred.label  # default: the label predict() gives
    out = save_explanation(model, image, args.out or f"{Path(args.image).stem}_gradcam.png",
                           class_index=explained, layer=args.layer, method=args.method,
                           alpha=args.alpha)
    result: dict[str, Any] = {"path": args.image, "label": pred.label,
                              "probability": pred.probability, "explained_class": explained,
                              "method": args.method, "heatmap": str(out)}
    if args.feature_maps is not None or args.out_features is not None:
        features = args.out_features or Path(out).parent / f"{Path(args.image).stem}_features.png"
        grid = save_feature_maps(model, image, features, args.feature_maps or None)
        result["feature_maps"] = str(grid)
    if args.json:
        print(_dumps(result))
    else:
        print(f"{args.image}: {pred.label} (P(pneumonia) {pred.probability:.4f}); "
              f"{args.method} of {explained!r} -> {out}")
        if "feature_maps" in result:
            print(f"feature maps -> {result['feature_maps']}")
    return EXIT_OK


# --- screen ------------------------------------------------------------------------------
def _screen_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="a folder tree of films, or a .csv/.parquet list of paths "
                                  "(a 'path' column)")
    p.add_argument("--out", required=True, help="output folder: Parquet shards + summary.json; "
                                                "a rerun into it skips films already written")
    _model_arg(p)
    p.add_argument("--ray", default=None, metavar="ADDRESS|auto",
                   help="run on a Ray cluster with Ray Data (needs the 'ray' extra): 'auto' or "
                        "HOST:PORT of a running cluster")
    p.add_argument("--threshold", type=_probability, default=None,
                   help="decision threshold on P(pneumonia), in [0, 1] (default: the model's)")
    p.add_argument("--batch-size", type=_batch_size, default=32, help="films per forward pass")
    p.add_argument("--workers", type=_int_at_least(1), default=2,
                   help="reader threads decoding films (per Ray actor with --ray)")
    p.add_argument("--shard-size", type=_int_at_least(1), default=1024, help="films per shard")
    p.add_argument("--actors", type=_int_at_least(1), default=None,
                   help="model actors with --ray (default: one per GPU, else one per 2 CPUs)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")


@command("screen", "screen an archive of films into Parquet shards, resumably, locally or on Ray",
         _screen_args)
def _screen(args: argparse.Namespace) -> int:
    show = sys.stderr.isatty()

    def progress(done: int) -> None:
        if show:
            print(f"\r{done} films screened", end="", file=sys.stderr, flush=True)

    result = screen(args.source, args.out, model=args.model, ray=args.ray,
                    batch_size=args.batch_size, workers=args.workers, shard_size=args.shard_size,
                    threshold=args.threshold, revision=args.revision, ray_actors=args.actors,
                    progress=progress)
    if show:
        print(file=sys.stderr)
    if args.json:
        print(_dumps(result.to_dict()))
    else:
        print(f"{result.written} films screened ({result.films_per_second:.1f} films/s), "
              f"{result.skipped} already done; {result.out}: {result.films} films in "
              f"{result.shards} shards, {result.errors} errors, {result.out_of_domain} out of "
              f"domain; {Path(result.out) / SUMMARY_FILE}")
    return EXIT_PARTIAL if result.errors else EXIT_OK


# --- export ------------------------------------------------------------------------------
def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="registry name, hf://owner/repo[@rev], a model folder or a .keras file")
    p.add_argument("--format", required=True, choices=EXPORT_FORMATS,
                   help="savedmodel: TF Serving folder; tflite*: one .tflite file (float32, "
                        "float16 weights, or int8 calibrated on --calibration-dir)")
    p.add_argument("--out", required=True, help="output folder (savedmodel) or .tflite file")
    p.add_argument("--calibration-dir", default=None,
                   help="real X-rays to calibrate int8 on (needed by tflite-int8)")
    p.add_argument("--calibration-images", type=_int_at_least(1),
                   default=100, help="use at most this many calibration images")
    p.add_argument("--revision", default=None, help="Hub revision when MODEL is hf://")


@command("export", "export a model as a SavedModel or TensorFlow Lite file", _export_args)
def _export(args: argparse.Namespace) -> int:
    if args.format == "tflite-int8" and not args.calibration_dir:
        raise DataError("tflite-int8 needs --calibration-dir (a folder of real X-rays)")
    if args.calibration_dir and not Path(args.calibration_dir).is_dir():
        raise DataError(f"{args.calibration_dir}: calibration folder not found")
    source = Path(args.model)
    if source.suffix == ".keras" and source.is_file():
        # lazy: loads Keras (the model folder reader lives beside it)
        from pneumozoo.pretrained.folder import load_model_file

        model = load_model_file(source)
    else:
        model = load_pretrained(args.model, revision=args.revision)

    out = export_model(model, args.out, format=args.format,
                       calibration=args.calibration_dir if args.format == "tflite-int8" else None,
                       calibration_limit=args.calibration_images)
    size = (sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) if out.is_dir()
            else out.stat().st_size)
    print(f"{args.format}: {out} ({size / 1e6:.2f} MB); description: {metadata_path(out)}")
    return EXIT_OK


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: ...)`` where a default says something (not None, not off)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if ("default" in text or action.default is None or action.default is False
                or action.default == argparse.SUPPRESS or not action.option_strings):
            return text
        return text + " (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit status 2)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> Any:  # argparse's own: usage lines, then the message
        self.exit(EXIT_ERROR, f"pneumozoo: error: {message} (usage: '{self.prog} --help')\n")


_DESCRIPTION = "Pneumonia classification of chest X-rays with a zoo of Keras models."
_EPILOG = ("exit status: 0 when everything succeeded; 1 when some inputs could not be read "
           "(the others are still processed and reported); 2 for a usage or fatal error, "
           "printed as one line.")
_VERBOSE_HELP = "show TensorFlow's start-up and log messages"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = _Parser(prog="pneumozoo", description=_DESCRIPTION, epilog=_EPILOG)
    parser.add_argument("--version", action="version", version=f"pneumozoo {__version__}")
    parser.add_argument("--verbose", action="store_true", help=_VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text, configure, handler in _COMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        configure(p)
        # also accepted after the command; SUPPRESS keeps a --verbose given before it
        p.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                       help=_VERBOSE_HELP)
        p.set_defaults(handler=handler)
    return parser


#: Commands that load a model, so import Keras (and its backend) before their handler runs.
_MODEL_COMMANDS = frozenset({"predict", "evaluate", "train", "adapt", "explain", "export",
                             "screen"})


def _import_keras_quietly() -> None:
    """``import keras`` (which imports its backend) with file descriptor 2 captured.

    TensorFlow 2.16+ prints start-up lines (CUDA probing, oneDNN notices) from C++ before its
    log level applies; they are replayed only if the import fails, so a broken install keeps
    its diagnostics. A plain import in the main thread before any handler runs, not an import
    hook: it cannot recurse, whatever the interpreter has loaded already.
    """
    if "keras" in sys.modules:
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2: nothing to hide
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            # lazy: the command line's one import of Keras, with stderr captured
            import keras  # noqa: F401
        except Exception:
            _restore_fd2(saved)
            captured.seek(0)
            os.write(2, captured.read())
            raise
        finally:
            _restore_fd2(saved)
            os.close(saved)


def _restore_fd2(saved: int) -> None:
    with suppress(Exception):
        sys.stderr.flush()  # Python-level writes made during the import stay hidden too
    os.dup2(saved, 2)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pneumozoo`` command; returns the exit status.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).

    Returns:
        0 when everything succeeded, 1 when some inputs could not be read, 2 for a usage or
        fatal error (reported as one line on stderr).
    """
    _robust_stdout()
    parser = build_parser()
    args = parser.parse_args(argv)

    try:
        if not args.verbose:  # before anything imports TensorFlow
            quiet_tensorflow("3")
            if args.command in _MODEL_COMMANDS:
                _import_keras_quietly()
        status = int(args.handler(args))
        sys.stdout.flush()  # inside the try: a closed pipe surfaces here, not at exit
        return status
    except BrokenPipeError:
        # The reader stopped early (``| head``), which is not a failure. Point stdout at
        # /dev/null so the interpreter's last flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except PneumozooError as e:
        _err(str(e))
        return EXIT_ERROR
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except Exception as e:  # a fatal error that is not the user's: one line, status 2
        if args.verbose:
            traceback.print_exc()
        first = (str(e).strip().splitlines() or [""])[0]
        _err(f"fatal: {type(e).__name__}: {first}"
             + ("" if args.verbose else " (rerun with --verbose for the traceback)"))
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

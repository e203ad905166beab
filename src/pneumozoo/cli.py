"""The ``pneumozoo`` command: a thin layer over the public functions.

Exit status: 0 when everything succeeded (or the reader of a pipe stopped early); 1 when some inputs could not be read (the others
are still processed and reported); 2 for a usage error or a fatal error (unknown model,
missing folder, failed download), printed as one line without a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["main"]

EXIT_OK, EXIT_PARTIAL, EXIT_ERROR = 0, 1, 2

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: list[tuple[str, str, Callable[[argparse.ArgumentParser], None], Handler]] = []


def command(name: str, help_text: str, configure: Callable[[argparse.ArgumentParser], None]) -> Callable[[Handler], Handler]:
    """Register a subcommand (its argument setup and its handler)."""

    def deco(fn: Handler) -> Handler:
        _COMMANDS.append((name, help_text, configure, fn))
        return fn

    return deco


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_HOME", os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")))


def _err(message: str) -> None:
    print(f"pneumozoo: error: {message}", file=sys.stderr)


def _model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="registry name, hf://owner/repo[@rev], or a model folder (default: the bundled default)")
    p.add_argument("--revision", default=None, help="Hub revision when --model is hf://")


def _load(args: argparse.Namespace) -> Any:
    from pneumozoo.pretrained import load_pretrained

    return load_pretrained(args.model, revision=getattr(args, "revision", None))


# --- predict -----------------------------------------------------------------------------
def _predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", help="image files (JPEG, PNG, DICOM...) or folders (walked recursively)")
    _model_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--threshold", type=float, default=None, help="decision threshold on P(pneumonia)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--tta", action="store_true", help="average over test-time augmentations")


@command("predict", "predict pneumonia for X-ray files or folders", _predict_args)
def _predict(args: argparse.Namespace) -> int:
    from pneumozoo.io import expand_inputs
    from pneumozoo.prediction import iter_predictions

    model = _load(args)
    files, bad = expand_inputs(args.paths)
    failures = 0
    show_progress = sys.stderr.isatty() or len(files) > 200

    def progress(done: int, total: int) -> None:
        if show_progress:
            print(f"\r{done}/{total} images", end="" if done < total else "\n", file=sys.stderr, flush=True)

    if not args.json:
        print(f"{'path':<60} {'label':<10} {'P(pneumonia)':>12}")
    items: list[Any] = list(files) + list(bad)
    for pred in iter_predictions(model, items, threshold=args.threshold, batch_size=args.batch_size,
                                 tta=args.tta, progress=progress):
        if not pred.ok:
            failures += 1
        if args.json:
            print(json.dumps(pred.to_dict()), flush=True)
        elif pred.ok:
            print(f"{pred.source:<60} {pred.label:<10} {pred.probability:>12.4f}", flush=True)
        else:
            print(f"{pred.source:<60} {'ERROR':<10} {pred.error}", flush=True)
    if failures:
        print(f"pneumozoo: {failures} of {len(items)} input(s) could not be read", file=sys.stderr)
    if not items:
        _err("no image files found in " + ", ".join(args.paths))
        return EXIT_ERROR
    return EXIT_PARTIAL if failures else EXIT_OK


# --- evaluate ----------------------------------------------------------------------------
def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data_dir", help="a split folder with NORMAL/ and PNEUMONIA/ (e.g. chest_xray/test)")
    _model_arg(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--threshold", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--ci", action=argparse.BooleanOptionalAction, default=True,
                   help="95%% bootstrap confidence intervals, resampling patients (default: on)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--tta", action="store_true", help="average over test-time augmentations")
    p.add_argument("--report", metavar="DIR", default=None,
                   help="write report.json and every figure (ROC, PR, confusion, reliability) "
                        "there; figures need the 'plot' extra")


@command("evaluate", "evaluate a model on a labelled split folder", _evaluate_args)
def _evaluate(args: argparse.Namespace) -> int:
    from pneumozoo.evaluation import evaluate

    if args.report is not None:
        from pneumozoo.plot import require_matplotlib

        require_matplotlib()  # fail before loading the model and predicting
    model = _load(args)
    report = evaluate(model, args.data_dir, threshold=args.threshold, batch_size=args.batch_size,
                      ci=args.ci, n_boot=args.n_boot, tta=args.tta, report_dir=args.report)
    if args.report is not None:
        print(f"pneumozoo: report and figures written to {args.report}", file=sys.stderr)
    if args.json:
        print(report.to_json(indent=None))
    else:
        print(report.summary())
    return EXIT_OK


# --- train -------------------------------------------------------------------------------
def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data_dir", help="dataset root with train/ (or a train folder with NORMAL/ and PNEUMONIA/)")
    p.add_argument("--arch", default="xraynet", help="architecture (see `pneumozoo models --archs`)")
    p.add_argument("--task", choices=["binary", "3class"], default="binary")
    p.add_argument("--input-size", type=int, default=None)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--augment", default="xray", help="augmentation preset")
    p.add_argument("--schedule", default="cosine", choices=["plateau", "cosine", "exponential", "constant"])
    p.add_argument("--balance", default="weights", choices=["weights", "oversample", "none"])
    p.add_argument("--label-smoothing", type=float, default=0.0, help="e.g. 0.1 (default: none)")
    p.add_argument("--normalization", default=None,
                   help="override the architecture's input normalisation (e.g. per-image)")
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--weights", default=None, help="imagenet, or a checkpoint to start from")
    p.add_argument("--freeze-backbone", action="store_true")
    p.add_argument("--precision", default="auto", help="auto, float32, mixed_float16, mixed_bfloat16")
    p.add_argument("--strategy", default=None, choices=["mirrored", "multiworker"],
                   help="tf.distribute strategy; --batch-size is then per replica")
    p.add_argument("--jit-compile", action="store_true", help="XLA-compile the training step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder: checkpoints, history.json and the model folder")


@command("train", "train an architecture on a Kermany-style folder (resumes if re-run)", _train_args)
def _train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pneumozoo.data import patient_split, scan_folder, scan_split
    from pneumozoo.data.validate import validate_records
    from pneumozoo.errors import DataError
    from pneumozoo.models import build_model
    from pneumozoo.models.registry import get_model_info
    from pneumozoo.train import fit

    get_model_info(args.arch)  # an unknown architecture fails now, not after decoding the data
    if args.normalization is not None:
        from pneumozoo.errors import UnknownNameError
        from pneumozoo.models.layers import NORMALIZATIONS

        if args.normalization not in NORMALIZATIONS:
            raise UnknownNameError("normalization", args.normalization, list(NORMALIZATIONS))
    strategy = None
    if args.strategy:  # before TensorFlow runs anything (multiworker needs it first)
        from pneumozoo.distribute import get_strategy

        strategy = get_strategy(args.strategy)
    root = Path(args.data_dir)
    try:  # a dataset root with train/, or a folder that is itself the training split
        records = scan_split(root, "train")
    except DataError:
        from pneumozoo.data.records import label_of

        if not (root.is_dir() and any(label_of(c.name) is not None for c in root.iterdir())):
            raise  # the split's own problem (e.g. empty class folders), not a fallback's
        records = scan_folder(root, split="train")
    validate_records(records, task=args.task)
    train, val = patient_split(records, val_fraction=args.val_fraction, seed=args.seed, task="3class"
                               if args.task == "3class" else "binary")
    num_classes = 3 if args.task == "3class" else 2
    model = build_model(args.arch, num_classes=num_classes, input_size=args.input_size,
                        weights=args.weights, freeze_backbone=args.freeze_backbone,
                        precision=args.precision, normalization=args.normalization)
    out = Path(args.out)
    result = fit(model, train, val, epochs=args.epochs, learning_rate=args.learning_rate,
                 batch_size=args.batch_size, augment=args.augment, schedule=args.schedule,
                 class_weight="balanced" if args.balance == "weights" else None,
                 oversample=args.balance == "oversample", label_smoothing=args.label_smoothing,
                 checkpoint_dir=out / "checkpoint",
                 strategy=strategy, jit_compile=True if args.jit_compile else "auto",
                 seed=args.seed, verbose=2)
    from pneumozoo.pretrained.release import prepare_release, write_release

    # Calibrate and choose the threshold on validation, exactly as the zoo's recipes do.
    model, cfg = prepare_release(
        model, val, name=out.name, architecture=args.arch,
        description=f"{args.arch} trained with `pneumozoo train`",
        training={"data": str(root), "epochs": result.epochs, "best_epoch": result.best_epoch,
                  "augment": args.augment, "schedule": args.schedule, "balance": args.balance,
                  "label_smoothing": args.label_smoothing,
                  "learning_rate": args.learning_rate, "batch_size": args.batch_size},
    )
    from pneumozoo.distribute import is_chief

    if strategy is not None and not is_chief(strategy):
        return EXIT_OK  # only the chief writes the model folder
    write_release(model, cfg, out / "model")
    print(f"best {result.monitor} {result.best_value:.4f} at epoch {result.best_epoch}; "
          f"model folder: {out / 'model'}")
    return EXIT_OK


# --- models ------------------------------------------------------------------------------
def _models_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the pretrained configs as JSON")
    p.add_argument("--archs", action="store_true", help="list architectures instead of pretrained models")


@command("models", "list pretrained models (or architectures with --archs)", _models_args)
def _models(args: argparse.Namespace) -> int:
    if args.archs:
        from pneumozoo.models import list_models

        infos = list_models()
        if args.json:
            print(json.dumps([{"name": m.name, "family": m.family, "input_size": m.input_size,
                               "pretrainable": m.pretrainable, "description": m.description}
                              for m in infos], indent=2))
        else:
            for m in infos:
                print(f"{m.name:<16} {m.family:<9} {m.input_size:>4}px  {m.description}")
        return EXIT_OK
    from pneumozoo.pretrained import list_pretrained

    configs = list_pretrained()
    if args.json:
        print(json.dumps([c.to_dict() for c in configs], indent=2))
        return EXIT_OK
    print(f"{'name':<18} {'arch':<10} {'task':<7} {'size':>4} {'thr':>6} {'test acc':>8} {'test auc':>8}")
    for c in configs:
        acc = c.metrics.get("test", {}).get("accuracy")
        auc = c.metrics.get("test", {}).get("auc")
        fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else "-"  # noqa: E731
        print(f"{c.name:<18} {c.architecture:<10} {c.task:<7} {c.input_size:>4} {c.threshold:>6.3f} "
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
        from pneumozoo.hub import push_to_hub

        commit = push_to_hub(args.folder, args.repo_id, revision=args.revision, private=args.private,
                             commit_message=args.message, create_pr=args.create_pr)
        print(f"hf://{args.repo_id}@{commit}")
        return EXIT_OK
    from pneumozoo.hub import download_model, split_repo_ref

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
    from pneumozoo.data.download import KERMANY_URL, download_kermany

    print(download_kermany(args.dest, url=args.url or KERMANY_URL, sha256=args.sha256,
                           progress=sys.stderr.isatty()))
    return EXIT_OK


# --- explain -----------------------------------------------------------------------------
def _explain_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="one X-ray (JPEG, PNG, DICOM...)")
    _model_arg(p)
    p.add_argument("--out", default=None, help="Grad-CAM overlay PNG (default: IMAGE_gradcam.png here)")
    p.add_argument("--method", choices=["gradcam", "gradcam++"], default="gradcam")
    p.add_argument("--class", dest="class_name", default=None,
                   help="class to explain (default: the predicted label)")
    p.add_argument("--layer", default=None, help="feature layer (default: the last conv feature map)")
    p.add_argument("--alpha", type=float, default=0.4, help="heatmap opacity in the overlay")
    p.add_argument("--feature-maps", nargs="*", metavar="LAYER", default=None,
                   help="also save a grid of these layers' feature maps (none named: a few conv layers)")
    p.add_argument("--out-features", default=None,
                   help="feature-map grid PNG (default: IMAGE_features.png here)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


@command("explain", "Grad-CAM heatmap (and feature maps) of one X-ray", _explain_args)
def _explain(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pneumozoo.explain import save_explanation, save_feature_maps
    from pneumozoo.io import read_xray
    from pneumozoo.prediction import predict

    image = read_xray(args.image)  # one clear error line before the model loads
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
        grid = save_feature_maps(model, image, args.out_features or f"{Path(args.image).stem}_features.png",
                                 args.feature_maps or None)
        result["feature_maps"] = str(grid)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.image}: {pred.label} (P(pneumonia) {pred.probability:.4f}); "
              f"{args.method} of {explained!r} -> {out}")
        if "feature_maps" in result:
            print(f"feature maps -> {result['feature_maps']}")
    return EXIT_OK


# --- export ------------------------------------------------------------------------------
def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="registry name, hf://owner/repo[@rev], a model folder or a .keras file")
    p.add_argument("--format", required=True,
                   choices=["savedmodel", "tflite", "tflite-float16", "tflite-int8"],
                   help="savedmodel: TF Serving folder; tflite*: one .tflite file (float32, "
                        "float16 weights, or int8 calibrated on --calibration-dir)")
    p.add_argument("--out", required=True, help="output folder (savedmodel) or .tflite file")
    p.add_argument("--calibration-dir", default=None,
                   help="real X-rays to calibrate int8 on (needed by tflite-int8)")
    p.add_argument("--calibration-images", type=int, default=100,
                   help="use at most this many calibration images (default 100)")
    p.add_argument("--revision", default=None, help="Hub revision when MODEL is hf://")


@command("export", "export a model as a SavedModel or TensorFlow Lite file", _export_args)
def _export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pneumozoo.errors import DataError

    if args.format == "tflite-int8" and not args.calibration_dir:
        raise DataError("tflite-int8 needs --calibration-dir (a folder of real X-rays)")
    if args.calibration_dir and not Path(args.calibration_dir).is_dir():
        raise DataError(f"{args.calibration_dir}: calibration folder not found")
    source = Path(args.model)
    if source.suffix == ".keras" and source.is_file():
        from pneumozoo.pretrained import load_model_file

        model = load_model_file(source)
    else:
        from pneumozoo.pretrained import load_pretrained

        model = load_pretrained(args.model, revision=args.revision)
    from pneumozoo.export import export_model, metadata_path

    out = export_model(model, args.out, format=args.format,
                       calibration=args.calibration_dir if args.format == "tflite-int8" else None,
                       calibration_limit=args.calibration_images)
    size = (sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) if out.is_dir()
            else out.stat().st_size)
    print(f"{args.format}: {out} ({size / 1e6:.2f} MB); description: {metadata_path(out)}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    from pneumozoo import __version__

    parser = argparse.ArgumentParser(prog="pneumozoo", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"pneumozoo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text, configure, handler in _COMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        configure(p)
        p.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pneumozoo`` command; returns the exit status."""
    _quiet_tensorflow()
    parser = build_parser()
    args = parser.parse_args(argv)
    from pneumozoo.errors import PneumozooError

    try:
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

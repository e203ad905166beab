"""Figures: training curves, confusion matrix, ROC/PR, reliability, predictions, augmentations.

Needs the ``plot`` extra (matplotlib: ``pip install ".[plot]"`` in the pneumozoo clone, or
``pip install matplotlib``); matplotlib is imported only
inside the functions. Figures are drawn with matplotlib's object-oriented API on the Agg
canvas: no window opens, and the global pyplot backend of the caller (a notebook, say) is
left alone. Every function writes one image file (PNG, or any format matplotlib knows by
the suffix) of ``figsize * dpi`` pixels and returns its path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pneumozoo.errors import PneumozooError
from pneumozoo.io import atomic_output, read_xray
from pneumozoo.rules import BINARY_CLASSES, THREE_CLASSES, decide, pneumonia_scores

__all__ = [
    "plot_augmentations",
    "plot_confusion_matrix",
    "plot_history",
    "plot_pr",
    "plot_predictions",
    "plot_reliability",
    "plot_roc",
    "require_matplotlib",
    "save_report_figures",
]

_MISSING = ("plotting needs the 'plot' extra: pip install matplotlib (or, in the pneumozoo "
            "clone, pip install '.[plot]')")


def require_matplotlib() -> None:
    """Check that matplotlib can be imported.

    Raises:
        PneumozooError: If it cannot, with the install command.
    """
    try:
        # lazy: optional extra (matplotlib); this is the check that it is installed
        import matplotlib  # noqa: F401
    except ImportError:
        raise PneumozooError(_MISSING) from None


def _figure(width: float, height: float, dpi: int) -> Any:
    require_matplotlib()
    # lazy: optional extra (matplotlib)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, out: str | Path) -> Path:
    """Write the figure where asked, atomically (a temporary file beside it, then renamed).

    The format comes from the suffix, as with ``savefig`` (PNG when there is none).
    """
    path = Path(out)
    fmt = path.suffix[1:].lower() or "png"
    try:
        with atomic_output(path) as f:
            fig.savefig(f, dpi=fig.dpi, format=fmt)
    except OSError as e:
        raise PneumozooError(f"{path}: cannot write figure ({e})") from None
    except ValueError as e:  # a suffix matplotlib has no writer for
        raise PneumozooError(f"{path}: cannot write figure ({e})") from None
    return path


# --- training ----------------------------------------------------------------------------
def _load_history(history: Any) -> dict[str, list[float]]:
    if hasattr(history, "history") and isinstance(history.history, Mapping):
        history = history.history  # FitResult or keras History
    if isinstance(history, (str, Path)):
        path = Path(history)
        if path.is_dir():
            path = path / "history.json"
        try:
            history = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PneumozooError(f"{path}: no such history file") from None
        except (OSError, ValueError) as e:
            raise PneumozooError(f"{path}: cannot read history ({e})") from None
        if isinstance(history, dict) and isinstance(history.get("history"), dict):
            history = history["history"]
    if not isinstance(history, Mapping) or not history:
        raise PneumozooError("history must be a non-empty dict of per-epoch metric lists")
    return {str(k): [float("nan") if v is None else float(v) for v in vals]
            for k, vals in history.items() if isinstance(vals, (list, tuple))}


def plot_history(history: Any, out: str | Path, *, dpi: int = 100) -> Path:
    """Training curves: accuracy and loss per epoch, training against validation.

    Args:
        history: A dict of metric lists (``loss``, ``val_loss``, ``accuracy``, ...), a
            :class:`pneumozoo.train.FitResult`, a ``history.json`` path or a checkpoint
            folder holding one.
        out: Output file.
        dpi: Resolution; the image is ``10 x 4`` inches.

    Returns:
        The output path.

    Raises:
        PneumozooError: Without matplotlib, or if the history cannot be read.

    Example:
        >>> plot_history("runs/xraynet/checkpoint", "curves.png")  # doctest: +SKIP
        PosixPath('curves.png')
    """
    hist = _load_history(history)
    fig = _figure(10, 4, dpi)
    panels = [m for m in ("accuracy", "loss") if m in hist or f"val_{m}" in hist]
    panels = panels or [k for k in hist if not k.startswith("val_") and k != "lr"][:2]
    if not panels:
        raise PneumozooError("history has no metric to plot")
    for i, metric in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for key, label, style in ((metric, "train", "-"), (f"val_{metric}", "validation", "--")):
            if key in hist:
                values = hist[key]
                ax.plot(range(1, len(values) + 1), values, style, marker="o", ms=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return _save(fig, out)


# --- evaluation --------------------------------------------------------------------------
def plot_confusion_matrix(
    report: Any,
    out: str | Path,
    *,
    class_names: Sequence[str] | None = None,
    all_classes: bool = False,
    dpi: int = 100,
) -> Path:
    """Confusion matrix with counts (and row percentages) in each cell.

    Args:
        report: An :class:`pneumozoo.evaluation.EvaluationReport`, or a square matrix (rows
            true, columns predicted).
        out: Output file.
        class_names: Axis labels (default from the report, or ``class 0..``).
        all_classes: For a report, the k x k arg-max matrix instead of the binary one at the
            report's threshold.
        dpi: Resolution; the image is ``5 x 4.5`` inches.

    Returns:
        The output path.

    Raises:
        PneumozooError: Without matplotlib.
        ValueError: If the matrix is not square or the names do not match it.

    Example:
        >>> plot_confusion_matrix(report, "confusion.png")  # doctest: +SKIP
        PosixPath('confusion.png')
    """
    title = "confusion matrix"
    if hasattr(report, "confusion_matrix"):
        if all_classes:
            cm = np.asarray(report.class_confusion_matrix)
            names = list(class_names or report.class_names)
        else:
            cm = np.asarray(report.confusion_matrix)
            names = list(class_names or BINARY_CLASSES)
            title = f"confusion matrix (threshold {report.threshold:.3f})"
    else:
        cm = np.asarray(report)
        names = list(class_names or [f"class {i}" for i in range(len(cm))])
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {cm.shape}")
    if len(names) != len(cm):
        raise ValueError(f"{len(names)} class names for a {len(cm)}x{len(cm)} matrix")
    fig = _figure(5, 4.5, dpi)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(cm, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    for i in range(len(cm)):
        for j in range(len(cm)):
            dark = cm[i, j] > cm.max() / 2
            ax.text(j, i, f"{int(cm[i, j])}\n{share[i, j]:.0%}", ha="center", va="center",
                    color="white" if dark else "black")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, out)


def _scores(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = (np.asarray(y_true).reshape(-1) > 0).astype(int)
    s = pneumonia_scores(np.asarray(scores, dtype=np.float64)).reshape(-1)
    if len(y) != len(s):
        raise ValueError(f"{len(y)} labels but {len(s)} scores; they must match one to one")
    if y.min() == y.max():
        raise ValueError("ROC and PR curves need both normal and pneumonia cases")
    return y, s


def plot_roc(y_true: Any, scores: Any, out: str | Path, *, threshold: float | None = None,
             dpi: int = 100) -> Path:
    """ROC curve of P(pneumonia), with the AUC in the legend.

    Args:
        y_true: Labels (0 normal, else pneumonia).
        scores: P(pneumonia) ``(n,)`` or softmax outputs ``(n, k)``.
        out: Output file.
        threshold: Mark this operating point on the curve.
        dpi: Resolution; the image is ``5 x 5`` inches.

    Returns:
        The output path.

    Raises:
        PneumozooError: Without matplotlib.
        ValueError: If lengths differ or a class is missing.

    Example:
        >>> plot_roc(y, probs, "roc.png", threshold=0.5)  # doctest: +SKIP
        PosixPath('roc.png')
    """
    # lazy: loads scikit-learn
    from sklearn.metrics import roc_auc_score, roc_curve

    y, s = _scores(y_true, scores)
    fpr, tpr, _ = roc_curve(y, s)
    fig = _figure(5, 5, dpi)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(fpr, tpr, lw=2, label=f"ROC (AUC = {roc_auc_score(y, s):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="chance")
    if threshold is not None:
        pred = decide(s, threshold)
        sens, fp_rate = pred[y == 1].mean(), pred[y == 0].mean()
        ax.plot([fp_rate], [sens], "o", color="crimson", label=f"threshold {threshold:.3f}")
    ax.set_xlabel("1 - specificity (false positive rate)")
    ax.set_ylabel("sensitivity (true positive rate)")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return _save(fig, out)


def plot_pr(y_true: Any, scores: Any, out: str | Path, *, dpi: int = 100) -> Path:
    """Precision-recall curve of P(pneumonia), with the average precision in the legend.

    Args:
        y_true: Labels (0 normal, else pneumonia).
        scores: P(pneumonia) ``(n,)`` or softmax outputs ``(n, k)``.
        out: Output file.
        dpi: Resolution; the image is ``5 x 5`` inches.

    Returns:
        The output path.

    Raises:
        PneumozooError: Without matplotlib.
        ValueError: If lengths differ or a class is missing.

    Example:
        >>> plot_pr(y, probs, "pr.png")  # doctest: +SKIP
        PosixPath('pr.png')
    """
    # lazy: loads scikit-learn
    from sklearn.metrics import average_precision_score, precision_recall_curve

    y, s = _scores(y_true, scores)
    precision, recall, _ = precision_recall_curve(y, s)
    fig = _figure(5, 5, dpi)
    ax = fig.add_subplot(1, 1, 1)
    ax.step(recall, precision, where="post", lw=2,
            label=f"PR (AP = {average_precision_score(y, s):.3f})")
    ax.axhline(y.mean(), color="k", ls=":", lw=1, label=f"prevalence {y.mean():.2f}")
    ax.set_xlabel("recall (sensitivity)")
    ax.set_ylabel("precision")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    return _save(fig, out)


def plot_reliability(y_true: Any, probabilities: Any, out: str | Path, *, n_bins: int = 15,
                     mode: str = "auto", dpi: int = 100) -> Path:
    """Reliability diagram with the ECE in the title and the bin counts underneath.

    Args:
        y_true: Class labels (0 normal).
        probabilities: Softmax outputs ``(n, k)`` or P(pneumonia) ``(n,)``.
        out: Output file.
        n_bins: Equal-width bins.
        mode: ``auto``, ``binary`` or ``top_label`` (see
            :func:`pneumozoo.evaluation.calibration.reliability_curve`).
        dpi: Resolution; the image is ``5 x 6`` inches.

    Returns:
        The output path.

    Raises:
        PneumozooError: Without matplotlib.
        ValueError: If lengths differ.

    Example:
        >>> plot_reliability(y, probs, "reliability.png")  # doctest: +SKIP
        PosixPath('reliability.png')
    """
    # lazy: loads scikit-learn
    from pneumozoo.evaluation.calibration import expected_calibration_error, reliability_curve

    conf, acc, counts = reliability_curve(y_true, probabilities, n_bins=n_bins, mode=mode)
    ece = expected_calibration_error(y_true, probabilities, n_bins, mode=mode)
    binary = mode == "binary" or (mode == "auto" and (np.ndim(probabilities) == 1
                                                       or np.shape(probabilities)[1] == 2))
    fig = _figure(5, 6, dpi)
    ax = fig.add_axes((0.14, 0.36, 0.8, 0.56))
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    used = counts > 0
    ax.bar(centers[used], acc[used], width=1.0 / n_bins, edgecolor="k", alpha=0.7,
           label="observed")
    ax.plot([0, 1], [0, 1], "k:", label="perfect calibration")
    ax.plot(conf[used], acc[used], "o-", color="crimson", ms=4, label="mean predicted")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("observed pneumonia rate" if binary else "accuracy")
    ax.set_title(f"reliability (ECE = {ece:.3f})")
    ax.legend(loc="upper left")
    ax.tick_params(labelbottom=False)
    hist = fig.add_axes((0.14, 0.08, 0.8, 0.22))
    hist.bar(centers, counts, width=1.0 / n_bins, edgecolor="k", color="grey")
    hist.set_xlim(0, 1)
    hist.set_xlabel("predicted P(pneumonia)" if binary else "confidence")
    hist.set_ylabel("count")
    return _save(fig, out)


# --- images ------------------------------------------------------------------------------
def _grid(n: int, ncols: int) -> tuple[int, int]:
    cols = max(1, min(ncols, n))
    return (n + cols - 1) // cols, cols


def _names_for(pred: Any, names: Sequence[str] | None) -> list[str]:
    """Class names for a prediction: given, from a :class:`Prediction`, or the task's."""
    if names is not None:
        return list(names)
    if hasattr(pred, "probabilities") and pred.probabilities:
        return list(pred.probabilities)
    k = 2 if hasattr(pred, "label") else int(np.asarray(pred).size)
    return list({2: BINARY_CLASSES, 3: THREE_CLASSES}.get(k, [f"class {i}" for i in range(k)]))


def _pred_text(pred: Any, names: Sequence[str] | None) -> tuple[str | None, str]:
    """``(label, caption)`` of a :class:`Prediction` or a probability row."""
    if hasattr(pred, "label"):
        if pred.error is not None:
            return None, f"error: {pred.error}"
        return pred.label, f"{pred.label} (P(pneumonia) {pred.probability:.2f})"
    p = np.asarray(pred, dtype=np.float64).reshape(-1)
    labels = _names_for(p, names)
    i = int(np.argmax(p))
    return labels[i], f"{labels[i]} ({p[i]:.2f})"


def plot_predictions(
    images: Sequence[Any],
    predictions: Sequence[Any],
    true_labels: Sequence[Any] | None,
    out: str | Path,
    *,
    class_names: Sequence[str] | None = None,
    ncols: int = 4,
    dpi: int = 100,
) -> Path:
    """A grid of X-rays with predicted label, probability and true label (green right, red wrong).

    Args:
        images: Anything :func:`pneumozoo.read_xray` accepts, one per panel.
        predictions: :class:`pneumozoo.Prediction` s or probability rows, one per image.
        true_labels: Class names or indices (into ``class_names``), or ``None``.
        out: Output file.
        class_names: Names for probability rows and integer labels (default normal/pneumonia).
        ncols: Panels per row.
        dpi: Resolution; each panel is ``3 x 3.3`` inches.

    Returns:
        The output path.

    Raises:
        PneumozooError: Without matplotlib.
        InvalidImageError: If an image cannot be read.
        ValueError: If the lengths differ or there are no images.

    Example:
        >>> preds = pneumozoo.predict(model, files)  # doctest: +SKIP
        >>> plot_predictions(files, preds, ["normal", "pneumonia"], "preds.png")  # doctest: +SKIP
        PosixPath('preds.png')
    """
    if not images:
        raise ValueError("plot_predictions needs at least one image")
    if len(predictions) != len(images) or (true_labels is not None and len(true_labels) != len(images)):
        raise ValueError("images, predictions and true labels must have the same length")
    require_matplotlib()
    names = list(class_names) if class_names is not None else None
    rows, cols = _grid(len(images), ncols)
    fig = _figure(3 * cols, 3.3 * rows, dpi)
    for k, (image, pred) in enumerate(zip(images, predictions, strict=True)):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(read_xray(image))
        ax.set_xticks([])
        ax.set_yticks([])
        label, caption = _pred_text(pred, names)
        colour = "black"
        if true_labels is not None:
            truth = true_labels[k]
            if not isinstance(truth, str):
                truth = _names_for(pred, names)[int(truth)]
            caption += f"\ntrue: {truth}"
            colour = "green" if label == truth else "crimson"
        ax.set_title(caption, fontsize=9, color=colour)
    fig.tight_layout()
    return _save(fig, out)


def plot_augmentations(preset_name: str, image: Any, out: str | Path, *, n: int = 8,
                       size: int = 224, seed: int = 0, ncols: int = 3, dpi: int = 100) -> Path:
    """Preview an augmentation preset: the original film and ``n`` augmented versions.

    Args:
        preset_name: One of :func:`pneumozoo.augment.list_presets`.
        image: Anything :func:`pneumozoo.read_xray` accepts.
        out: Output file.
        n: Number of augmented samples.
        size: Side the film is resized to before augmenting (as in training).
        seed: Seed of the augmentation.
        ncols: Panels per row.
        dpi: Resolution; each panel is ``3 x 3.2`` inches.

    Returns:
        The output path.

    Raises:
        PneumozooError: Without matplotlib.
        UnknownNameError: For an unknown preset.
        InvalidImageError: If the image cannot be read.

    Example:
        >>> plot_augmentations("xray", "xray.jpeg", "augment.png")  # doctest: +SKIP
        PosixPath('augment.png')
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    require_matplotlib()
    # lazy: loads Keras and its backend
    from pneumozoo.augment import get_preset

    # lazy: loads Keras and its backend
    from pneumozoo.models.preprocessor import XrayPreprocessor

    layer = get_preset(preset_name, seed=seed)
    pixels = XrayPreprocessor(size, color="rgb").prepare(read_xray(image))
    base = pixels.astype(np.float32)
    batch = np.repeat(base[None], n, axis=0)
    augmented = np.asarray(layer(batch, training=True), dtype=np.float32)
    panels = [("original", base)] + [(f"{preset_name} #{i + 1}", a) for i, a in enumerate(augmented)]
    rows, cols = _grid(len(panels), ncols)
    fig = _figure(3 * cols, 3.2 * rows, dpi)
    for k, (title, img) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(np.clip(img, 0, 255).astype(np.uint8))
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return _save(fig, out)


# --- the report folder -------------------------------------------------------------------
def save_report_figures(
    report: Any,
    y_true: Any,
    probabilities: Any,
    folder: str | Path,
    *,
    dpi: int = 100,
) -> list[Path]:
    """Write every evaluation figure of a report into ``folder``.

    Files: ``confusion_matrix.png``, ``roc.png``, ``pr.png``, ``reliability.png``, plus
    ``confusion_matrix_classes.png`` for models with more than two classes. ROC and PR
    curves are skipped when the data hold a single class.

    Args:
        report: The :class:`pneumozoo.evaluation.EvaluationReport`.
        y_true: Class labels the report was computed from.
        probabilities: Softmax outputs the report was computed from.
        folder: Output folder (created).
        dpi: Resolution.

    Returns:
        The paths written.

    Raises:
        PneumozooError: Without matplotlib.

    Example:
        >>> save_report_figures(report, y, probs, "reports/xraynet")  # doctest: +SKIP
    """
    require_matplotlib()
    folder = Path(folder)
    written = [plot_confusion_matrix(report, folder / "confusion_matrix.png", dpi=dpi)]
    if len(report.class_names) > 2:
        written.append(plot_confusion_matrix(report, folder / "confusion_matrix_classes.png",
                                             all_classes=True, dpi=dpi))
    binary = np.asarray(y_true).reshape(-1) > 0
    if binary.any() and not binary.all():
        written.append(plot_roc(y_true, probabilities, folder / "roc.png",
                                threshold=report.threshold, dpi=dpi))
        written.append(plot_pr(y_true, probabilities, folder / "pr.png", dpi=dpi))
    written.append(plot_reliability(y_true, probabilities, folder / "reliability.png", dpi=dpi))
    return written

"""Site adaptation: make a zoo model fit a hospital's own films, and say how well it does there.

Given a site's labelled films (a folder with ``NORMAL/`` and ``PNEUMONIA/``), :func:`adapt`
writes a new model folder that :func:`pneumozoo.load_pretrained` loads:

- ``method="recalibrate"``: the temperature and threshold refitted on the site's films
  (threshold rule declared up front, default ``youden-margin``);
- ``method="probe"``: a new linear classifier (L2-regularised logistic regression, its
  strength chosen by cross-validation) on the model's frozen multi-layer features (the pooled
  activations of every stage and the penultimate features: what the domain guard reads),
  for a site whose films differ from the training films too much for the old classifier;
- ``method="finetune"``: the whole network fine-tuned on the site's films, the settings
  chosen among a small grid by patient-wise k-fold cross-validation, then recalibrated;
- ``method="auto"``: all of them evaluated by the same cross-validation, the best AUC kept.

Thresholds of the final model are chosen on the pooled out-of-fold scores (every site film
scored by a model that did not see it), by the declared rule.

Either way the domain guard is refitted on the site's films, and the card reports the site
metrics measured **only on films the model was not adapted on** (out-of-fold predictions of
patient-wise folds, with patient-bootstrap CIs) and how many films it was adapted on.

With unlabelled films only, :func:`estimate_prevalence` estimates the site's pneumonia
prevalence by EM (Saerens, Latinne & Decaestecker, Neural Computation 2002) with a bootstrap
interval, and :func:`adapt_unlabelled` moves the threshold accordingly.
"""

from __future__ import annotations

import math
import sys
import types
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pneumozoo.data import patient_split, scan_folder, targets
from pneumozoo.errors import DataError, PneumozooError
from pneumozoo.guard import fit_guard, guard_features
from pneumozoo.pretrained.release import write_release
from pneumozoo.recipe import Recipe
from pneumozoo.rules import BINARY_CLASSES
from pneumozoo.rules import in_domain as in_domain_of
from pneumozoo.zoo.config import PretrainedConfig

__all__ = [
    "ADAPT_METHODS",
    "DEFAULT_GRID",
    "AdaptResult",
    "adapt",
    "adapt_unlabelled",
    "estimate_prevalence",
    "expected_auc",
]

#: What :func:`adapt` can do.
ADAPT_METHODS = ("recalibrate", "probe", "finetune", "auto")
#: Inverse regularisation strengths of the probe compared by cross-validation.
PROBE_C = (0.01, 0.1)
#: Fine-tuning settings compared by cross-validation (recipe fields).
DEFAULT_GRID: tuple[dict[str, Any], ...] = (
    {"learning_rate": 1e-4, "epochs": 10},
    {"learning_rate": 3e-4, "epochs": 10},
)
#: Share of the site's patients held out (inside each training fold) to calibrate on.
CALIBRATION_FRACTION = 0.2


@dataclass
class AdaptResult:
    """What :func:`adapt` did.

    Attributes:
        model: The adapted model.
        folder: Where its folder was written (``None`` if not written).
        method: ``recalibrate`` or ``finetune`` (what was kept).
        cv: Cross-validated site metrics (out-of-fold), with 95% CIs, per method tried.
        settings: The chosen fine-tuning settings (empty for ``recalibrate``).
        films: Films (and patients) the final model was adapted on.
    """

    model: Any
    folder: Path | None
    method: str
    cv: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    films: dict[str, int] = field(default_factory=dict)


def _softmax_at(probs: np.ndarray, factor: float) -> np.ndarray:
    """Probabilities with the temperature multiplied by ``factor`` (``log p / factor``)."""
    z = np.log(np.clip(probs, 1e-300, 1.0)) / factor
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def _folds(records: Sequence[Any], y: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    # lazy: loads scikit-learn
    from sklearn.model_selection import StratifiedGroupKFold

    groups = [r.patient_id for r in records]
    if len(set(groups)) < folds:
        raise DataError(f"{len(set(groups))} patients are too few for {folds}-fold cross-validation")
    if min(np.sum(y == 0), np.sum(y > 0)) < folds:
        raise DataError(f"each class needs at least {folds} films for {folds}-fold cross-validation")
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(np.asarray(a), np.asarray(b)) for a, b in cv.split(np.zeros(len(y)), y > 0, groups)]


def _cv_metrics(y: np.ndarray, scores: np.ndarray, shifted: np.ndarray, patients: list[str],
                in_domain: np.ndarray | None) -> dict[str, Any]:
    """Out-of-fold metrics: AUC on the pooled scores; thresholded metrics on each film's own
    fold's decision (``shifted`` puts every fold's threshold at 0.5)."""
    # lazy: loads scikit-learn
    from pneumozoo.evaluation.bootstrap import bootstrap_ci
    from pneumozoo.evaluation.metrics import binary_metrics

    two = np.stack([1 - shifted, shifted], axis=1)
    point = binary_metrics(y, shifted, 0.5)
    ranked = binary_metrics(y, scores, 0.5)
    ci_t = bootstrap_ci(y, two, threshold=0.5, patient_ids=patients, n_boot=1000, seed=0)
    ci_r = bootstrap_ci(y, np.stack([1 - scores, scores], axis=1), threshold=0.5,
                        patient_ids=patients, n_boot=1000, seed=0)
    out: dict[str, Any] = {k: point[k] for k in ("n", "accuracy", "sensitivity", "specificity", "f1")}
    out["auc"] = ranked["auc"]
    out["confidence_intervals"] = {**{k: ci_t[k] for k in ("accuracy", "sensitivity", "specificity", "f1") if k in ci_t},
                                   "auc": ci_r.get("auc")}
    out["patients"] = len(set(patients))
    if in_domain is not None:
        out["out_of_domain_fraction"] = float(1.0 - in_domain.mean())
    return out


def _shift(p: np.ndarray, threshold: float) -> np.ndarray:
    """Scores moved so that ``threshold`` lands on 0.5 (same order, same decisions)."""
    eps = 1e-12
    logit = np.log(np.clip(p, eps, 1) / np.clip(1 - p, eps, 1))
    t = math.log(max(threshold, eps) / max(1 - threshold, eps))
    return np.asarray(1.0 / (1.0 + np.exp(-(logit - t))))


def _calibration_split(records: list[Any], seed: int) -> tuple[list[Any], list[Any]]:
    return patient_split(records, val_fraction=CALIBRATION_FRACTION, seed=seed, task="binary")


def _clone(model: Any) -> Any:
    new = type(model).from_config(model.get_config())
    new.set_weights(model.get_weights())
    return new


def _finetune(base: Any, train: list[Any], rc: Any, seed: int) -> Any:
    """A copy of ``base`` fine-tuned on ``train`` and recalibrated on a held-out part of it."""
    # lazy: loads Keras and its backend
    import keras

    # lazy: loads Keras and its backend
    from pneumozoo.train import fit

    keras.utils.set_random_seed(seed)
    model = _clone(base)
    fit_on, calibrate_on = _calibration_split(train, seed)
    fit(model, fit_on, calibrate_on, recipe=rc, verbose=0, cache=True)
    return model


def _cv_recalibrate(model: Any, records: list[Any], y: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]],
                    rule: str) -> dict[str, Any]:
    # lazy: loads scikit-learn
    from pneumozoo.evaluation.calibration import fit_temperature
    from pneumozoo.evaluation.metrics import pneumonia_scores
    from pneumozoo.evaluation.scoring import predict_records
    from pneumozoo.evaluation.thresholds import choose_threshold

    probs = predict_records(model, records)
    feats = guard_features(model, records)
    scores = np.zeros(len(y))
    shifted = np.zeros(len(y))
    inside = np.zeros(len(y), dtype=bool)
    probe = _clone(model)
    for tr, te in splits:
        factor = fit_temperature(probs[tr], y[tr], kind="probabilities")
        cal_tr, cal_te = _softmax_at(probs[tr], factor), _softmax_at(probs[te], factor)
        t = choose_threshold(y[tr], pneumonia_scores(cal_tr), method=rule).threshold
        scores[te] = pneumonia_scores(cal_te)
        shifted[te] = _shift(scores[te], t)
        fit_on, cut_on = _inner(tr, records)
        fit_guard(probe, feats[fit_on], feats[cut_on])
        inside[te] = in_domain_of(probe.head.domain_distance(feats[te]))
    return _cv_metrics(y, scores, shifted, [r.patient_id for r in records], inside)


def _inner(indices: np.ndarray, records: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """A patient-wise calibration split of a fold's training indices."""
    _, cut_on = _calibration_split([records[i] for i in indices], seed=0)
    keep = {id(r) for r in cut_on}
    mask = np.array([id(records[i]) in keep for i in indices])
    return indices[~mask], indices[mask]


def _fit_probe(x: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """Logistic regression on standardised features, folded back onto the raw features:
    ``logit = x @ w + b``."""
    # lazy: loads scikit-learn
    from sklearn.linear_model import LogisticRegression

    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-6
    lr = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit((x - mu) / sd, y > 0)
    w = lr.coef_[0] / sd
    return w, float(lr.intercept_[0] - w @ mu)


def _probe_scores(x: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-(x @ w + b))))


def _cv_probe(feats: np.ndarray, records: list[Any], y: np.ndarray,
              splits: list[tuple[np.ndarray, np.ndarray]], c: float, rule: str,
              inside: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    # lazy: loads scikit-learn
    from pneumozoo.evaluation.thresholds import choose_threshold

    scores = np.zeros(len(y))
    shifted = np.zeros(len(y))
    for tr, te in splits:
        fit_on, cut_on = _inner(tr, records)
        w, b = _fit_probe(feats[fit_on], y[fit_on], c)
        t = choose_threshold(y[cut_on], _probe_scores(feats[cut_on], w, b), method=rule).threshold
        w, b = _fit_probe(feats[tr], y[tr], c)
        scores[te] = _probe_scores(feats[te], w, b)
        shifted[te] = _shift(scores[te], t)
    return _cv_metrics(y, scores, shifted, [r.patient_id for r in records], inside), scores


def _probe_model(base: Any, w: np.ndarray, b: float, threshold: float) -> Any:
    """``base``'s trunk and guard features with a new binary classifier on those features."""
    # lazy: loads Keras and its backend
    import keras

    # lazy: loads Keras and its backend
    from pneumozoo.models.classifier import PneumoniaClassifier
    from pneumozoo.models.head import ClassifierHead

    guard_input = base.head.input[0]
    logits = keras.layers.Dense(2, name="logits", dtype="float32")(guard_input)
    head = ClassifierHead(BINARY_CLASSES, threshold=threshold,
                          guard_blocks=base.head.guard_blocks, name="head")
    model = PneumoniaClassifier(base.inputs, head([guard_input, logits]), name=base.name)
    # Softmax over (0, z) is sigmoid(z): the probe's probability.
    kernel = np.zeros((len(w), 2), np.float32)
    kernel[:, 1] = w
    model.get_layer("logits").set_weights([kernel, np.array([0.0, b], np.float32)])
    return _clone(model)


def _cv_finetune(model: Any, records: list[Any], y: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]],
                 rc: Any, seed: int, log: Callable[[str], None]) -> dict[str, Any]:
    # lazy: loads scikit-learn
    from pneumozoo.evaluation.scoring import score_records

    scores = np.zeros(len(y))
    shifted = np.zeros(len(y))
    inside = np.zeros(len(y), dtype=bool)
    for k, (tr, te) in enumerate(splits):
        tuned = _finetune(model, [records[i] for i in tr], rc, seed + k)
        scored = score_records(tuned, [records[i] for i in te])
        # lazy: loads scikit-learn
        from pneumozoo.evaluation.metrics import pneumonia_scores

        scores[te] = pneumonia_scores(scored.probabilities)
        shifted[te] = _shift(scores[te], tuned.threshold)
        inside[te] = scored.in_domain if scored.in_domain is not None else True
        log(f"  fold {k + 1}/{len(splits)} done")
    return _cv_metrics(y, scores, shifted, [r.patient_id for r in records], inside)


def adapt(
    model: Any,
    data: str | Path | Sequence[Any],
    *,
    out: str | Path | None = None,
    name: str | None = None,
    method: str = "recalibrate",
    folds: int = 5,
    grid: Sequence[dict[str, Any]] = DEFAULT_GRID,
    probe_c: Sequence[float] = PROBE_C,
    threshold_rule: str = "youden-margin",
    seed: int = 0,
    base_name: str = "",
    notes: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> AdaptResult:
    """Adapt a model to a site's labelled films; cross-validate it; write the new folder.

    Args:
        model: The pneumozoo model to start from (unchanged; the result is a new model).
        data: A folder with ``NORMAL/`` and ``PNEUMONIA/`` (or labelled records) of the site.
        out: Where to write the adapted model folder (``None``: not written).
        name: Name of the adapted model (default ``<model>-<folder name>``).
        method: ``recalibrate``, ``finetune`` or ``auto`` (see the module docstring).
        folds: Patient-wise folds of the cross-validation.
        grid: Fine-tuning settings to compare (fields of :class:`pneumozoo.recipe.Recipe`).
        probe_c: Inverse regularisation strengths of the probe to compare.
        threshold_rule: The declared threshold rule (see
            :func:`pneumozoo.evaluation.choose_threshold`).
        seed: Seed of the folds and of fine-tuning.
        base_name: Name of the starting model, for the card (default: ``model.name``).
        notes: More to record in the card's ``metrics.site`` (e.g. how the start was chosen).
        log: Where progress lines go.

    Returns:
        An :class:`AdaptResult`.

    Raises:
        PneumozooError: For a model that is not a pneumozoo model, an unknown method, or a
            site with too few films or patients for the folds.

    Example:
        >>> result = adapt(load_pretrained(), "site/", out="models/site", method="auto")  # doctest: +SKIP
        >>> result.cv["recalibrate"]["auc"]  # doctest: +SKIP
    """
    # lazy: loads scikit-learn
    from pneumozoo.evaluation.thresholds import choose_threshold

    # lazy: loads Keras and its backend
    from pneumozoo.models.classifier import as_classifier

    base = as_classifier(model)
    if method not in ADAPT_METHODS:
        raise PneumozooError(f"method must be one of {', '.join(ADAPT_METHODS)}, got {method!r}")
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise PneumozooError(f"folds must be an integer >= 2, got {folds!r}")
    records = scan_folder(data) if isinstance(data, (str, Path)) else list(data)
    if not records:
        raise PneumozooError(f"{data}: no labelled films (expected NORMAL/ and PNEUMONIA/ folders)")
    y = np.asarray(targets(records, "binary"))
    if base.task != "binary" and method != "probe":
        raise PneumozooError("only method='probe' adapts a 3-class model (it gets a new binary "
                             "classifier); start from a binary zoo model otherwise")
    splits = _folds(records, y, folds, seed)
    base_name = base_name or base.name
    cv: dict[str, Any] = {}
    rc = Recipe(name="adapt", arch=base.name, augment="xray", schedule="cosine", warmup_epochs=1,
                threshold_rule=threshold_rule, seed=seed)
    if method in ("recalibrate", "auto"):
        log(f"[adapt] cross-validating recalibration ({folds} folds, {len(records)} films)")
        cv["recalibrate"] = _cv_recalibrate(base, records, y, splits, threshold_rule)
    probe_scores: dict[str, np.ndarray] = {}
    if method in ("probe", "auto"):
        feats = guard_features(base, records)
        inside = np.ones(len(y), dtype=bool)
        probe = _clone(base)
        for tr, te in splits:  # the refitted guard's verdict on each held-out fold
            g_fit, g_cut = _inner(tr, records)
            fit_guard(probe, feats[g_fit], feats[g_cut])
            inside[te] = in_domain_of(probe.head.domain_distance(feats[te]))
        for c in probe_c:
            key = f"probe C={c}"
            log(f"[adapt] cross-validating {key}")
            cv[key], probe_scores[key] = _cv_probe(feats, records, y, splits, c, threshold_rule, inside)
            cv[key]["settings"] = {"C": c}
    best_settings: dict[str, Any] = {}
    if method in ("finetune", "auto"):
        for settings in grid:
            key = "finetune " + ", ".join(f"{k}={v}" for k, v in sorted(settings.items()))
            log(f"[adapt] cross-validating {key}")
            cv[key] = _cv_finetune(base, records, y, splits, rc.with_(**settings), seed, log)
            cv[key]["settings"] = dict(settings)
    chosen = max(cv, key=lambda k: float(np.nan_to_num(cv[k]["auc"], nan=-1.0)))
    if len(cv) > 1:
        log(f"[adapt] chosen by cross-validated AUC: {chosen} ({cv[chosen]['auc']:.3f})")
    else:  # the method was given (one candidate): nothing was chosen
        log(f"[adapt] {chosen}: cross-validated AUC {cv[chosen]['auc']:.3f}")
    fit_on, calibrate_on = _calibration_split(records, seed)
    if chosen.startswith("probe"):
        best_settings = dict(cv[chosen]["settings"])
        w, b = _fit_probe(feats, y, best_settings["C"])
        # The threshold by the declared rule on the pooled out-of-fold scores.
        t = choose_threshold(y, probe_scores[chosen], method=threshold_rule).threshold
        adapted = _probe_model(base, w, b, t)
        adapted.head.prior = float(np.mean(y > 0))
        index = {id(r): i for i, r in enumerate(records)}
        fit_guard(adapted, feats[[index[id(r)] for r in fit_on]],
                  feats[[index[id(r)] for r in calibrate_on]],
                  fitted_on=f"{len(fit_on)} site films; cut-off on {len(calibrate_on)} others")
        kept = "probe"
    elif chosen == "recalibrate":
        # lazy: loads scikit-learn
        from pneumozoo.evaluation.calibration import recalibrate

        adapted = _clone(base)
        recalibrate(adapted, records, threshold_rule=threshold_rule)  # T, threshold: every film
        fit_guard(adapted, guard_features(adapted, fit_on), guard_features(adapted, calibrate_on),
                  fitted_on=f"{len(fit_on)} site films; cut-off on {len(calibrate_on)} others")
        kept = "recalibrate"
    else:
        best_settings = dict(cv[chosen]["settings"])
        adapted = _finetune(base, records, rc.with_(**best_settings), seed)
        kept = "finetune"
    films = {"films": len(records), "patients": len({r.patient_id for r in records}),
             "pneumonia": int((y > 0).sum()), "normal": int((y == 0).sum())}
    result = AdaptResult(model=adapted, folder=None, method=kept, cv=cv, settings=best_settings,
                         films=films)
    if out is not None:
        default_name = f"{Path(base_name).name}-{Path(str(data)).name}"
        result.folder = _write(result, out, name or default_name,
                               base_name, data, chosen, threshold_rule, folds, notes or {})
    return result


def _write(result: AdaptResult, out: str | Path, name: str, base_name: str, data: Any,
           chosen: str, rule: str, folds: int, notes: dict[str, Any]) -> Path:
    config = PretrainedConfig.from_model(
        result.model, name=name, architecture=result.model.name,
        description=f"{base_name} adapted to {Path(str(data)).name} ({result.method}, "
                    f"{result.films['films']} films)",
        metrics={"site": {**result.cv[chosen], "method": chosen,
                          "how": f"out-of-fold predictions of {folds} patient-wise folds: each "
                                 "film scored by a model adapted without it; 95% CIs by "
                                 "patient bootstrap",
                          "compared": {k: {m: v.get(m) for m in ("auc", "accuracy", "sensitivity",
                                                                   "specificity")}
                                       for k, v in result.cv.items()}, **notes}},
        training={"adapted_from": base_name, "site_data": Path(str(data)).name, **result.films,
                  "method": result.method, "settings": result.settings,
                  "threshold_rule": rule, "folds": folds,
                  "domain_guard": result.model.head.guard_info})
    folder = Path(out)
    write_release(result.model, config, folder)
    return folder


def estimate_prevalence(
    scores: np.ndarray,
    prior: float,
    *,
    patient_ids: Sequence[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    tol: float = 1e-8,
    max_iter: int = 1000,
) -> dict[str, Any]:
    """The pneumonia prevalence of unlabelled films, by EM on calibrated posteriors.

    Saerens, Latinne & Decaestecker (2002): with posteriors ``p`` calibrated under the
    training prior ``prior``, iterate ``pi <- mean(p'(pi))`` where ``p'`` re-weights each
    posterior by ``pi / prior`` and ``(1 - pi) / (1 - prior)``.

    Args:
        scores: Calibrated P(pneumonia) of the site's films.
        prior: The prevalence the posteriors were calibrated under.
        patient_ids: For a patient bootstrap (default: films).
        n_boot: Bootstrap resamples for the 95% interval.
        seed: Bootstrap seed.
        tol: Convergence tolerance.
        max_iter: Iteration cap.

    Returns:
        ``prevalence``, ``ci`` (95%), ``prior``, ``iterations``, ``converged`` (``False``
        when EM stopped at ``max_iter``: the estimate is then not a fixed point), ``films``.

    Example:
        >>> s = np.array([0.9] * 30 + [0.1] * 70)
        >>> round(estimate_prevalence(s, 0.5, n_boot=0)["prevalence"], 2)
        0.3
    """
    s = np.clip(np.asarray(scores, dtype=np.float64), 1e-9, 1 - 1e-9)
    if s.ndim != 1 or len(s) == 0:
        raise PneumozooError("estimate_prevalence needs a non-empty vector of P(pneumonia)")
    if not 0.0 < prior < 1.0:
        raise PneumozooError(f"prior must be in (0, 1), got {prior!r}")

    def em(x: np.ndarray) -> tuple[float, int]:
        pi = prior
        for i in range(1, max_iter + 1):
            a, b = pi / prior, (1 - pi) / (1 - prior)
            new = float(np.mean(a * x / (a * x + b * (1 - x))))
            if abs(new - pi) < tol:
                return new, i
            pi = min(max(new, 1e-6), 1 - 1e-6)
        return pi, max_iter

    pi, iterations = em(s)
    ci: list[float] | None = None
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        groups = np.asarray(patient_ids if patient_ids is not None else np.arange(len(s)))
        uniq, inverse = np.unique(groups, return_inverse=True)
        members = [np.flatnonzero(inverse == g) for g in range(len(uniq))]
        draws = []
        for _ in range(n_boot):
            pick = rng.integers(0, len(uniq), len(uniq))
            draws.append(em(s[np.concatenate([members[g] for g in pick])])[0])
        ci = [float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))]
    return {"prevalence": pi, "ci": ci, "prior": prior, "iterations": iterations,
            "converged": iterations < max_iter, "films": len(s)}


#: An estimated prevalence this close to 0 or 1 is at the boundary: EM ran off the edge
#: (the posteriors cannot tell the classes apart on these films), not a measurement.
PREVALENCE_EDGE = 0.02
#: The model's own expected AUC on the site's films (:func:`expected_auc`) under which its
#: posteriors are too uninformative to estimate a prevalence from.
MIN_EXPECTED_AUC = 0.65
#: Share of films the domain guard may flag before EM's assumption (only the class mix
#: changed, not the films) is taken as broken.
MAX_OUT_OF_DOMAIN = 0.2


def expected_auc(scores: np.ndarray) -> float:
    """The AUC a calibrated model expects of itself on these films (no labels needed).

    Each film counts as pneumonia with weight ``p`` and as normal with weight ``1 - p``;
    the result is the weighted share of (pneumonia, normal) pairs ranked correctly (ties
    count half). About 0.5 when every posterior is about the same: the model then cannot
    tell the site's classes apart, and a prevalence estimated from its posteriors means
    nothing. It trusts the calibration, so it is an upper bound in spirit: a model that is
    confidently wrong on a new site (out of its domain) still scores high here; the domain
    guard catches that case.

    Args:
        scores: The model's P(pneumonia) of each film (flattened, clipped to 0..1).

    Returns:
        The expected AUC in 0..1; NaN when there are no films or every posterior is 0 (or
        every one is 1).

    Example:
        >>> round(expected_auc(np.array([0.5, 0.5, 0.5])), 3)
        0.5
        >>> expected_auc(np.array([0.0, 1.0]))
        1.0
    """
    p = np.clip(np.asarray(scores, dtype=np.float64).ravel(), 0.0, 1.0)
    pos, neg = p.sum(), (1 - p).sum()
    if len(p) == 0 or pos <= 0 or neg <= 0:
        return float("nan")
    uniq, inverse = np.unique(p, return_inverse=True)  # sorted distinct scores
    w_pos = np.bincount(inverse, weights=p, minlength=len(uniq))
    w_neg = np.bincount(inverse, weights=1 - p, minlength=len(uniq))
    below = np.concatenate([[0.0], np.cumsum(w_neg)[:-1]])  # normal weight strictly lower
    return float((w_pos * (below + 0.5 * w_neg)).sum() / (pos * neg))


def _unlabelled_problems(result: dict[str, Any], scores: np.ndarray) -> list[str]:
    """Why a prevalence estimate from unlabelled films cannot be trusted (empty: it can)."""
    problems = []
    ood = result["out_of_domain_fraction"]
    if ood is not None and ood > MAX_OUT_OF_DOMAIN:
        problems.append(f"the domain guard flags {ood:.0%} of the films as unlike the model's "
                        f"training films (limit {MAX_OUT_OF_DOMAIN:.0%}); EM assumes only the "
                        "class mix changed, not the films")
    sep = result["expected_auc"]
    if not sep >= MIN_EXPECTED_AUC:  # NaN too
        problems.append(f"the model's posteriors barely differ on these films (P(pneumonia) "
                        f"{float(np.min(scores)):.2f}-{float(np.max(scores)):.2f}, expected AUC "
                        f"{sep:.2f} < {MIN_EXPECTED_AUC}): it cannot tell them apart, so their "
                        "mean says nothing about the prevalence")
    if not result["converged"]:
        problems.append(f"EM did not converge ({result['iterations']} iterations, the cap)")
    pi = result["prevalence"]
    if pi < PREVALENCE_EDGE or pi > 1 - PREVALENCE_EDGE:
        problems.append(f"the estimate {pi:.3f} is at the boundary (EM ran off the edge)")
    called = result["pneumonia_fraction"]
    if called in (0.0, 1.0):
        problems.append(f"the moved threshold {result['threshold']:.3g} calls every film "
                        f"{'pneumonia' if called else 'normal'}")
    return problems


def shifted_threshold(threshold: float, prior: float, prevalence: float) -> float:
    """The threshold on the model's posteriors that equals ``threshold`` on posteriors
    re-weighted from ``prior`` to ``prevalence`` (same decisions under the site's prevalence).

    Example:
        >>> round(shifted_threshold(0.5, 0.5, 0.5), 6)
        0.5
    """
    a, b = prevalence / prior, (1 - prevalence) / (1 - prior)
    return float(threshold * b / (a * (1 - threshold) + threshold * b))


def adapt_unlabelled(
    model: Any,
    films: Any,
    *,
    out: str | Path | None = None,
    name: str | None = None,
    n_boot: int = 1000,
    force: bool = False,
) -> dict[str, Any]:
    """Estimate a site's prevalence from unlabelled films and move the threshold to it.

    EM assumes that only the class mix changed between the training films and the site's,
    and it needs posteriors that separate the classes. So before anything is written the
    estimate is checked, and each failed check is a *problem*:

    - the domain guard flags more than :data:`MAX_OUT_OF_DOMAIN` of the films (the films
      themselves changed, not only the mix);
    - the model's own expected AUC on the films (:func:`expected_auc`) is under
      :data:`MIN_EXPECTED_AUC` (its calibrated posteriors barely differ: the site AUC is
      unknown without labels, and the model cannot tell these films apart);
    - EM hit its iteration cap (did not converge);
    - the estimate is within :data:`PREVALENCE_EDGE` of 0 or 1 (EM ran off the edge);
    - the moved threshold would give every site film the same label.

    With ``out`` given, any problem raises (nothing is written) unless ``force=True``;
    without ``out``, or with ``force``, each problem is a ``UserWarning`` and is listed in
    the result's ``problems`` (and in the written model card).

    Args:
        model: A binary pneumozoo model whose head records the prior it was calibrated under
            (every zoo model and every model :func:`pneumozoo.fit` recalibrated does).
        films: A folder (walked recursively) or a list of films.
        out: Write a copy of the model with the moved threshold there (optional).
        name: Its name (default ``<model>-prevalence``).
        n_boot: Bootstrap resamples of the prevalence interval.
        force: Write the model even when the checks above fail (they are still reported).

    Returns:
        ``prevalence`` with its ``ci``, the ``prior``, the ``threshold`` before and after
        (and the thresholds at the interval's ends), ``expected_auc``,
        ``out_of_domain_fraction``, ``pneumonia_fraction`` (site films the new threshold
        calls pneumonia), ``problems`` (empty when every check passed), and ``folder`` if
        written.

    Raises:
        PneumozooError: If the model records no prior, is not binary, no film is readable,
            or (with ``out`` and without ``force``) a check above fails.
    """
    # lazy: loads Keras and its backend
    from pneumozoo.models.classifier import as_classifier
    from pneumozoo.prediction import predict

    base = as_classifier(model)
    if base.task != "binary":
        raise PneumozooError("adapt_unlabelled works on binary models")
    prior = base.head.prior
    if prior is None:
        raise PneumozooError(f"model {base.name!r} records no calibration prior; recalibrate it "
                             "first (pneumozoo.evaluation.calibration.recalibrate)")
    preds = [p for p in predict(base, films) if p.ok]
    if not preds:
        raise PneumozooError("no readable film to estimate the prevalence from")
    scores = np.array([p.probability for p in preds], dtype=np.float64)
    flagged = [p.in_domain is False for p in preds]
    ood = float(np.mean(flagged)) if any(p.in_domain is not None for p in preds) else None
    est = estimate_prevalence(scores, prior, n_boot=n_boot)
    t_old = base.threshold
    t_new = shifted_threshold(t_old, prior, est["prevalence"])
    sep = expected_auc(scores)
    called = float(np.mean(scores >= t_new))
    result = {**est, "threshold_before": t_old, "threshold": t_new,
              "threshold_range": None if est["ci"] is None else sorted(
                  shifted_threshold(t_old, prior, c) for c in est["ci"]),
              "expected_auc": sep, "out_of_domain_fraction": ood,
              "pneumonia_fraction": called,
              "method": "EM prevalence estimate (Saerens et al. 2002); threshold moved to "
                        "give the same decisions on prior-adjusted posteriors"}
    problems = _unlabelled_problems(result, scores)
    result["problems"] = problems
    if problems and out is not None and not force:
        raise PneumozooError(
            f"no model written: the prevalence estimate from {len(preds)} unlabelled films "
            f"({est['prevalence']:.3f}) cannot be trusted: " + "; ".join(problems)
            + ". Adapt on labelled site films instead (method='recalibrate'), or pass "
              "force=True (--force) to write it anyway")

    for problem in problems:
        warnings.warn(f"adapt_unlabelled: {problem}", UserWarning, stacklevel=2)
    if out is not None:
        adapted = _clone(base)
        adapted.threshold = t_new
        config = PretrainedConfig.from_model(
            adapted, name=name or f"{base.name}-prevalence",
            description=f"{base.name} with its threshold moved to an estimated site prevalence "
                        f"of {est['prevalence']:.3f}",
            metrics={"site_prevalence": result},  # with its problems, if forced
            training={"adapted_from": base.name, "films": len(preds), "method": "prevalence"})
        write_release(adapted, config, Path(out))
        result["folder"] = str(out)
    return result


class _CallableModule(types.ModuleType):
    """``pneumozoo.adapt`` is this module *and* the :func:`adapt` function: calling the module
    calls the function, so ``pneumozoo.adapt(model, "site/")`` and
    ``pneumozoo.adapt.estimate_prevalence(...)`` both work whichever was touched first."""

    def __call__(self, *args: Any, **kwargs: Any) -> AdaptResult:
        return adapt(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

"""The model object owns its preprocessing, its decision and its settings.

``build_model`` returns a :class:`~pneumozoo.models.PneumoniaClassifier`: raw films in
(``model.predict`` = ``pneumozoo.predict``), class names, threshold, temperature and domain
guard inside (saved with the model, read back by plain Keras), legacy models upgraded to it,
and ``fit`` recalibrating it. Tiny cnn4 models only: the whole file runs in well under a
minute.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import pneumozoo
from pneumozoo.errors import ModelConfigError, OutOfDomainError, PneumozooError, UnknownNameError
from pneumozoo.models import PneumoniaClassifier, build_model

# Keras converts tensors with np.array(), which numpy 2 flags on every call; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

SIZE = 48  # cnn4's smallest input (four valid convolutions)
BUNDLED = Path(pneumozoo.__file__).parent / "pretrained" / "bundled"
TinyDataset = Callable[..., Path]


def flat(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A prediction's dict with nested dicts flattened (pytest 9 refuses a nested
    ``pytest.approx``)."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def film(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A grey film-like uint8 array: a smooth gradient, two bright fields, noise."""
    rng = np.random.default_rng(seed)
    h, w = shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    grey = 30 + 120 * xx / max(w - 1, 1) + 40 * np.sin(yy / 5.0) + rng.normal(0, 12, (h, w))
    grey = np.clip(grey, 0, 255).astype(np.uint8)
    if len(shape) == 3:
        grey = np.repeat(grey[..., None], shape[2], axis=-1)
    return grey


def probs_of(model: PneumoniaClassifier, x: object) -> np.ndarray:
    """``pneumozoo.predict``'s probabilities, one row per film, in the model's class order."""
    return np.array([[p.probabilities[n] for n in model.class_names]
                     for p in pneumozoo.predict(model, x)])


@pytest.fixture(scope="module")
def model() -> PneumoniaClassifier:
    keras.utils.set_random_seed(0)
    m = build_model("cnn4", input_size=SIZE)
    # Spread the logits so the probabilities are not all ~0.5 (differences then show).
    logits = m.get_layer("logits")
    kernel, bias = logits.get_weights()
    logits.set_weights([kernel * 20.0, bias])
    return m


# --- one model, raw films in -----------------------------------------------------------------
def test_the_model_describes_itself(model: PneumoniaClassifier) -> None:
    assert isinstance(model, PneumoniaClassifier)
    assert model.class_names == ("normal", "pneumonia") and model.task == "binary"
    assert model.input_size == SIZE and model.threshold == 0.5 and model.temperature == 1.0
    assert not model.has_guard
    assert model.preprocessor.color == "luminance" and model.preprocessor.normalization == "unit"
    three = build_model("cnn4", num_classes=3, input_size=SIZE, color="rgb")
    assert three.class_names == ("normal", "bacteria", "virus") and three.task == "3class"
    assert three.preprocessor.color == "rgb"
    pixels = model.prepare(film((61, 37)))
    assert pixels.dtype == np.uint8 and pixels.shape == (SIZE, SIZE, 1)


@pytest.mark.parametrize("shape", [(37, 53), (41, 35, 1), (35, 47, 3)], ids=str)
def test_model_predict_on_a_raw_film_equals_pneumozoo_predict(
        model: PneumoniaClassifier, shape: tuple[int, ...]) -> None:
    x = film(shape, seed=len(shape))
    direct = model.predict(x, verbose=0)
    assert direct.shape == (1, 2) and direct.dtype == np.float32
    via_api = probs_of(model, x)
    np.testing.assert_allclose(direct, via_api, atol=1e-5)
    assert via_api[0].std() > 0 and not np.allclose(via_api[0], 0.5, atol=1e-3)


def test_a_colour_film_and_its_luminance_agree_in_both_paths(model: PneumoniaClassifier) -> None:
    rng = np.random.default_rng(3)
    colour = rng.integers(0, 256, (33, 45, 3)).astype(np.uint8)
    direct = model.predict(colour, verbose=0)
    np.testing.assert_allclose(direct, probs_of(model, colour), atol=1e-5)
    from PIL import Image

    grey = np.asarray(Image.fromarray(colour).convert("L"))  # the luminance policy, exactly
    np.testing.assert_allclose(model.predict(grey, verbose=0), direct, atol=1e-5)
    # rgb models keep the colours: the same film differs from its grey version
    rgb = build_model("cnn4", input_size=SIZE, color="rgb")
    np.testing.assert_allclose(rgb.predict(colour, verbose=0), probs_of(rgb, colour), atol=1e-5)
    assert np.abs(rgb.predict(colour, verbose=0) - rgb.predict(grey, verbose=0)).max() > 1e-6


@pytest.mark.parametrize("channels", [1, 3])
def test_batches_and_lists_of_films(model: PneumoniaClassifier, channels: int) -> None:
    batch = np.stack([film((39, 43, channels), seed=s) for s in range(3)])
    out = model.predict(batch, verbose=0)
    assert out.shape == (3, 2)
    np.testing.assert_allclose(out, probs_of(model, batch), atol=1e-5)
    one_by_one = np.concatenate([model.predict(f, verbose=0) for f in batch])
    np.testing.assert_allclose(out, one_by_one, atol=1e-5)
    # films of different sizes in one list
    films = [film((33, 57), seed=1), film((64, 40, 3), seed=2), film((48, 48, 1), seed=3)]
    listed = model.predict(films, verbose=0)
    np.testing.assert_allclose(listed, probs_of(model, films), atol=1e-5)
    np.testing.assert_allclose(listed, np.concatenate([model.predict(f, verbose=0) for f in films]),
                               atol=1e-5)


@pytest.mark.parametrize("shape", [(37, 53), (37, 53, 1), (37, 53, 3)], ids=str)
def test_float_films_in_0_1_are_rescaled_never_misread(model: PneumoniaClassifier,
                                                        shape: tuple[int, ...]) -> None:
    u8 = film(shape, seed=7)
    want = model.predict(u8, verbose=0)
    for dtype in (np.float32, np.float64):
        unit = u8.astype(dtype) / 255.0  # what read_xray-like loaders give
        np.testing.assert_allclose(model.predict(unit, verbose=0), want, atol=1e-5)
        np.testing.assert_allclose(probs_of(model, unit), want, atol=1e-5)
        batch = unit[None] if unit.ndim == 3 else unit[None, ..., None]
        np.testing.assert_allclose(model.predict(batch, verbose=0), want, atol=1e-5)
        np.testing.assert_allclose(probs_of(model, batch), want, atol=1e-5)
    # floats already in 0..255 keep their scale
    np.testing.assert_allclose(model.predict(u8.astype(np.float32), verbose=0), want, atol=1e-5)
    batch255 = u8.astype(np.float32)[None] if u8.ndim == 3 else u8.astype(np.float32)[None, ..., None]
    np.testing.assert_allclose(model.predict(batch255, verbose=0), want, atol=1e-5)


def test_thresholds_outside_0_1_are_refused(model: PneumoniaClassifier) -> None:
    x = film((40, 40))
    for bad in (1.5, -0.1, math.nan, math.inf, True, "0.5x"):
        with pytest.raises(ModelConfigError, match="threshold"):
            pneumozoo.predict(model, x, threshold=bad)  # type: ignore[arg-type]
        with pytest.raises(ModelConfigError, match="threshold"):
            model.threshold = bad  # type: ignore[assignment]
        assert model.threshold == 0.5, "a refused threshold leaves the model's as it was"
    for edge in (0.0, 1.0):
        assert pneumozoo.predict(model, x, threshold=edge)[0].threshold == edge
    with pytest.raises(PneumozooError, match="load_pretrained"):
        pneumozoo.predict("xraynet-binary", x)  # a name, not a model


def test_a_new_temperature_is_used_at_once(model: PneumoniaClassifier) -> None:
    """Setting the temperature after a predict (calibration does) is not served stale."""
    from pneumozoo.evaluation.calibration import set_temperature

    m = build_model("cnn4", input_size=SIZE)
    m.set_weights(model.get_weights())
    x = film((50, 44), seed=5)
    before = m.predict(x, verbose=0).astype(np.float64)
    before_api = probs_of(m, x)
    set_temperature(m, 4.0)  # in place, on a model that has already predicted
    z = np.log(before) / 4.0
    want = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(m.predict(x, verbose=0), want, atol=1e-5)
    np.testing.assert_allclose(probs_of(m, x), want, atol=1e-5)
    assert np.abs(before_api - want).max() > 1e-3


# --- settings travel with the model ----------------------------------------------------------
def _with_guard(model: PneumoniaClassifier, seed: int = 0) -> dict[str, object]:
    from pneumozoo.guard import fit_guard

    dim = model.features(np.zeros((1, SIZE, SIZE, 1), np.float32)).shape[1]
    rng = np.random.default_rng(seed)
    return fit_guard(model, rng.normal(size=(60, dim)), rng.normal(size=(30, dim)),
                     fitted_on="random features")


def test_save_and_plain_keras_load_keep_every_setting(model: PneumoniaClassifier,
                                                       tmp_path: Path) -> None:
    m = build_model("cnn4", num_classes=2, class_names=("healthy", "sick"), input_size=SIZE)
    m.set_weights(model.get_weights()[:len(m.get_weights())])
    m.head.temperature = 1.7
    m.threshold = 0.37
    info = _with_guard(m)
    assert m.has_guard and info["fit_films"] == 60 and info["cutoff_films"] == 30
    path = tmp_path / "m.keras"
    m.save(path)
    loaded = keras.saving.load_model(path)  # plain Keras: no pneumozoo call
    assert isinstance(loaded, PneumoniaClassifier)
    assert loaded.class_names == ("healthy", "sick")
    assert loaded.threshold == 0.37 and loaded.temperature == 1.7
    assert loaded.has_guard and loaded.head.guard_cutoff == m.head.guard_cutoff
    assert loaded.head.guard_info == m.head.guard_info
    assert loaded.head.get_config() == m.head.get_config()
    guard_weights = m.head.get_weights()  # the head's only weights are the guard's arrays
    assert guard_weights and any(np.abs(w).max() > 0 for w in guard_weights)
    for a, b in zip(loaded.head.get_weights(), guard_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    x = [film((45, 39), seed=1), film((45, 39, 3), seed=2)]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), m.predict(x, verbose=0), atol=1e-6)
    a, b = pneumozoo.predict(m, x), pneumozoo.predict(loaded, x)
    for pa, pb in zip(a, b, strict=True):
        assert flat(pa.to_dict()) == pytest.approx(flat(pb.to_dict()))
    assert all(p.domain_score is not None for p in b)
    config = json.loads(__import__("zipfile").ZipFile(path).read("config.json"))
    assert config["class_name"] == "PneumoniaClassifier"


def test_the_guard_flags_a_far_away_film(model: PneumoniaClassifier) -> None:
    from pneumozoo.guard import fit_guard

    m = build_model("cnn4", input_size=SIZE)
    m.set_weights(model.get_weights())
    near = film((52, 46), seed=11)
    f_near = m.features(m.prepare(near)[None])
    far = np.indices((60, 60)).sum(axis=0) % 2 * 255  # a checkerboard: nothing like a film
    far = far.astype(np.uint8)
    assert np.abs(m.features(m.prepare(far)[None]) - f_near).max() > 1e-2
    rng = np.random.default_rng(0)
    # in-domain features: the near film's, give or take a little
    fit_guard(m, f_near + rng.normal(0, 1e-3, (80, f_near.shape[1])),
              f_near + rng.normal(0, 1e-3, (40, f_near.shape[1])))
    flagged = pneumozoo.predict(m, [near, far])
    assert flagged[0].in_domain is True and flagged[0].domain_score < 1.0
    assert flagged[1].in_domain is False and flagged[1].domain_score > 1.0
    assert flagged[1].label in m.class_names  # flagged, still predicted
    _, scores = m.scores(np.stack([m.prepare(near), m.prepare(far)]))
    assert scores is not None
    np.testing.assert_allclose(scores, [p.domain_score for p in flagged], rtol=1e-6)
    kept = pneumozoo.predict(m, [near, far, near], on_out_of_domain="skip")
    assert len(kept) == 2 and all(p.in_domain for p in kept)
    with pytest.raises(OutOfDomainError):
        pneumozoo.predict(m, [near, far], on_out_of_domain="fail")
    assert len(pneumozoo.predict(m, [near], on_out_of_domain="fail")) == 1
    # a colour picture is out of domain whatever its grey version looks like
    ramp = np.linspace(0, 255, 46)[None, :].repeat(52, axis=0)
    colour = np.stack([ramp, 255 - ramp, np.full_like(ramp, 90)], axis=-1).astype(np.uint8)
    assert pneumozoo.predict(m, colour)[0].in_domain is False
    with pytest.raises(PneumozooError, match="on_out_of_domain"):
        pneumozoo.predict(m, near, on_out_of_domain="ignore")


def test_evaluate_and_predict_share_one_in_domain(tmp_path: Path) -> None:
    """The colour check counts in evaluate as in predict: one definition of "in domain"."""
    import shutil

    from PIL import Image

    fixtures = Path(__file__).parent / "fixtures" / "kermany" / "test"
    root = tmp_path / "site"
    for label in ("NORMAL", "PNEUMONIA"):
        shutil.copytree(fixtures / label, root / label)
    grey = np.asarray(Image.open(fixtures / "NORMAL" / "IM-0093-0001.jpeg").convert("L"), np.float64)
    tinted = np.stack([grey, grey * 0.8, grey * 0.55], axis=-1).astype(np.uint8)  # a sepia print
    Image.fromarray(tinted).save(root / "NORMAL" / "sepia-IM-0093-0001.png")
    model = pneumozoo.load_pretrained()
    files = sorted(root.rglob("*.*"))
    flags = {f.name: p.in_domain for f, p in zip(files, pneumozoo.predict(model, files), strict=True)}
    # its grey version is in domain (the guard sees luminance): only the colour check flags it
    assert flags["sepia-IM-0093-0001.png"] is False and flags["IM-0093-0001.jpeg"] is True
    report = pneumozoo.evaluate(model, root, ci=False)
    assert report.out_of_domain_fraction == pytest.approx(
        sum(v is False for v in flags.values()) / len(flags))
    kept = pneumozoo.evaluate(model, root, ci=False, on_out_of_domain="skip")
    assert kept.n == sum(v is True for v in flags.values())


# --- legacy models -----------------------------------------------------------------------------
def _legacy_cnn4(temperature: float = 1.3) -> keras.Model:
    """A model as pneumozoo 0.1 built it: Resizing -> Normalize -> cnn4 -> logits -> ClassifierOutput."""
    from pneumozoo.models import get_model_info
    from pneumozoo.models.layers import ClassifierOutput, Normalize, Resizing

    inputs = keras.Input(shape=(None, None, 3), name="image")
    x = Resizing(SIZE, SIZE, interpolation="bilinear", antialias=True, name="resize")(inputs)
    x = Normalize("unit", name="normalize")(x)
    features = get_model_info("cnn4").builder(x, input_size=SIZE)
    logits = keras.layers.Dense(2, name="logits")(features)
    out = ClassifierOutput(("normal", "pneumonia"), temperature=temperature,
                           name="probabilities")(logits)
    return keras.Model(inputs, out, name="cnn4")


def test_a_hand_built_legacy_model_upgrades_with_identical_probabilities(tmp_path: Path) -> None:
    from pneumozoo.models.legacy import is_legacy, upgrade_legacy
    from pneumozoo.pretrained import load_model_file

    keras.utils.set_random_seed(1)
    old = _legacy_cnn4()
    assert is_legacy(old)
    new = upgrade_legacy(old, architecture="cnn4", threshold=0.42)
    assert isinstance(new, PneumoniaClassifier) and not is_legacy(new)
    assert new.class_names == ("normal", "pneumonia") and new.input_size == SIZE
    assert new.temperature == 1.3 and new.threshold == 0.42
    assert new.preprocessor.normalization == "unit"
    prepared = np.stack([np.repeat(new.prepare(film((50 + s, 41, 1), seed=s)), 3, axis=-1)
                         for s in range(4)]).astype(np.float32)
    want = np.asarray(old(prepared, training=False))
    np.testing.assert_allclose(np.asarray(new(prepared, training=False)), want, atol=1e-6)
    np.testing.assert_allclose(new.predict(prepared, verbose=0), want, atol=1e-6)
    assert np.abs(want - 0.5).max() > 1e-4  # not a trivially constant model
    # the same through a saved file
    old.save(tmp_path / "old.keras")
    reread = load_model_file(tmp_path / "old.keras")
    assert is_legacy(reread)
    again = upgrade_legacy(reread, architecture="cnn4", threshold=0.42)
    np.testing.assert_allclose(again.predict(prepared, verbose=0), want, atol=1e-6)


def test_a_bundled_folder_loads_as_the_new_model_with_its_own_predictions() -> None:
    from pneumozoo.models.legacy import is_legacy, upgrade_legacy
    from pneumozoo.pretrained import PretrainedConfig, load_model_file, load_pretrained

    folder = BUNDLED / "cnn4-binary"
    if not (folder / "config.json").is_file():
        pytest.skip("cnn4-binary is not bundled in this checkout")
    config = PretrainedConfig.read(folder)
    model = load_pretrained("cnn4-binary")
    assert isinstance(model, PneumoniaClassifier)
    assert model.class_names == tuple(config.class_names)
    assert model.threshold == pytest.approx(config.threshold, abs=1e-6)
    assert model.input_size == config.input_size
    films = [film((150, 130), seed=s) for s in range(3)]
    prepared = np.stack([np.repeat(model.prepare(f), 3, axis=-1) for f in films]).astype(np.float32)
    raw = load_model_file(folder)
    saved_as = json.loads((folder / "config.json").read_text())["class_name"]
    if is_legacy(raw):  # a pneumozoo 0.1 folder, upgraded on load
        assert saved_as != "PneumoniaClassifier"
        np.testing.assert_allclose(model.predict(prepared, verbose=0),
                                   np.asarray(raw(prepared, training=False)), atol=1e-6)
        upgraded = upgrade_legacy(raw, architecture=config.architecture, threshold=config.threshold)
        np.testing.assert_allclose(upgraded.predict(films, verbose=0),
                                   model.predict(films, verbose=0), atol=1e-6)
    else:  # already re-saved in the new format
        assert saved_as == "PneumoniaClassifier" and isinstance(raw, PneumoniaClassifier)
        np.testing.assert_allclose(model.predict(films, verbose=0), raw.predict(films, verbose=0),
                                   atol=1e-6)
    np.testing.assert_allclose(model.predict(films, verbose=0), probs_of(model, films), atol=1e-5)


# --- training: one recipe, recalibration at the end -------------------------------------------
def test_recipe_settings_are_validated() -> None:
    from pneumozoo.recipe import Recipe

    with pytest.raises(PneumozooError, match="epochs"):
        Recipe(epochs=0)
    with pytest.raises(PneumozooError, match="learning_rate"):
        Recipe(learning_rate=-1.0)
    with pytest.raises(UnknownNameError) as e:
        Recipe().with_(epoch=3)
    msg = str(e.value)
    assert "'epoch'" in msg and all(k in msg for k in ("epochs", "learning_rate", "threshold_rule"))
    assert Recipe().with_(epochs=3).epochs == 3
    m = build_model("cnn4", input_size=SIZE)
    with pytest.raises(UnknownNameError, match="learning_rate"):
        pneumozoo.fit(m, [], epoch=3)
    with pytest.raises(PneumozooError, match="epochs"):
        pneumozoo.fit(m, [], epochs=0)


def test_fit_recalibrates_and_forgets_a_pretrained_threshold(tiny_dataset: TinyDataset,
                                                             tmp_path: Path) -> None:
    from pneumozoo.data import scan_split, targets
    from pneumozoo.evaluation.metrics import pneumonia_scores
    from pneumozoo.evaluation.scoring import score_records
    from pneumozoo.evaluation.thresholds import choose_threshold

    root = tiny_dataset(6, 6, size=40, splits=("train", "val"))
    train, val = scan_split(root, "train"), scan_split(root, "val")
    y_val = np.asarray(targets(val, "binary"))

    # "pretrained": settings of another dataset, saved and loaded back
    keras.utils.set_random_seed(2)
    start = build_model("cnn4", input_size=SIZE)
    start.threshold = 0.123
    start.head.temperature = 3.0
    start.save(tmp_path / "pretrained.keras")
    for model in (build_model("cnn4", input_size=SIZE),
                  keras.saving.load_model(tmp_path / "pretrained.keras")):
        old_threshold, old_temperature = model.threshold, model.temperature
        assert not model.has_guard
        result = pneumozoo.fit(model, train, val, epochs=1, batch_size=6, augment="none",
                               verbose=0)
        fitted = result.extra["calibration"]
        assert result.extra["recipe"]["epochs"] == 1
        assert model.has_guard and fitted["guard"]["fit_films"] == len(train)
        assert model.threshold == pytest.approx(fitted["threshold"])
        assert model.temperature == pytest.approx(fitted["temperature"])
        assert model.threshold != old_threshold and model.temperature != old_temperature
        # the threshold is the recipe's rule on the model's own calibrated validation scores
        probs, domain, _ = score_records(model, val)
        rule = choose_threshold(y_val, pneumonia_scores(probs), method="youden-margin")
        assert model.threshold == pytest.approx(rule.threshold, abs=1e-6)
        assert domain is not None and np.mean(domain <= 1.0) >= 0.9
    # without validation records nothing is recalibrated
    plain = build_model("cnn4", input_size=SIZE)
    result = pneumozoo.fit(plain, train, None, epochs=1, batch_size=6, augment="none", verbose=0)
    assert "calibration" not in result.extra and plain.threshold == 0.5 and not plain.has_guard


def test_grad_cam_explains_the_label_predict_gives(model: PneumoniaClassifier) -> None:
    from pneumozoo.explain import grad_cam

    m = build_model("cnn4", input_size=SIZE)
    m.set_weights(model.get_weights())
    x = film((57, 49), seed=4)
    by_class = {name: grad_cam(m, x, class_index=name) for name in m.class_names}
    assert not np.array_equal(by_class["normal"], by_class["pneumonia"]), "a meaningful check"
    p_sick = pneumozoo.predict(m, x)[0].probability
    assert p_sick is not None
    # thresholds on either side of this film's score: the label flips, Grad-CAM follows it
    for threshold in (max(p_sick - 0.05, 0.0), min(p_sick + 0.05, 1.0)):
        m.threshold = threshold
        label = pneumozoo.predict(m, x)[0].label
        assert label is not None
        np.testing.assert_array_equal(grad_cam(m, x), by_class[label])
    labels = set()
    for threshold in (max(p_sick - 0.05, 0.0), min(p_sick + 0.05, 1.0)):
        labels.add(pneumozoo.predict(m, x, threshold=threshold)[0].label)
    assert labels == {"normal", "pneumonia"}

"""Speed levers: the pass-through resize, mixed precision (bfloat16/float16) and XLA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "kermany"


def _ops_of(model: Any, shape: tuple[int | None, ...]) -> set[str]:
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False))
    graph = fn.get_concrete_function(tf.TensorSpec(shape, tf.float32)).graph
    ops = {op.type for op in graph.get_operations()}
    for f in graph.as_graph_def().library.function:  # nested functions
        ops |= {node.op for node in f.node_def}
    return ops


def test_resize_is_skipped_at_the_model_size_only() -> None:
    import pneumozoo

    model = pneumozoo.build_model("xraynet", input_size=32)
    assert "ScaleAndTranslate" not in _ops_of(model, (None, 32, 32, 3))
    assert "ScaleAndTranslate" in _ops_of(model, (None, None, None, 3))
    rng = np.random.default_rng(0)
    big = rng.uniform(0, 255, (3, 50, 41, 3)).astype(np.float32)
    # Other sizes are still resized in the graph, with the pipeline's filter.
    np.testing.assert_allclose(model.predict(big, verbose=0),
                               model.predict(np.repeat(model.preprocessor.to_pixels(big), 3, axis=-1),
                                             verbose=0),
                               atol=1e-5)


def test_calling_the_model_does_not_train_batchnorm(tmp_path: Path) -> None:
    import keras

    import pneumozoo

    model = pneumozoo.build_model("xraynet", input_size=32)
    x = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    before = [w.copy() for w in model.get_weights()]
    direct = np.asarray(model(x))  # no training=False: must still be inference
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    np.testing.assert_allclose(direct, model.predict(x, verbose=0), atol=1e-6)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded.preprocessor) is type(model.preprocessor)
    np.testing.assert_allclose(np.asarray(loaded(x)), direct, atol=1e-6)


def _tiny_batches(n: int = 8, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.uniform(0, 255, (n, size, size, 3)).astype(np.float32),
            np.arange(n, dtype=np.int32) % 2)


_MIXED_PRECISION_RUN = """
import sys
import keras, numpy as np, tensorflow as tf
import pneumozoo
from pneumozoo.train import compile_model

precision = sys.argv[1]
keras.utils.set_random_seed(0)
model = pneumozoo.build_model("xraynet", input_size=32, precision=precision)
assert model.get_layer("stage1_a_conv").compute_dtype == precision.split("_")[1]
assert keras.config.dtype_policy().name == "float32"  # the global policy is left alone
rng = np.random.default_rng(0)
x = rng.uniform(0, 255, (8, 32, 32, 3)).astype(np.float32)
y = np.arange(8, dtype=np.int32) % 2
before = [w.copy() for w in model.get_weights()]
result = pneumozoo.fit(model, tf.data.Dataset.from_tensor_slices((x, y)).batch(4),
                       epochs=1, class_weight=None, augment=None, verbose=0)
assert np.isfinite(result.history["loss"][0]), result.history
changed = sum(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
assert changed > 10, changed
out = model.predict(x, verbose=0)
assert out.dtype == np.float32 and np.allclose(out.sum(axis=1), 1.0, atol=1e-5), out
scaled = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
assert scaled == (precision == "mixed_float16")  # loss scaling for float16 only
# A float16 model rebuilt from its config (model-level policy lost) is still scaled.
clone = keras.Model.from_config(model.get_config())
compile_model(clone)
assert isinstance(clone.optimizer, keras.optimizers.LossScaleOptimizer) == scaled
print("ok")
"""


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_and_outputs_float32(precision: str, tf_env: dict[str, str]) -> None:
    """In a fresh process: a precision policy is process-wide TensorFlow state, and after
    hundreds of other tests in one process the bfloat16 run once gave NaN outputs that no
    fresh process reproduces (see the session note of 2026-12-02)."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", _MIXED_PRECISION_RUN, precision],
                         capture_output=True, text=True, env=tf_env, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-3000:]


_XLA_RUN = """
import sys
import numpy as np
import pneumozoo
from pneumozoo.data import scan_split

model = pneumozoo.build_model("cnn4", input_size=64)  # small graph: quick to XLA-compile
records = scan_split(sys.argv[1], "train")[::3]
before = [np.array(w.numpy()) for w in model.trainable_weights]
result = pneumozoo.fit(model, records, epochs=1, batch_size=8, jit_compile=True,
                       augment="none", verbose=0)
assert model.jit_compile is True
assert np.isfinite(result.history["loss"][0])
# every trainable weight moved (the head's guard arrays are not trained, only fitted)
after = [np.array(w.numpy()) for w in model.trainable_weights]
assert sum(not np.array_equal(a, b) for a, b in zip(before, after, strict=True)) == len(before)
print("ok")
"""


def test_xla_trains_one_step(tf_env: dict[str, str]) -> None:
    """In a fresh process: Keras turns XLA off once op determinism is on, and in-process
    `pneumozoo train` runs turn it on for the whole process."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", _XLA_RUN, str(FIXTURES)],
                         capture_output=True, text=True, env=tf_env, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-3000:]


def test_grayscale_batches_are_augmented_on_one_channel_with_the_same_result() -> None:
    import tensorflow as tf

    from pneumozoo.augment import get_preset
    from pneumozoo.data.pipeline import _to_model_input

    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (4, 40, 40, 1)).astype(np.uint8)
    gray = np.repeat(one, 3, axis=-1)
    colour = rng.integers(0, 256, (4, 40, 40, 3)).astype(np.uint8)
    fast = tf.function(lambda x, layer, preset: _to_model_input(x, layer, preset))
    for name in ("xray", "affine-sharpen"):
        got = fast(tf.constant(one), get_preset(name, seed=5), True).numpy()
        want = get_preset(name, seed=5)(gray.astype(np.float32), training=True).numpy()
        assert got.shape == want.shape == (4, 40, 40, 3)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)  # float rounding
        assert np.abs(got - gray).max() > 1.0  # it did augment
        # Colour batches keep their channels; a user's layer always sees RGB.
        got_c = fast(tf.constant(colour), get_preset(name, seed=5), True).numpy()
        want_c = get_preset(name, seed=5)(colour.astype(np.float32), training=True).numpy()
        np.testing.assert_allclose(got_c, want_c, rtol=1e-4, atol=1e-3)
        assert np.abs(got_c[..., 0] - got_c[..., 1]).max() > 1.0
    seen: list[tuple[int, ...]] = []
    record = lambda x, training: seen.append(tuple(x.shape)) or x  # noqa: E731
    _to_model_input(tf.constant(one), record, False)
    assert seen == [(4, 40, 40, 3)]
    plain = _to_model_input(tf.constant(one), None, True).numpy()
    np.testing.assert_array_equal(plain, gray)

"""One training run scores its validation (and test) films once after training (issue 24).

Keras's per-epoch validation during ``fit`` (which picks the best checkpoint) runs through
``model.evaluate``'s test step, not :meth:`PneumoniaClassifier.predict_prepared`, and is a
separate, wanted pass; this counts what happens after training: the temperature, threshold,
guard cut-off and validation metrics must all read one scoring of the validation films.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pneumozoo import run
from pneumozoo.models.classifier import PneumoniaClassifier
from pneumozoo.recipe import Recipe


@pytest.mark.timeout(300)
def test_validation_films_go_through_the_model_once_after_training(
        tiny_dataset: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tiny_dataset(n_normal=10, n_pneumonia=10, size=48, splits=("train", "test"))
    recipe = Recipe(name="tiny", arch="cnn4", input_size=48, epochs=1, batch_size=8,
                    augment="none", val_fraction=0.3, seed=0)
    train, val = run.split(recipe, run.recipe_records(recipe, data))

    trained = {"done": False}
    rows: Counter[str] = Counter()
    calls = {"n": 0}
    real_fit, real_predict = run.fit, PneumoniaClassifier.predict_prepared

    def fit(*args: Any, **kwargs: Any) -> Any:
        out = real_fit(*args, **kwargs)
        trained["done"] = True
        return out

    def predict_prepared(self: PneumoniaClassifier, batch: Any) -> Any:
        if trained["done"]:
            calls["n"] += 1
            x = np.asarray(self._prepared(batch))
            rows.update(hashlib.sha256(row.tobytes()).hexdigest() for row in x)
        return real_predict(self, batch)

    monkeypatch.setattr(run, "fit", fit)
    monkeypatch.setattr(PneumoniaClassifier, "predict_prepared", predict_prepared)
    _, config = run.run_recipe(recipe, data, out=tmp_path / "model", verbose=0, test=True,
                               log=lambda *a: None)

    assert trained["done"] and calls["n"] > 0
    # After training: the training films once (the guard's fit), the validation films once
    # (temperature, threshold, guard cut-off and validation metrics all read that one pass)
    # and the test films once (the test report and its operating points read one pass).
    n_test = len(run.scan_split(data, "test"))
    assert config.metrics["test"]["n"] == n_test and config.metrics["test"]["operating_points"]
    assert sum(rows.values()) == len(train) + len(val) + n_test
    assert max(rows.values()) == 1, "a film went through the model twice after training"

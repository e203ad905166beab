"""Write a release: the model folder with its config and model card, or rewrite one.

A release is described by :func:`pneumozoo.run.prepare_release` (calibration, threshold and
validation metrics, at the end of a training run); ``pneumozoo train``, the zoo's recipes and
``pneumozoo adapt`` all write through here, so a model a user trains is packaged exactly like
the zoo's own.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from pneumozoo.zoo.card import model_card
from pneumozoo.zoo.config import CONFIG_FILE, WEIGHT_FILES, PretrainedConfig
from pneumozoo.zoo.schema import MAX_CONFIG_BYTES, read_json

__all__ = ["update_release", "write_release"]


def write_release(model: Any, config: PretrainedConfig, folder: str | Path) -> PretrainedConfig:
    """Write the model folder (Keras files, ``pneumozoo.json`` with sha256s, model card).

    Args:
        model: The calibrated model from :func:`pneumozoo.run.prepare_release`.
        config: Its config (add test metrics to ``config.metrics["test"]`` first if you have them).
        folder: The model folder to (re)write; written atomically.

    Returns:
        The config as written (with the files' sha256 and the parameter count).

    Example:
        >>> write_release(calibrated, config, "models/mine")  # doctest: +SKIP
    """
    from pneumozoo.pretrained.folder import save_folder  # lazy: loads Keras

    written = save_folder(model, folder, config)
    (Path(folder) / "README.md").write_text(model_card(written), encoding="utf-8")
    return written


def update_release(model: Any, config: PretrainedConfig, folder: str | Path,
                   out: str | Path | None = None) -> PretrainedConfig:
    """Rewrite a released model folder with new settings or metrics, keeping what is not
    generated: extra files (``reference_predictions.json``, ``history.json``...) and any
    hand-written sections appended to the model card.

    Args:
        model: The model (as loaded from ``folder``, possibly with new settings).
        config: Its new config.
        folder: The released folder.
        out: Where to write (default: ``folder`` itself, rewritten atomically).

    Returns:
        The config as written.
    """
    folder = Path(folder)
    out = Path(out) if out is not None else folder
    generated = {CONFIG_FILE, "README.md", *WEIGHT_FILES}
    kept = {f.name: f.read_bytes() for f in folder.iterdir()
            if f.is_file() and f.name not in generated}
    card = (folder / "README.md").read_text(encoding="utf-8") if (folder / "README.md").is_file() else ""
    notes = next((card[len(generated_card):] for generated_card in _cards_of(folder)
                  if card.startswith(generated_card)), "")
    written = write_release(model, config, out)
    for name, content in kept.items():
        (out / name).write_bytes(content)
    if notes:
        (out / "README.md").write_text(model_card(written) + notes, encoding="utf-8")
    return written


def _cards_of(folder: Path) -> list[str]:
    """The model cards pneumozoo may have generated for ``folder``: from its config as read
    now and, for a ``pneumozoo.json`` written before the settings moved into the model, from
    the file as stored (its own ``preprocessing`` wording)."""
    config = PretrainedConfig.read(folder)
    cards = [model_card(config)]
    stored = read_json(folder / CONFIG_FILE, max_bytes=MAX_CONFIG_BYTES)
    if isinstance(stored, dict) and "preprocessing" in stored:
        cards.append(model_card(replace(config, preprocessing=dict(stored["preprocessing"]))))
    return cards

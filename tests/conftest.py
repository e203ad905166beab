"""Shared fixtures: the real fixture X-rays, a synthetic Kermany-layout dataset factory and a
quiet TensorFlow environment. Keep this file small and generic; test-specific helpers belong
in the test files."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# TensorFlow reads this when it is first imported (often during collection).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FIXTURE_ROOT = Path(__file__).resolve().parent / "fixtures" / "kermany"

TinyDataset = Callable[..., Path]


@pytest.fixture(scope="session")
def fixture_root() -> Path:
    """The real Kermany fixture: ``train/`` (12 + 12) and ``test/`` (4 + 4), 224 px JPEGs."""
    assert (FIXTURE_ROOT / "train" / "NORMAL").is_dir(), FIXTURE_ROOT
    return FIXTURE_ROOT


@pytest.fixture
def tf_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Quiet TensorFlow in this process; yields an environment for child processes too."""
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    yield dict(os.environ)


def synthetic_xray(rng: np.random.Generator, size: int, label: int) -> np.ndarray:
    """A grayscale film-like ``uint8`` image: dark background, two bright lung fields, noise.

    Pneumonia images (``label`` 1) get a bright opacity in one lung, so a model can learn.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    img = 40.0 + 30.0 * rng.random((size, size))
    for cx in (0.3, 0.7):
        img += 120.0 * np.exp(-(((xx - cx) / 0.15) ** 2 + ((yy - 0.5) / 0.3) ** 2))
    if label:
        cx = rng.choice([0.3, 0.7])
        img += 90.0 * np.exp(-(((xx - cx) / 0.1) ** 2 + ((yy - 0.6) / 0.1) ** 2))
    return np.clip(img, 0, 255).astype(np.uint8)


def kermany_names(n_normal: int, n_pneumonia: int) -> tuple[list[str], list[str]]:
    """Realistic Kermany stems; every third patient has a second image (same patient id)."""
    normals: list[str] = []
    p = 100
    while len(normals) < n_normal:
        prefix = "NORMAL2-IM" if p % 2 else "IM"
        normals.append(f"{prefix}-{p:04d}-0001")
        if p % 3 == 0 and len(normals) < n_normal:
            normals.append(f"{prefix}-{p:04d}-0001-0002")
        p += 1
    pneumonia: list[str] = []
    p, n = 1, 1
    while len(pneumonia) < n_pneumonia:
        kind = "virus" if p % 3 == 0 else "bacteria"
        for _ in range(2 if p % 4 == 0 else 1):
            if len(pneumonia) < n_pneumonia:
                pneumonia.append(f"person{p}_{kind}_{n}")
                n += 1
        p += 1
    return normals, pneumonia


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> TinyDataset:
    """Factory writing a synthetic Kermany-layout dataset; returns its root folder.

    ``tiny_dataset(n_normal=8, n_pneumonia=8, size=32, fmt="png", splits=("train",),
    name="data", seed=0)`` writes ``<root>/<split>/{NORMAL,PNEUMONIA}/<kermany name>.<fmt>``.
    Every image has distinct pixels; pneumonia images hold a bright opacity.
    """

    def make(
        n_normal: int = 8,
        n_pneumonia: int = 8,
        *,
        size: int = 32,
        fmt: str = "png",
        splits: tuple[str, ...] = ("train",),
        name: str = "data",
        seed: int = 0,
    ) -> Path:
        root = tmp_path / name
        rng = np.random.default_rng(seed)
        suffix = {"jpeg": ".jpeg", "jpg": ".jpeg", "png": ".png"}[fmt.lower()]
        normals, pneumonia = kermany_names(n_normal, n_pneumonia)
        for split in splits:
            for cls, label, stems in (("NORMAL", 0, normals), ("PNEUMONIA", 1, pneumonia)):
                folder = root / split / cls
                folder.mkdir(parents=True, exist_ok=True)
                for stem in stems:
                    img = Image.fromarray(synthetic_xray(rng, size, label))
                    img.save(folder / f"{stem}{suffix}")
        return root

    return make

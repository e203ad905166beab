"""The zoo's one registry: architecture, recipe and weights keyed by one name."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pneumozoo
from pneumozoo.errors import UnknownNameError
from pneumozoo.recipe import ZOO_RECIPES
from pneumozoo.zoo import registry


def test_every_entry_ties_arch_recipe_and_weights_together() -> None:
    entries = registry.list_entries()
    assert entries[0].name == registry.DEFAULT_MODEL
    for entry in entries:
        assert entry.recipe is not None or entry.pretrained is not None
        if entry.recipe is not None:
            assert entry.recipe.arch == entry.architecture
        if entry.pretrained is not None:
            assert entry.pretrained.architecture == entry.architecture
            assert entry.folder is not None and entry.folder.is_dir()
        assert entry.arch.name == entry.architecture  # the same registry's architecture
    assert {e.name for e in entries if e.recipe is not None} == set(ZOO_RECIPES)


def test_the_lists_are_views_of_one_registry() -> None:
    entries = registry.list_entries()
    assert pneumozoo.list_pretrained() == [e.pretrained for e in entries if e.pretrained]
    assert pneumozoo.list_recipes() == [e.recipe for e in entries if e.recipe]
    assert pneumozoo.get_recipe("cnn4-binary") is registry.get_entry("cnn4-binary").recipe
    archs = {m.name for m in pneumozoo.list_models()}
    assert {e.architecture for e in entries} <= archs
    with_weights = {e.architecture for e in entries if e.pretrained}
    assert {m.name for m in pneumozoo.list_models(pretrained=True)} == with_weights
    assert {m.name for m in pneumozoo.list_models(pretrained=False)} == archs - with_weights
    # one table: the models package, the zoo package and the package root read the same one
    from pneumozoo import models

    assert models.list_models is registry.list_models is pneumozoo.list_models
    assert models.get_model_info("cnn4") is registry.get_model_info("cnn4")


def test_a_registered_architecture_is_listed_and_built() -> None:
    from keras import layers

    @registry.register_model("tiny-zoo-test", family="custom", input_size=32,
                             normalization="unit", description="a toy")
    def tiny(x, *, input_size):  # type: ignore[no-untyped-def]
        return layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3)(x))

    try:
        assert "tiny-zoo-test" in {m.name for m in pneumozoo.list_models()}
        assert registry.get_model_info("tiny-zoo-test").builder is tiny
        assert pneumozoo.build_model("tiny-zoo-test").input_size == 32
    finally:
        registry._ARCHITECTURES.pop("tiny-zoo-test")


def test_every_builder_entry_point_resolves() -> None:
    for info in pneumozoo.list_models():
        assert callable(info.builder), info.name


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(UnknownNameError, match="xraynet-binary-v2"):
        registry.get_entry("nope")
    with pytest.raises(UnknownNameError, match="cnn4-binary"):
        pneumozoo.get_recipe("xraynet-adult")  # weights, but no zoo recipe
    with pytest.raises(UnknownNameError, match="xraynet-adult"):
        registry.get_pretrained_config("nope")


def test_listing_the_zoo_imports_no_tensorflow() -> None:
    code = ("import sys, pneumozoo; from pneumozoo.zoo import list_entries; list_entries(); "
            "[m.input_size for m in pneumozoo.list_models()]; "
            "[e.arch for e in list_entries()]; pneumozoo.list_pretrained(); "
            "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)

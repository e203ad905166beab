"""The zoo's one registry: architecture, recipe and weights keyed by one name."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pneumozoo
from pneumozoo.errors import UnknownNameError
from pneumozoo.pretrained import registry
from pneumozoo.recipe import ZOO_RECIPES


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
        assert entry.arch.name == entry.architecture  # registered by its builder
    assert {e.name for e in entries if e.recipe is not None} == set(ZOO_RECIPES)


def test_the_three_lists_are_views_of_the_zoo() -> None:
    entries = registry.list_entries()
    assert pneumozoo.list_pretrained() == [e.pretrained for e in entries if e.pretrained]
    assert pneumozoo.list_recipes() == [e.recipe for e in entries if e.recipe]
    assert pneumozoo.get_recipe("cnn4-binary") is registry.get_entry("cnn4-binary").recipe
    archs = {m.name for m in pneumozoo.list_models()}
    assert {e.architecture for e in entries} <= archs


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(UnknownNameError, match="xraynet-binary-v2"):
        registry.get_entry("nope")
    with pytest.raises(UnknownNameError, match="cnn4-binary"):
        pneumozoo.get_recipe("xraynet-adult")  # weights, but no zoo recipe
    with pytest.raises(UnknownNameError, match="xraynet-adult"):
        registry.get_pretrained_config("nope")


def test_listing_the_zoo_imports_no_tensorflow() -> None:
    code = ("import sys; from pneumozoo.pretrained import list_entries; list_entries(); "
            "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)

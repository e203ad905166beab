"""Property-based fuzz of the pneumozoo.json schema (pneumozoo.zoo.schema).

Valid configs round-trip through ``to_dict`` / ``from_dict`` and through the file; a config
with one field made invalid is refused with :class:`ModelMetadataError` naming that field,
never with another exception type.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pneumozoo.errors import ModelMetadataError, PneumozooError
from pneumozoo.zoo.config import CONFIG_FILE, MODEL_SETTINGS, PretrainedConfig
from pneumozoo.zoo.schema import FIELDS, read_json

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

_text = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Co", "Cn")),
                min_size=1, max_size=20).filter(str.isprintable)
_class_name = _text.filter(lambda s: s.strip() != "")
_file_name = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}", fullmatch=True)
_json_leaf = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(
    allow_nan=False, allow_infinity=False) | _text
_json = st.recursive(_json_leaf, lambda kids: st.lists(kids, max_size=3)
                     | st.dictionaries(_text, kids, max_size=3), max_leaves=8)


@st.composite
def valid_configs(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.sampled_from([2, 3]))
    names = draw(st.lists(_class_name, min_size=n, max_size=n, unique=True))
    data: dict[str, Any] = {
        "name": draw(st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True)),
        "architecture": draw(st.sampled_from(["cnn4", "cnn5", "xraynet", "resnet50v2"])),
        "task": "binary" if n == 2 else "3class",
        "class_names": names,
        "input_size": draw(st.integers(16, 2048)),
        "threshold": draw(st.floats(0, 1)),
        "metrics": {"test": {"threshold": draw(st.floats(0, 1)), "extra": draw(_json)}},
        "preprocessing": {"temperature": draw(st.floats(0.01, 100)), "note": draw(_json)},
        "training": draw(st.dictionaries(_text, _json, max_size=3)),
        "files": draw(st.dictionaries(_file_name, st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
                                      max_size=4)),
        "description": draw(st.text(max_size=50)),
        "license": draw(_text),
        "params": draw(st.integers(0, 10**9)),
    }
    return data


# (field, strategy of invalid values)
_bad_number = st.one_of(st.just(math.nan), st.just(math.inf), st.just(-math.inf), st.booleans(),
                        st.none(), _text, st.lists(st.floats(0, 1), max_size=2))
INVALID: dict[str, st.SearchStrategy[Any]] = {
    "name": st.one_of(st.just(""), st.just("a/b"), st.just("..\\x"), st.integers(), st.none(),
                      st.text(min_size=129, max_size=140).filter(lambda s: "/" not in s)),
    "architecture": st.one_of(st.just(""), st.just("../x"), st.integers(), st.lists(_text, max_size=2)),
    "task": st.one_of(_text.filter(lambda s: s not in ("binary", "3class")), st.integers(), st.none()),
    "class_names": st.one_of(_text, st.lists(_class_name, max_size=1),
                             st.lists(_class_name, min_size=4, max_size=6, unique=True),
                             st.just(["normal", "normal"]), st.just(["", "x"]),
                             st.just(["normal", 3]), st.integers(), st.none(),
                             st.dictionaries(_text, _text, min_size=2, max_size=2)),
    "input_size": st.one_of(st.integers(max_value=15), st.integers(min_value=2049),
                            st.floats(16, 2048), _bad_number),
    "threshold": st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1.000001), _bad_number,
                           st.integers(min_value=2), st.integers(max_value=-1)),
    "metrics": st.one_of(st.lists(_json, max_size=2), _text, st.integers(),
                         st.builds(lambda t: {"test": {"threshold": t}},
                                   st.one_of(st.floats(min_value=1.5), _bad_number))),
    "preprocessing": st.one_of(st.lists(_json, max_size=2), _text,
                               st.builds(lambda t: {"temperature": t},
                                         st.one_of(st.floats(max_value=0.0099), st.floats(min_value=100.01),
                                                   _bad_number))),
    "training": st.one_of(st.lists(_json, max_size=2), _text, st.integers()),
    "files": st.one_of(st.lists(_text, max_size=2), _text,
                       st.builds(lambda n: {n: "0" * 64}, st.sampled_from(
                           ["../x", "/etc/passwd", "a/b", ".hidden", "..", "a\\b", "a\0b", ""])),
                       st.builds(lambda h: {"config.json": h}, st.one_of(
                           st.from_regex(r"[0-9a-f]{63}", fullmatch=True), st.just("Z" * 64),
                           st.integers(), st.none()))),
    "description": st.one_of(st.integers(), st.none(), st.lists(_text, max_size=1)),
    "license": st.one_of(st.integers(), st.none(), st.just("a\nb")),
    "params": st.one_of(st.integers(max_value=-1), st.floats(), st.booleans(), _text),
}


def test_every_field_is_fuzzed() -> None:
    assert set(INVALID) == set(FIELDS) - {"source"}


@SETTINGS
@given(valid_configs())
def test_valid_configs_round_trip(data: dict[str, Any]) -> None:
    cfg = PretrainedConfig.from_dict(data, file="fuzz.json")
    assert cfg.class_names == tuple(data["class_names"])
    assert PretrainedConfig.from_dict(cfg.to_dict()) == cfg
    assert PretrainedConfig(**{**cfg.to_dict(), "class_names": cfg.class_names}) == cfg


def _keras_config(cfg: PretrainedConfig, temperature: float = 1.0) -> dict[str, Any]:
    """The part of a saved model's ``config.json`` that holds its settings."""
    layer = "pneumozoo>{}".format
    return {"class_name": "PneumoniaClassifier", "registered_name": layer("PneumoniaClassifier"),
            "config": {"layers": [
                {"class_name": "XrayPreprocessor", "registered_name": layer("XrayPreprocessor"),
                 "config": {"input_size": cfg.input_size, "normalization": "unit",
                            "color": "luminance"}},
                {"class_name": "ClassifierHead", "registered_name": layer("ClassifierHead"),
                 "config": {"class_names": list(cfg.class_names), "threshold": cfg.threshold,
                            "temperature": temperature}}]}}


@SETTINGS
@given(valid_configs())
def test_valid_configs_round_trip_through_the_file(tmp_path: Path, data: dict[str, Any]) -> None:
    import tempfile

    tmp_path = Path(tempfile.mkdtemp(dir=tmp_path))  # one folder per example
    cfg = PretrainedConfig.from_dict(data)
    cfg.write(tmp_path)  # no model beside it (a pneumozoo 0.1 folder): the file keeps them
    stored = json.loads((tmp_path / CONFIG_FILE).read_text(encoding="utf-8"))
    assert set(MODEL_SETTINGS) <= set(stored)
    assert PretrainedConfig.read(tmp_path).to_dict() | {"source": ""} == cfg.to_dict() | {"source": ""}
    (tmp_path / "config.json").write_text(json.dumps(_keras_config(cfg)), encoding="utf-8")
    cfg.write(tmp_path)
    stored = json.loads((tmp_path / CONFIG_FILE).read_text(encoding="utf-8"))
    assert not set(stored) & set(MODEL_SETTINGS)  # one store per setting: the model's
    again = PretrainedConfig.read(tmp_path, source=cfg.source or str(tmp_path))
    assert again.preprocessing["temperature"] == 1.0
    plain = {"source": "", "preprocessing": {}}
    assert again.to_dict() | plain == cfg.to_dict() | plain


@SETTINGS
@given(valid_configs(), st.sampled_from(["class_names", "threshold", "input_size"]))
def test_an_old_file_that_disagrees_with_its_model_is_refused(tmp_path: Path, data: dict[str, Any],
                                                              key: str) -> None:
    cfg = PretrainedConfig.from_dict(data)
    (tmp_path / CONFIG_FILE).write_text(json.dumps(cfg.to_dict()), encoding="utf-8")  # pre-0.4
    (tmp_path / "config.json").write_text(json.dumps(_keras_config(cfg)), encoding="utf-8")
    assert PretrainedConfig.read(tmp_path).to_dict()["class_names"] == list(cfg.class_names)
    other = {"class_names": [*cfg.class_names[1:], cfg.class_names[0]],
             "threshold": 1.0 - cfg.threshold if cfg.threshold != 0.5 else 0.25,
             "input_size": cfg.input_size + 1}[key]
    (tmp_path / CONFIG_FILE).write_text(json.dumps({**cfg.to_dict(), key: other}), encoding="utf-8")
    with pytest.raises(ModelMetadataError) as info:
        PretrainedConfig.read(tmp_path)
    assert info.value.field == key and "config.json" in str(info.value)


@SETTINGS
@given(valid_configs(), st.sampled_from(sorted(INVALID)), st.data())
def test_an_invalid_field_is_refused_by_name(data: dict[str, Any], field: str,
                                             draw: st.DataObject) -> None:
    bad = draw.draw(INVALID[field], label=field)
    broken = {**data, field: bad}
    with pytest.raises(ModelMetadataError) as info:
        PretrainedConfig.from_dict(broken, file="m/pneumozoo.json")
    err = info.value
    assert err.file == "m/pneumozoo.json"
    assert err.field == field, (field, bad, str(err))
    message = str(err)
    assert message.startswith(f"m/pneumozoo.json: field {field!r} ") and "\n" not in message
    # the same rule holds for a config built in code
    kwargs = {**data, field: bad}
    with pytest.raises(ModelMetadataError):
        PretrainedConfig(**kwargs)


@SETTINGS
@given(_json)
def test_any_json_document_is_refused_or_accepted_never_crashes(tmp_path: Path, doc: Any) -> None:
    (tmp_path / CONFIG_FILE).write_text(json.dumps(doc), encoding="utf-8")
    try:
        PretrainedConfig.read(tmp_path)
    except ModelMetadataError as e:
        assert "\n" not in str(e) and str(tmp_path / CONFIG_FILE) in str(e)


@SETTINGS
@given(st.binary(max_size=200))
def test_any_bytes_are_refused_in_one_line(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / CONFIG_FILE
    path.write_bytes(raw)
    try:
        read_json(path)
    except ModelMetadataError as e:
        assert "\n" not in str(e) and str(path) in str(e)
    with pytest.raises(PneumozooError):  # never a valid config, never another exception
        PretrainedConfig.read(tmp_path)

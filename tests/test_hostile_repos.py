"""A corpus of hostile Hub repos: each is refused in one line, and nothing lands outside the cache.

Every case is served by the real HTTP server of tests/hubserver.py (the installed
huggingface_hub client talks to it; nothing is mocked) and loaded with
``load_pretrained("hf://...")``. A case is a repo built from a good tiny model folder with one
thing made hostile: metadata out of range, a Keras config asking for code, a lying hash, a
malformed file, a revision that walks out of the cache. Unless a case says otherwise the
sha256s in ``pneumozoo.json`` are recomputed, so the refusal comes from the content itself.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hubserver import FakeHub
from pneumozoo.errors import (
    IntegrityError,
    InvalidRevisionError,
    ModelMetadataError,
    PneumozooError,
    UnsafeModelError,
)

keras = pytest.importorskip("keras")

from pneumozoo.hub import download_model  # noqa: E402
from pneumozoo.models import build_model  # noqa: E402
from pneumozoo.pretrained import PretrainedConfig, load_pretrained, save_folder  # noqa: E402
from pneumozoo.zoo.config import WEIGHT_FILES  # noqa: E402

Files = dict[str, bytes]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Files:
    """The files of a good tiny model folder (cnn4 at 48 px)."""
    keras.utils.set_random_seed(0)
    model = build_model("cnn4", input_size=48)
    model.threshold = 0.4
    folder = tmp_path_factory.mktemp("base") / "model"
    save_folder(model, folder, PretrainedConfig(
        name="tiny", architecture="cnn4", task="binary", class_names=("normal", "pneumonia"),
        input_size=48, threshold=0.4, preprocessing={"temperature": 1.0},
        metrics={"test": {"n": 8, "threshold": 0.4, "accuracy": 0.875}}))
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as h:
        yield h


@pytest.fixture
def cache(tmp_path: Path, hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HF_ENDPOINT -> the local hub, HF_HOME -> tmp_path/hf; returns the Hub cache folder."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                        hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for name in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "PNEUMOZOO_HUB_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "hf" / "hub"


# --- building hostile repos ----------------------------------------------------------------
def _meta(files: Files) -> dict[str, Any]:
    return dict(json.loads(files["pneumozoo.json"]))


def _rehash(files: Files) -> None:
    """Make pneumozoo.json's sha256s match the Keras files as they are (if it parses)."""
    try:
        meta = _meta(files)
    except (ValueError, TypeError, KeyError, RecursionError):
        return
    if isinstance(meta, dict) and isinstance(meta.get("files"), dict):
        meta["files"] = {n: hashlib.sha256(files[n]).hexdigest() for n in WEIGHT_FILES
                         if n in files}
        files["pneumozoo.json"] = json.dumps(meta).encode()


def set_meta(**fields: Any) -> Callable[[Files], None]:
    def apply(files: Files) -> None:
        meta = _meta(files)
        meta.update(fields)
        files["pneumozoo.json"] = json.dumps(meta).encode()
    return apply


def drop_meta(key: str) -> Callable[[Files], None]:
    def apply(files: Files) -> None:
        meta = _meta(files)
        del meta[key]
        files["pneumozoo.json"] = json.dumps(meta).encode()
    return apply


def raw(name: str, data: bytes) -> Callable[[Files], None]:
    def apply(files: Files) -> None:
        files[name] = data
    return apply


def meta_text(edit: Callable[[str], str]) -> Callable[[Files], None]:
    """Edit pneumozoo.json as text (for what json.dumps cannot write: NaN, duplicate keys)."""
    def apply(files: Files) -> None:
        files["pneumozoo.json"] = edit(files["pneumozoo.json"].decode()).encode()
    return apply


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _nodes(v)
    elif isinstance(node, list):
        for v in node:
            yield from _nodes(v)


def keras_edit(edit: Callable[[dict[str, Any]], None]) -> Callable[[Files], None]:
    """Edit the Keras config.json (parsed) in place."""
    def apply(files: Files) -> None:
        config = json.loads(files["config.json"])
        edit(config)
        files["config.json"] = json.dumps(config).encode()
    return apply


def layer(class_name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def find(config: dict[str, Any]) -> dict[str, Any]:
        return next(n for n in _nodes(config) if n.get("class_name") == class_name)
    return find


def with_key(key: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def find(config: dict[str, Any]) -> dict[str, Any]:
        return next(n for n in _nodes(config) if isinstance(n.get("config"), dict)
                    and key in n["config"])
    return find


def set_in(find: Callable[[dict[str, Any]], dict[str, Any]], **values: Any) -> Callable[[Files], None]:
    def edit(config: dict[str, Any]) -> None:
        find(config)["config"].update(values)
    return keras_edit(edit)


def replace_node(find: Callable[[dict[str, Any]], dict[str, Any]], **values: Any) -> Callable[[Files], None]:
    def edit(config: dict[str, Any]) -> None:
        node = find(config)
        node.update(values)
    return keras_edit(edit)


def _add_resizing(config: dict[str, Any]) -> None:
    """Insert Keras's own Resizing layer (30000 px) after the input layer."""
    layers = config["config"]["layers"]
    first = layers[1]
    resize = {"module": "keras.layers", "class_name": "Resizing", "registered_name": None,
              "config": {"name": "evil_resize", "height": 30000, "width": 30000,
                         "interpolation": "bilinear", "trainable": True, "dtype": "float32"},
              "name": "evil_resize", "inbound_nodes": first["inbound_nodes"]}
    first["inbound_nodes"] = [{"args": [{"class_name": "__keras_tensor__", "config": {
        "shape": [None, 30000, 30000, 3], "dtype": "float32",
        "keras_history": ["evil_resize", 0, 0]}}], "kwargs": {}}]
    layers.insert(1, resize)


MNIST = {"module": "keras.datasets.mnist", "class_name": "function", "config": "load_data",
         "registered_name": "load_data"}
HEX = "0" * 64


@dataclass
class Case:
    id: str
    mutate: Callable[[Files], None]
    error: type[Exception]
    match: str
    rehash: bool = True
    revision: str | None = None


CASES = [
    # pneumozoo.json: values out of range
    Case("threshold-7", set_meta(threshold=7), ModelMetadataError, r"pneumozoo\.json: field 'threshold' .*got 7$"),
    Case("threshold-neg", set_meta(threshold=-1), ModelMetadataError, r"field 'threshold' must be a finite number in \[0, 1\]"),
    Case("threshold-nan", meta_text(lambda t: t.replace('{', '{"threshold": NaN, ', 1)),
         ModelMetadataError, r"field 'threshold' .*nan"),
    Case("threshold-string", set_meta(threshold="0.5"), ModelMetadataError, r"field 'threshold' .*'0\.5'"),
    Case("threshold-bool", set_meta(threshold=True), ModelMetadataError, r"field 'threshold'"),
    Case("input-size-neg", set_meta(input_size=-192), ModelMetadataError, r"field 'input_size' must be an integer in 16\.\.2048, got -192"),
    Case("input-size-huge", set_meta(input_size=10**9), ModelMetadataError, r"field 'input_size' .*1000000000"),
    Case("input-size-float", set_meta(input_size=48.5), ModelMetadataError, r"field 'input_size'"),
    Case("temperature-inf", meta_text(lambda t: t.replace('{', '{"preprocessing": {"temperature": Infinity}, ', 1)),
         ModelMetadataError, r"field 'preprocessing' \['temperature'\] .*inf"),
    Case("temperature-tiny", set_meta(preprocessing={"temperature": 1e-300}), ModelMetadataError,
         r"field 'preprocessing' \['temperature'\] must be a finite number in \[0\.01, 100\]"),
    Case("class-names-string", set_meta(class_names="normal"), ModelMetadataError, r"field 'class_names' must be a list .*'normal'"),
    Case("class-names-dup", set_meta(class_names=["normal", "normal"]), ModelMetadataError, r"field 'class_names' must be unique"),
    Case("class-names-four", set_meta(class_names=["a", "b", "c", "d"]), ModelMetadataError, r"field 'class_names' must list 2 or 3 names, got 4"),
    Case("class-names-empty-name", set_meta(class_names=["", "pneumonia"]), ModelMetadataError, r"field 'class_names' \[0\]"),
    Case("class-names-vs-task", set_meta(task="binary", class_names=["normal", "bacterial", "viral"]), ModelMetadataError,
         r"field 'class_names' must list 2 names for task 'binary', got 3"),
    # a pneumozoo.json written before the settings moved into the model must agree with it
    Case("class-names-vs-model", set_meta(class_names=["normal", "bacterial", "viral"], task="3class"),
         ModelMetadataError, r"pneumozoo\.json: field 'task' is '3class' but the model in config\.json has 'binary'"),
    Case("threshold-vs-model", set_meta(threshold=0.9), ModelMetadataError,
         r"pneumozoo\.json: field 'threshold' is 0\.9 but the model in config\.json has 0\.4"),
    Case("task-unknown", set_meta(task="multilabel"), ModelMetadataError, r"field 'task' must be one of binary, 3class"),
    Case("name-with-path", set_meta(name="../../etc/passwd"), ModelMetadataError, r"field 'name'"),
    Case("missing-architecture", drop_meta("architecture"), ModelMetadataError, r"field 'architecture' is missing"),
    Case("metrics-threshold", set_meta(metrics={"test": {"threshold": 5}}), ModelMetadataError, r"field 'metrics' \['test'\]\['threshold'\]"),
    Case("metrics-list", set_meta(metrics=[1, 2]), ModelMetadataError, r"field 'metrics' must be a JSON object"),
    # pneumozoo.json: structure
    Case("meta-is-list", raw("pneumozoo.json", b"[1, 2, 3]"), ModelMetadataError, r"pneumozoo\.json: must hold a JSON object, got list"),
    Case("files-is-list", set_meta(files=["config.json"]), ModelMetadataError, r"field 'files' must be a JSON object", rehash=False),
    Case("files-traversal", set_meta(files={"../../../escape.h5": HEX}), ModelMetadataError, r"field 'files' key must be a plain file name", rehash=False),
    Case("files-absolute", set_meta(files={"/etc/passwd": HEX}), ModelMetadataError, r"field 'files' key", rehash=False),
    Case("files-bad-sha", set_meta(files={"config.json": "not-a-sha"}), ModelMetadataError, r"field 'files' \['config\.json'\] must be a sha256", rehash=False),
    Case("files-upper-sha", set_meta(files={"config.json": "A" * 64}), ModelMetadataError, r"field 'files'", rehash=False),
    Case("files-empty", set_meta(files={}), IntegrityError, r"has no sha256 for config\.json", rehash=False),
    Case("meta-not-utf8", raw("pneumozoo.json", b'{"name": "\xff\xfe"}'), ModelMetadataError, r"pneumozoo\.json: is not UTF-8 text"),
    Case("meta-huge", raw("pneumozoo.json", b'{"pad": "' + b"x" * (2 << 20) + b'"}'), ModelMetadataError, r"pneumozoo\.json: is \d+ bytes, more than"),
    Case("meta-deep", raw("pneumozoo.json", b"[" * 100_000 + b"]" * 100_000), ModelMetadataError, r"pneumozoo\.json: is nested more than 64 levels deep"),
    Case("meta-deep-shallow-enough-for-json", raw("pneumozoo.json", b'{"a":' * 200 + b"1" + b"}" * 200), ModelMetadataError, r"nested more than 64"),
    Case("meta-duplicate-key", meta_text(lambda t: t.replace('{', '{"name": "x", ', 1)), ModelMetadataError, r"holds the key 'name' twice",
         rehash=False),
    Case("meta-truncated", meta_text(lambda t: t[: len(t) // 2]), ModelMetadataError, r"pneumozoo\.json: is not valid JSON"),
    Case("not-a-pneumozoo-repo", lambda f: f.pop("pneumozoo.json"), PneumozooError, r"not a pneumozoo model repository"),
    # integrity
    Case("wrong-sha256", raw("model.weights.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 64), IntegrityError, r"sha256 of model\.weights\.h5 does not match", rehash=False),
    Case("missing-weights", lambda f: f.pop("model.weights.h5"), IntegrityError, r"model\.weights\.h5: missing", rehash=False),
    # Keras config.json: code and classes outside the allow-list
    Case("activation-mnist-dict", set_in(layer("Dense"), activation=MNIST), UnsafeModelError, r"config\.json: .*activation: function keras\.datasets\.mnist\.load_data"),
    Case("activation-dotted-string", set_in(layer("Dense"), activation="keras.datasets.mnist.load_data"), UnsafeModelError,
         r"activation: 'keras\.datasets\.mnist\.load_data' is not a Keras built-in activation"),
    Case("activation-builtins-eval", set_in(layer("Dense"), activation={"module": "builtins", "class_name": "function", "config": "eval", "registered_name": "function"}),
         UnsafeModelError, r"function builtins\.eval"),
    Case("initializer-os", set_in(layer("Dense"), kernel_initializer={"module": "os", "class_name": "system", "config": {}, "registered_name": None}),
         UnsafeModelError, r"kernel_initializer: model config needs os\.system"),
    Case("initializer-dotted-string", set_in(layer("Dense"), kernel_initializer="os.system"), UnsafeModelError, r"'os\.system' is not a Keras built-in initializer"),
    Case("lambda-layer", replace_node(layer("Flatten"), class_name="Lambda", config={"function": {"class_name": "__lambda__", "config": {"value": "ZXZpbA=="}}}),
         UnsafeModelError, r"a Lambda layer"),
    Case("python-lambda", set_in(layer("Dense"), activation={"class_name": "__lambda__", "config": {"value": "ZXZpbA=="}}), UnsafeModelError, r"a Python lambda"),
    Case("tfsm-layer", replace_node(layer("Flatten"), class_name="TFSMLayer", config={"filepath": "/tmp/x", "call_endpoint": "serve"}),
         UnsafeModelError, r"a TFSMLayer layer"),
    Case("custom-object", replace_node(layer("Flatten"), module="mylib.layers", class_name="Block", registered_name="mylib>Block"),
         UnsafeModelError, r"custom object 'mylib>Block' from mylib\.layers"),
    Case("unregistered-pneumozoo", replace_node(layer("Flatten"), module="pneumozoo.models.layers", class_name="Backdoor", registered_name="pneumozoo>Backdoor"),
         UnsafeModelError, r"unknown pneumozoo object 'pneumozoo>Backdoor'"),
    Case("pneumozoo-name-other-module", replace_node(layer("Flatten"), module="subprocess", registered_name="pneumozoo>ClassifierHead"),
         UnsafeModelError, r"needs subprocess\.Flatten"),
    Case("class-name-mismatch", replace_node(layer("Flatten"), class_name="Flaten"), UnsafeModelError, r"needs keras\.layers\.Flaten, which is not a Keras built-in"),
    Case("keras-non-model-module", replace_node(layer("Flatten"), module="keras.src.utils.progbar", class_name="Progbar"), UnsafeModelError, r"keras\.src\.utils\.progbar\.Progbar"),
    Case("keras-optimizer-as-layer", replace_node(layer("Flatten"), module="keras.optimizers", class_name="Adam"), UnsafeModelError, r"keras\.optimizers\.Adam"),
    Case("typespec", set_in(layer("Dense"), activation={"class_name": "__typespec__", "spec_name": "x", "module": "os", "config": []}), UnsafeModelError, r"__typespec__"),
    Case("no-module", replace_node(layer("Flatten"), module=None), UnsafeModelError, r"needs Flatten"),
    # Keras config.json: values out of range
    Case("resize-30000", keras_edit(_add_resizing), ModelMetadataError,
         r"config\.json: field '.*\.config\.height' must be an integer in 16\.\.2048, got 30000"),
    Case("head-temperature-inf", set_in(with_key("temperature"), temperature=float("inf")), ModelMetadataError, r"config\.json: field '.*\.config\.temperature' must be a finite number"),
    Case("head-temperature-tiny", set_in(with_key("temperature"), temperature=1e-300), ModelMetadataError, r"\.config\.temperature'"),
    Case("head-class-names-string", set_in(with_key("class_names"), class_names="normal"), ModelMetadataError, r"\.config\.class_names' must be a list"),
    Case("preprocessor-size", set_in(with_key("input_size"), input_size=10**9), ModelMetadataError, r"\.config\.input_size' must be an integer in 16\.\.2048"),
    Case("head-class-names-vs-outputs", set_in(with_key("class_names"), class_names=["normal", "bacterial", "viral"]),
         ModelMetadataError, r"config\.json: field 'class_names' lists 3 classes but the model has 2 outputs"),
    # Keras config.json: malformed files
    Case("config-is-list", raw("config.json", b"[]"), UnsafeModelError, r"config\.json: not a Keras model config"),
    Case("config-deep", raw("config.json", b'{"class_name": ' + b"[" * 5000 + b"]" * 5000 + b"}"), ModelMetadataError, r"config\.json: is nested more than"),
    Case("config-not-utf8", raw("config.json", b'{"class_name": "\xc3\x28"}'), ModelMetadataError, r"config\.json: is not UTF-8 text"),
    Case("metadata-is-list", raw("metadata.json", b"[1]"), ModelMetadataError, r"metadata\.json: must hold a JSON object"),
    # revisions that would walk out of the cache (huggingface_hub writes refs/<revision>)
    Case("revision-traversal", lambda f: None, InvalidRevisionError, r"revision '\.\./\.\./\.\./\.\./escaped/x/y' is not a 40-hex commit hash nor a valid git ref name: it holds '\.\.'",
         revision="../../../../escaped/x/y"),
    Case("revision-absolute", lambda f: None, InvalidRevisionError, r"empty path component", revision="/escaped/x"),
    Case("revision-lock", lambda f: None, InvalidRevisionError, r"ends with '\.lock'", revision="main.lock"),
    Case("revision-reflog", lambda f: None, InvalidRevisionError, r"holds '@\{'", revision="main@{1}"),
    Case("revision-control", lambda f: None, InvalidRevisionError, r"control character", revision="ma\nin"),
    Case("revision-tilde", lambda f: None, InvalidRevisionError, r"holds '\^', '~'", revision="main~1^"),
    Case("revision-dot-component", lambda f: None, InvalidRevisionError, r"component '\.hidden' starts with '\.'", revision="v1/.hidden"),
    Case("revision-option", lambda f: None, InvalidRevisionError, r"starts with '-'", revision="--upload-pack=x"),
]


def _outside(root: Path, cache: Path) -> set[str]:
    """Every path under root that is not in the Hub cache."""
    return {str(p) for p in root.rglob("*")
            if cache not in p.parents and p != cache and p not in cache.parents}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_repo_is_refused(case: Case, base: Files, hub: FakeHub, cache: Path,
                                 tmp_path: Path) -> None:
    files = dict(base)
    case.mutate(files)
    if case.rehash:
        _rehash(files)
    repo = "evil/model"
    hub.add_files(repo, files)
    before = _outside(tmp_path, cache)
    uri = f"hf://{repo}@{case.revision}" if case.revision is not None else f"hf://{repo}"

    with pytest.raises(case.error) as info:
        load_pretrained(uri)
    message = str(info.value)
    assert isinstance(info.value, PneumozooError)
    assert "\n" not in message and "Traceback" not in message, message
    assert re.search(case.match, message), message
    assert _outside(tmp_path, cache) == before  # nothing written outside the cache
    if case.revision is not None:
        assert hub.requests == []  # refused before any Hub call
        assert not (tmp_path / "escaped").exists()


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


def test_the_base_repo_loads(base: Files, hub: FakeHub, cache: Path) -> None:
    hub.add_files("good/model", base)
    model = load_pretrained("hf://good/model")
    assert model.input_size == 48 and tuple(model.class_names) == ("normal", "pneumonia")


def test_extra_files_are_never_fetched(base: Files, hub: FakeHub, cache: Path,
                                       tmp_path: Path) -> None:
    """Files the repo adds (code, pickles, paths that climb out) are ignored, not downloaded."""
    evil = {"evil.py": b"import os; os.system('touch /tmp/pwned')\n",
            "model.keras": b"PK\x03\x04 not a model", "pytorch_model.bin": b"\x80\x04pickle",
            "../../../escaped.txt": b"out", "sub/../../pneumozoo.json": b"[]",
            "sub/config.json": b"[]"}
    hub.add_files("evil/extras", {**base, **evil})
    before = _outside(tmp_path, cache)
    model = load_pretrained("hf://evil/extras")
    assert model.input_size == 48
    folder = download_model("evil/extras")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["config.json", "metadata.json", "model.weights.h5", "pneumozoo.json"])
    fetched = {r.path.split("/resolve/main/", 1)[-1] for r in hub.requests if "/resolve/" in r.path}
    assert not fetched & set(evil), fetched
    assert _outside(tmp_path, cache) == before


def test_killed_download_leftovers_are_cleaned(base: Files, hub: FakeHub, cache: Path) -> None:
    """A killed download leaves ``blobs/<etag>.<id>.incomplete``; the next load removes it,
    but not one whose download lock another process still holds."""
    from filelock import FileLock

    hub.add_files("me/model", base)
    storage = cache / "models--me--model"
    blobs = storage / "blobs"
    blobs.mkdir(parents=True)
    dead = blobs / f"{'a' * 64}.1234abcd.incomplete"
    dead.write_bytes(b"")
    partial = blobs / f"{'b' * 40}.incomplete"
    partial.write_bytes(b"half a file")
    live = blobs / f"{'c' * 64}.5678abcd.incomplete"
    live.write_bytes(b"")
    locks = cache / ".locks" / "models--me--model"
    locks.mkdir(parents=True)
    with FileLock(str(locks / f"{'c' * 64}.lock"), timeout=0):  # "another process" downloads it
        model = load_pretrained("hf://me/model")
    assert model.input_size == 48
    assert not dead.exists() and not partial.exists()
    assert live.exists()
    assert not [p for p in blobs.iterdir() if p.name.endswith(".incomplete") and p != live]

"""Data: scanning Kermany folders, parsing names, patient-wise splits, balance, the tf.data
pipeline and validation before training."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from sklearn.utils.class_weight import compute_class_weight

from pneumozoo.data import (
    Record,
    Task,
    class_names,
    class_weights,
    decode_resize,
    drop_duplicates,
    find_split_dir,
    make_dataset,
    oversample,
    parse_patient_id,
    parse_subtype,
    patient_split,
    scan_folder,
    scan_split,
    targets,
    validate_records,
)
from pneumozoo.errors import DataError, UnknownNameError

TinyDataset = Callable[..., Path]


def one_line(e: BaseException) -> str:
    text = str(e)
    assert text and "\n" not in text, repr(text)
    return text


# --- scanning ------------------------------------------------------------------------------
def test_scan_fixture(fixture_root: Path) -> None:
    train = scan_split(fixture_root, "train")
    test = scan_split(fixture_root, "test")
    assert len(train) == 24 and len(test) == 8
    assert Counter(r.label for r in train) == {0: 12, 1: 12}
    assert Counter(r.subtype for r in train) == {0: 12, 1: 6, 2: 6}
    assert {r.split for r in train} == {"train"} and {r.split for r in test} == {"test"}
    for r in train + test:
        assert r.label == (r.path.parent.name == "PNEUMONIA")
        assert r.path.is_file()
    # the order is reproducible (sorted), and scanning twice gives the same records
    assert scan_split(fixture_root, "train") == train
    assert {r.patient_id for r in train} == {parse_patient_id(r.path.name) for r in train}


def test_class_folders_and_split_are_case_insensitive(tiny_dataset: TinyDataset) -> None:
    root = tiny_dataset(3, 4)
    (root / "train" / "NORMAL").rename(root / "train" / "normal")
    (root / "train" / "PNEUMONIA").rename(root / "train" / "Pneumonia")
    (root / "train").rename(root / "TRAIN")
    records = scan_split(root, "train")
    assert [r.label for r in records] == [0, 0, 0, 1, 1, 1, 1], "normal first, in any case"
    assert {r.split for r in records} == {"train"}
    assert find_split_dir(root, "train") == root / "TRAIN"


@pytest.mark.parametrize("nesting", [(), ("chest_xray",), ("chest_xray", "chest_xray")])
def test_kaggle_nested_layout_is_found(tiny_dataset: TinyDataset, tmp_path: Path,
                                       nesting: tuple[str, ...]) -> None:
    made = tiny_dataset(2, 2, splits=("train", "test"))
    root = tmp_path / "download"
    target = root.joinpath(*nesting)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(made), str(target))
    assert find_split_dir(root, "test") == target / "test"
    assert len(scan_split(root, "train")) == 4


def test_hidden_and_non_image_files_are_skipped(tiny_dataset: TinyDataset) -> None:
    root = tiny_dataset(2, 2, fmt="jpeg")
    normal = root / "train" / "NORMAL"
    good = sorted(normal.iterdir())[0]
    (normal / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    shutil.copy(good, normal / ".hidden-IM-0999-0001.jpeg")
    (normal / "notes.txt").write_text("not an image")
    (normal / "Thumbs.db").write_bytes(b"x")
    (normal / "a-folder.jpeg").mkdir()  # a folder with an image suffix is not a file
    nested = normal / "more"
    nested.mkdir()
    shutil.copy(good, nested / "IM-0998-0001.JPEG")  # upper-case suffix, in a sub-folder
    (normal / ".ipynb_checkpoints").mkdir()
    shutil.copy(good, normal / ".ipynb_checkpoints" / "IM-0996-0001.jpeg")
    (root / "train" / "README.md").write_text("top-level files are not images of a class")
    (root / "train" / "OTHER").mkdir()
    shutil.copy(good, root / "train" / "OTHER" / "IM-0997-0001.jpeg")
    records = scan_split(root, "train")
    names = sorted(r.path.name for r in records)
    assert len(records) == 5
    assert "IM-0998-0001.JPEG" in names
    assert not any(n.startswith(".") or not n.lower().endswith(".jpeg") for n in names)
    assert all("OTHER" not in r.path.parts for r in records)
    assert all(".ipynb_checkpoints" not in r.path.parts for r in records)


def test_missing_or_empty_folders_raise_one_line_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        scan_folder(tmp_path / "nowhere")
    assert "nowhere" in one_line(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="NORMAL") as e:
        scan_folder(tmp_path / "empty")
    one_line(e.value)
    (tmp_path / "no_images" / "NORMAL").mkdir(parents=True)
    (tmp_path / "no_images" / "PNEUMONIA").mkdir()
    (tmp_path / "no_images" / "PNEUMONIA" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="no images") as e:
        scan_folder(tmp_path / "no_images")
    one_line(e.value)
    with pytest.raises(DataError) as e:
        scan_split(tmp_path, "val")
    assert "'val'" in one_line(e.value)
    assert isinstance(e.value, ValueError)  # callers catching ValueError keep working


# --- names ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "label", "patient", "subtype"),
    [
        ("person1_virus_6.jpeg", 1, "person1", 2),
        ("person100_bacteria_475.jpeg", 1, "person100", 1),
        ("person1946_bacteria_4874.jpeg", 1, "person1946", 1),
        ("person1946_bacteria_4875.jpeg", 1, "person1946", 1),
        ("person38_virus_84.JPEG", 1, "person38", 2),
        ("IM-0115-0001.jpeg", 0, "IM-0115", 0),
        ("IM-0117-0001-0002.jpeg", 0, "IM-0117", 0),
        ("NORMAL2-IM-0381-0001.jpeg", 0, "NORMAL2-IM-0381", 0),
        ("NORMAL2-IM-1345-0001-0002.jpeg", 0, "NORMAL2-IM-1345", 0),
        ("NORMAL2-IM-1345-0001-0003.png", 0, "NORMAL2-IM-1345", 0),
        ("scan 7.png", 1, "scan 7", -1),  # unknown pattern: its own patient, unknown subtype
        ("scan 7.png", 0, "scan 7", 0),  # the class folder decides normal
    ],
)
def test_names_parse(name: str, label: int, patient: str, subtype: int) -> None:
    assert parse_patient_id(name) == patient
    assert parse_patient_id(f"/some/dir/{name}") == patient
    assert parse_subtype(name, label) == subtype


def test_normal_and_normal2_series_are_different_patients() -> None:
    assert parse_patient_id("IM-0381-0001.jpeg") != parse_patient_id("NORMAL2-IM-0381-0001.jpeg")


def test_class_names_and_targets(fixture_root: Path) -> None:
    assert class_names("binary") == ("normal", "pneumonia")
    assert class_names("3class") == ("normal", "bacteria", "virus")
    with pytest.raises(UnknownNameError, match="binary"):
        class_names("4class")
    records = scan_split(fixture_root, "train")
    assert targets(records, "binary") == [r.label for r in records]
    three = targets(records, "3class")
    for r, t in zip(records, three, strict=True):
        assert t == (0 if r.label == 0 else 1 if "bacteria" in r.path.name else 2)
    odd = Record(Path("x/PNEUMONIA/scan.png"), "train", 1, -1, "scan")
    with pytest.raises(DataError, match="bacteria"):
        targets([*records, odd], "3class")
    assert targets([odd], "binary") == [1]


# --- patient-wise split --------------------------------------------------------------------
def kermany_like_records(n_patients: int = 240, seed: int = 0) -> list[Record]:
    """Records (no files) shaped like Kermany: ~1/4 normal, ~1/2 bacteria, ~1/4 virus,
    1 to 4 images per patient."""
    rng = np.random.default_rng(seed)
    out = []
    n = 0
    for p in range(n_patients):
        kind = ("normal", "bacteria", "bacteria", "virus")[p % 4]
        for k in range(int(rng.integers(1, 5))):
            n += 1
            if kind == "normal":
                name = f"IM-{p:04d}-0001" + (f"-{k + 1:04d}" if k else "") + ".jpeg"
                label, sub, cls = 0, 0, "NORMAL"
            else:
                name = f"person{p}_{kind}_{n}.jpeg"
                label, sub, cls = 1, (1 if kind == "bacteria" else 2), "PNEUMONIA"
            out.append(Record(Path(f"/data/train/{cls}/{name}"), "train", label, sub,
                              parse_patient_id(name)))
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def check_partition(records: list[Record], train: list[Record], val: list[Record]) -> None:
    assert not {r.patient_id for r in train} & {r.patient_id for r in val}
    assert sorted(map(str, (r.path for r in train + val))) == sorted(
        map(str, (r.path for r in records)))
    position = {id(r): i for i, r in enumerate(records)}
    for part in (train, val):
        idx = [position[id(r)] for r in part]
        assert idx == sorted(idx), "each part keeps the input order"


@pytest.mark.parametrize("task", ["binary", "3class"])
def test_patient_split_is_disjoint_and_stratified(task: Task) -> None:
    records = kermany_like_records()
    train, val = patient_split(records, val_fraction=0.2, seed=3, task=task)
    check_partition(records, train, val)
    patients = {r.patient_id for r in records}
    val_patients = {r.patient_id for r in val}
    assert abs(len(val_patients) / len(patients) - 0.2) < 0.02
    overall = Counter(targets(records, task))
    in_val = Counter(targets(val, task))
    for c in overall:
        share_all = overall[c] / len(records)
        share_val = in_val[c] / len(val)
        assert abs(share_all - share_val) < 0.06, (c, share_all, share_val)
    # patients per class: exactly the rounded fraction
    for c in overall:
        pats = {r.patient_id for r in records if r.target(task) == c}
        got = len(pats & val_patients)
        assert got == round(len(pats) * 0.2), (c, got, len(pats))


def test_patient_split_is_seeded() -> None:
    records = kermany_like_records()
    a = patient_split(records, val_fraction=0.15, seed=7)
    b = patient_split(list(records), val_fraction=0.15, seed=7)
    assert a == b
    vals = {frozenset(r.patient_id for r in patient_split(records, seed=s)[1]) for s in range(4)}
    assert len(vals) == 4, "different seeds give different validation patients"


def test_patient_split_keeps_every_class_in_both_parts(fixture_root: Path) -> None:
    records = scan_split(fixture_root, "train")
    train, val = patient_split(records, val_fraction=0.25, seed=0, task="3class")
    check_partition(records, train, val)
    assert set(targets(val, "3class")) == set(targets(train, "3class")) == {0, 1, 2}


def test_patient_split_rejects_bad_fraction() -> None:
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="val_fraction"):
            patient_split(kermany_like_records(8), val_fraction=bad)


@settings(max_examples=60, deadline=None)
@given(
    patients=st.lists(st.tuples(st.integers(0, 30), st.sampled_from(["b", "v", "n"])),
                      min_size=1, max_size=60),
    fraction=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**31 - 1),
)
def test_patient_split_never_leaks(patients: list[tuple[int, str]], fraction: float,
                                   seed: int) -> None:
    records = []
    for i, (p, kind) in enumerate(patients):
        if kind == "n":
            name, label, sub = f"IM-{p:04d}-0001-{i:04d}.jpeg", 0, 0
        else:
            name = f"person{p}_{'bacteria' if kind == 'b' else 'virus'}_{i}.jpeg"
            label, sub = 1, (1 if kind == "b" else 2)
        records.append(Record(Path(name), "train", label, sub, parse_patient_id(name)))
    train, val = patient_split(records, val_fraction=fraction, seed=seed)
    check_partition(records, train, val)


# --- duplicates and balance ----------------------------------------------------------------
def test_drop_duplicates_compares_content(tiny_dataset: TinyDataset) -> None:
    root = tiny_dataset(3, 3)
    normal = sorted((root / "train" / "NORMAL").iterdir())
    pneumonia = sorted((root / "train" / "PNEUMONIA").iterdir())
    shutil.copy(normal[0], root / "train" / "NORMAL" / "IM-0900-0001.png")  # same bytes
    shutil.copy(pneumonia[1], root / "train" / "PNEUMONIA" / "person900_virus_1.png")
    records = scan_split(root, "train")
    assert len(records) == 8
    kept = drop_duplicates(records)
    assert len(kept) == 6
    assert kept == [r for r in records if r in kept], "order kept"
    assert len({r.path.read_bytes() for r in kept}) == 6
    assert drop_duplicates(kept) == kept


def test_fixture_has_no_duplicates(fixture_root: Path) -> None:
    records = scan_split(fixture_root, "train")
    assert drop_duplicates(records) == records


@pytest.mark.parametrize("task", ["binary", "3class"])
def test_class_weights_match_sklearn_balanced(task: Task) -> None:
    records = kermany_like_records(50)
    y = np.asarray(targets(records, task))
    expected = compute_class_weight("balanced", classes=np.unique(y), y=y)
    got = class_weights(records, task)
    assert sorted(got) == list(np.unique(y))
    np.testing.assert_allclose([got[c] for c in sorted(got)], expected)
    assert got[0] > 1.0 > min(got.values()), "the rarer normal class weighs more"


@pytest.mark.parametrize("task", ["binary", "3class"])
def test_oversample_balances_and_keeps_every_record(task: Task) -> None:
    records = kermany_like_records(60)
    out = oversample(records, task, seed=1)
    counts = Counter(targets(out, task))
    assert len(set(counts.values())) == 1
    assert max(counts.values()) == max(Counter(targets(records, task)).values())
    have = Counter(r.path for r in out)
    assert all(have[r.path] >= 1 for r in records)
    assert set(have) == {r.path for r in records}
    assert oversample(records, task, seed=1) == out
    assert oversample(records, task, seed=2) != out


# --- tf.data pipeline ----------------------------------------------------------------------
def collect(ds: object) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for x, y in ds:  # type: ignore[attr-defined]
        xs.append(x.numpy())
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys)


def test_make_dataset_yields_float_images_and_int_labels_in_order(
        tiny_dataset: TinyDataset) -> None:
    root = tiny_dataset(4, 5, size=40)
    records = scan_split(root, "train")
    ds = make_dataset(records, input_size=24, batch_size=4, training=False, cache=False)
    batches = list(ds)
    assert [int(x.shape[0]) for x, _ in batches] == [4, 4, 1]
    x0, y0 = batches[0]
    assert x0.dtype.name == "float32" and y0.dtype.name == "int32"
    x, y = collect(ds)
    assert x.shape == (9, 24, 24, 3)
    assert x.min() >= 0.0 and x.max() <= 255.0 and x.max() > 100
    assert y.tolist() == targets(records, "binary")
    for i, r in enumerate(records):
        np.testing.assert_array_equal(x[i], decode_resize(r.path, 24))
    _, y3 = collect(make_dataset(records, input_size=24, task="3class", cache=False))
    assert y3.tolist() == targets(records, "3class") and set(y3.tolist()) >= {0, 1}


def test_augmentation_only_when_training(tiny_dataset: TinyDataset) -> None:
    records = scan_split(tiny_dataset(4, 4), "train")
    plain, labels = collect(make_dataset(records, input_size=32, cache=False))
    not_training, _ = collect(make_dataset(records, input_size=32, augment="heavy", cache=False))
    np.testing.assert_array_equal(plain, not_training)
    shuffled, ys = collect(make_dataset(records, input_size=32, training=True, augment=None,
                                        batch_size=3, seed=1, cache=False))
    assert sorted(ys.tolist()) == sorted(labels.tolist())
    key = lambda a: float(a.sum())  # noqa: E731
    np.testing.assert_array_equal(sorted(map(key, shuffled)), sorted(map(key, plain)))
    augmented, _ = collect(make_dataset(records, input_size=32, training=True, augment="heavy",
                                        batch_size=3, seed=1, cache=False))
    assert augmented.shape == plain.shape
    assert augmented.min() >= 0.0 and augmented.max() <= 255.0
    sums = {key(a) for a in plain}
    assert sum(key(a) not in sums for a in augmented) >= 6, "training images are augmented"


def test_cache_in_memory_and_on_disk(tiny_dataset: TinyDataset, tmp_path: Path) -> None:
    root = tiny_dataset(3, 3)
    records = scan_split(root, "train")
    for cache in (True, tmp_path / "cache" / "train"):
        ds = make_dataset(records, input_size=16, batch_size=4, cache=cache)
        first = collect(ds)
        second = collect(ds)
        np.testing.assert_array_equal(first[0], second[0])
        np.testing.assert_array_equal(first[1], second[1])
    assert list((tmp_path / "cache").glob("train*")), "on-disk cache written"
    # the in-memory cache really serves epoch 2: the files can be gone by then
    ds = make_dataset(records, input_size=16, batch_size=4, cache=True)
    first = collect(ds)
    shutil.rmtree(root)
    np.testing.assert_array_equal(collect(ds)[0], first[0])


def test_pipeline_decodes_gray_rgba_palette_and_16bit_png(tmp_path: Path) -> None:
    normal = tmp_path / "train" / "NORMAL"
    pneumonia = tmp_path / "train" / "PNEUMONIA"
    normal.mkdir(parents=True)
    pneumonia.mkdir()
    half = np.zeros((20, 20), dtype=np.uint16)
    half[:, 10:] = 65535
    Image.fromarray(half).save(normal / "IM-0001-0001.png")  # 16-bit gray
    assert Image.open(normal / "IM-0001-0001.png").mode.startswith("I")
    gray = np.full((20, 20), 77, dtype=np.uint8)
    Image.fromarray(gray).save(normal / "IM-0002-0001.png")
    rgba = np.zeros((20, 20, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 10, 20, 30, 255
    Image.fromarray(rgba).save(pneumonia / "person1_virus_1.png")
    palette = Image.new("P", (20, 20), 3)
    palette.putpalette([0, 0, 0] * 3 + [10, 200, 30] + [0, 0, 0] * 252)
    palette.save(pneumonia / "person2_bacteria_2.png")
    records = scan_split(tmp_path, "train")
    by_name = {r.path.name: i for i, r in enumerate(records)}
    # Evaluation pipelines prepare films as the model does: one grey channel (PIL's
    # luminance) by default, the file's own colours with color=True (the rgb policy).
    green = int(np.asarray(Image.new("RGB", (1, 1), (10, 200, 30)).convert("L"))[0, 0])
    for color, want_rgba, want_palette in (
            (False, [18] * 3, [green] * 3), (True, [10, 20, 30], [10, 200, 30])):
        x, _ = collect(make_dataset(records, input_size=20, cache=False, color=color))
        img16 = x[by_name["IM-0001-0001.png"]]
        assert img16[:, :8].max() == 0 and img16[:, 12:].min() == 255
        np.testing.assert_array_equal(x[by_name["IM-0002-0001.png"]], 77)
        np.testing.assert_array_equal(x[by_name["person1_virus_1.png"]].reshape(-1, 3)[0],
                                      want_rgba)
        np.testing.assert_array_equal(x[by_name["person2_bacteria_2.png"]].reshape(-1, 3)[5],
                                      want_palette)
    # Training pipelines keep one channel: films exactly, colour files as PIL's luminance.
    for color, want_rgba in ((False, [18] * 3), (True, [10, 20, 30])):
        xt, _ = collect(make_dataset(records, input_size=20, cache=False, training=True,
                                      shuffle_buffer=1, color=color))
        assert xt.shape == (4, 20, 20, 3) and xt.dtype == np.float32
        np.testing.assert_array_equal(xt[by_name["IM-0002-0001.png"]], 77)
        np.testing.assert_array_equal(xt[by_name["person1_virus_1.png"]].reshape(-1, 3)[0], want_rgba)


# --- validation before training ------------------------------------------------------------
def test_validate_records_accepts_good_data(fixture_root: Path) -> None:
    records = scan_split(fixture_root, "train")
    validate_records(records)
    validate_records(records, task="3class")


def test_validate_records_names_unreadable_files(tiny_dataset: TinyDataset) -> None:
    root = tiny_dataset(3, 3, fmt="jpeg")
    normal = root / "train" / "NORMAL"
    victim = sorted(normal.iterdir())[0]
    victim.write_bytes(victim.read_bytes()[: len(victim.read_bytes()) // 3])  # truncated
    (normal / "IM-0950-0001.jpeg").write_text("this is not a JPEG")
    (root / "train" / "PNEUMONIA" / "person950_virus_9.jpeg").write_bytes(b"")
    records = scan_split(root, "train")
    with pytest.raises(DataError) as e:
        validate_records(records)
    msg = one_line(e.value)
    assert "3 unreadable" in msg
    for name in (victim.name, "IM-0950-0001.jpeg", "person950_virus_9.jpeg"):
        assert name in msg
    validate_records(records, check_files=False)  # the class counts alone are fine


def test_validate_records_catches_an_empty_class(tiny_dataset: TinyDataset) -> None:
    root = tiny_dataset(3, 3)
    for f in (root / "train" / "NORMAL").iterdir():
        f.unlink()
    records = scan_split(root, "train")  # an empty class folder still scans
    assert {r.label for r in records} == {1}
    with pytest.raises(DataError) as e:
        validate_records(records)
    assert "normal" in one_line(e.value) and "normal=0" in str(e.value)


def test_validate_records_catches_a_single_class_split(tiny_dataset: TinyDataset) -> None:
    root = tiny_dataset(3, 3)
    shutil.rmtree(root / "train" / "PNEUMONIA")
    records = scan_split(root, "train")
    with pytest.raises(DataError, match="pneumonia=0"):
        validate_records(records)
    with pytest.raises(DataError, match=r"bacteria, virus have too few"):
        validate_records(records, task="3class")
    with pytest.raises(DataError, match="no training images"):
        validate_records([])


def test_validate_records_3class_needs_subtypes(tiny_dataset: TinyDataset) -> None:
    root = tiny_dataset(3, 3)
    src = sorted((root / "train" / "PNEUMONIA").iterdir())[0]
    src.rename(src.with_name("mystery.png"))
    records = scan_split(root, "train")
    validate_records(records, task="binary")
    with pytest.raises(DataError, match=r"mystery\.png"):
        validate_records(records, task="3class")
    with pytest.raises(DataError, match="virus=0"):
        validate_records([r for r in records if r.subtype in (0, 1)], task="3class")


def test_records_and_download_do_not_import_tensorflow() -> None:
    code = ("import sys\n"
            "import pneumozoo.data as d\n"
            "d.scan_folder; d.patient_split; d.download_kermany\n"
            "assert 'tensorflow' not in sys.modules, 'imported too early'\n"
            "from pneumozoo.data import make_batches\n"
            "assert callable(make_batches)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

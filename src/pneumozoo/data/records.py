"""Scan a Kermany-style folder into typed records.

Layout: ``<root>/<split>/<CLASS>/<file>``; class folders are ``NORMAL`` and ``PNEUMONIA`` in any
case. The nested ``chest_xray/chest_xray/...`` of the Kaggle zip is found too. The 3-class
label and the patient id come from the file name (``person12_virus_34.jpeg``,
``IM-0115-0001.jpeg``, ``NORMAL2-IM-0381-0001.jpeg``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from pneumozoo.errors import DataError, InvalidImageError, UnknownNameError
from pneumozoo.io import IMAGE_SUFFIXES, expand_inputs, read_xray
from pneumozoo.rules import BINARY_CLASSES, TASKS, THREE_CLASSES, Task

__all__ = [
    "BINARY_CLASSES",
    "IMAGE_SUFFIXES",
    "TASKS",
    "THREE_CLASSES",
    "Record",
    "Task",
    "class_names",
    "find_split_dir",
    "label_of",
    "parse_patient_id",
    "parse_subtype",
    "scan_folder",
    "scan_split",
    "targets",
    "validate_records",
    "with_split",
]


_PERSON = re.compile(r"^(person\d+)_(bacteria|virus)", re.IGNORECASE)
_NORMAL = re.compile(r"^((?:NORMAL\d*-)?IM-\d+)", re.IGNORECASE)
# NIH ChestX-ray14: {patient:08d}_{follow-up:03d}.png (Wang et al. 2017).
_NIH = re.compile(r"^(\d{8})_\d{3}\.")


@dataclass(frozen=True)
class Record:
    """One X-ray of a dataset.

    Attributes:
        path: The image file.
        split: The split folder it came from (``"train"``, ``"test"``, ...), or ``""``.
        label: Binary label: 0 normal, 1 pneumonia.
        subtype: 3-class label: 0 normal, 1 bacteria, 2 virus; -1 when a pneumonia file name
            does not say which.
        patient_id: Patient parsed from the file name (falls back to the file stem, so an
            unknown name is its own patient).

    Example:
        >>> r = Record(Path("train/PNEUMONIA/person1_virus_6.jpeg"), "train", 1, 2, "person1")
        >>> r.target("binary"), r.target("3class")
        (1, 2)
    """

    path: Path
    split: str
    label: int
    subtype: int
    patient_id: str

    def target(self, task: Task) -> int:
        """The integer class of this record for ``task`` (see :func:`class_names`).

        Args:
            task: ``"binary"`` (0 normal, 1 pneumonia) or ``"3class"`` (0 normal, 1 bacteria,
                2 virus, -1 if the file name does not say).

        Returns:
            The class index.
        """
        return self.label if task == "binary" else self.subtype


def class_names(task: str) -> tuple[str, ...]:
    """Class names, in output order, of a task (``"binary"`` or ``"3class"``).

    Args:
        task: ``"binary"`` or ``"3class"``.

    Returns:
        ``("normal", "pneumonia")`` or ``("normal", "bacteria", "virus")``.

    Raises:
        UnknownNameError: For another task name.

    Example:
        >>> class_names("3class")
        ('normal', 'bacteria', 'virus')
    """
    if task == "binary":
        return BINARY_CLASSES
    if task == "3class":
        return THREE_CLASSES
    raise UnknownNameError("task", task, list(TASKS))


def parse_subtype(filename: str, label: int) -> int:
    """3-class label from a file name: 0 normal, 1 bacteria, 2 virus, -1 unknown.

    Args:
        filename: The file name (``person12_virus_34.jpeg``); case does not matter.
        label: Its binary label; 0 (normal) always gives 0.

    Returns:
        The subtype index.

    Example:
        >>> parse_subtype("person3_bacteria_10.jpeg", 1), parse_subtype("IM-0001-0001.jpeg", 0)
        (1, 0)
    """
    if label == 0:
        return 0
    low = filename.lower()
    if "bacteria" in low:
        return 1
    if "virus" in low:
        return 2
    return -1


def parse_patient_id(filename: str) -> str:
    """Patient id from a Kermany (or NIH ChestX-ray14) file name.

    Args:
        filename: A file name or path (only the name is used).

    Returns:
        ``personN`` for pneumonia films, ``IM-NNNN`` or ``NORMAL2-IM-NNNN`` for normal ones,
        ``nih-NNNNNNNN`` for NIH's ``NNNNNNNN_FFF.png``, else the file stem (an unknown name
        is its own patient).

    Example:
        >>> parse_patient_id("person1_virus_6.jpeg"), parse_patient_id("IM-0115-0001.jpeg")
        ('person1', 'IM-0115')
    """
    name = Path(filename).name
    for pattern in (_PERSON, _NORMAL):
        m = pattern.match(name)
        if m:
            return m.group(1)
    m = _NIH.match(name)
    if m:
        return f"nih-{m.group(1)}"
    return Path(name).stem


def label_of(class_dir: str) -> int | None:
    """Binary label of a class folder name (case-insensitive), or None if it is not one."""
    low = class_dir.lower()
    if low == "normal":
        return 0
    if low == "pneumonia":
        return 1
    return None


def _class_dirs(folder: Path) -> list[tuple[Path, int]]:
    if not folder.is_dir():
        return []
    out = []
    for child in sorted(folder.iterdir()):
        label = label_of(child.name)
        if label is not None and child.is_dir():
            out.append((child, label))
    # Normal first whatever the case of the names ("PNEUMONIA" sorts before "normal").
    return sorted(out, key=lambda item: (item[1], item[0].name))


def scan_folder(folder: str | Path, *, split: str = "") -> list[Record]:
    """Records of one split folder holding ``NORMAL/`` and ``PNEUMONIA/`` class folders.

    Files are listed recursively inside each class folder and sorted, so the order is
    reproducible. Hidden files and files without an image suffix are skipped.

    Args:
        folder: The split folder, e.g. ``chest_xray/train``.
        split: Split name stored in the records (default: the folder's name).

    Returns:
        One :class:`Record` per image file, normal ones first.

    Raises:
        DataError: If the folder has no class folder or no image at all.

    Example:
        >>> records = scan_folder("chest_xray/test")  # doctest: +SKIP
        >>> records[0].split, records[0].label  # doctest: +SKIP
        ('test', 0)
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    dirs = _class_dirs(root)
    if not dirs:
        raise DataError(f"{root}: no NORMAL/ or PNEUMONIA/ class folder inside")
    records: list[Record] = []
    for class_dir, label in dirs:
        # The same walk as `pneumozoo predict`: sorted, hidden entries and link loops skipped.
        files, problems = expand_inputs([class_dir])
        if problems:
            raise DataError(f"{problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
        records.extend(
            Record(
                path=path,
                split=split or root.name,
                label=label,
                subtype=parse_subtype(path.name, label),
                patient_id=parse_patient_id(path.name),
            )
            for path in files
        )
    if not records:
        raise DataError(f"{root}: no images in its class folders")
    return records


def find_split_dir(root: str | Path, split: str) -> Path:
    """The folder of ``split`` under a dataset root, also inside Kaggle's nested layout.

    Looks for ``root/split``, ``root/chest_xray/split``, ``root/chest_xray/chest_xray/split``
    (split names are matched case-insensitively).

    Args:
        root: The dataset root (the unzipped archive's folder works).
        split: ``"train"``, ``"test"`` or ``"val"``.

    Returns:
        The split folder, which holds ``NORMAL/`` and/or ``PNEUMONIA/``.

    Raises:
        DataError: If no such folder exists; the message lists what was tried.

    Example:
        >>> find_split_dir("archive", "train")  # doctest: +SKIP
        PosixPath('archive/chest_xray/chest_xray/train')
    """
    base = Path(root)
    candidates = [base, base / "chest_xray", base / "chest_xray" / "chest_xray"]
    for cand in candidates:
        if not cand.is_dir():
            continue
        for child in cand.iterdir():
            if child.is_dir() and child.name.lower() == split.lower() and _class_dirs(child):
                return child
    tried = ", ".join(str(c / split) for c in candidates)
    raise DataError(f"{base}: no {split!r} split with NORMAL/PNEUMONIA folders (tried {tried})")


def scan_split(root: str | Path, split: str) -> list[Record]:
    """Records of one split (``"train"``, ``"test"``, ``"val"``) of a dataset root.

    Args:
        root: The dataset root; Kaggle's nested layout is found (see :func:`find_split_dir`).
        split: The split name.

    Returns:
        The split's records (see :func:`scan_folder`).

    Raises:
        DataError: If the split folder is missing or holds no images.

    Example:
        >>> train = scan_split("chest_xray", "train")  # doctest: +SKIP
        >>> len(train)  # doctest: +SKIP
        5216
    """
    return scan_folder(find_split_dir(root, split), split=split)


def with_split(records: Iterable[Record], split: str) -> list[Record]:
    """Copies of ``records`` tagged with another split name."""
    return [replace(r, split=split) for r in records]


def targets(records: Sequence[Record], task: Task) -> list[int]:
    """Integer class of every record for ``task``.

    Args:
        records: The records.
        task: ``"binary"`` or ``"3class"``.

    Returns:
        One class index per record, in order.

    Raises:
        DataError: For ``3class`` if a pneumonia file name says neither bacteria nor virus.

    Example:
        >>> targets(scan_split("chest_xray", "test"), "3class")[:3]  # doctest: +SKIP
        [0, 0, 0]
    """
    out = [r.target(task) for r in records]
    if task == "3class":
        unknown = [r.path for r, t in zip(records, out, strict=True) if t < 0]
        if unknown:
            raise DataError(
                f"{unknown[0]}: 3class task needs 'bacteria' or 'virus' in pneumonia file names "
                f"({len(unknown)} file(s) have neither)"
            )
    return out


# --- checks before the first epoch: bad data fails fast and clearly ------------------------
def _check(record: Record) -> str | None:
    try:
        if record.path.suffix.lower() in (".dcm", ".dicom"):
            read_xray(record.path)
        else:
            with Image.open(record.path) as img:  # header + full decode, without resizing work
                img.verify()
            read_xray(record.path)
    except InvalidImageError as e:
        return str(e)
    except Exception as e:  # verify() raises assorted types on broken files
        return f"{record.path}: {type(e).__name__}: {e}"
    return None


def validate_records(records: Sequence[Record], *, task: Task = "binary", min_per_class: int = 1,
                     check_files: bool = True, workers: int = 4) -> None:
    """Raise before training if the data cannot train a ``task`` model.

    Checks that there are records, that every class of the task has at least
    ``min_per_class`` images, and (with ``check_files``) that every file decodes.

    Args:
        records: The training records.
        task: ``"binary"`` or ``"3class"`` (3-class also needs the subtype in file names).
        min_per_class: Fewest images a class may have.
        check_files: Decode every file (in ``workers`` threads).
        workers: Threads decoding files.

    Raises:
        DataError: One message listing every problem found (the first few bad files by name).

    Example:
        >>> validate_records(scan_split("chest_xray", "train"), task="3class")  # doctest: +SKIP
    """
    problems: list[str] = []
    if not records:
        raise DataError("no training images found")
    names = class_names(task)
    try:
        counts = Counter(targets(records, task))
    except DataError as e:
        problems.append(str(e))
        counts = Counter()
    if counts:
        missing = [names[i] for i in range(len(names)) if counts.get(i, 0) < min_per_class]
        if missing:
            have = ", ".join(f"{names[i]}={counts.get(i, 0)}" for i in range(len(names)))
            problems.append(f"class(es) {', '.join(missing)} have too few images ({have}); "
                            f"a {task} model needs every class")
    if check_files:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            bad = [msg for msg in pool.map(_check, records) if msg]
        if bad:
            shown = "; ".join(bad[:5])
            more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
            problems.append(f"{len(bad)} unreadable file(s): {shown}{more}")
    if problems:
        raise DataError(" | ".join(problems))

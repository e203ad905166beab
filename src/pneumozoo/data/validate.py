"""Check a training set before the first epoch, so bad data fails fast and clearly."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from pneumozoo.data.records import Record, Task, class_names, targets
from pneumozoo.errors import DataError, InvalidImageError

__all__ = ["validate_records"]


def _check(record: Record) -> str | None:
    from PIL import Image

    from pneumozoo.io import read_xray

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

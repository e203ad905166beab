"""Validation splits, duplicate removal and class balance."""

from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from pneumozoo.data.records import Record, Task, targets

__all__ = ["class_weights", "drop_duplicates", "oversample", "patient_split"]


def patient_split(
    records: Sequence[Record],
    *,
    val_fraction: float = 0.15,
    seed: int = 0,
    task: Task = "3class",
) -> tuple[list[Record], list[Record]]:
    """Split records into (train, validation), stratified and patient-disjoint.

    Patients are grouped, each patient takes the class of its most frequent record, and a
    ``val_fraction`` share of each class's patients (shuffled by ``seed``) goes to validation.
    No patient ends up in both parts; the same seed gives the same split.

    Args:
        records: Records of the training split.
        val_fraction: Share of patients per class that goes to validation, in (0, 1).
        seed: Random seed.
        task: Which label to stratify on; ``"3class"`` also balances the binary classes.

    Returns:
        ``(train, validation)`` lists, each in the input order.

    Raises:
        ValueError: If ``val_fraction`` is not in (0, 1).

    Example:
        >>> train, val = patient_split(records, val_fraction=0.2, seed=1)  # doctest: +SKIP
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    by_patient: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        by_patient[r.patient_id].append(i)
    strata: dict[int, list[str]] = defaultdict(list)
    for pid, idx in sorted(by_patient.items()):
        label = Counter(records[i].target(task) for i in idx).most_common(1)[0][0]
        strata[label].append(pid)
    rng = random.Random(seed)
    val_patients: set[str] = set()
    for label in sorted(strata):
        pids = strata[label]
        rng.shuffle(pids)
        n_val = round(len(pids) * val_fraction)
        if len(pids) >= 2:
            n_val = min(max(n_val, 1), len(pids) - 1)
        val_patients.update(pids[:n_val])
    train = [r for r in records if r.patient_id not in val_patients]
    val = [r for r in records if r.patient_id in val_patients]
    return train, val


def _digest(record: Record) -> str:
    return hashlib.sha256(record.path.read_bytes()).hexdigest()


def drop_duplicates(records: Sequence[Record]) -> list[Record]:
    """Keep the first of every group of byte-identical files (compared by sha256).

    Args:
        records: The records; every file is read once.

    Returns:
        The records without duplicates, in the input order.

    Example:
        >>> unique = drop_duplicates(scan_split("chest_xray", "train"))  # doctest: +SKIP
    """
    seen: set[str] = set()
    out = []
    for r in records:
        d = _digest(r)
        if d not in seen:
            seen.add(d)
            out.append(r)
    return out


def class_weights(records: Sequence[Record], task: Task = "binary") -> dict[int, float]:
    """"Balanced" class weights, ``n / (k * count)``, as scikit-learn computes them.

    Args:
        records: Training records.
        task: ``"binary"`` or ``"3class"``.

    Returns:
        Class index -> weight, for ``keras.Model.fit(class_weight=...)``.

    Example:
        >>> class_weights(records)  # doctest: +SKIP
        {0: 1.94, 1: 0.67}
    """
    y = targets(records, task)
    counts = Counter(y)
    n, k = len(y), len(counts)
    return {c: n / (k * counts[c]) for c in sorted(counts)}


def oversample(records: Sequence[Record], task: Task = "binary", *, seed: int = 0) -> list[Record]:
    """Repeat records of the smaller classes until every class has as many as the largest.

    The result is shuffled with ``seed``; every original record appears at least once.

    Args:
        records: Training records.
        task: Which classes to balance: ``"binary"`` or ``"3class"``.
        seed: Seed for the repeats drawn and the shuffle.

    Returns:
        The balanced, shuffled list (longer than ``records`` unless already balanced).

    Example:
        >>> balanced = oversample(train, seed=0)  # doctest: +SKIP
        >>> sum(r.label == 0 for r in balanced) == sum(r.label == 1 for r in balanced)  # doctest: +SKIP
        True
    """
    y = np.asarray(targets(records, task))
    counts = Counter(y.tolist())
    top = max(counts.values())
    rng = np.random.default_rng(seed)
    out: list[Record] = []
    for c in sorted(counts):
        idx = np.flatnonzero(y == c)
        extra = rng.choice(idx, size=top - len(idx), replace=True) if top > len(idx) else idx[:0]
        out.extend(records[int(i)] for i in idx)
        out.extend(records[int(i)] for i in extra)
    order = rng.permutation(len(out))
    return [out[i] for i in order]

"""Datasets in the Kermany layout: records, patient-wise splits, balance, the input pipeline.

The pipeline's names are imported on first use: they need Keras (and its backend), and
records, splits and the download do not (``pneumozoo data download`` starts in a second).
"""

from typing import TYPE_CHECKING, Any

from pneumozoo.data.download import download_kermany
from pneumozoo.data.records import (
    BINARY_CLASSES,
    TASKS,
    THREE_CLASSES,
    Record,
    Task,
    class_names,
    find_split_dir,
    parse_patient_id,
    parse_subtype,
    scan_folder,
    scan_split,
    targets,
    validate_records,
)
from pneumozoo.data.splits import class_weights, drop_duplicates, oversample, patient_split

__all__ = [
    "BINARY_CLASSES",
    "TASKS",
    "THREE_CLASSES",
    "FilmBatches",
    "Record",
    "Task",
    "class_names",
    "class_weights",
    "decode_resize",
    "download_kermany",
    "drop_duplicates",
    "find_split_dir",
    "load_films",
    "make_batches",
    "make_dataset",
    "oversample",
    "parse_patient_id",
    "parse_subtype",
    "patient_split",
    "resize_images",
    "scan_folder",
    "scan_split",
    "targets",
    "validate_records",
]

_PIPELINE = ("FilmBatches", "decode_resize", "load_films", "make_batches", "make_dataset",
             "resize_images")


def __getattr__(name: str) -> Any:
    if name in _PIPELINE:
        # lazy: loads Keras and its backend
        from pneumozoo.data import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'pneumozoo.data' has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    from pneumozoo.data.pipeline import (
        FilmBatches,
        decode_resize,
        load_films,
        make_batches,
        make_dataset,
        resize_images,
    )

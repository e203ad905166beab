"""Read a DICOM chest film as a ``uint8`` RGB array (needs the ``dicom`` extra: pydicom).

The pixel pipeline follows the DICOM display chain for a single image:

1. decode the first frame (multi-frame files keep only frame 0);
2. the modality transform (Rescale Slope/Intercept or a Modality LUT);
3. the VOI transform (a VOI LUT, or Window Center/Width), mapped onto 0..255; without one the
   values are scaled by their own min/max (8-bit films without a rescale are kept as stored);
4. ``MONOCHROME1`` films are inverted so that air is black, as in ``MONOCHROME2``;
5. the gray channel is repeated to RGB. ``RGB``/``YBR`` films are converted to 8-bit RGB and
   ``PALETTE COLOR`` films are looked up in their palette.

Every failure (pydicom missing, not a DICOM file, no pixel data, a compressed transfer syntax
without an installed decoder, corrupt data, a Rescale Slope/Intercept that overflows to
infinite or NaN values) raises :class:`~pneumozoo.errors.InvalidImageError`
naming the file and the reason.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from pneumozoo import pixels
from pneumozoo.errors import InvalidImageError
from pneumozoo.pixels import to_rgb_uint8

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

__all__ = ["read_dicom"]

_MISSING_EXTRA = ("reading DICOM needs the 'dicom' extra: pip install pydicom (or, in the "
                  "pneumozoo clone, pip install '.[dicom]')")
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def read_dicom(source: str | Path | BinaryIO, *, name: str | None = None) -> np.ndarray:
    """Read the first frame of a DICOM file as a ``uint8`` RGB array ``(H, W, 3)``.

    Args:
        source: A path, or a binary file object positioned at the start of the file
            (``io.BytesIO(data)`` for bytes in memory).
        name: How to call the source in error messages; defaults to the path, or the file
            object's ``name``.

    Returns:
        A contiguous ``uint8`` array of shape ``(rows, columns, 3)``.

    Raises:
        InvalidImageError: If pydicom is not installed, the file is not DICOM, has no pixel
            data, uses a compressed transfer syntax no installed decoder handles, is corrupt or
            has more than :data:`~pneumozoo.pixels.MAX_PIXELS` pixels.

    Example:
        >>> from pneumozoo.dicom import read_dicom
        >>> read_dicom("film.dcm").shape  # doctest: +SKIP
        (2048, 2500, 3)
    """
    if name is None:
        if isinstance(source, (str, os.PathLike)):
            name = os.fspath(source)
        else:
            stream_name = getattr(source, "name", None)
            name = stream_name if isinstance(stream_name, str) else "<DICOM stream>"
    try:
        # lazy: optional extra (pydicom)
        import pydicom
    except ImportError:
        raise InvalidImageError(name, _MISSING_EXTRA) from None
    try:
        ds = _read_dataset(pydicom, source, name)
        frame = _first_frame(ds, name)
        return _to_display(frame, ds, name)
    except InvalidImageError:
        raise
    except MemoryError:
        raise InvalidImageError(name, "not enough memory to decode the DICOM pixel data") from None
    except Exception as e:  # pydicom raises many types on corrupt files; keep the contract
        raise InvalidImageError(name, f"cannot read DICOM: {_describe(e)}") from None


def _describe(e: BaseException) -> str:
    """``Type: first line of the message`` for an exception, kept to one line."""
    lines = str(e).strip().splitlines()
    text = lines[0].strip() if lines else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _read_dataset(pydicom: Any, source: str | Path | BinaryIO, name: str) -> Dataset:
    """Parse the file; files without the 128-byte preamble are retried leniently."""
    # lazy: optional extra (pydicom)
    from pydicom.errors import InvalidDicomError

    start = None if isinstance(source, (str, os.PathLike)) else source.tell()
    try:
        ds: Dataset = pydicom.dcmread(source)
    except InvalidDicomError:
        # Old ACR-NEMA style files start straight with the data set (no preamble, no "DICM").
        if start is not None:
            source.seek(start)  # type: ignore[union-attr]
        try:
            ds = pydicom.dcmread(source, force=True)
        except Exception:
            raise InvalidImageError(name, "not a DICOM file (no DICM header)") from None
        if "Rows" not in ds or not any(k in ds for k in _PIXEL_KEYWORDS):
            raise InvalidImageError(name, "not a DICOM file (no DICM header)") from None
    return ds


def _first_frame(ds: Dataset, name: str) -> np.ndarray:
    """Decode frame 0, with clear errors for missing pixels, sizes and decoders."""
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        raise InvalidImageError(
            name, "DICOM file has no pixel data (not an image: a report or other object?)"
        )
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows < 1 or cols < 1:
        raise InvalidImageError(name, f"DICOM image has no pixels (Rows={rows}, Columns={cols})")
    if rows * cols > pixels.MAX_PIXELS:
        raise InvalidImageError(
            name, f"DICOM image is {cols}x{rows} pixels, over the {pixels.MAX_PIXELS} limit"
        )
    file_meta = getattr(ds, "file_meta", None)
    tsyntax = getattr(file_meta, "TransferSyntaxUID", None) if file_meta is not None else None
    if tsyntax is not None and tsyntax.is_compressed:
        missing = _missing_decoder(tsyntax)
        if missing is not None:
            raise InvalidImageError(name, missing)
    try:
        arr = _decode_frame0(ds)
    except (NotImplementedError, RuntimeError) as e:
        if tsyntax is not None and tsyntax.is_compressed:
            raise InvalidImageError(
                name, f"cannot decode {tsyntax.name} pixel data: {_describe(e)}"
            ) from None
        raise
    if arr.ndim < 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InvalidImageError(name, f"DICOM pixel data has an unusable shape {arr.shape}")
    return arr


def _missing_decoder(tsyntax: Any) -> str | None:
    """The reason no decoder can handle ``tsyntax``, or ``None`` (pydicom 3 only)."""
    try:
        # lazy: optional extra (pydicom)
        from pydicom.pixels import get_decoder
    except ImportError:  # pydicom 2.x: decoding raises instead, handled by the caller
        return None
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        return f"compressed DICOM ({tsyntax.name}) is not supported by pydicom"
    if decoder.is_available:
        return None
    needs = "; or ".join(decoder.missing_dependencies) or "a decoder plugin"
    return f"compressed DICOM ({tsyntax.name}) needs a decoder that is not installed: {needs}"


def _decode_frame0(ds: Dataset) -> np.ndarray:
    """Decode only the first frame; YBR colour is converted to RGB."""
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    try:
        # lazy: optional extra (pydicom)
        from pydicom.pixels import pixel_array
    except ImportError:  # pydicom 2.x decodes every frame
        arr = np.asarray(ds.pixel_array)
        if n_frames > 1:
            arr = arr[0]
        photometric = str(ds.get("PhotometricInterpretation", "")).upper()
        if photometric.startswith("YBR") and arr.ndim == 3:
            # lazy: optional extra (pydicom)
            from pydicom.pixel_data_handlers.util import convert_color_space

            arr = convert_color_space(arr, photometric, "RGB")
        return arr
    return np.asarray(pixel_array(ds, index=0 if n_frames > 1 else None))


def _pixel_functions() -> tuple[Any, Any, Any]:
    """``apply_modality_lut``, ``apply_voi_lut``, ``apply_color_lut`` for pydicom 2.4 or 3."""
    try:
        pixels = importlib.import_module("pydicom.pixels")
    except ImportError:  # pydicom 2.x
        pixels = importlib.import_module("pydicom.pixel_data_handlers.util")
    return pixels.apply_modality_lut, pixels.apply_voi_lut, pixels.apply_color_lut


def _to_display(arr: np.ndarray, ds: Dataset, name: str) -> np.ndarray:
    """Map decoded stored values to display ``uint8`` RGB."""
    apply_modality_lut, apply_voi_lut, apply_color_lut = _pixel_functions()
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if photometric == "PALETTE COLOR" and arr.ndim == 2:
        rgb = np.asarray(apply_color_lut(arr, ds))
        if rgb.dtype != np.uint8:  # 16-bit palette entries
            rgb = np.clip(np.rint(rgb.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(rgb[..., :3])
    if samples == 3 or (arr.ndim == 3 and arr.shape[-1] == 3):
        if arr.ndim != 3 or arr.shape[-1] != 3:
            raise InvalidImageError(name, f"DICOM colour pixel data has shape {arr.shape}")
        return _colour_to_uint8(arr, ds, name)
    if samples != 1 or arr.ndim != 2:
        raise InvalidImageError(
            name, f"unsupported DICOM pixel layout ({photometric}, {samples} samples per pixel)"
        )
    if not np.issubdtype(arr.dtype, np.number):
        raise InvalidImageError(name, f"unsupported DICOM pixel dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise InvalidImageError(name, "DICOM pixel data holds NaN or infinite values")

    stored = arr
    with np.errstate(all="ignore"):  # overflow is reported below, not warned about
        values = np.asarray(apply_modality_lut(arr, ds))
    _check_finite(values, ds, name)
    gray = _apply_voi(values, ds, apply_voi_lut)
    if gray is None:
        bits = int(ds.get("BitsStored", 8 * arr.dtype.itemsize) or 8)
        if stored.dtype == np.uint8 and bits <= 8 and np.array_equal(values, stored):
            gray = stored  # 8-bit film, identity modality transform: already display values
        else:
            gray = _minmax_uint8(values)
    if photometric == "MONOCHROME1":
        gray = 255 - gray
    return to_rgb_uint8(gray, name)


def _check_finite(values: np.ndarray, ds: Dataset, name: str) -> None:
    """Refuse a modality transform that overflows (e.g. ``RescaleSlope`` 1e999 reads as inf).

    Without this the min/max scaling would turn the film into a black frame silently.
    """
    if values.dtype.kind not in "fc" or np.all(np.isfinite(values)):
        return
    rescale = ", ".join(
        f"{key}={ds.get(key)!s}" for key in ("RescaleSlope", "RescaleIntercept") if key in ds
    )
    why = f" ({rescale})" if rescale else " (Modality LUT)"
    raise InvalidImageError(
        name, f"DICOM rescale gives infinite or NaN pixel values{why}; the file is corrupt"
    )


def _apply_voi(values: np.ndarray, ds: Dataset, apply_voi_lut: Any) -> np.ndarray | None:
    """Apply the VOI LUT or window onto 0..255, or ``None`` when the file has no usable one.

    A VOI LUT is scaled by the smallest and largest entries of its table (robust to tables
    whose descriptor claims more bits than they use). A window is scaled by its output range,
    which pydicom derives from the modality transform: it is read back by passing two
    out-of-range probes through the same call, which clips them to the ends of that range.
    """
    try:
        if ds.get("VOILUTSequence"):
            return _apply_voi_lut_table(values, ds, apply_voi_lut)
        if "WindowCenter" in ds and "WindowWidth" in ds:
            return _apply_window(values, ds, apply_voi_lut)
    except Exception:  # an invalid LUT or window (width <= 0, bad values): use min/max
        return None
    return None


def _apply_voi_lut_table(values: np.ndarray, ds: Dataset, apply_voi_lut: Any) -> np.ndarray | None:
    item = ds.VOILUTSequence[0]
    n_entries, first = int(item.LUTDescriptor[0]), int(item.LUTDescriptor[1])
    n_entries = n_entries or 65536  # 0 means 2**16 entries
    if values.dtype.kind == "f":
        if not np.array_equal(values, np.round(values)):
            return None  # a table is indexed by integers
        values = values.astype(np.int64)
    table = np.asarray(apply_voi_lut(np.arange(first, first + n_entries, dtype=np.int64), ds))
    mapped = np.asarray(apply_voi_lut(values, ds), dtype=np.float64)
    return _scale(mapped, values.shape, float(table.min()), float(table.max()))


def _apply_window(values: np.ndarray, ds: Dataset, apply_voi_lut: Any) -> np.ndarray | None:
    probe = np.array([-1e300, 1e300], dtype=np.float64)
    with np.errstate(all="ignore"):
        windowed = np.asarray(apply_voi_lut(values.astype(np.float64), ds, prefer_lut=False))
        ends = np.asarray(apply_voi_lut(probe, ds, prefer_lut=False), dtype=np.float64)
    if ends.shape != (2,):
        return None
    return _scale(windowed.astype(np.float64), values.shape, float(ends[0]), float(ends[1]))


def _scale(mapped: np.ndarray, shape: tuple[int, ...], lo: float, hi: float) -> np.ndarray | None:
    """Map ``[lo, hi]`` onto 0..255, or ``None`` if the range or the values are unusable."""
    if mapped.shape != shape or not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        return None
    if not np.all(np.isfinite(mapped)):
        return None
    return np.clip(np.rint((mapped - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def _minmax_uint8(values: np.ndarray) -> np.ndarray:
    """Scale by the image's own min/max onto 0..255 (a constant image becomes black)."""
    f = values.astype(np.float64)
    lo, hi = float(f.min()), float(f.max())
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        return np.zeros(f.shape, dtype=np.uint8)
    return np.clip(np.rint((f - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def _colour_to_uint8(arr: np.ndarray, ds: Dataset, name: str) -> np.ndarray:
    """8-bit RGB as stored; deeper RGB scaled by its bit depth (``BitsStored``)."""
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if not np.issubdtype(arr.dtype, np.number):
        raise InvalidImageError(name, f"unsupported DICOM pixel dtype {arr.dtype}")
    bits = int(ds.get("BitsStored", 8 * arr.dtype.itemsize) or 8)
    if arr.dtype.kind in "ui" and 1 <= bits <= 32:
        top = float(2**bits - 1)
        f = arr.astype(np.float64) * (255.0 / top)
        return np.ascontiguousarray(np.clip(np.rint(f), 0, 255).astype(np.uint8))
    return to_rgb_uint8(arr, name)

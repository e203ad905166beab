"""Pixels in: any array of a film to ``uint8`` RGB, and the size every input is refused above.

The lowest room of the input side: :mod:`pneumozoo.io` (files, bytes, PIL images, arrays) and
:mod:`pneumozoo.dicom` (DICOM) both hand their decoded pixels to :func:`to_rgb_uint8`.
"""

from __future__ import annotations

import numpy as np

from pneumozoo.errors import InvalidImageError

__all__ = ["MAX_PIXELS", "to_rgb_uint8"]

#: Largest image accepted, in pixels (an 8k x 8k film; guards against decompression bombs).
MAX_PIXELS = 8192 * 8192


def to_rgb_uint8(array: np.ndarray, name: str = "<ndarray>") -> np.ndarray:
    """Convert a 2-D or 3-D array of any common dtype to ``uint8`` RGB ``(H, W, 3)``.

    Integer arrays wider than 8 bits and float arrays are scaled by their own min/max (floats
    already in ``[0, 1]`` or ``[0, 255]`` keep their scale); 1 channel is repeated, alpha dropped.

    Args:
        array: ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` values of any real or
            boolean dtype.
        name: How to call the array in error messages.

    Returns:
        A contiguous ``uint8`` array of shape ``(H, W, 3)``.

    Raises:
        InvalidImageError: For another shape, no pixels, NaN or infinite values, or a complex
            or non-numeric dtype.

    Example:
        >>> import numpy as np
        >>> to_rgb_uint8(np.array([[0.0, 0.5, 1.0]]))[0, :, 0].tolist()
        [0, 128, 255]
    """
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise InvalidImageError(
            name,
            f"expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array, got shape {a.shape}",
        )
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise InvalidImageError(name, f"image has no pixels (shape {a.shape})")
    if a.shape[0] * a.shape[1] > MAX_PIXELS:
        raise InvalidImageError(
            name, f"image is {a.shape[1]}x{a.shape[0]} pixels, over the {MAX_PIXELS} limit"
        )
    if a.ndim == 3 and a.shape[-1] == 4:
        a = a[..., :3]
    if a.dtype == np.uint8:
        out = a
    elif a.dtype == bool:
        out = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.complexfloating):
        raise InvalidImageError(name, f"unsupported array dtype {a.dtype} (complex)")
    elif np.issubdtype(a.dtype, np.number):
        f = a.astype(np.float64)
        if not np.all(np.isfinite(f)):
            raise InvalidImageError(name, "array holds NaN or infinite values")
        lo, hi = float(f.min()), float(f.max())
        if np.issubdtype(a.dtype, np.floating) and lo >= 0.0 and hi <= 1.0:
            f = f * 255.0
        elif lo >= 0.0 and hi <= 255.0 and (np.issubdtype(a.dtype, np.floating) or hi > 1):
            pass
        else:
            f = (f - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(f)
        out = np.clip(np.rint(f), 0, 255).astype(np.uint8)
    else:
        raise InvalidImageError(name, f"unsupported array dtype {a.dtype}")
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=-1)
    return np.ascontiguousarray(out)

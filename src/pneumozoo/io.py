"""Read one X-ray from whatever a user has: a path, bytes, a PIL image, an array or DICOM.

Everything returns what the models take: a ``uint8`` RGB array, values 0..255, any size,
EXIF orientation applied. Anything unreadable raises :class:`~pneumozoo.errors.InvalidImageError`
naming the source and the reason; nothing else escapes.
"""

from __future__ import annotations

import contextlib
import errno
import io as _io
import os
import stat
import warnings
from collections.abc import Sequence
from pathlib import Path
from struct import error as struct_error
from typing import Any, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pneumozoo.errors import InvalidImageError

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_PIXELS",
    "ImageSource",
    "describe_source",
    "expand_inputs",
    "read_xray",
    "to_rgb_uint8",
]

#: Largest image accepted, in pixels (an 8k x 8k film; guards against decompression bombs).
MAX_PIXELS = 8192 * 8192

#: File suffixes treated as images when walking folders (any case).
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpeg", ".jpg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".dcm", ".dicom"}
)

ImageSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, Image.Image, np.ndarray]

_DICOM_SUFFIXES = (".dcm", ".dicom")


def describe_source(source: object) -> str:
    """A short name for a source, used in error messages (a path, or ``<bytes>`` etc.).

    Args:
        source: Anything :func:`read_xray` may be given.

    Returns:
        The path as text (kept to one line), or a description such as
        ``<bytes len=1024>`` or ``<ndarray uint8 (4, 5)>``.

    Example:
        >>> describe_source(b"abc")
        '<bytes len=3>'
    """
    if isinstance(source, (str, os.PathLike)):
        return _path_name(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<bytes len={len(source)}>"
    if isinstance(source, Image.Image):
        return f"<PIL.Image {source.mode} {source.width}x{source.height}>"
    if isinstance(source, np.ndarray):
        return f"<ndarray {source.dtype} {source.shape}>"
    return f"<{type(source).__name__}>"


def _path_name(path: str | os.PathLike[str]) -> str:
    """A path as text for messages, kept to one line (newlines in file names are escaped)."""
    text = os.fsdecode(os.fspath(path))
    if "\n" in text or "\r" in text:
        text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text


def _one_line(e: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type name."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


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


def _pil_to_array(img: Image.Image, name: str) -> np.ndarray:
    w, h = img.size
    if w < 1 or h < 1:
        raise InvalidImageError(name, "image has no pixels")
    if w * h > MAX_PIXELS:
        raise InvalidImageError(name, f"image is {w}x{h} pixels, over the {MAX_PIXELS} limit")
    with contextlib.suppress(Exception):  # a broken EXIF block should not sink a good film
        img = ImageOps.exif_transpose(img) or img
    mode = img.mode
    if mode in ("I", "F") or mode.startswith("I;"):  # 16/32-bit gray, any byte order
        return to_rgb_uint8(np.asarray(img), name)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def _sniff_format(fp: Any) -> str | None:
    """The format a stream's magic number announces (PNG, JPEG, ...), or ``None``."""
    try:
        fp.seek(0)
        head = fp.read(16)
    except Exception:
        return None
    if not isinstance(head, bytes):
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)


def _open_pil(fp: Any, name: str) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as img:
                w, h = img.size
                if w * h > MAX_PIXELS:
                    raise InvalidImageError(
                        name, f"image claims {w}x{h} pixels, over the {MAX_PIXELS} limit"
                    )
                img.load()
                return _pil_to_array(img, name)
    except InvalidImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InvalidImageError(name, f"too many pixels ({_one_line(e)})") from None
    except UnidentifiedImageError:
        kind = _sniff_format(fp)
        if kind is not None:  # the right magic number, but Pillow cannot parse the header
            reason = f"corrupt {kind} file (its header cannot be read)"
            raise InvalidImageError(name, reason) from None
        raise InvalidImageError(name, "not an image file (unrecognised format)") from None
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        MemoryError,
        IndexError,
        TypeError,
        struct_error,
    ) as e:
        reason = _one_line(e)
        if "truncated" in reason.lower() or isinstance(e, EOFError):
            reason = f"truncated or corrupt image data ({reason})"
        raise InvalidImageError(name, f"cannot decode image: {reason}") from None
    except Exception as e:  # decoders raise odd types on hostile input; keep the contract
        reason = f"{type(e).__name__}: {_one_line(e)}"
        raise InvalidImageError(name, f"cannot decode image: {reason}") from None


def _stat_error(path: Path, e: OSError) -> InvalidImageError:
    """An ``os.stat`` failure as an error naming the path (loops, broken links, permissions)."""
    name = _path_name(path)
    if e.errno == errno.ELOOP:
        return InvalidImageError(name, "symbolic link loop (too many levels of symbolic links)")
    if e.errno == errno.ENOENT:
        if os.path.islink(path):
            return InvalidImageError(name, "broken symbolic link (its target does not exist)")
        return InvalidImageError(name, "no such file or directory")
    if e.errno == errno.EACCES:
        return InvalidImageError(name, "permission denied")
    return InvalidImageError(name, e.strerror or type(e).__name__)


def _read_path(path: Path) -> np.ndarray:
    name = _path_name(path)
    try:
        st = os.stat(path)
    except OSError as e:
        raise _stat_error(path, e) from None
    except ValueError:  # a NUL byte in the path
        raise InvalidImageError(name, "invalid path (embedded NUL byte)") from None
    if stat.S_ISDIR(st.st_mode):
        raise InvalidImageError(name, "is a directory, not an image file")
    if not stat.S_ISREG(st.st_mode):  # FIFOs, sockets, devices would block or never end
        raise InvalidImageError(name, "not a regular file (a pipe, socket or device)")
    size = st.st_size
    if size == 0:
        raise InvalidImageError(name, "empty file (0 bytes)")
    if path.suffix.lower() in _DICOM_SUFFIXES or _looks_like_dicom(path):
        from pneumozoo.dicom import read_dicom

        return read_dicom(path, name=name)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise _stat_error(path, e) from None
    return _open_pil(_io.BytesIO(data), name)


def _looks_like_dicom(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def read_xray(source: ImageSource) -> np.ndarray:
    """Read one X-ray as a ``uint8`` RGB array ``(H, W, 3)``, values 0..255.

    Accepts a path (JPEG, PNG, BMP, TIFF, WebP, or DICOM with the ``dicom`` extra), raw
    file bytes, a ``PIL.Image`` or a numpy array. EXIF orientation is applied; grayscale,
    16-bit, palette, RGBA and CMYK images are converted; the size is kept (models resize).

    Args:
        source: The image.

    Returns:
        A contiguous ``uint8`` array of shape ``(height, width, 3)``.

    Raises:
        InvalidImageError: If the source is missing, empty, not an image, truncated, too large
            or of an unsupported kind; the message names the source and the reason.

    Example:
        >>> import numpy as np
        >>> read_xray(np.zeros((4, 5), dtype=np.uint16)).shape
        (4, 5, 3)
    """
    name = describe_source(source)
    if isinstance(source, (str, os.PathLike)):
        text = os.fsdecode(os.fspath(source))
        if not text:
            raise InvalidImageError("<empty path>", "an empty string is not a file path")
        return _read_path(Path(text))
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise InvalidImageError(name, "empty bytes")
        if len(data) >= 132 and data[128:132] == b"DICM":
            from pneumozoo.dicom import read_dicom

            return read_dicom(_io.BytesIO(data), name=name)
        return _open_pil(_io.BytesIO(data), name)
    if isinstance(source, Image.Image):
        try:
            return _pil_to_array(source, name)
        except InvalidImageError:
            raise
        except Exception as e:  # unusual modes, closed files, lazy images with bad data
            reason = f"{type(e).__name__}: {_one_line(e)}"
            raise InvalidImageError(name, f"cannot convert PIL image: {reason}") from None
    if isinstance(source, np.ndarray):
        return to_rgb_uint8(source, name)
    raise InvalidImageError(name, "unsupported input type; pass a path, bytes, PIL image or array")


def expand_inputs(
    paths: Sequence[str | os.PathLike[str]],
) -> tuple[list[Path], list[InvalidImageError]]:
    """Expand files and folders into the image files to read, collecting problems as errors.

    Folders are walked recursively in sorted order, skipping hidden entries (names starting
    with ``.``) and files whose suffix is not an image suffix
    (:data:`IMAGE_SUFFIXES`, any case). A file named explicitly is kept
    whatever its suffix (reading it will say if it is not an image). Missing paths, broken
    symbolic links, symbolic link loops and unreadable folders become
    :class:`~pneumozoo.errors.InvalidImageError` entries instead of raising, so one bad path
    does not sink a batch. Each path is listed once, in first-seen order.

    Args:
        paths: Files and folders, as given on a command line. A single path is accepted too.

    Returns:
        ``(files, errors)``: the image files to read and one error per path that could not be
        listed.

    Example:
        >>> files, errors = expand_inputs(["scans/", "extra.jpeg", "missing.png"])  # doctest: +SKIP
        >>> [str(e) for e in errors]  # doctest: +SKIP
        ['missing.png: no such file or directory']
    """

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    errors: list[InvalidImageError] = []
    seen_files: set[Path] = set()
    seen_dirs: set[tuple[int, int]] = set()

    def add(path: Path) -> None:
        if path not in seen_files:
            seen_files.add(path)
            files.append(path)

    def walk(folder: Path, ancestors: tuple[tuple[int, int], ...]) -> None:
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda entry: entry.name)
        except OSError as e:
            errors.append(_stat_error(folder, e))
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = folder / entry.name
            try:
                is_dir = entry.is_dir()  # follows symbolic links; False for broken ones
            except OSError:
                is_dir = False
            if is_dir:
                try:
                    st = entry.stat()
                except OSError as e:
                    errors.append(_stat_error(path, e))
                    continue
                key = (st.st_dev, st.st_ino)
                if key in ancestors:
                    errors.append(
                        InvalidImageError(
                            _path_name(path), "symbolic link loop (links back to a parent folder)"
                        )
                    )
                elif key not in seen_dirs:  # a folder reached twice through links: list it once
                    seen_dirs.add(key)
                    walk(path, (*ancestors, key))
                continue
            if Path(entry.name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                os.stat(path)
            except OSError as e:  # broken link or link loop named like an image
                errors.append(_stat_error(path, e))
                continue
            add(path)

    for raw in paths:
        text = os.fsdecode(os.fspath(raw))
        if not text:
            errors.append(InvalidImageError("<empty path>", "an empty string is not a file path"))
            continue
        path = Path(text)
        try:
            st = os.stat(path)
        except OSError as e:
            errors.append(_stat_error(path, e))
            continue
        except ValueError:  # a NUL byte in the path
            errors.append(InvalidImageError(_path_name(path), "invalid path (embedded NUL byte)"))
            continue
        if stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key not in seen_dirs:
                seen_dirs.add(key)
                walk(path, (key,))
        else:
            add(path)
    return files, errors

"""Read one X-ray from whatever a user has: a path, bytes, a PIL image, an array or DICOM.

Everything returns what the models take: a ``uint8`` RGB array, values 0..255, any size,
EXIF orientation applied. Anything unreadable raises :class:`~pneumozoo.errors.InvalidImageError`
naming the source and the reason; nothing else escapes.

Every kind of input is refused above :data:`MAX_PIXELS` (decompression bombs, huge arrays).
:func:`check_film` adds the checks that an image can be a chest film at all: a short side of
at least :data:`MIN_SIDE` pixels and some content (the grey image's standard deviation at
least :data:`MIN_GREY_STD`); ``read_xray(source, check=True)`` applies them.
"""

from __future__ import annotations

import contextlib
import errno
import io as _io
import os
import secrets
import stat
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from struct import error as struct_error
from typing import Any, BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pneumozoo import pixels
from pneumozoo.dicom import read_dicom
from pneumozoo.errors import InvalidImageError
from pneumozoo.pixels import MAX_PIXELS, to_rgb_uint8

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_PIXELS",
    "MIN_GREY_STD",
    "MIN_SIDE",
    "ImageSource",
    "atomic_output",
    "check_film",
    "describe_source",
    "expand_inputs",
    "read_xray",
    "to_rgb_uint8",
]

#: Shortest side a film may have, in pixels (:func:`check_film`). Chest films are hundreds to
#: thousands of pixels wide and the zoo's models look at 128..224 px; below 32 px no anatomy is
#: left to classify.
MIN_SIDE = 32

#: Smallest standard deviation of the 8-bit grey image (0..255) a film may have
#: (:func:`check_film`). A constant or near-constant frame (blank, all black, a DICOM whose
#: pixels collapse to one value) holds nothing to classify; a real film's grey values spread
#: over tens of levels, while 2.0 is about the noise of a flat 8-bit field.
MIN_GREY_STD = 2.0

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


def check_film(image: np.ndarray, name: str = "<ndarray>") -> np.ndarray:
    """Check that a read image can be a chest film: big enough, and not blank.

    Args:
        image: A ``uint8`` RGB array ``(H, W, 3)`` as :func:`read_xray` returns.
        name: How to call the image in error messages.

    Returns:
        ``image`` itself.

    Raises:
        InvalidImageError: If its short side is below :data:`MIN_SIDE` pixels, or its grey
            image (ITU-R 601 luma, 0..255) has a standard deviation below
            :data:`MIN_GREY_STD` (a constant or near-constant frame).

    Example:
        >>> import numpy as np
        >>> try:
        ...     check_film(np.zeros((64, 64, 3), np.uint8), "blank.png")
        ... except InvalidImageError as e:
        ...     print(e.reason)
        no content: the image is constant or nearly (grey standard deviation 0.00 < 2.0)
    """
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise InvalidImageError(
            name, f"image is {w}x{h} pixels, too small for a film (short side under {MIN_SIDE})"
        )
    step = max(1, int((h * w / float(1 << 20)) ** 0.5))  # ~1 M samples are plenty
    sample = np.asarray(image[::step, ::step], dtype=np.float32)
    grey = sample @ np.array([0.299, 0.587, 0.114], np.float32) if sample.ndim == 3 else sample
    spread = float(grey.std())
    if not spread >= MIN_GREY_STD:
        raise InvalidImageError(
            name,
            f"no content: the image is constant or nearly (grey standard deviation "
            f"{spread:.2f} < {MIN_GREY_STD})",
        )
    return image


def _pil_to_array(img: Image.Image, name: str) -> np.ndarray:
    w, h = img.size
    if w < 1 or h < 1:
        raise InvalidImageError(name, "image has no pixels")
    if w * h > pixels.MAX_PIXELS:  # read at call time: the one limit, in pneumozoo.pixels
        raise InvalidImageError(name, f"image is {w}x{h} pixels, over the {pixels.MAX_PIXELS} limit")
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


def _draft(img: Image.Image, min_side: int | None) -> None:
    """Ask a JPEG decoder for the smallest DCT scale (1/2, 1/4, 1/8) whose short side stays
    at least ``min_side`` (never below :data:`MIN_SIDE`); other formats are left alone.

    libjpeg then decodes only the low frequencies it needs: a 2000 px film read for a 192 px
    model costs about a quarter of the full decode. The file's own mode is kept (a colour
    JPEG stays RGB, so luminance is still computed from RGB as for a full decode).
    """
    if min_side is None or img.format != "JPEG" or img.mode not in ("L", "RGB"):
        return
    w, h = img.size
    short = min(w, h)
    target = max(int(min_side), MIN_SIDE)
    if short < 2 * target:  # no DCT scale fits
        return
    # Pillow picks the largest scale s in {1, 2, 4, 8} with s <= min(w // rw, h // rh).
    img.draft(img.mode, (max(1, w * target // short), max(1, h * target // short)))


def _open_pil(fp: Any, name: str, min_side: int | None = None) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as img:
                w, h = img.size
                if w * h > pixels.MAX_PIXELS:
                    raise InvalidImageError(
                        name, f"image claims {w}x{h} pixels, over the {pixels.MAX_PIXELS} limit"
                    )
                _draft(img, min_side)
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


def _read_path(path: Path, min_side: int | None = None) -> np.ndarray:
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
        return read_dicom(path, name=name)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise _stat_error(path, e) from None
    return _open_pil(_io.BytesIO(data), name, min_side)


def _looks_like_dicom(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def read_xray(source: ImageSource, *, check: bool = False,
              min_side: int | None = None) -> np.ndarray:
    """Read one X-ray as a ``uint8`` RGB array ``(H, W, 3)``, values 0..255.

    Accepts a path (JPEG, PNG, BMP, TIFF, WebP, or DICOM with the ``dicom`` extra), raw
    file bytes, a ``PIL.Image`` or a numpy array. EXIF orientation is applied; grayscale,
    16-bit, palette, RGBA and CMYK images are converted; the size is kept (models resize).

    Args:
        source: The image.
        check: Also refuse images that cannot be a film (:func:`check_film`: short side
            under :data:`MIN_SIDE`, or blank). Off by default, so small synthetic images
            stay readable.
        min_side: Reduced decoding for a model that looks at ``min_side`` px: a JPEG (path
            or bytes) is decoded at the smallest DCT scale (1/2, 1/4 or 1/8) whose short side
            is still at least ``min_side`` (and :data:`MIN_SIDE`), which skips most of the
            work for original-resolution films. Other formats and inputs, and JPEGs less
            than twice that size, are read in full. ``None`` (default): always full size.
            The pixels differ slightly from a full decode (P(pneumonia) by up to ~0.03, the
            domain score by up to ~0.1 on original-size films), so it is an explicit speed
            option: :func:`pneumozoo.predict` reads every input in full, so that a path, its
            bytes, a PIL image and this function's array give one answer per film.

    Returns:
        A contiguous ``uint8`` array of shape ``(height, width, 3)``.

    Raises:
        InvalidImageError: If the source is missing, empty, not an image, truncated, too large
            or of an unsupported kind (or, with ``check``, too small or blank); the message
            names the source and the reason.

    Example:
        >>> import numpy as np
        >>> read_xray(np.zeros((4, 5), dtype=np.uint16)).shape
        (4, 5, 3)
    """
    image = _read(source, min_side)
    if check:
        name = describe_source(source)
        check_film(image, name)
    return image


def _read(source: ImageSource, min_side: int | None = None) -> np.ndarray:
    name = describe_source(source)
    if isinstance(source, (str, os.PathLike)):
        text = os.fsdecode(os.fspath(source))
        if not text:
            raise InvalidImageError("<empty path>", "an empty string is not a file path")
        return _read_path(Path(text), min_side)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise InvalidImageError(name, "empty bytes")
        if len(data) >= 132 and data[128:132] == b"DICM":
                return read_dicom(_io.BytesIO(data), name=name)
        return _open_pil(_io.BytesIO(data), name, min_side)
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


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Write a file atomically: into a hidden temporary file beside it, renamed over it at the end.

    Readers never see a half-written file, and a failure leaves any earlier file in place.
    The parent folder is created; the file gets the usual permissions (the umask applies).

    Args:
        path: The file to write.

    Yields:
        A binary file object to write to; on a clean exit it is flushed, synced and renamed
        to ``path`` (``os.replace``). On an error the temporary file is removed.

    Example:
        >>> with atomic_output("out/report.bin") as f:  # doctest: +SKIP
        ...     _ = f.write(b"data")
    """
    target = Path(os.fspath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    f = open(tmp, "xb")  # noqa: SIM115 - closed below, before the rename
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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

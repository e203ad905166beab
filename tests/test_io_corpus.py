"""read_xray on a corpus of bad and unusual inputs, all generated here, plus expand_inputs.

Valid inputs must come back as ``uint8`` ``(H, W, 3)`` with the right content; invalid ones must
raise :class:`InvalidImageError` whose message is one line naming the source and a reason.
"""

from __future__ import annotations

import io
import os
import struct
import threading
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import pneumozoo.pixels
from pneumozoo.errors import InvalidImageError
from pneumozoo.io import (
    MAX_PIXELS,
    MIN_GREY_STD,
    MIN_SIDE,
    atomic_output,
    check_film,
    describe_source,
    expand_inputs,
    read_xray,
    to_rgb_uint8,
)

# --- helpers ------------------------------------------------------------------------------


def encode(img: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG with a valid IHDR claiming ``width`` x ``height`` 8-bit gray pixels and no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b"")


def check_image(out: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.uint8
    assert out.shape == (*shape, 3)
    assert out.flags["C_CONTIGUOUS"]
    return out


def check_error(source: Any, *words: str, shown: str | None = None) -> InvalidImageError:
    """``read_xray(source)`` raises a one-line InvalidImageError naming the source and words."""
    with pytest.raises(InvalidImageError) as info:
        read_xray(source)
    err = info.value
    message = str(err)
    assert "\n" not in message and "\r" not in message
    shown = shown if shown is not None else describe_source(source)
    assert message.startswith(f"{shown}: "), message
    assert err.source == shown
    assert err.reason and len(message) < 400
    for word in words:
        assert word.lower() in message.lower(), message
    return err


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# --- files that must be refused -----------------------------------------------------------


def test_zero_byte_file(tmp_path: Path) -> None:
    check_error(write(tmp_path, "empty.jpeg", b""), "empty")


def test_text_file_named_jpeg(tmp_path: Path) -> None:
    path = write(tmp_path, "notes.jpeg", b"patient notes, not an image\n" * 10)
    check_error(path, "not an image")


def test_truncated_jpeg(tmp_path: Path) -> None:
    data = encode(Image.fromarray(noise((64, 64, 3))), "JPEG", quality=90)
    check_error(write(tmp_path, "cut.jpeg", data[: len(data) // 2]), "truncated")
    check_error(data[: len(data) // 2], "truncated")


def test_jpeg_header_only(tmp_path: Path) -> None:
    check_error(write(tmp_path, "soi.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"), "JPEG")


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
@pytest.mark.parametrize(
    ("head", "words"),
    [
        (b"GIF89a", "corrupt GIF"),
        (b"II*\x00", "corrupt TIFF"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "cannot decode"),
    ],
)
def test_corrupt_headers_are_refused(head: bytes, words: str) -> None:
    check_error(head + b"\xff" * 20, words)


def test_png_with_bad_header_crc(tmp_path: Path) -> None:
    data = bytearray(encode(Image.fromarray(noise((16, 16))), "PNG"))
    data[29] ^= 0xFF  # last byte of the IHDR CRC
    check_error(write(tmp_path, "crc.png", bytes(data)), "corrupt PNG")


def test_png_signature_then_garbage(tmp_path: Path) -> None:
    data = b"\x89PNG\r\n\x1a\n" + noise((300,), seed=3).tobytes()
    check_error(write(tmp_path, "garbage.png", data), "corrupt PNG")


def test_png_with_corrupt_pixel_stream(tmp_path: Path) -> None:
    good = encode(Image.fromarray(noise((32, 32))), "PNG")
    start = good.index(b"IDAT") + 4
    body_len = struct.unpack(">I", good[start - 8 : start - 4])[0]
    bad_body = b"\x00" * 2 + noise((body_len - 2,), seed=4).tobytes()  # not a zlib stream
    bad = good[:start] + bad_body + struct.pack(">I", zlib.crc32(b"IDAT" + bad_body))
    bad += good[start + body_len + 4 :]
    check_error(write(tmp_path, "stream.png", bad), "cannot decode")


def test_png_cut_inside_pixel_data(tmp_path: Path) -> None:
    good = encode(Image.fromarray(noise((64, 64))), "PNG")
    check_error(write(tmp_path, "cut.png", good[: len(good) - 200]), "truncated")


@pytest.mark.timeout(60)  # a hang fails the test; slowness does not
def test_decompression_bomb_is_refused_fast_without_allocating(tmp_path: Path) -> None:
    path = write(tmp_path, "bomb.png", png_header_only(30000, 30000))
    tracemalloc.start()
    try:
        check_error(path, "pixels")
        check_error(path.read_bytes(), "pixels")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * 2**20  # the 900 MB image is never allocated


def test_large_but_below_pil_error_threshold_is_refused_too() -> None:
    # Pillow only warns between ~89M and ~179M pixels; read_xray turns that into a refusal
    check_error(png_header_only(10000, 10000), "pixels")


def test_directory(tmp_path: Path) -> None:
    check_error(tmp_path, "directory")
    check_error(str(tmp_path), "directory")


def test_missing_path(tmp_path: Path) -> None:
    check_error(tmp_path / "nope.png", "no such file")


def test_symlink_loop(tmp_path: Path) -> None:
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    check_error(loop, "symbolic link loop")
    a, b = tmp_path / "a.jpeg", tmp_path / "b.jpeg"
    a.symlink_to(b)
    b.symlink_to(a)
    check_error(a, "loop")


def test_broken_symlink(tmp_path: Path) -> None:
    link = tmp_path / "gone.png"
    link.symlink_to(tmp_path / "deleted.png")
    check_error(link, "broken symbolic link")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.timeout(60)  # a hang fails the test; slowness does not
def test_named_pipe_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)

    done = threading.Event()

    def unblock() -> None:  # should read_xray ever open the pipe, let it see EOF, not hang
        while not done.wait(0.05):
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # no reader yet
                continue
            os.close(fd)
            return

    threading.Thread(target=unblock, daemon=True).start()
    try:
        check_error(fifo, "not a regular file")
    finally:
        done.set()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX permissions and fork")
def test_unreadable_file(tmp_path: Path) -> None:
    """A file its reader may not open. Root reads everything, so as root the read runs in a
    forked child that has given up root for the unprivileged ``nobody`` (uid 65534)."""
    path = write(tmp_path, "locked.png", encode(Image.new("L", (2, 2)), "PNG"))
    path.chmod(0)
    if os.geteuid() != 0:
        check_error(path, "permission denied")
        return
    tmp_path.chmod(0o755)
    for parent in tmp_path.parents:  # nobody must reach the file to be refused by it
        if parent.stat().st_mode & 0o001 == 0 and str(parent).startswith("/tmp/"):
            parent.chmod(parent.stat().st_mode | 0o005)
    read, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.setgid(65534)
            os.setuid(65534)
            try:
                read_xray(path)
                message = "read"
            except InvalidImageError as e:
                message = str(e)
            os.write(write_end, message.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as f:
        message = f.read().decode()
    assert message == f"{path}: permission denied"


def test_path_with_newline_gives_one_line_message(tmp_path: Path) -> None:
    path = write(tmp_path, "two\nlines.jpeg", b"not an image")
    err = check_error(path, "not an image", shown=str(path).replace("\n", "\\n"))
    assert "two\\nlines.jpeg" in str(err)


def test_empty_path_string() -> None:
    check_error("", "empty", shown="<empty path>")


def test_path_with_nul_byte(tmp_path: Path) -> None:
    check_error(str(tmp_path / "a\0b.png"), "NUL")
    files, errors = expand_inputs([str(tmp_path / "a\0b.png")])
    assert files == [] and "NUL" in str(errors[0])


def test_pathlike_returning_bytes(tmp_path: Path) -> None:
    path = write(tmp_path, "b.png", encode(Image.new("L", (2, 1), 9), "PNG"))

    class BytesPath:
        def __fspath__(self) -> bytes:
            return os.fsencode(path)

    out = read_xray(BytesPath())  # type: ignore[arg-type]
    np.testing.assert_array_equal(check_image(out, (1, 2)), 9)


def test_empty_and_unknown_inputs() -> None:
    check_error(b"", "empty bytes")
    check_error(b"\x00" * 100, "not an image")
    check_error(12345, "unsupported input type")
    check_error(None, "unsupported input type")
    check_error([[0, 1], [2, 3]], "unsupported input type")


# --- files that must be read, with the right content --------------------------------------


def test_16bit_grayscale_png_gradient(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 256).round().astype(np.uint16)[None].repeat(4, axis=0)
    out = check_image(
        read_xray(write(tmp_path, "ramp16.png", encode(Image.fromarray(ramp), "PNG"))), (4, 256)
    )
    row = out[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert np.all(np.diff(row) >= 0)
    assert len(np.unique(row)) > 200  # a real gradient, not a clipped 0/255 image
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_12bit_values_in_16bit_png_span_full_range(tmp_path: Path) -> None:
    ramp = np.linspace(0, 4095, 128).round().astype(np.uint16)[None].repeat(2, axis=0)
    out = read_xray(encode(Image.fromarray(ramp), "PNG"))
    row = check_image(out, (2, 128))[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255 and np.all(np.diff(row) >= 0)


def test_rgba_png_is_composited_on_black(tmp_path: Path) -> None:
    rgba = np.array([[[200, 100, 50, 255], [200, 100, 50, 128], [200, 100, 50, 0]]], np.uint8)
    out = check_image(
        read_xray(write(tmp_path, "alpha.png", encode(Image.fromarray(rgba), "PNG"))), (1, 3)
    )
    np.testing.assert_array_equal(out[0, 0], [200, 100, 50])
    np.testing.assert_allclose(out[0, 1], [100, 50, 25], atol=1)
    np.testing.assert_array_equal(out[0, 2], [0, 0, 0])


def test_gray_alpha_png() -> None:
    la = Image.fromarray(np.array([[[90, 255], [90, 0]]], np.uint8), mode="LA")
    out = check_image(read_xray(encode(la, "PNG")), (1, 2))
    np.testing.assert_array_equal(out[0], [[90, 90, 90], [0, 0, 0]])


def test_palette_png(tmp_path: Path) -> None:
    img = Image.new("P", (3, 1))
    img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    img.putdata([0, 1, 2])
    out = read_xray(write(tmp_path, "palette.png", encode(img, "PNG")))
    np.testing.assert_array_equal(
        check_image(out, (1, 3))[0], [[255, 0, 0], [0, 255, 0], [0, 0, 255]]
    )


def test_palette_png_with_transparency() -> None:
    img = Image.new("P", (2, 1))
    img.putpalette([255, 255, 255, 10, 20, 30] + [0] * (256 * 3 - 6))
    img.putdata([0, 1])
    out = read_xray(encode(img, "PNG", transparency=0))
    np.testing.assert_array_equal(check_image(out, (1, 2))[0], [[0, 0, 0], [10, 20, 30]])


def test_cmyk_jpeg(tmp_path: Path) -> None:
    cmyk = np.zeros((16, 32, 4), np.uint8)
    cmyk[:, 16:, 0] = 255  # right half full cyan, left half nothing (white paper)
    data = encode(Image.fromarray(cmyk, mode="CMYK"), "JPEG", quality=95)
    out = check_image(read_xray(write(tmp_path, "cmyk.jpg", data)), (16, 32))
    left, right = out[4:12, 2:12].mean(axis=(0, 1)), out[4:12, 20:30].mean(axis=(0, 1))
    assert np.all(left > 230)  # white
    assert right[0] < 40 and right[1] > 200 and right[2] > 200  # cyan


def test_one_pixel_images() -> None:
    for fmt in ("PNG", "JPEG", "BMP", "GIF", "TIFF"):
        out = check_image(read_xray(encode(Image.new("L", (1, 1), 200), fmt)), (1, 1))
        assert abs(int(out[0, 0, 0]) - 200) <= 3, fmt


def test_extremely_elongated_images(tmp_path: Path) -> None:
    wide = noise((3, 4000))
    out = read_xray(write(tmp_path, "wide.png", encode(Image.fromarray(wide), "PNG")))
    np.testing.assert_array_equal(check_image(out, (3, 4000))[..., 1], wide)
    tall = noise((4000, 3), seed=1)
    out = read_xray(encode(Image.fromarray(tall), "PNG"))
    np.testing.assert_array_equal(check_image(out, (4000, 3))[..., 0], tall)


def test_exif_orientation_6_jpeg_is_rotated(tmp_path: Path) -> None:
    # Stored 32 wide x 48 high with four gray quadrants; orientation 6 means the camera was
    # turned: the viewer rotates the stored image 90 degrees clockwise.
    stored = np.zeros((48, 32), np.uint8)
    stored[:24, :16], stored[:24, 16:], stored[24:, :16], stored[24:, 16:] = 30, 90, 160, 230
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(Image.fromarray(stored), "JPEG", quality=95, exif=exif.tobytes())
    out = check_image(read_xray(write(tmp_path, "rotated.jpeg", data)), (32, 48))
    expected = np.rot90(stored, k=-1)  # clockwise
    assert np.abs(out[..., 0].astype(int) - expected).mean() < 3
    # after a clockwise turn the stored bottom-left quadrant (160) is top-left
    assert abs(int(out[4, 4, 0]) - 160) < 6 and abs(int(out[4, 44, 0]) - 30) < 6


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_exif_orientation_on_png_and_broken_exif_are_harmless() -> None:
    exif = Image.Exif()
    exif[0x0112] = 3  # upside down
    img = Image.fromarray(np.array([[1, 2], [3, 4]], np.uint8))
    out = read_xray(encode(img, "PNG", exif=exif.tobytes()))
    np.testing.assert_array_equal(check_image(out, (2, 2))[..., 0], [[4, 3], [2, 1]])
    out = read_xray(encode(img, "JPEG", exif=b"Exif\x00\x00MM\x00*garbage"))
    check_image(out, (2, 2))


def test_bmp_gif_tiff_webp(tmp_path: Path) -> None:
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:, :4] = [250, 10, 10]
    rgb[:, 4:] = [10, 10, 250]
    for fmt, suffix in (("BMP", ".bmp"), ("GIF", ".gif"), ("TIFF", ".tif"), ("WEBP", ".webp")):
        kwargs = {"lossless": True} if fmt == "WEBP" else {}
        path = write(tmp_path, "img" + suffix, encode(Image.fromarray(rgb), fmt, **kwargs))
        out = check_image(read_xray(path), (8, 8))
        assert np.abs(out.astype(int) - rgb).max() <= 12, fmt


def test_16bit_tiff_and_float_tiff() -> None:
    ramp16 = np.linspace(0, 60000, 64).astype(np.uint16).reshape(8, 8)
    out = check_image(read_xray(encode(Image.fromarray(ramp16), "TIFF")), (8, 8))
    flat = out[..., 0].ravel().astype(int)
    assert flat[0] == 0 and flat[-1] == 255 and np.all(np.diff(flat) >= 0)
    ramp_f = np.linspace(0.0, 1.0, 64, dtype=np.float32).reshape(8, 8)
    out = check_image(read_xray(encode(Image.fromarray(ramp_f), "TIFF")), (8, 8))
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255


def test_same_result_from_path_bytes_and_pil(tmp_path: Path) -> None:
    img = Image.fromarray(noise((20, 30, 3)))
    data = encode(img, "PNG")
    path = write(tmp_path, "same.png", data)
    reference = read_xray(path)
    np.testing.assert_array_equal(reference, np.asarray(img))
    for source in (str(path), data, bytearray(data), memoryview(data), Image.open(path), img):
        np.testing.assert_array_equal(read_xray(source), reference)


def test_path_with_unusual_suffix_is_sniffed(tmp_path: Path) -> None:
    data = encode(Image.new("RGB", (4, 2), (1, 2, 3)), "PNG")
    out = read_xray(write(tmp_path, "scan.data", data))
    np.testing.assert_array_equal(check_image(out, (2, 4))[0, 0], [1, 2, 3])


# --- PIL and ndarray inputs ---------------------------------------------------------------


@pytest.mark.parametrize(
    "mode",
    [
        "1",
        "L",
        "P",
        "RGB",
        "RGBA",
        "CMYK",
        "YCbCr",
        "LAB",
        "HSV",
        "LA",
        "PA",
        "La",
        "RGBa",
        "RGBX",
        "I",
        "I;16",
        "I;16B",
        "F",
    ],
)
def test_pil_modes_never_escape_the_contract(mode: str) -> None:
    img = Image.new(mode, (3, 2))
    try:
        out = read_xray(img)
    except InvalidImageError as err:
        assert "\n" not in str(err)
    else:
        check_image(out, (2, 3))


def test_pil_image_with_closed_file(tmp_path: Path) -> None:
    path = write(tmp_path, "lazy.png", encode(Image.new("L", (4, 4)), "PNG"))
    img = Image.open(path)
    img.close()
    check_error(img, "PIL")


def test_pil_16bit_image() -> None:
    img = Image.fromarray(np.array([[0, 1000, 4000]], np.uint16))
    out = check_image(read_xray(img), (1, 3))
    np.testing.assert_array_equal(out[0, :, 0], [0, 64, 255])


def test_ndarray_float_unit_range() -> None:
    out = read_xray(np.array([[0.0, 0.5, 1.0]], np.float32))
    np.testing.assert_array_equal(check_image(out, (1, 3))[0, :, 0], [0, 128, 255])


def test_ndarray_float_0_255() -> None:
    out = read_xray(np.array([[0.0, 12.4, 254.6]], np.float64))
    np.testing.assert_array_equal(check_image(out, (1, 3))[0, :, 0], [0, 12, 255])


def test_ndarray_float_other_range_is_min_max_scaled() -> None:
    out = read_xray(np.array([[-1.0, 0.0, 1.0]], np.float32))
    np.testing.assert_array_equal(check_image(out, (1, 3))[0, :, 0], [0, 128, 255])


def test_ndarray_uint16_and_int() -> None:
    out = read_xray(np.array([[0, 2048, 4095]], np.uint16))
    np.testing.assert_array_equal(check_image(out, (1, 3))[0, :, 0], [0, 128, 255])
    out = read_xray(np.array([[3, 200]], np.int64))  # already 0..255: kept
    np.testing.assert_array_equal(out[0, :, 0], [3, 200])


def test_ndarray_uint8_channels() -> None:
    rgb = noise((5, 6, 3))
    np.testing.assert_array_equal(read_xray(rgb), rgb)
    np.testing.assert_array_equal(read_xray(rgb[..., :1])[..., 2], rgb[..., 0])
    rgba = np.concatenate([rgb, np.zeros((5, 6, 1), np.uint8)], axis=-1)
    np.testing.assert_array_equal(read_xray(rgba), rgb)
    view = rgb[::-1, ::2]  # not contiguous
    out = read_xray(view)
    assert out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(out, view)


def test_ndarray_bool() -> None:
    out = read_xray(np.array([[True, False]]))
    np.testing.assert_array_equal(check_image(out, (1, 2))[0, :, 0], [255, 0])


def test_ndarray_constant_and_one_pixel() -> None:
    np.testing.assert_array_equal(read_xray(np.full((2, 2), 7000, np.uint16)), 0)
    check_image(read_xray(np.zeros((1, 1), np.float32)), (1, 1))


@pytest.mark.parametrize(
    ("array", "words"),
    [
        (np.array([[0.0, np.nan]]), ("NaN",)),
        (np.array([[0.0, np.inf]]), ("infinite",)),
        (np.zeros((4,), np.uint8), ("shape",)),
        (np.zeros((2, 2, 2), np.uint8), ("shape",)),
        (np.zeros((2, 2, 5), np.uint8), ("shape",)),
        (np.zeros((1, 2, 2, 3), np.uint8), ("shape",)),
        (np.zeros((), np.uint8), ("shape",)),
        (np.zeros((0, 5), np.uint8), ("no pixels",)),
        (np.zeros((5, 0, 3), np.uint8), ("no pixels",)),
        (np.zeros((2, 2), np.complex64), ("complex",)),
        (np.array([["a", "b"]]), ("dtype",)),
        (np.array([[object(), object()]]), ("dtype",)),
        (np.zeros((2, 2), "datetime64[s]"), ("dtype",)),
    ],
    ids=[
        "nan",
        "inf",
        "1d",
        "2ch",
        "5ch",
        "4d",
        "0d",
        "no-rows",
        "no-cols",
        "complex",
        "str",
        "object",
        "datetime",
    ],
)
def test_ndarray_errors(array: np.ndarray, words: tuple[str, ...]) -> None:
    check_error(array, *words)


def test_to_rgb_uint8_uses_the_given_name() -> None:
    with pytest.raises(InvalidImageError, match=r"^scan7: "):
        to_rgb_uint8(np.zeros((3,)), "scan7")


def test_max_pixels_is_a_sane_limit() -> None:
    assert MAX_PIXELS > 4096 * 4096


def test_pixel_limit_applies_to_arrays_and_pil_images(monkeypatch: pytest.MonkeyPatch) -> None:
    # A read-only broadcast view: as large as a bomb, but no memory is used.
    huge = np.broadcast_to(np.uint8(7), (8193, 8192))
    err = check_error(huge, "over the", "limit")
    assert "8192x8193" in str(err)
    monkeypatch.setattr(pneumozoo.pixels, "MAX_PIXELS", 32 * 32)  # the one limit
    check_error(Image.new("L", (33, 32)), "over the", "limit")
    check_error(noise((33, 32)), "over the", "limit")
    check_image(read_xray(Image.new("L", (32, 32))), (32, 32))


# --- films that cannot be films: too small, blank (check=True) ----------------------------


def film(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A film-like gray image with plenty of contrast."""
    return np.random.default_rng(seed).integers(20, 230, shape, dtype=np.uint8)


def test_check_film_thresholds_are_documented_constants() -> None:
    assert MIN_SIDE == 32 and MIN_GREY_STD == 2.0
    rgb = np.repeat(film((MIN_SIDE, 40))[..., None], 3, axis=-1)
    assert check_film(rgb, "ok.png") is rgb


@pytest.mark.parametrize(("image", "words"), [
    (np.repeat(film((31, 200))[..., None], 3, axis=-1), ("200x31", "too small", "32")),
    (np.zeros((64, 64, 3), np.uint8), ("no content", "0.00")),
    (np.full((64, 64, 3), 255, np.uint8), ("no content",)),
    # near-constant: one level of noise on a flat field
    (np.repeat((100 + (film((64, 64)) % 2))[..., None], 3, axis=-1), ("no content",)),
])
def test_check_film_refuses_tiny_and_blank_images(image: np.ndarray, words: tuple[str, ...]) -> None:
    with pytest.raises(InvalidImageError) as info:
        check_film(image, "scan.png")
    message = str(info.value)
    assert message.startswith("scan.png: ") and "\n" not in message
    for word in words:
        assert word in message, message


def test_read_xray_checks_films_only_when_asked(tmp_path: Path) -> None:
    blank = write(tmp_path, "blank.png", encode(Image.new("L", (64, 64), 90), "PNG"))
    tiny = write(tmp_path, "tiny.png", encode(Image.fromarray(film((8, 8))), "PNG"))
    good = write(tmp_path, "good.png", encode(Image.fromarray(film((48, 40))), "PNG"))
    check_image(read_xray(blank), (64, 64))  # default: read as given
    check_image(read_xray(tiny), (8, 8))
    check_image(read_xray(good, check=True), (48, 40))
    for source, words in ((blank, "no content"), (tiny, "too small")):
        with pytest.raises(InvalidImageError, match=words) as info:
            read_xray(source, check=True)
        assert info.value.source == str(source)
    with pytest.raises(InvalidImageError, match="no content"):
        read_xray(np.zeros((40, 40), np.float32), check=True)


@pytest.mark.timeout(60)  # a hang fails the test; slowness does not
def test_check_film_is_fast_on_large_films() -> None:
    big = np.repeat(film((4000, 3000))[..., None], 3, axis=-1)
    assert check_film(big) is big or check_film(big).shape == big.shape


# --- atomic writes ------------------------------------------------------------------------


def test_atomic_output_replaces_whole_files_only(tmp_path: Path) -> None:
    target = tmp_path / "new" / "out.bin"
    with atomic_output(target) as f:
        f.write(b"first")
        assert not target.exists()  # not visible until complete
    assert target.read_bytes() == b"first"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(RuntimeError), atomic_output(target) as f:
        f.write(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"first"
    assert [p.name for p in target.parent.iterdir()] == ["out.bin"]


# --- expand_inputs ------------------------------------------------------------------------


def make_tree(root: Path) -> None:
    png = encode(Image.new("L", (2, 2)), "PNG")
    for rel in ("b.png", "a.JPG", "sub/c.jpeg", "sub/deeper/d.dcm", "z_last.tiff", "sub/e.webp"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(png)
    (root / "notes.txt").write_text("x")
    (root / "README").write_text("x")
    (root / ".hidden.png").write_bytes(png)
    (root / ".cache").mkdir()
    (root / ".cache" / "thumb.png").write_bytes(png)


def test_expand_inputs_walks_folders_sorted(tmp_path: Path) -> None:
    make_tree(tmp_path)
    files, errors = expand_inputs([tmp_path])
    assert errors == []
    assert [p.relative_to(tmp_path).as_posix() for p in files] == [
        "a.JPG",
        "b.png",
        "sub/c.jpeg",
        "sub/deeper/d.dcm",
        "sub/e.webp",
        "z_last.tiff",
    ]
    assert all(isinstance(p, Path) for p in files)


def test_expand_inputs_keeps_explicit_files_and_order(tmp_path: Path) -> None:
    make_tree(tmp_path)
    files, errors = expand_inputs(
        [str(tmp_path / "notes.txt"), tmp_path / "sub", tmp_path / ".hidden.png"]
    )
    assert errors == []
    assert [p.relative_to(tmp_path).as_posix() for p in files] == [
        "notes.txt",
        "sub/c.jpeg",
        "sub/deeper/d.dcm",
        "sub/e.webp",
        ".hidden.png",
    ]


def test_expand_inputs_lists_each_file_once(tmp_path: Path) -> None:
    make_tree(tmp_path)
    files, _ = expand_inputs([tmp_path / "b.png", tmp_path, tmp_path, tmp_path / "sub"])
    assert len(files) == len(set(files)) == 6
    assert files[0] == tmp_path / "b.png"


def test_expand_inputs_accepts_a_single_path(tmp_path: Path) -> None:
    make_tree(tmp_path)
    assert expand_inputs(str(tmp_path))[0] == expand_inputs([tmp_path])[0]


def test_expand_inputs_turns_bad_paths_into_errors(tmp_path: Path) -> None:
    make_tree(tmp_path)
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    broken = tmp_path / "sub" / "broken.png"
    broken.symlink_to(tmp_path / "deleted.png")
    (tmp_path / "sub" / "broken.txt").symlink_to(tmp_path / "deleted.txt")  # not an image: ignored
    missing = tmp_path / "missing.jpeg"
    files, errors = expand_inputs([missing, tmp_path, "", loop])
    assert len(files) == 6
    messages = [str(e) for e in errors]
    assert all(isinstance(e, InvalidImageError) and "\n" not in str(e) for e in errors)
    assert messages[0] == f"{missing}: no such file or directory"
    assert f"{loop}: symbolic link loop" in messages[1]  # found while walking tmp_path
    assert messages[2].startswith(f"{broken}: broken symbolic link")
    assert messages[3].startswith("<empty path>: ")
    assert messages[4].startswith(f"{loop}: symbolic link loop")
    assert len(messages) == 5


def test_expand_inputs_survives_directory_symlink_cycles(tmp_path: Path) -> None:
    make_tree(tmp_path)
    (tmp_path / "sub" / "up").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "zz_again").symlink_to(tmp_path / "sub", target_is_directory=True)
    files, errors = expand_inputs([tmp_path])
    # "zz_again" is "sub" seen through a link: its files are listed once, under the first
    # name met in sorted order
    assert [p.relative_to(tmp_path).as_posix() for p in files] == [
        "a.JPG",
        "b.png",
        "sub/c.jpeg",
        "sub/deeper/d.dcm",
        "sub/e.webp",
        "z_last.tiff",
    ]
    assert [str(e) for e in errors] == [
        f"{tmp_path / 'sub' / 'up'}: symbolic link loop (links back to a parent folder)"
    ]


def test_expand_inputs_unreadable_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path)
    real_scandir = os.scandir
    locked = tmp_path / "sub" / "deeper"

    def scandir(path: Any) -> Any:
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    files, errors = expand_inputs([tmp_path])
    assert [str(e) for e in errors] == [f"{locked}: permission denied"]
    assert len(files) == 5  # everything else is still listed


def test_expand_inputs_empty_folder_and_empty_list(tmp_path: Path) -> None:
    assert expand_inputs([tmp_path]) == ([], [])
    assert expand_inputs([]) == ([], [])

"""Fuzz read_xray(bytes): random bytes and mutated valid files of every supported format.

Whatever the input, read_xray either returns ``uint8`` ``(H, W, 3)`` or raises
:class:`InvalidImageError` with a one-line message; nothing else may escape.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pneumozoo.errors import InvalidImageError
from pneumozoo.io import read_xray

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,  # nothing written into the repository
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Pillow and pydicom warn about odd headers; warnings are fine, exceptions are not.
pytestmark = pytest.mark.filterwarnings("ignore")


def _encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _dicom_seed() -> bytes | None:
    try:
        import pydicom
        from pydicom.dataset import FileDataset, FileMetaDataset
        from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid
    except ImportError:
        return None
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = 6, 5
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.WindowCenter, ds.WindowWidth = 0, 2000
    ds.PixelData = (np.arange(30, dtype=np.uint16) * 100).tobytes()
    buf = io.BytesIO()
    if int(pydicom.__version__.split(".")[0]) >= 3:
        pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    else:  # pragma: no cover - pydicom 2.x
        ds.is_little_endian, ds.is_implicit_VR = True, False
        pydicom.dcmwrite(buf, ds, write_like_original=False)
    return buf.getvalue()


def _seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(1)
    gray = Image.fromarray(rng.integers(0, 256, (6, 7), dtype=np.uint8))
    rgb = Image.fromarray(rng.integers(0, 256, (5, 4, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    seeds = {
        "png": _encode(gray, "PNG"),
        "png16": _encode(Image.fromarray(np.arange(42, dtype=np.uint16).reshape(6, 7)), "PNG"),
        "png-rgba": _encode(rgb.convert("RGBA"), "PNG"),
        "jpeg": _encode(rgb, "JPEG", quality=80),
        "jpeg-exif": _encode(gray, "JPEG", exif=exif.tobytes()),
        "jpeg-progressive": _encode(rgb, "JPEG", progressive=True),
        "bmp": _encode(rgb, "BMP"),
        "gif": _encode(gray, "GIF"),
        "tiff": _encode(rgb, "TIFF"),
        "tiff-deflate": _encode(gray, "TIFF", compression="tiff_adobe_deflate"),
        "webp": _encode(rgb, "WEBP", lossless=True),
    }
    dicom = _dicom_seed()
    if dicom is not None:
        seeds["dicom"] = dicom
    return seeds


SEEDS = _seeds()


def check(data: bytes) -> None:
    """The contract: an image or one InvalidImageError; never anything else."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = read_xray(data)
    except InvalidImageError as err:
        message = str(err)
        assert "\n" not in message
        assert message.startswith("<bytes len=")
        assert err.reason
        return
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.uint8
    assert out.ndim == 3 and out.shape[-1] == 3
    assert out.shape[0] >= 1 and out.shape[1] >= 1


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid seed file with a few byte flips, overwrites, insertions, deletions or a cut."""
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "header"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF]))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[pos:]
        elif op == "header" and data:
            # most parsers trust sizes and offsets early in the file: hit those bytes hardest
            head = draw(st.integers(0, min(len(data), 160) - 1))
            width = draw(st.integers(1, 4))
            data[head : head + width] = draw(st.binary(min_size=width, max_size=width))
    return bytes(data)


@pytest.mark.parametrize("kind", sorted(SEEDS))
def test_seeds_are_readable(kind: str) -> None:
    out = read_xray(SEEDS[kind])
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[-1] == 3


@FUZZ
@given(st.binary(max_size=1024))
def test_random_bytes(data: bytes) -> None:
    check(data)


@FUZZ
@given(
    st.sampled_from(
        [
            b"\x89PNG\r\n\x1a\n",
            b"\xff\xd8\xff",
            b"GIF89a",
            b"BM",
            b"II*\x00",
            b"MM\x00*",
            b"RIFF\x00\x00\x00\x00WEBP",
            b"\x00" * 128 + b"DICM",
        ]
    ),
    st.binary(max_size=512),
)
def test_magic_number_then_random_bytes(magic: bytes, tail: bytes) -> None:
    check(magic + tail)


@settings(FUZZ, max_examples=400)
@given(mutated())
def test_mutated_valid_files(data: bytes) -> None:
    check(data)

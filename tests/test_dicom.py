"""DICOM reading: the display pipeline (rescale, window, VOI LUT, MONOCHROME1, bit depths,
colour, multi-frame) and clear errors for files that cannot be shown. Files are built here."""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")

from pydicom.dataset import Dataset, FileDataset, FileMetaDataset  # noqa: E402
from pydicom.encaps import encapsulate  # noqa: E402
from pydicom.sequence import Sequence  # noqa: E402
from pydicom.uid import (  # noqa: E402
    ExplicitVRLittleEndian,
    JPEGLSLossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from pneumozoo.dicom import read_dicom  # noqa: E402
from pneumozoo.errors import InvalidImageError  # noqa: E402
from pneumozoo.io import read_xray  # noqa: E402

PYDICOM_3 = int(pydicom.__version__.split(".")[0]) >= 3


def make_dicom(
    pixels: np.ndarray | None,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    signed: bool = False,
    frames: int = 1,
    transfer_syntax: str = ExplicitVRLittleEndian,
    pixel_bytes: bytes | None = None,
    preamble: bool = True,
    **elements: Any,
) -> bytes:
    """A small DICOM file as bytes. ``pixels`` is (rows, cols[, 3]) or (frames, rows, cols)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = pydicom.uid.UID(transfer_syntax)
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128 if preamble else None)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.PatientName = "Test^Film"
    if pixels is not None:
        colour = photometric in ("RGB", "YBR_FULL")
        shape = pixels.shape[1:] if frames > 1 else pixels.shape
        ds.Rows, ds.Columns = int(shape[0]), int(shape[1])
        ds.SamplesPerPixel = 3 if colour else 1
        if colour:
            ds.PlanarConfiguration = 0
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated = pixels.dtype.itemsize * 8
        ds.BitsStored = bits_stored or ds.BitsAllocated
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = 1 if signed else 0
        if frames > 1:
            ds.NumberOfFrames = frames
        ds.PixelData = pixel_bytes if pixel_bytes is not None else pixels.tobytes()
    for key, value in elements.items():
        setattr(ds, key, value)
    buf = io.BytesIO()
    if PYDICOM_3:
        pydicom.dcmwrite(buf, ds, enforce_file_format=preamble)
    else:  # pragma: no cover - pydicom 2.x
        ds.is_little_endian, ds.is_implicit_VR = True, False
        pydicom.dcmwrite(buf, ds, write_like_original=not preamble)
    return buf.getvalue()


def gray(rgb: np.ndarray) -> np.ndarray:
    """The gray channel of a read film, checking the three channels are equal."""
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[-1] == 3
    assert rgb.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 1])
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])
    return rgb[..., 0]


def read_all_ways(data: bytes, tmp_path: Path) -> np.ndarray:
    """Read through read_xray(path.dcm), read_xray(path without suffix), read_xray(bytes) and
    read_dicom(stream), check they agree, return the array."""
    (tmp_path / "film.dcm").write_bytes(data)
    (tmp_path / "film_no_suffix").write_bytes(data)
    results = [
        read_xray(tmp_path / "film.dcm"),
        read_xray(str(tmp_path / "film_no_suffix")),
        read_xray(data),
        read_xray(bytearray(data)),
        read_dicom(io.BytesIO(data)),
    ]
    for other in results[1:]:
        np.testing.assert_array_equal(results[0], other)
    return results[0]


def expect_error(data: bytes, tmp_path: Path, *words: str) -> None:
    """Both the path and the bytes route raise one-line InvalidImageError with ``words``."""
    path = tmp_path / "bad.dcm"
    path.write_bytes(data)
    for source, shown in ((path, str(path)), (data, "<bytes")):
        with pytest.raises(InvalidImageError) as info:
            read_xray(source)
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith(shown)
        for word in words:
            assert word.lower() in message.lower(), message


# --- grayscale display pipeline ----------------------------------------------------------


def test_12bit_rescale_and_window(tmp_path: Path) -> None:
    # Stored 12-bit values; rescale to "HU-like" units, then a window of centre 0 width 1000.
    stored = np.array([[0, 250, 500, 750, 1000, 4095]], dtype=np.uint16)
    data = make_dicom(
        stored,
        bits_stored=12,
        RescaleSlope=2,
        RescaleIntercept=-1000,
        WindowCenter=0,
        WindowWidth=1000,
    )
    # rescaled: -1000, -500, 0, 500, 1000, 7190 -> window [-500, 500] onto 0..255
    np.testing.assert_array_equal(gray(read_all_ways(data, tmp_path)), [[0, 0, 128, 255, 255, 255]])


def test_window_uses_rescaled_values_not_stored_ones(tmp_path: Path) -> None:
    stored = np.array([[0, 250, 500, 750, 1000, 4095]], dtype=np.uint16)
    data = make_dicom(stored, bits_stored=12, WindowCenter=0, WindowWidth=1000)
    # no rescale: stored 0 is the window centre, everything above 499 is white
    np.testing.assert_array_equal(gray(read_xray(data)), [[128, 191, 255, 255, 255, 255]])


def test_12bit_without_window_is_min_max_scaled(tmp_path: Path) -> None:
    ramp = np.linspace(0, 4095, 64).astype(np.uint16).reshape(4, 16)
    data = make_dicom(ramp, bits_stored=12, RescaleSlope=1, RescaleIntercept=-1024)
    out = gray(read_all_ways(data, tmp_path)).ravel()
    assert out[0] == 0 and out[-1] == 255
    assert np.all(np.diff(out.astype(int)) >= 0)


def test_unused_high_bits_are_ignored() -> None:
    # 12 bits stored in 16: the top 4 bits (old overlay planes) must not change the image
    stored = np.array([[0, 1000, 4095]], dtype=np.uint16)
    clean = read_xray(make_dicom(stored, bits_stored=12))
    dirty = read_xray(make_dicom(stored | 0xF000, bits_stored=12))
    np.testing.assert_array_equal(clean, dirty)
    np.testing.assert_array_equal(gray(clean), [[0, 62, 255]])


def test_16bit_full_range_and_signed() -> None:
    ramp = np.linspace(0, 65535, 32).astype(np.uint16).reshape(2, 16)
    out = gray(read_xray(make_dicom(ramp, bits_stored=16))).ravel()
    assert out[0] == 0 and out[-1] == 255 and np.all(np.diff(out.astype(int)) >= 0)
    signed = np.array([[-1000, 0, 1000]], dtype=np.int16)
    np.testing.assert_array_equal(gray(read_xray(make_dicom(signed, signed=True))), [[0, 128, 255]])


def test_8bit_monochrome2_is_kept_as_stored(tmp_path: Path) -> None:
    stored = np.array([[10, 100, 200], [0, 255, 37]], dtype=np.uint8)
    np.testing.assert_array_equal(gray(read_all_ways(make_dicom(stored), tmp_path)), stored)


def test_monochrome1_is_inverted(tmp_path: Path) -> None:
    stored = np.array([[0, 100, 255]], dtype=np.uint8)
    out = gray(read_all_ways(make_dicom(stored, photometric="MONOCHROME1"), tmp_path))
    np.testing.assert_array_equal(out, [[255, 155, 0]])
    wide = np.array([[0, 2048, 4095]], dtype=np.uint16)
    out = gray(read_xray(make_dicom(wide, photometric="MONOCHROME1", bits_stored=12)))
    np.testing.assert_array_equal(out, [[255, 127, 0]])


def test_monochrome1_with_window_is_inverted_after_windowing() -> None:
    stored = np.array([[0, 99, 201, 300]], dtype=np.uint16)  # window is 99.5 .. 199.5
    data = make_dicom(
        stored, photometric="MONOCHROME1", bits_stored=12, WindowCenter=150, WindowWidth=101
    )
    np.testing.assert_array_equal(gray(read_xray(data)), [[255, 255, 0, 0]])


def test_voi_lut_sequence() -> None:
    item = Dataset()
    item.LUTDescriptor = [4, 0, 8]  # 4 entries, first input value 0, 8-bit output
    item.LUTData = np.array([0, 50, 100, 255], "<u2").tobytes()
    stored = np.array([[0, 1, 2, 3, 9]], dtype=np.uint16)  # 9 is past the table: last entry
    data = make_dicom(stored, bits_stored=12, VOILUTSequence=Sequence([item]))
    np.testing.assert_array_equal(gray(read_xray(data)), [[0, 50, 100, 255, 255]])


@pytest.mark.parametrize(
    "window",
    [{"WindowCenter": 100, "WindowWidth": 0}, {"WindowCenter": 100}],
    ids=["zero-width", "centre-only"],
)
def test_unusable_window_falls_back_to_min_max(window: dict[str, Any]) -> None:
    stored = np.array([[0, 40, 100]], dtype=np.uint16)
    out = gray(read_xray(make_dicom(stored, bits_stored=12, **window)))
    np.testing.assert_array_equal(out, [[0, 102, 255]])


def test_constant_image_reads_as_black() -> None:
    stored = np.full((3, 4), 1234, dtype=np.uint16)
    np.testing.assert_array_equal(gray(read_xray(make_dicom(stored, bits_stored=12))), 0)


def test_constant_frame_is_refused_when_films_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "blank.dcm"
    path.write_bytes(make_dicom(np.full((64, 64), 1234, dtype=np.uint16), bits_stored=12))
    with pytest.raises(InvalidImageError, match=r"blank\.dcm: no content"):
        read_xray(path, check=True)
    ramp = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 4096)
    path.write_bytes(make_dicom(ramp, bits_stored=12))
    assert read_xray(path, check=True).shape == (64, 64, 3)


@pytest.mark.parametrize("rescale", [
    {"RescaleSlope": "1e999", "RescaleIntercept": "0"},  # reads as inf
    {"RescaleSlope": "1", "RescaleIntercept": "-1e999"},
    {"RescaleSlope": "1e308", "RescaleIntercept": "0"},  # finite, but the pixels overflow
    {"RescaleSlope": "NaN", "RescaleIntercept": "0"},
], ids=["inf-slope", "inf-intercept", "overflow", "nan-slope"])
def test_rescale_that_overflows_is_an_error_not_a_black_frame(
        rescale: dict[str, str], tmp_path: Path) -> None:
    ramp = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 4096) + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the odd DS values
        data = make_dicom(ramp, bits_stored=12, **rescale)
    path = tmp_path / "overflow.dcm"
    path.write_bytes(data)
    for source, name in ((path, str(path)), (data, f"<bytes len={len(data)}>")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(InvalidImageError) as info:
                read_xray(source)
        message = str(info.value)
        assert message.startswith(f"{name}: ") and "\n" not in message
        assert "infinite or NaN" in message and "RescaleSlope" in message


def test_multiframe_keeps_the_first_frame(tmp_path: Path) -> None:
    frames = np.stack([np.full((2, 3), v, dtype=np.uint8) for v in (7, 80, 200)])
    out = read_all_ways(make_dicom(frames, frames=3), tmp_path)
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(gray(out), 7)


# --- colour -------------------------------------------------------------------------------


def test_rgb(tmp_path: Path) -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [10, 20, 30]]], dtype=np.uint8)
    np.testing.assert_array_equal(read_all_ways(make_dicom(rgb, photometric="RGB"), tmp_path), rgb)


def test_rgb_planar_configuration() -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], dtype=np.uint8)
    planar = np.moveaxis(rgb, -1, 0).tobytes()  # RRR GGG BBB
    data = make_dicom(rgb, photometric="RGB", pixel_bytes=planar, PlanarConfiguration=1)
    np.testing.assert_array_equal(read_xray(data), rgb)


def test_ybr_full_is_converted_to_rgb() -> None:
    ybr_red = np.array([[[76, 85, 255]]], dtype=np.uint8)
    out = read_xray(make_dicom(ybr_red, photometric="YBR_FULL"))
    assert out.shape == (1, 1, 3)
    assert out[0, 0, 0] > 240 and out[0, 0, 1] < 10 and out[0, 0, 2] < 10


def test_palette_colour() -> None:
    lut: dict[str, Any] = {
        f"{c}PaletteColorLookupTableDescriptor": [3, 0, 16] for c in ("Red", "Green", "Blue")
    }
    lut["RedPaletteColorLookupTableData"] = np.array([65535, 0, 0], "<u2").tobytes()
    lut["GreenPaletteColorLookupTableData"] = np.array([0, 65535, 0], "<u2").tobytes()
    lut["BluePaletteColorLookupTableData"] = np.array([0, 0, 32896], "<u2").tobytes()
    stored = np.array([[0, 1, 2]], dtype=np.uint8)
    out = read_xray(make_dicom(stored, photometric="PALETTE COLOR", **lut))
    np.testing.assert_array_equal(out, [[[255, 0, 0], [0, 255, 0], [0, 0, 128]]])


# --- files that cannot be shown -----------------------------------------------------------


def test_no_pixel_data(tmp_path: Path) -> None:
    expect_error(make_dicom(None), tmp_path, "no pixel data")


def test_garbage_after_dicm_preamble(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = b"\0" * 128 + b"DICM" + rng.integers(0, 256, 600, dtype=np.uint8).tobytes()
    expect_error(data, tmp_path, "DICOM")


def test_dicm_magic_then_nothing(tmp_path: Path) -> None:
    expect_error(b"\0" * 128 + b"DICM", tmp_path, "DICOM")


def test_truncated_pixel_data(tmp_path: Path) -> None:
    stored = np.arange(64, dtype=np.uint16).reshape(8, 8)
    data = make_dicom(stored, bits_stored=12, pixel_bytes=stored.tobytes()[:40])
    expect_error(data, tmp_path, "pixel data")


def test_truncated_file(tmp_path: Path) -> None:
    data = make_dicom(np.arange(4096, dtype=np.uint16).reshape(64, 64), bits_stored=12)
    expect_error(data[: len(data) // 2], tmp_path, "DICOM")


def test_compressed_without_decoder(tmp_path: Path) -> None:
    from pydicom.pixels import get_decoder

    if get_decoder(JPEGLSLossless).is_available:
        pytest.skip("a JPEG-LS decoder is installed here")
    stored = np.zeros((4, 4), dtype=np.uint16)
    data = make_dicom(
        stored,
        bits_stored=12,
        transfer_syntax=JPEGLSLossless,
        pixel_bytes=encapsulate([b"\xff\xd8 not really jpeg-ls \xff\xd9"]),
    )
    expect_error(data, tmp_path, "JPEG-LS", "decoder", "not installed")


@pytest.mark.timeout(60)  # a hang fails the test; slowness does not
def test_huge_dimensions_are_refused_before_decoding(tmp_path: Path) -> None:
    stored = np.zeros((2, 2), dtype=np.uint16)
    data = make_dicom(stored, bits_stored=12, Rows=30000, Columns=30000)
    expect_error(data, tmp_path, "30000x30000", "limit")


def test_zero_rows(tmp_path: Path) -> None:
    data = make_dicom(np.zeros((2, 2), dtype=np.uint8), Rows=0)
    expect_error(data, tmp_path, "no pixels")


def test_text_file_named_dcm(tmp_path: Path) -> None:
    path = tmp_path / "notes.dcm"
    path.write_text("this is not a DICOM file\n" * 20)
    with pytest.raises(InvalidImageError, match=r"notes\.dcm: not a DICOM file"):
        read_xray(path)


def test_file_without_preamble_is_read_leniently(tmp_path: Path) -> None:
    stored = np.array([[1, 2], [3, 4]], dtype=np.uint8)
    data = make_dicom(stored, preamble=False)
    assert data[128:132] != b"DICM"
    path = tmp_path / "old.dcm"
    path.write_bytes(data)
    np.testing.assert_array_equal(gray(read_xray(path)), stored)


def test_pydicom_missing_gives_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_dicom(np.zeros((2, 2), dtype=np.uint8))
    monkeypatch.setitem(sys.modules, "pydicom", None)  # makes `import pydicom` fail
    expect_error(data, tmp_path, "pip install pydicom (or, in the pneumozoo clone, pip install '.[dicom]')")


def test_read_dicom_names_the_stream() -> None:
    with pytest.raises(InvalidImageError, match=r"^scan\.dcm: "):
        read_dicom(io.BytesIO(b"\0" * 128 + b"DICM"), name="scan.dcm")
    with pytest.raises(InvalidImageError, match=r"^<DICOM stream>: "):
        read_dicom(io.BytesIO(b"\0" * 128 + b"DICM"))

"""download_kermany against a real local HTTP server (resume, hashes, errors, safe unzip)."""

from __future__ import annotations

import hashlib
import io
import re
import socket
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pneumozoo.cli import main
from pneumozoo.data import download_kermany, scan_split
from pneumozoo.errors import DataError, DownloadError, IntegrityError


class ArchiveServer:
    """Serves ``files`` at ``/<name>`` with Range support and failure switches."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.cut_first: int | None = None  # first GET: full Content-Length, only N bytes
        self.accept_ranges = True
        self.status: int | None = None  # answer every request with this status
        self.delay = 0.0  # seconds to wait before answering
        self.ranges: list[str | None] = []
        self._released = threading.Event()
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.owner = self  # type: ignore[attr-defined]
        self.server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def url(self, name: str = "ChestXRay2017.zip") -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/{name}"

    def close(self) -> None:
        self._released.set()
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        owner: ArchiveServer = self.server.owner  # type: ignore[attr-defined]
        owner.ranges.append(self.headers.get("Range"))
        if owner.delay and owner._released.wait(owner.delay):
            return  # closed while waiting: the client is gone
        data = owner.files.get(self.path.lstrip("/"))
        if owner.status or data is None:
            self.send_error(owner.status or 404)
            return
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if m and owner.accept_ranges:
            start = int(m.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if owner.cut_first is not None:
            body, owner.cut_first = body[: owner.cut_first], None
        self.wfile.write(body)


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


KAGGLE_FILES = {
    f"chest_xray/chest_xray/{split}/{cls}/{stem}.jpeg": _jpeg(i)
    for i, (split, cls, stem) in enumerate([
        ("train", "NORMAL", "IM-0115-0001"), ("train", "NORMAL", "NORMAL2-IM-0381-0001"),
        ("train", "PNEUMONIA", "person1_bacteria_1"), ("train", "PNEUMONIA", "person2_virus_3"),
        ("test", "NORMAL", "IM-0001-0001"), ("test", "PNEUMONIA", "person100_bacteria_480"),
    ])
}
KAGGLE_FILES["__MACOSX/chest_xray/._junk"] = b"resource fork"
ARCHIVE = _zip(KAGGLE_FILES)
SHA = hashlib.sha256(ARCHIVE).hexdigest()


@pytest.fixture
def server() -> Iterator[ArchiveServer]:
    s = ArchiveServer({"ChestXRay2017.zip": ARCHIVE})
    yield s
    s.close()


def _leftovers(parent: Path, dest: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p != dest)


def test_download_extracts_kermany_layout(server: ArchiveServer, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "kermany"
    assert download_kermany(dest, url=server.url(), sha256=SHA) == dest
    assert sorted(p.name for p in dest.iterdir()) == ["test", "train"]
    train = scan_split(dest, "train")
    assert sorted(r.path.name for r in train) == [
        "IM-0115-0001.jpeg", "NORMAL2-IM-0381-0001.jpeg", "person1_bacteria_1.jpeg",
        "person2_virus_3.jpeg"]
    assert [r.label for r in sorted(train, key=lambda r: r.path.name)] == [0, 0, 1, 1]
    assert len(scan_split(dest, "test")) == 2
    assert (dest / "train" / "NORMAL" / "IM-0115-0001.jpeg").read_bytes() == \
        KAGGLE_FILES["chest_xray/chest_xray/train/NORMAL/IM-0115-0001.jpeg"]
    assert _leftovers(tmp_path, dest) == []  # no archive, .part or temp folder left
    assert "kermany.zip" in capsys.readouterr().err  # the progress line
    assert server.ranges == [None]

    assert download_kermany(dest, url=server.url()) == dest  # already there: no request
    assert server.ranges == [None]


def test_resume_after_interruption(server: ArchiveServer, tmp_path: Path) -> None:
    dest = tmp_path / "kermany"
    cut = 5 * 256  # whole chunks arrive; a chunk cut short is read again on resume
    assert len(ARCHIVE) > 2 * cut
    server.cut_first = cut
    with pytest.raises(DownloadError, match=r"connection lost after 1280 bytes; run again to resume"):
        download_kermany(dest, url=server.url(), sha256=SHA, progress=False, chunk_size=256)
    part = tmp_path / "kermany.zip.part"
    assert part.read_bytes() == ARCHIVE[:cut]
    assert not dest.exists() and not (tmp_path / "kermany.zip").exists()

    download_kermany(dest, url=server.url(), sha256=SHA, progress=False, chunk_size=256)
    assert server.ranges == [None, f"bytes={cut}-"]  # the second request resumed
    assert len(scan_split(dest, "train")) == 4
    assert not part.exists()


def test_server_without_range_support_restarts(server: ArchiveServer, tmp_path: Path) -> None:
    server.accept_ranges = False
    server.cut_first = 1024
    dest = tmp_path / "kermany"
    with pytest.raises(DownloadError):
        download_kermany(dest, url=server.url(), progress=False, chunk_size=256)
    download_kermany(dest, url=server.url(), sha256=SHA, keep_archive=True, progress=False)
    assert server.ranges == [None, "bytes=1024-"]
    assert (tmp_path / "kermany.zip").read_bytes() == ARCHIVE  # not the first 1024 bytes twice


def test_sha256_mismatch(server: ArchiveServer, tmp_path: Path) -> None:
    dest = tmp_path / "kermany"
    with pytest.raises(IntegrityError, match=r"sha256 .* does not match the expected 000000000000"):
        download_kermany(dest, url=server.url(), sha256="0" * 64, progress=False)
    assert _leftovers(tmp_path, dest) == [] and not dest.exists()


@pytest.mark.parametrize("status", [404, 500])
def test_http_errors(server: ArchiveServer, tmp_path: Path, status: int) -> None:
    server.status = status
    with pytest.raises(DownloadError, match=rf"ChestXRay2017.zip: HTTP {status}\b"):
        download_kermany(tmp_path / "k", url=server.url(), progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.timeout(60)  # a hang fails the test; slowness does not
def test_connection_refused_and_timeout(server: ArchiveServer, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match=r"cannot connect"):
        download_kermany(tmp_path / "k", url=f"http://127.0.0.1:{port}/x.zip", progress=False)
    server.delay = 10
    with pytest.raises(DownloadError, match=r"no answer within 0.5 s"):
        download_kermany(tmp_path / "k", url=server.url(), timeout=0.5, progress=False)


@pytest.mark.parametrize("evil", ["../evil.txt", "/tmp/evil-abs.txt", "chest_xray/../../evil.txt"])
def test_zip_slip_is_refused(tmp_path: Path, evil: str) -> None:
    archive = _zip({**KAGGLE_FILES, evil: b"owned"})
    server = ArchiveServer({"a.zip": archive})
    try:
        dest = tmp_path / "sub" / "kermany"
        with pytest.raises(DataError, match=r"unsafe entry"):
            download_kermany(dest, url=server.url("a.zip"), progress=False)
    finally:
        server.close()
    assert not dest.exists()
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "sub" / "evil.txt").exists()
    assert _leftovers(tmp_path / "sub", dest) == []  # the bad archive is not kept either


def test_archive_without_splits(tmp_path: Path) -> None:
    server = ArchiveServer({"a.zip": _zip({"readme.txt": b"hello"}), "b.zip": b"not a zip"})
    try:
        with pytest.raises(DataError, match=r"no train/ folder"):
            download_kermany(tmp_path / "a", url=server.url("a.zip"), progress=False)
        with pytest.raises(DataError, match=r"not a zip archive"):
            download_kermany(tmp_path / "b", url=server.url("b.zip"), progress=False)
    finally:
        server.close()
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_refuses_a_non_empty_destination(server: ArchiveServer, tmp_path: Path) -> None:
    (tmp_path / "kermany").mkdir()
    (tmp_path / "kermany" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=r"exists and is not a Kermany dataset folder"):
        download_kermany(tmp_path / "kermany", url=server.url(), progress=False)
    assert server.ranges == []


def test_cli_data_download(server: ArchiveServer, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "k"
    assert main(["data", "download", str(dest), "--url", server.url(), "--sha256", SHA]) == 0
    assert capsys.readouterr().out.strip() == str(dest)
    assert len(scan_split(dest, "test")) == 2
    assert main(["data", "download", str(tmp_path / "x"), "--url", server.url("missing.zip")]) == 2
    assert capsys.readouterr().err.strip().startswith("pneumozoo: error: http://127.0.0.1:")

"""Download the Kermany et al. (2018) chest X-ray archive and unpack it in the Kermany layout.

The data: Kermany, D. S., Zhang, K., Goldbaum, M. (2018). Labeled Optical Coherence
Tomography (OCT) and Chest X-Ray Images for Classification. Mendeley Data, v2,
doi:10.17632/rscbjbr9sj.2, licence CC BY 4.0. The chest X-ray part is ``ChestXRay2017.zip``
(about 1.2 GB, folders ``chest_xray/{train,test}/{NORMAL,PNEUMONIA}``).

The transfer streams into ``<archive>.part`` and resumes with an HTTP ``Range`` request when
run again after an interruption (if the server answers ``206``; otherwise it starts over), from
the last complete chunk. The archive gets its final
name only once complete (and once its sha256 matches, when one is given); it is then unpacked
into a temporary folder that is renamed into place, so ``dest`` is either absent or complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import sys
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO, Any

from pneumozoo.data.records import find_split_dir
from pneumozoo.errors import DataError, DownloadError, IntegrityError

__all__ = ["KERMANY_ARCHIVE", "KERMANY_DOI", "KERMANY_URL", "download_kermany"]

#: Direct link to ``ChestXRay2017.zip`` of doi:10.17632/rscbjbr9sj.2 on Mendeley Data (the
#: "download" button of https://data.mendeley.com/datasets/rscbjbr9sj/2). Mendeley publishes
#: no checksum: pass ``sha256=`` to pin the archive you expect.
KERMANY_URL = (
    "https://data.mendeley.com/public-files/datasets/rscbjbr9sj/files/"
    "f12eaf6d-6023-432f-acc9-80c9d7393433/file_downloaded"
)
KERMANY_ARCHIVE = "ChestXRay2017.zip"
KERMANY_DOI = "10.17632/rscbjbr9sj.2"
_SPLITS = ("train", "test", "val")


def download_kermany(
    dest: str | Path,
    *,
    url: str = KERMANY_URL,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 30.0,
    chunk_size: int = 1 << 20,
    keep_archive: bool = False,
) -> Path:
    """Download ``ChestXRay2017.zip`` and unpack it as ``dest/<split>/<CLASS>/<image>``.

    If ``dest`` already holds the layout, nothing is downloaded. The archive is downloaded
    beside ``dest`` (``<dest>.zip``); an interrupted transfer resumes where it stopped when
    the function is called again.

    Args:
        dest: Folder to create, e.g. ``"data/kermany"``; ends up holding ``train/`` and
            ``test/`` (and ``val/``), each with ``NORMAL/`` and ``PNEUMONIA/``.
        url: Where to fetch the zip (default: the Mendeley Data file of
            doi:10.17632/rscbjbr9sj.2); any zip in the same layout works, e.g. a mirror.
        sha256: Expected hex sha256 of the zip; on mismatch the file is deleted and
            :class:`IntegrityError` raised. None skips the check (the hash is printed when
            ``progress`` is on, so you can pin it next time).
        progress: Show a progress line on stderr.
        timeout: Seconds to wait for the server to connect or to send more bytes.
        chunk_size: Bytes read per chunk.
        keep_archive: Keep ``<dest>.zip`` after unpacking (default: delete it).

    Returns:
        ``dest``, holding the Kermany layout.

    Raises:
        DownloadError: Connection refused, timeout, HTTP error status, or a truncated
            transfer (the partial file is kept; call again to resume).
        IntegrityError: The archive's sha256 differs from ``sha256``.
        DataError: The archive is not a zip, holds unsafe paths (absolute or ``..``), has
            no train/test split folders, or ``dest`` exists with other content.

    Example:
        >>> from pneumozoo.data import download_kermany, scan_split
        >>> root = download_kermany("data/kermany")  # doctest: +SKIP
        >>> len(scan_split(root, "test"))  # doctest: +SKIP
        624
    """
    if chunk_size <= 0 or timeout <= 0:
        raise ValueError("chunk_size and timeout must be positive")
    dest = Path(dest).expanduser()
    if _has_layout(dest):
        return dest
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DataError(f"{dest}: exists and is not a Kermany dataset folder; "
                        "pass an empty or new folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    archive = dest.with_name(dest.name + ".zip")
    if not archive.is_file():
        _fetch(url, archive, sha256=sha256, progress=progress, timeout=timeout,
               chunk_size=chunk_size)
    elif sha256 is not None:
        _check_sha256(archive, sha256, url)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        unpacked = tmp / "unpacked"
        try:
            _safe_extract(archive, unpacked)
        except DataError:
            archive.unlink(missing_ok=True)  # not usable: the next call downloads it afresh
            raise
        staged = tmp / "staged"  # only the split folders, e.g. not Kaggle's nested duplicate
        staged.mkdir()
        for split in _SPLITS:
            try:
                find_split_dir(unpacked, split).rename(staged / split)
            except DataError:
                if split != "val":
                    archive.unlink(missing_ok=True)
                    raise DataError(f"{archive}: no {split}/ folder with NORMAL/ and PNEUMONIA/ "
                                    "inside; not the Kermany chest X-ray archive (deleted it)") from None
        if dest.is_dir():
            dest.rmdir()  # empty (checked above)
        staged.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not keep_archive:
        archive.unlink(missing_ok=True)
    return dest


def _has_layout(dest: Path) -> bool:
    try:
        return find_split_dir(dest, "train") == dest / "train" and \
            find_split_dir(dest, "test") == dest / "test"
    except DataError:
        return False


# --- transfer ----------------------------------------------------------------------------
def _fetch(url: str, archive: Path, *, sha256: str | None, progress: bool, timeout: float,
           chunk_size: int) -> None:
    # lazy: the HTTP client: only downloads need it
    import requests

    part = archive.with_name(archive.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    total: int | None
    try:
        with requests.get(url, headers=headers, stream=True, timeout=timeout) as response:
            if response.status_code == 416 and offset:  # nothing left after `offset`
                if response.headers.get("Content-Range", "") != f"bytes */{offset}":
                    part.unlink()  # not simply complete: a stale or foreign .part; start over
                    _fetch(url, archive, sha256=sha256, progress=progress, timeout=timeout,
                           chunk_size=chunk_size)
                    return
                total = received = offset
            elif response.status_code not in (200, 206):
                reason = response.reason or ""
                raise DownloadError(f"{url}: HTTP {response.status_code} {reason}".rstrip())
            else:
                total, received = _stream(response, part, offset, chunk_size,
                                          _Progress(archive.name, None, enabled=progress))
    except requests.exceptions.Timeout:
        raise DownloadError(f"{url}: no answer within {timeout:g} s (timeout); "
                            "run again to resume") from None
    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
        raise DownloadError(f"{url}: connection lost after {_size(part)}; "
                            "run again to resume") from None
    except requests.exceptions.ConnectionError as e:
        if part.is_file() and part.stat().st_size > offset:
            raise DownloadError(f"{url}: connection lost after {_size(part)}; "
                                "run again to resume") from None
        raise DownloadError(f"{url}: cannot connect ({_reason(e)})") from None
    except requests.exceptions.RequestException as e:
        raise DownloadError(f"{url}: download failed ({_reason(e)})") from None
    if total is not None and received != total:
        raise DownloadError(f"{url}: truncated, got {received} of {total} bytes; "
                            "run again to resume")
    actual = _sha256(part)
    if sha256 is not None and actual != sha256.lower():
        part.unlink()
        raise IntegrityError(f"{url}: sha256 {actual[:12]}... does not match the expected "
                             f"{sha256[:12]}...; deleted the download")
    if progress and sha256 is None:
        print(f"{archive.name}: sha256 {actual} (pass sha256= to pin it)", file=sys.stderr)
    os.replace(part, archive)


def _stream(response: Any, part: Path, offset: int, chunk_size: int,
            bar: _Progress) -> tuple[int | None, int]:
    """Write the body to ``part`` (appending after ``offset`` on a 206); (total, received)."""
    resumed = response.status_code == 206 and _range_start(response) == offset
    if not resumed:
        offset = 0  # the server ignored the Range header: start over
    length = response.headers.get("Content-Length")
    total = offset + int(length) if length and length.isdigit() else None
    received = offset
    bar.total = total
    with open(part, "ab" if resumed else "wb") as f:
        bar.update(received)
        try:
            for chunk in response.iter_content(chunk_size=chunk_size):
                f.write(chunk)
                received += len(chunk)
                bar.update(received)
        finally:
            bar.close()
    return total, received


def _range_start(response: Any) -> int | None:
    text = response.headers.get("Content-Range", "")  # "bytes 100-999/1000"
    try:
        return int(text.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _reason(error: BaseException) -> str:
    text = str(error)
    for marker in ("Connection refused", "Name or service not known", "timed out"):
        if marker in text:
            return marker
    return text.splitlines()[0][:200] if text else type(error).__name__


def _size(path: Path) -> str:
    n = path.stat().st_size if path.is_file() else 0
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n} bytes"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _check_sha256(path: Path, expected: str, url: str) -> None:
    actual = _sha256(path)
    if actual != expected.lower():
        path.unlink()
        raise IntegrityError(f"{path}: sha256 {actual[:12]}... does not match the expected "
                             f"{expected[:12]}...; deleted it (source {url})")


class _Progress:
    """A one-line progress display on stderr, redrawn at most every 0.2 s."""

    def __init__(self, name: str, total: int | None, *, enabled: bool,
                 stream: IO[str] | None = None) -> None:
        self.name, self.total, self.enabled = name, total, enabled
        self.stream = stream or sys.stderr
        self.last = 0.0
        self.done = 0

    def update(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if self.enabled and now - self.last >= 0.2:
            self.last = now
            self._draw()

    def _draw(self) -> None:
        mb = self.done / 1e6
        if self.total:
            pct = 100.0 * self.done / self.total
            text = f"\r{self.name}: {mb:,.1f} / {self.total / 1e6:,.1f} MB ({pct:5.1f}%)"
        else:
            text = f"\r{self.name}: {mb:,.1f} MB"
        print(text, end="", file=self.stream, flush=True)

    def close(self) -> None:
        if self.enabled:
            self._draw()
            print(file=self.stream, flush=True)


# --- extraction --------------------------------------------------------------------------
def _safe_extract(archive: Path, target: Path) -> None:
    """Unzip ``archive`` into ``target``, refusing absolute paths, ``..`` and symlinks."""
    try:
        with zipfile.ZipFile(archive) as z:
            members = z.infolist()
            for info in members:
                name = info.filename.replace("\\", "/")
                parts = PurePosixPath(name).parts
                if name.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
                    raise DataError(f"{archive}: unsafe entry {info.filename!r} (absolute path or "
                                    "'..'); refusing to extract; deleted it")
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise DataError(f"{archive}: entry {info.filename!r} is a symbolic link; "
                                    "refusing to extract; deleted it")
            for info in members:
                if info.filename.startswith("__MACOSX/") or info.is_dir():
                    continue
                out = target.joinpath(*PurePosixPath(info.filename.replace("\\", "/")).parts)
                out.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    except zipfile.BadZipFile as e:
        raise DataError(f"{archive}: not a zip archive ({e}); deleted it") from None

"""``screen``: resumable batch inference over an archive of films, on one machine or on Ray.

A screen reads a folder tree (JPEG, PNG, DICOM...) or a CSV/Parquet list of paths and writes
one Parquet row per film into shards under an output folder, plus a ``summary.json``:

- **Streaming**: the source is walked (or the list read) lazily and films flow through
  bounded queues, so memory does not grow with the size of the archive (resume keeps 8 bytes
  per film already written).
- **Resumable and loss-free**: each shard is written to a hidden temporary file and renamed
  into place (``os.replace``), so a shard is either whole or absent. A rerun into the same
  folder skips every film already in a shard (same path, size and modification time) and
  screens the rest: after any number of ``kill -9`` and reruns each film is in the output
  exactly once.
- **A bad film is a row**: unreadable, missing or too-small films get ``error`` set (and no
  probabilities); the job goes on.
- **Two engines, same rows**: the default runs in this process with pneumozoo's own reader
  (threads decoding films while the model runs, :func:`pneumozoo.prediction.iter_predictions`);
  ``ray="auto"`` or ``ray="HOST:PORT"`` runs the same job on a Ray cluster with Ray Data (an
  actor pool that loads the model once per actor, a GPU per actor where the cluster has
  them). Both need ``pyarrow`` (the ``screen`` extra); Ray needs the ``ray`` extra.

Example:
    >>> from pneumozoo import screen
    >>> result = screen("archive/", "screened/")  # doctest: +SKIP
    >>> result.written, result.films_per_second  # doctest: +SKIP
    (100000, 41.2)
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import queue
import secrets
import stat as _stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pneumozoo._version import __version__
from pneumozoo.errors import InvalidImageError, PneumozooError
from pneumozoo.io import IMAGE_SUFFIXES, atomic_output
from pneumozoo.pretrained import (
    DEFAULT_MODEL,
    PretrainedConfig,
    get_pretrained_config,
    load_pretrained,
)
from pneumozoo.utils import quiet_tensorflow

__all__ = ["SUMMARY_FILE", "ScreenResult", "iter_source", "read_results", "screen"]

#: Name of the summary written next to the shards.
SUMMARY_FILE = "summary.json"
#: Films per Parquet shard (and per unit of resume: a killed run loses at most one shard each).
DEFAULT_SHARD_SIZE = 1024
_LOCK_FILE = ".screen.lock"
_SHARD_GLOB = "part-*.parquet"
_PATH_COLUMNS = ("path", "file", "filename", "filepath", "image", "image_path")


@dataclass(frozen=True)
class ScreenResult:
    """What one :func:`screen` call did.

    Attributes:
        out: The output folder.
        engine: ``local`` or ``ray``.
        films: Films in the output now (all runs).
        written: Films this run screened and wrote.
        skipped: Films of the source already in the output (from an earlier run).
        errors: Films in the output whose ``error`` is set (all runs).
        out_of_domain: Films the domain guard flagged (all runs).
        shards: Parquet shards in the output now.
        seconds: Wall-clock time of this run.
        films_per_second: ``written / seconds`` for this run.
        model: Model name; ``weights_sha256``: the weights' sha256.
        first_output_seconds: From the start of this run to its first predictions (with Ray:
            actors started and their models loaded, and one batch screened).
        steady_films_per_second: The rate after the first predictions:
            ``(written - first batch) / (seconds - first_output_seconds)``.
    """

    out: str
    engine: str
    films: int
    written: int
    skipped: int
    errors: int
    out_of_domain: int
    shards: int
    seconds: float
    films_per_second: float
    model: str
    weights_sha256: str
    first_output_seconds: float = 0.0
    steady_films_per_second: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


# --- optional dependencies -----------------------------------------------------------------
def _need_pyarrow() -> Any:
    try:
        # lazy: optional extra (pyarrow)
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise PneumozooError("screen writes Parquet and needs pyarrow: install the 'screen' extra "
                             "(pip install \".[screen]\" from the pneumozoo clone)") from None
    return pyarrow


def _need_ray() -> Any:
    try:
        # lazy: optional extra (ray)
        import ray
        import ray.data
    except ImportError:
        raise PneumozooError("--ray needs Ray Data: install the 'ray' extra "
                             "(pip install \".[ray]\" from the pneumozoo clone)") from None
    return ray


# --- the source: streamed ---------------------------------------------------------------
def _walk(folder: Path, ancestors: tuple[tuple[int, int], ...],
          seen: set[tuple[int, int]]) -> Iterator[str]:
    try:
        with os.scandir(folder) as it:
            entries = sorted(((e.name, e) for e in it if not e.name.startswith(".")),
                             key=lambda t: t[0])
    except OSError:
        return
    for name, entry in entries:
        path = folder / name
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            try:
                st = entry.stat()
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in ancestors or key in seen:  # link loops; a folder reached twice
                continue
            seen.add(key)
            yield from _walk(path, (*ancestors, key), seen)
        elif Path(name).suffix.lower() in IMAGE_SUFFIXES:
            yield str(path)


def _path_column(names: Sequence[str], where: str) -> str:
    lowered = {n.lower(): n for n in names}
    for candidate in _PATH_COLUMNS:
        if candidate in lowered:
            return lowered[candidate]
    if len(names) == 1:
        return names[0]
    raise PneumozooError(f"{where}: no path column (name one of {', '.join(_PATH_COLUMNS)}, "
                         f"or give a single column); columns: {', '.join(names)}")


def iter_source(source: str | os.PathLike[str]) -> Iterator[str]:
    """The films of a source as absolute paths, streamed.

    Args:
        source: A folder (walked recursively in sorted order, hidden entries and non-image
            suffixes skipped), a ``.csv`` list (a ``path`` column, or a single column), a
            ``.parquet`` list (same), or one image file. Relative paths in a list are relative
            to the list's folder.

    Yields:
        Absolute paths (not resolved through symbolic links), in source order.

    Raises:
        PneumozooError: If the source does not exist or is not a folder, list or image.

    Example:
        >>> next(iter_source("examples/xrays")).endswith(".jpeg")  # doctest: +SKIP
        True
    """
    src = Path(os.fspath(source)).expanduser()
    if src.is_dir():
        st = src.stat()
        key = (st.st_dev, st.st_ino)
        yield from _walk(Path(os.path.abspath(src)), (key,), {key})
        return
    if not src.exists():
        raise PneumozooError(f"{src}: no such file or folder")
    base = Path(os.path.abspath(src.parent))
    suffix = src.suffix.lower()
    if suffix == ".csv":
        with open(src, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                return
            col = header.index(_path_column(header, str(src)))
            for row in reader:
                if len(row) > col and row[col].strip():
                    yield os.path.abspath(os.path.join(base, row[col].strip()))
        return
    if suffix in (".parquet", ".pq"):
        pq = _need_pyarrow().parquet
        pf = pq.ParquetFile(src)
        col_name = _path_column(pf.schema_arrow.names, str(src))
        for batch in pf.iter_batches(batch_size=4096, columns=[col_name]):
            for value in batch.column(0).to_pylist():
                if value:
                    yield os.path.abspath(os.path.join(base, str(value)))
        return
    if suffix in IMAGE_SUFFIXES:
        yield os.path.abspath(src)
        return
    raise PneumozooError(f"{src}: SOURCE must be a folder of films, a .csv or .parquet list of "
                         "paths, or one image file")


# --- identity of a film, and what is done ---------------------------------------------------
def _stat_film(path: str) -> tuple[int | None, int | None, str | None]:
    """``(size, mtime_ns, error)`` of a path."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None, None, "no such file"
    except (OSError, ValueError) as e:
        return None, None, f"cannot stat: {type(e).__name__}: {e}"
    if _stat.S_ISDIR(st.st_mode):
        return None, None, "is a folder, not a file"
    return int(st.st_size), int(st.st_mtime_ns), None


def _film_key(path: str, size: int | None, mtime_ns: int | None) -> int:
    """A 64-bit key of (path, size, mtime): what resume compares."""
    text = f"{path}\0{-1 if size is None else size}\0{-1 if mtime_ns is None else mtime_ns}"
    digest = hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class _DoneIndex:
    """The films already written (or queued): sorted 64-bit keys plus a small pending set."""

    def __init__(self) -> None:
        self._sorted = np.empty(0, dtype=np.uint64)
        self._recent: set[int] = set()

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    def add_many(self, keys: Iterable[int]) -> None:
        self._recent.update(keys)
        if len(self._recent) > 262_144:
            self._merge()

    def _merge(self) -> None:
        if self._recent:
            new = np.fromiter(self._recent, dtype=np.uint64, count=len(self._recent))
            self._sorted = np.unique(np.concatenate([self._sorted, new]))
            self._recent.clear()

    def __contains__(self, key: int) -> bool:
        if key in self._recent:
            return True
        i = int(np.searchsorted(self._sorted, np.uint64(key)))
        return i < len(self._sorted) and int(self._sorted[i]) == key


# --- model identity --------------------------------------------------------------------
@dataclass(frozen=True)
class _ModelRef:
    """How to load the model again (in a Ray actor) and what to write as its identity."""

    name: str
    weights_sha256: str
    spec: str | None  # load_pretrained argument; None: ``payload`` holds config + weights
    revision: str | None = None
    payload: Any = None


def _weights_digest(model: Any) -> str:
    h = hashlib.sha256()
    for w in model.get_weights():
        a = np.ascontiguousarray(w)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _resolve_model(model: Any, revision: str | None) -> tuple[Any, _ModelRef]:
    if model is None or isinstance(model, (str, os.PathLike)):
        spec = str(DEFAULT_MODEL if model is None else os.fspath(model))
        loaded = load_pretrained(spec, revision=revision)
        name, sha = spec, ""
        folder = Path(spec).expanduser()
        config = None
        if folder.is_dir():
            config = PretrainedConfig.read(folder)
            spec = str(folder.resolve())
        elif folder.is_file():  # a .keras file: no published hash, its weights are digested
            spec = str(folder.resolve())
        elif not spec.startswith("hf://"):
            config = get_pretrained_config(spec)
        if config is not None:
            name = config.name
            sha = config.files.get("model.weights.h5", "")
        return loaded, _ModelRef(name=name, weights_sha256=sha or _weights_digest(loaded),
                                 spec=spec, revision=revision)
    # lazy: loads Keras and its backend
    from pneumozoo.models.classifier import as_classifier

    clf = as_classifier(model)
    return clf, _ModelRef(name=str(getattr(clf, "name", "model")),
                          weights_sha256=_weights_digest(clf), spec=None,
                          payload=(type(clf), clf.get_config(), clf.get_weights()))


def _load_ref(ref: _ModelRef) -> Any:
    if ref.spec is not None:
        return load_pretrained(ref.spec, revision=ref.revision)
    cls, config, weights = ref.payload
    model = cls.from_config(config)
    model.set_weights(weights)
    return model


# --- rows -------------------------------------------------------------------------------
def _class_column(name: str) -> str:
    safe = "".join(c if c.isalnum() else "_" for c in name.lower())
    return f"p_{safe}"


def _schema(class_names: Sequence[str]) -> Any:
    pa = _need_pyarrow()
    fields = [
        pa.field("path", pa.string(), nullable=False),
        pa.field("size", pa.int64()),
        pa.field("mtime", pa.timestamp("ns", tz="UTC")),
        pa.field("probability", pa.float64()),
        *[pa.field(_class_column(n), pa.float64()) for n in class_names],
        pa.field("label", pa.string()),
        pa.field("threshold", pa.float64()),
        pa.field("in_domain", pa.bool_()),
        pa.field("domain_score", pa.float64()),
        pa.field("error", pa.string()),
        pa.field("model", pa.string()),
        pa.field("weights_sha256", pa.string()),
        pa.field("pneumozoo_version", pa.string()),
    ]
    return pa.schema(fields)


#: Films per ``iter_predictions`` call: its reader pipeline (films decoded while the model runs)
#: restarts once per segment, not once per shard; a segment is a list of paths (flat memory).
_SEGMENT = 8192


def _iter_predicted(clf: Any, films: Iterable[Sequence[_Film]], *, batch_size: int, workers: int,
                    threshold: float | None) -> Iterator[tuple[_Film, Any]]:
    """``(film, Prediction)`` for each film of each segment: pneumozoo's own inference path."""
    # lazy: loads Keras and its backend
    from pneumozoo.prediction import iter_predictions

    for segment in films:
        if not segment:
            continue
        items: list[Any] = [InvalidImageError(p, err) if err is not None else p
                            for p, _, _, err in segment]
        preds = iter_predictions(clf, items, batch_size=batch_size, workers=workers,
                                 threshold=threshold)
        yield from zip(segment, preds, strict=True)


class _Rows:
    """Columns of the rows not yet handed to the writer."""

    _KEYS = ("path", "size", "mtime", "probability", "label", "threshold", "in_domain",
             "domain_score", "error")

    def __init__(self, class_names: Sequence[str]) -> None:
        self._names = [(n, _class_column(n)) for n in class_names]
        self.cols: dict[str, list[Any]] = {}
        self.take()

    def __len__(self) -> int:
        return len(self.cols["path"])

    def take(self) -> dict[str, list[Any]]:
        """The columns so far; the buffer starts over empty."""
        cols = self.cols
        self.cols = {k: [] for k in self._KEYS}
        for _, col in self._names:
            self.cols[col] = []
        return cols

    def add(self, film: _Film, pred: Any) -> None:
        c = self.cols
        c["path"].append(film[0])
        c["size"].append(film[1])
        c["mtime"].append(film[2])
        c["threshold"].append(pred.threshold)
        c["error"].append(pred.error)
        c["probability"].append(pred.probability)
        c["label"].append(pred.label)
        c["in_domain"].append(pred.in_domain)
        c["domain_score"].append(pred.domain_score)
        probs = pred.probabilities
        for name, col in self._names:
            c[col].append(probs.get(name))


def _predict_rows(clf: Any, films: Sequence[_Film], *, batch_size: int, workers: int,
                  threshold: float | None) -> dict[str, list[Any]]:
    """Columns for ``films`` ((path, size, mtime_ns, error)), in one ``iter_predictions`` call."""
    rows = _Rows(clf.class_names)
    for film, pred in _iter_predicted(clf, [films], batch_size=batch_size, workers=workers,
                                      threshold=threshold):
        rows.add(film, pred)
    return rows.take()


def _to_table(cols: dict[str, list[Any]], schema: Any, ref: _ModelRef) -> Any:
    pa = _need_pyarrow()

    n = len(cols["path"])
    arrays = []
    for field in schema:
        if field.name == "model":
            arrays.append(pa.array([ref.name] * n, pa.string()))
        elif field.name == "weights_sha256":
            arrays.append(pa.array([ref.weights_sha256] * n, pa.string()))
        elif field.name == "pneumozoo_version":
            arrays.append(pa.array([__version__] * n, pa.string()))
        else:
            arrays.append(pa.array(cols[field.name], field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


class _ShardWriter:
    """Writes rows as Parquet shards, each atomically (hidden temporary file, fsync,
    ``os.replace``), in a background thread: building the Arrow table, compressing and syncing
    a shard overlap the inference of the next films. At most two shards wait in its queue."""

    def __init__(self, out: Path, schema: Any, shard_size: int, ref: _ModelRef) -> None:
        self.out = out
        self.schema = schema
        self.shard_size = shard_size
        self.ref = ref
        self.run = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{secrets.token_hex(3)}"
        self.seq = 0
        self.rows = 0  # rows in shards on disk (this run)
        self._buffer: list[Any] = []
        self._buffered = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="pneumozoo-screen-writer",
                                        daemon=True)
        self._thread.start()

    def add(self, rows: Any) -> None:
        """Queue rows: a ``pyarrow.Table`` of the schema or a dict of columns (``_Rows.take``)."""
        self._raise()
        while True:
            try:
                self._queue.put(rows, timeout=0.5)
                return
            except queue.Full:
                self._raise()

    def close(self) -> None:
        """Write what is queued and buffered (the last shard may be short); wait for it."""
        self.add(None)
        self._thread.join()
        self._raise()

    def abort(self) -> None:
        """Stop after the shards already queued (whole shards only); wait for it."""
        if self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put(False, timeout=30)
            self._thread.join(timeout=60)

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _work(self) -> None:
        pa = _need_pyarrow()
        try:
            while True:
                item = self._queue.get()
                if item is False:
                    return
                if item is None:
                    while self._buffered:
                        self._flush(min(self._buffered, self.shard_size))
                    return
                table = item if isinstance(item, pa.Table) else _to_table(item, self.schema,
                                                                          self.ref)
                if table.num_rows:
                    self._buffer.append(table)
                    self._buffered += table.num_rows
                while self._buffered >= self.shard_size:
                    self._flush(self.shard_size)
        except BaseException as e:  # re-raised in the producing thread
            self._error = e
            with contextlib.suppress(queue.Empty):  # unblock a producer waiting on a full queue
                while True:
                    self._queue.get_nowait()

    def _flush(self, n: int) -> None:
        pa = _need_pyarrow()
        # lazy: optional extra (pyarrow)
        import pyarrow.parquet as pq

        table = pa.concat_tables(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        head, rest = table.slice(0, n), table.slice(n)
        path = self.out / f"part-{self.run}-{self.seq:06d}.parquet"
        with atomic_output(path) as f:
            pq.write_table(head, f, compression="zstd")
        self.seq += 1
        self.rows += n
        self._buffer = [rest] if rest.num_rows else []
        self._buffered = rest.num_rows


def _shards(out: Path) -> list[Path]:
    return sorted(out.glob(_SHARD_GLOB))


def _load_done(out: Path, ref: _ModelRef) -> _DoneIndex:
    # lazy: optional extra (pyarrow)
    import pyarrow.parquet as pq

    done = _DoneIndex()
    for shard in _shards(out):
        table = pq.read_table(shard, columns=["path", "size", "mtime", "weights_sha256"])
        shas = set(table.column("weights_sha256").unique().to_pylist())
        if shas - {ref.weights_sha256}:
            raise PneumozooError(f"{out}: holds results of another model (weights sha256 "
                                 f"{sorted(shas)[0][:12]}..., this run: {ref.weights_sha256[:12]}...); "
                                 "screen into another --out folder")
        mtimes = table.column("mtime").cast("int64").to_pylist()
        done.add_many(_film_key(p, s, m) for p, s, m in
                      zip(table.column("path").to_pylist(), table.column("size").to_pylist(),
                          mtimes, strict=True))
    return done


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """One screen at a time per output folder (a stale lock of a killed run is taken over)."""
    lock = out / _LOCK_FILE
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or "0")
            except (OSError, ValueError):
                pid = 0
            alive = False
            if pid > 0:
                try:
                    os.kill(pid, 0)
                    alive = pid != os.getpid()
                except ProcessLookupError:
                    alive = False
                except PermissionError:
                    alive = True
            if alive:
                raise PneumozooError(f"{out}: another screen (pid {pid}) is writing here") from None
            with contextlib.suppress(OSError):
                lock.unlink()
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        break
    else:
        raise PneumozooError(f"{out}: cannot take the lock {lock}")
    try:
        for stale in out.glob(".part-*.tmp"):  # temporary shards of a killed run
            with contextlib.suppress(OSError):
                stale.unlink()
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()


# --- the pending films -------------------------------------------------------------------
_Film = tuple[str, "int | None", "int | None", "str | None"]


def _pending(source: Any, done: _DoneIndex, counter: dict[str, int]) -> Iterator[_Film]:
    """Films of the source not yet in the output (each once), with their size and mtime."""
    for path in iter_source(source):
        size, mtime_ns, error = _stat_film(path)
        key = _film_key(path, size, mtime_ns)
        if key in done:
            counter["skipped"] += 1
            continue
        done.add_many((key,))
        yield path, size, mtime_ns, error


def _chunks(films: Iterator[_Film], n: int, first: int | None = None) -> Iterator[list[_Film]]:
    """Lists of ``n`` films (the first of ``first``, when given: the model starts sooner)."""
    chunk: list[_Film] = []
    size = first or n
    for film in films:
        chunk.append(film)
        if len(chunk) >= size:
            yield chunk
            chunk = []
            size = n
    if chunk:
        yield chunk


def _threaded(it: Iterator[Any], maxsize: int = 2) -> Iterator[Any]:
    """Run an iterator in a thread, through a bounded queue (listing overlaps predicting)."""
    q: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
    end = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in it:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", end))
        except BaseException as e:
            q.put(("error", e))

    thread = threading.Thread(target=produce, name="pneumozoo-screen-source", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()


# --- engines -------------------------------------------------------------------------------
class _Clock:
    """When the run started and when its first predictions came out (for the steady rate)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first: float | None = None
        self.first_rows = 0

    def output(self, rows: int) -> None:
        if self.first is None:
            self.first = time.perf_counter()
            self.first_rows = rows


def _run_local(clf: Any, films: Iterator[_Film], writer: _ShardWriter, clock: _Clock, *,
               batch_size: int, workers: int, threshold: float | None,
               progress: Callable[[int], None] | None) -> None:
    # One reader pipeline per segment of films (not per shard); shards are cut from its
    # output and written by the writer thread while the model goes on.
    rows = _Rows(clf.class_names)
    segments = _threaded(_chunks(films, max(writer.shard_size, _SEGMENT), first=8 * batch_size))
    for film, pred in _iter_predicted(clf, segments, batch_size=batch_size, workers=workers,
                                      threshold=threshold):
        if clock.first is None:
            clock.output(batch_size)  # a batch of predictions comes out at once
        rows.add(film, pred)
        if len(rows) >= writer.shard_size:
            writer.add(rows.take())
            if progress is not None:
                progress(writer.rows)
    if len(rows):
        writer.add(rows.take())
    writer.close()
    if progress is not None:
        progress(writer.rows)


class _RayScreener:
    """Ray Data actor: loads the model once, then screens batches of the path list."""

    def __init__(self, ref: _ModelRef, batch_size: int, workers: int,
                 threshold: float | None) -> None:
        quiet_tensorflow()
        self.ref = ref
        self.clf = _load_ref(ref)
        self.schema = _schema(self.clf.class_names)
        self.batch_size = batch_size
        self.workers = workers
        self.threshold = threshold

    def __call__(self, batch: Any) -> Any:
        films = list(zip(batch.column("path").to_pylist(), batch.column("size").to_pylist(),
                         batch.column("mtime_ns").to_pylist(), batch.column("error").to_pylist(),
                         strict=True))
        cols = _predict_rows(self.clf, films, batch_size=self.batch_size, workers=self.workers,
                             threshold=self.threshold)
        return _to_table(cols, self.schema, self.ref)


def _ray_connect(address: str) -> Any:
    ray = _need_ray()
    if not ray.is_initialized():
        ray.init(address=None if address == "local" else address, ignore_reinit_error=True,
                 log_to_driver=False, logging_level="ERROR")
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    with contextlib.suppress(AttributeError):
        ctx.print_on_execution_start = False
    return ray


def _ray_group(count: int, actors: int, batch_size: int, shard_size: int) -> int:
    """Films per Ray Data batch (one actor call): large, to amortise Ray's per-batch cost and
    the actor's reader pipeline restarting per call, yet about 8 per actor so that no actor
    idles long at the end; a multiple of ``batch_size``, at least four forward passes and
    otherwise at most a shard (the writer cuts shards from the batches either way)."""
    per_actor = -(-count // (8 * actors))
    group = max(4 * batch_size, min(shard_size, per_actor))
    return max(batch_size, -(-group // batch_size) * batch_size)


def _run_ray(address: str, films: Iterator[_Film], writer: _ShardWriter, clock: _Clock, *,
             batch_size: int, workers: int, threshold: float | None, actors: int | None,
             progress: Callable[[int], None] | None) -> None:
    pa = _need_pyarrow()
    # lazy: optional extra (pyarrow)
    import pyarrow.parquet as pq

    ray = _ray_connect(address)
    # The path list, written once (streamed, in row groups Ray reads in parallel) and read by
    # Ray Data: the cluster's nodes need the output folder and the films at the same paths.
    pending = writer.out / f".pending-{writer.run}.parquet"
    list_schema = pa.schema([("path", pa.string()), ("size", pa.int64()),
                             ("mtime_ns", pa.int64()), ("error", pa.string())])
    count = 0
    try:
        with pq.ParquetWriter(pending, list_schema) as pw:
            for chunk in _chunks(films, 4096):
                cols = list(zip(*chunk, strict=True))
                pw.write_table(pa.Table.from_arrays([pa.array(c, t.type) for c, t in
                                                     zip(cols, list_schema, strict=True)],
                                                    schema=list_schema))
                count += len(chunk)
        if count:
            resources = ray.cluster_resources()
            gpus = int(resources.get("GPU", 0))
            cpus = int(resources.get("CPU", 1))
            n = actors or (gpus if gpus else max(1, cpus // 2))
            group = _ray_group(count, n, batch_size, writer.shard_size)
            # Reading the path list is light: a quarter CPU per read task. The actors share
            # what leaves one CPU free for Ray Data's own tasks (actors on every CPU would
            # leave none, and the job would wait for ever). These are Ray's logical CPUs:
            # TensorFlow in an actor still uses the cores it finds.
            read_cpus = 0.25
            actor_cpus = 1.0 if gpus else min(1.0, max(0.05, (cpus - 1) / n))
            # The list comes back as one block whatever its row groups: split it into blocks
            # of about ``group`` films, each one actor call (one block would keep all but one
            # actor idle). This holds the path list (not the films) in Ray's object store.
            blocks = max(1, -(-count // group))
            ds = ray.data.read_parquet(str(pending), override_num_blocks=blocks,
                                       ray_remote_args={"num_cpus": read_cpus})
            if blocks > 1:
                ds = ds.repartition(blocks)
            ds = ds.map_batches(_RayScreener, batch_format="pyarrow", batch_size=None,
                                fn_constructor_args=(writer.ref, batch_size, workers, threshold),
                                concurrency=n, num_gpus=1 if gpus else 0, num_cpus=actor_cpus)
            for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                clock.output(table.num_rows)
                writer.add(table.select(writer.schema.names).cast(writer.schema))
                if progress is not None:
                    progress(writer.rows)
        writer.close()
    finally:
        writer.abort()
        with contextlib.suppress(OSError):
            pending.unlink()


# --- summary ------------------------------------------------------------------------------
def _summarise(out: Path) -> dict[str, Any]:
    # lazy: optional extra (pyarrow)
    import pyarrow.parquet as pq

    counts = {"films": 0, "errors": 0, "out_of_domain": 0}
    labels: dict[str, int] = {}
    shards = _shards(out)
    for shard in shards:
        t = pq.read_table(shard, columns=["error", "in_domain", "label"])
        counts["films"] += t.num_rows
        counts["errors"] += t.num_rows - t.column("error").null_count
        counts["out_of_domain"] += sum(1 for v in t.column("in_domain").to_pylist() if v is False)
        for v in t.column("label").to_pylist():
            if v is not None:
                labels[v] = labels.get(v, 0) + 1
    return {**counts, "labels": dict(sorted(labels.items())), "shards": len(shards)}


def read_results(out: str | os.PathLike[str]) -> Any:
    """Every row of a screen's output as one ``pyarrow.Table`` (needs the shards to fit memory).

    Args:
        out: The output folder of :func:`screen`.

    Returns:
        The rows of all shards (``.to_pandas()`` for a DataFrame).

    Example:
        >>> read_results("screened/").to_pandas().label.value_counts()  # doctest: +SKIP
    """
    pa = _need_pyarrow()
    # lazy: optional extra (pyarrow)
    import pyarrow.parquet as pq

    shards = _shards(Path(os.fspath(out)))
    if not shards:
        raise PneumozooError(f"{out}: no screen results (part-*.parquet) here")
    return pa.concat_tables([pq.read_table(s) for s in shards], promote_options="default")


# --- the public function ---------------------------------------------------------------------
def screen(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    model: Any = None,
    ray: str | None = None,
    batch_size: int = 32,
    workers: int = 2,
    shard_size: int = DEFAULT_SHARD_SIZE,
    threshold: float | None = None,
    revision: str | None = None,
    ray_actors: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ScreenResult:
    """Screen an archive of films into Parquet shards, resumably (see the module docstring).

    Args:
        source: A folder tree of films, a ``.csv`` / ``.parquet`` list of paths (a ``path``
            column; relative paths are relative to the list's folder) or one film.
        out: Output folder: ``part-*.parquet`` shards and ``summary.json``. A rerun into the
            same folder (same model) skips films already written and screens the rest.
        model: A registry name, model folder or ``hf://`` repo, or a loaded pneumozoo model;
            ``None``: the default model.
        ray: ``None`` (default): this process, pneumozoo's own reader threads. ``"auto"`` (a
            running cluster, ``ray.init(address="auto")``), ``"HOST:PORT"`` or
            ``"ray://HOST:PORT"``: Ray Data on that cluster; ``"local"``: a Ray instance
            started in this process.
        batch_size: Films per forward pass.
        workers: Reader threads decoding films (per Ray actor with ``ray``).
        shard_size: Films per Parquet shard.
        threshold: Decision threshold on P(pneumonia); default: the model's.
        revision: Hub revision when ``model`` is ``hf://``.
        ray_actors: Model actors on the cluster (default: one per GPU, or one per two CPUs).
        progress: Called as ``progress(films_written_this_run)`` after each shard or batch.

    Returns:
        A :class:`ScreenResult` (also written, with more, to ``out/summary.json``).

    Raises:
        PneumozooError: For a missing source, a missing extra (``screen`` for pyarrow, ``ray``
            for Ray), an output folder holding another model's results, or a bad argument.

    Example:
        >>> from pneumozoo import screen
        >>> screen("archive/", "screened/", model="xraynet-binary-v2").films  # doctest: +SKIP
        100000
    """
    _need_pyarrow()
    if ray is not None:
        _need_ray()
    for name, value in (("batch_size", batch_size), ("workers", workers),
                        ("shard_size", shard_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PneumozooError(f"{name} must be a positive integer, got {value!r}")
    if ray_actors is not None and (not isinstance(ray_actors, int) or ray_actors < 1):
        raise PneumozooError(f"ray_actors must be a positive integer, got {ray_actors!r}")
    src = Path(os.fspath(source)).expanduser()
    if not src.exists():
        raise PneumozooError(f"{src}: no such file or folder")
    out_dir = Path(os.fspath(out)).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    clf, ref = _resolve_model(model, revision)
    if threshold is not None:
        # lazy: loads Keras and its backend
        from pneumozoo.models.head import check_threshold

        threshold = check_threshold(threshold)
    schema = _schema(clf.class_names)
    with _locked(out_dir):
        done = _load_done(out_dir, ref)
        counter = {"skipped": 0}
        films = _pending(src, done, counter)
        writer = _ShardWriter(out_dir, schema, shard_size, ref)
        clock = _Clock()
        try:
            if ray is None:
                _run_local(clf, films, writer, clock, batch_size=batch_size, workers=workers,
                           threshold=threshold, progress=progress)
            else:
                _run_ray(ray, films, writer, clock, batch_size=batch_size, workers=workers,
                         threshold=threshold, actors=ray_actors, progress=progress)
        finally:
            writer.abort()
        ended = time.perf_counter()
        seconds = ended - clock.start
        steady = 0.0
        first_output = 0.0
        if clock.first is not None:
            first_output = clock.first - clock.start
            rest = writer.rows - min(clock.first_rows, writer.rows)
            steady = rest / (ended - clock.first) if rest and ended > clock.first else 0.0
        totals = _summarise(out_dir)

        result = ScreenResult(
            out=str(out_dir), engine="local" if ray is None else "ray", films=totals["films"],
            written=writer.rows, skipped=counter["skipped"], errors=totals["errors"],
            out_of_domain=totals["out_of_domain"], shards=totals["shards"],
            seconds=round(seconds, 3),
            films_per_second=round(writer.rows / seconds, 3) if seconds > 0 else 0.0,
            model=ref.name, weights_sha256=ref.weights_sha256,
            first_output_seconds=round(first_output, 3),
            steady_films_per_second=round(steady, 3))
        summary = {**result.to_dict(), "labels": totals["labels"],
                   "source": os.path.abspath(src), "ray": ray, "batch_size": batch_size,
                   "workers": workers, "shard_size": shard_size,
                   "seconds_with_model_load": round(time.perf_counter() - started, 3),
                   "pneumozoo_version": __version__,
                   "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}

        with atomic_output(out_dir / SUMMARY_FILE) as f:
            f.write(json.dumps(summary, indent=2, allow_nan=False).encode())
    return result

"""Publish and fetch pneumozoo model folders on the Hugging Face Hub.

A Hub repo in pneumozoo's format is a model folder (see :mod:`pneumozoo.pretrained.folder`):
Keras's native ``config.json`` / ``metadata.json`` / ``model.weights.h5`` (the model with every
setting it decides with), plus ``pneumozoo.json`` (provenance, metrics and the sha256 of each
Keras file) and a ``README.md`` model card.

Downloads go through ``huggingface_hub.snapshot_download`` and its normal cache, so
``HF_ENDPOINT`` (mirrors), ``HF_HOME`` / ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE=1`` work as with
any Hub library; this module reads them when it is called (``huggingface_hub`` itself reads
them once, at import). Every download is checked against the sha256s of ``pneumozoo.json``; a
file that does not match is removed from the cache, so it is never served again as good.

Network waits are bounded by ``timeout`` (default :data:`DEFAULT_TIMEOUT` seconds, or the
``PNEUMOZOO_HUB_TIMEOUT`` environment variable): the revision is resolved with that timeout
before ``snapshot_download`` runs, so an unreachable or hung Hub fails fast (or falls back to a
cached copy). File transfers use ``huggingface_hub``'s own timeout and retries
(``HF_HUB_DOWNLOAD_TIMEOUT``).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pneumozoo._version import __version__
from pneumozoo.errors import DownloadError, IntegrityError, InvalidRevisionError, PneumozooError
from pneumozoo.utils import sha256_file
from pneumozoo.zoo.card import model_card
from pneumozoo.zoo.config import CONFIG_FILE, WEIGHT_FILES, PretrainedConfig

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from pneumozoo.zoo.config import PretrainedConfig

__all__ = ["DEFAULT_TIMEOUT", "check_revision", "download_model", "push_to_hub", "split_repo_ref"]

logger = logging.getLogger(__name__)

#: Seconds to wait for the Hub to answer (``PNEUMOZOO_HUB_TIMEOUT`` overrides it).
DEFAULT_TIMEOUT = 10.0
_README = "README.md"


def _model_files() -> tuple[str, ...]:
    return (*WEIGHT_FILES, CONFIG_FILE, _README)


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _endpoint() -> str:
    # lazy: the Hub client: only downloads and uploads need it
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _offline() -> bool:
    # lazy: the Hub client: only downloads and uploads need it
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or _env_true("HF_HUB_OFFLINE")


def _cache_root(cache_dir: str | Path | None) -> Path:
    # lazy: the Hub client: only downloads and uploads need it
    from huggingface_hub import constants

    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)


def _timeout(timeout: float | None) -> float:
    if timeout is not None:
        return float(timeout)
    text = os.environ.get("PNEUMOZOO_HUB_TIMEOUT", "")
    try:
        return float(text) if text else DEFAULT_TIMEOUT
    except ValueError:
        raise PneumozooError(f"PNEUMOZOO_HUB_TIMEOUT={text!r}: expected seconds") from None


def split_repo_ref(text: str) -> tuple[str, str | None]:
    """Split ``owner/repo@revision`` (``hf://`` prefix optional) into ``(repo_id, revision)``.

    Args:
        text: ``owner/repo``, ``owner/repo@revision`` or the same with ``hf://`` in front.

    Returns:
        ``(repo_id, revision)``; revision is None when absent.

    Raises:
        PneumozooError: If the text is not of that form.

    Example:
        >>> split_repo_ref("hf://me/xraynet@v1")
        ('me/xraynet', 'v1')
    """
    body = text[len("hf://"):] if text.startswith("hf://") else text
    repo, _, revision = body.partition("@")
    _check_repo_id(repo, text)
    if revision:
        check_revision(revision, text)
    return repo, revision or None


_COMMIT = re.compile(r"[0-9a-f]{40}")
_REF_FORBIDDEN = " ~^:?*[\\"


def _ref_rule(revision: str) -> str | None:
    """The git ref-name rule (``git check-ref-format``) ``revision`` breaks, or None."""
    if not revision:
        return "it is empty"
    if len(revision) > 255:
        return "it is longer than 255 characters"
    if revision == "@":
        return "it is the single character '@'"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in revision):
        return "it holds a control character"
    bad = sorted({c for c in revision if c in _REF_FORBIDDEN})
    if bad:
        return f"it holds {', '.join(repr(c) for c in bad)}"
    if ".." in revision:
        return "it holds '..'"
    if "@{" in revision:
        return "it holds '@{'"
    if revision.startswith("/") or revision.endswith("/") or "//" in revision:
        return "it has an empty path component ('/' at either end, or '//')"
    if revision.startswith("-"):
        return "it starts with '-'"
    if revision.endswith("."):
        return "it ends with '.'"
    for part in revision.split("/"):
        if part.startswith("."):
            return f"its component {part!r} starts with '.'"
        if part.endswith(".lock"):
            return f"its component {part!r} ends with '.lock'"
    return None


def check_revision(revision: str, uri: str) -> str:
    """Refuse a revision that is neither a 40-hex commit hash nor a valid git ref name.

    ``huggingface_hub`` writes ``refs/<revision>`` in its cache, so ``../..`` in a revision
    would write outside it; the rules are git's (``git check-ref-format``), plus no leading
    ``-``. Checked before any Hub call.

    Args:
        revision: Branch, tag or commit.
        uri: What the user asked for, named in the error message.

    Returns:
        ``revision``.

    Raises:
        InvalidRevisionError: One line naming the revision and the rule it breaks.

    Example:
        >>> check_revision("../../tmp/x", "hf://me/m@../../tmp/x")
        Traceback (most recent call last):
        ...
        pneumozoo.errors.InvalidRevisionError: hf://me/m@../../tmp/x: revision '../../tmp/x' is not a 40-hex commit hash nor a valid git ref name: it holds '..'
    """
    if not uri.isprintable():
        uri = repr(uri)[1:-1]  # keep the message on one line
    if not isinstance(revision, str):
        raise InvalidRevisionError(f"{uri}: revision {revision!r} must be a string")
    if _COMMIT.fullmatch(revision):
        return revision
    rule = _ref_rule(revision)
    if rule:
        raise InvalidRevisionError(f"{uri}: revision {revision!r} is not a 40-hex commit hash "
                                   f"nor a valid git ref name: {rule}")
    return revision


def _check_repo_id(repo_id: str, uri: str) -> None:
    # lazy: the Hub client: only downloads and uploads need it
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        if repo_id.count("/") != 1:
            raise HFValidationError("expected owner/name")
        validate_repo_id(repo_id)
    except HFValidationError:
        raise PneumozooError(f"{uri}: not a Hub repo id; expected owner/name or owner/name@revision"
                             ) from None


# --- errors ------------------------------------------------------------------------------
def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _class_names(error: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(error).__mro__}


_TIMEOUTS = {"TimeoutException", "Timeout", "TimeoutError", "ReadTimeout", "ConnectTimeout"}
_CONNECT = {"ConnectError", "ConnectionError", "ProxyError", "NetworkError"}
_TRUNCATED = {"RemoteProtocolError", "ChunkedEncodingError", "IncompleteRead", "ProtocolError"}


def _describe(error: BaseException, uri: str, endpoint: str, timeout: float) -> str:
    """One line saying why a Hub call failed, from huggingface_hub / httpx / requests errors."""
    # lazy: the Hub client: only downloads and uploads need it
    from huggingface_hub import errors as hf

    revision = uri.partition("@")[2] or "main"
    for e in _chain(error):
        if isinstance(e, hf.OfflineModeIsEnabled):
            return f"{uri}: offline mode is on (HF_HUB_OFFLINE=1) and no complete copy is cached"
        if isinstance(e, hf.GatedRepoError):
            return f"{uri}: gated repository; accept its conditions on the Hub and log in"
        if isinstance(e, hf.RepositoryNotFoundError):
            return f"{uri}: repository not found (or private)"
        if isinstance(e, hf.RevisionNotFoundError):
            return f"{uri}: revision {revision!r} not found"
        if isinstance(e, hf.RemoteEntryNotFoundError):
            return f"{uri}: a file listed by the repository is missing on the server"
        if isinstance(e, hf.HfHubHTTPError) and getattr(e, "response", None) is not None:
            status = e.response.status_code
            if status >= 500:
                return f"{uri}: {endpoint} answered HTTP {status} (server error); try again later"
            if status in (401, 403):
                return (f"{uri}: access denied (HTTP {status}); log in with `hf auth login` "
                        "or set HF_TOKEN")
            return f"{uri}: {endpoint} answered HTTP {status} ({_first_line(e)})"
        names = _class_names(e)
        if names & _TIMEOUTS:
            return f"{uri}: {endpoint} did not answer within {timeout:g} s (timeout)"
        if names & _TRUNCATED or "Consistency check failed" in str(e):
            return (f"{uri}: download interrupted, a file arrived truncated ({_first_line(e)}); "
                    "nothing partial was kept, try again")
        if names & _CONNECT:
            return f"{uri}: cannot connect to {endpoint} ({_first_line(e)})"
    return f"{uri}: download failed ({type(error).__name__}: {_first_line(error)})"


def _unreachable(error: BaseException) -> bool:
    """True when the Hub could not be asked (down, hung, offline): a cached copy may serve."""
    # lazy: the Hub client: only downloads and uploads need it
    from huggingface_hub import errors as hf

    for e in _chain(error):
        if isinstance(e, hf.HfHubHTTPError) and getattr(e, "response", None) is not None:
            return bool(e.response.status_code >= 500)
        if isinstance(e, hf.OfflineModeIsEnabled) or _class_names(e) & (_TIMEOUTS | _CONNECT):
            return True
    return False


# --- download ----------------------------------------------------------------------------
def download_model(
    repo_id: str,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    timeout: float | None = None,
) -> Path:
    """Fetch a pneumozoo model folder from the Hub into the Hugging Face cache.

    Only the folder's files are fetched (``config.json``, ``metadata.json``,
    ``model.weights.h5``, ``pneumozoo.json``, ``README.md``), at a pinned revision, through
    ``huggingface_hub.snapshot_download`` (resumable cache, shared with other Hub libraries).
    Their sha256s are then checked against ``pneumozoo.json``; files that do not match are
    deleted from the cache before :class:`IntegrityError` is raised.

    With ``HF_HUB_OFFLINE=1`` nothing is downloaded and the cached copy is used. When the Hub
    is unreachable, hung or answers 5xx, a cached copy of the same revision is used with a
    warning; without one, :class:`DownloadError` is raised.

    Args:
        repo_id: ``owner/name`` of the Hub repo.
        revision: Branch, tag or commit (default ``"main"``); a commit hash pins the files.
        cache_dir: Hub cache folder (default: ``HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
            ``~/.cache/huggingface/hub``).
        timeout: Seconds to wait for the Hub to answer (default ``PNEUMOZOO_HUB_TIMEOUT`` or
            :data:`DEFAULT_TIMEOUT`).

    Returns:
        The local folder (a snapshot inside the cache), ready for
        :func:`pneumozoo.pretrained.load_folder`.

    Raises:
        DownloadError: Unknown repo or revision, offline and not cached, connection refused,
            timeout, HTTP error, truncated transfer (one line, no traceback needed).
        IntegrityError: A file's sha256 does not match ``pneumozoo.json``.
        PneumozooError: The repo id is malformed, or the repo is not a pneumozoo model folder.

    Example:
        >>> from pneumozoo.hub import download_model
        >>> folder = download_model("me/xraynet-binary", revision="v1")  # doctest: +SKIP
        >>> sorted(p.name for p in folder.iterdir())  # doctest: +SKIP
        ['README.md', 'config.json', 'metadata.json', 'model.weights.h5', 'pneumozoo.json']
    """
    # lazy: the Hub client: only downloads and uploads need it
    from huggingface_hub import HfApi, snapshot_download

    uri = f"hf://{repo_id}@{revision}" if revision else f"hf://{repo_id}"
    _check_repo_id(repo_id, uri)
    if revision is not None:
        check_revision(revision, uri)
    endpoint, cache, seconds = _endpoint(), _cache_root(cache_dir), _timeout(timeout)
    _clean_incomplete(cache, repo_id)
    options: dict[str, Any] = dict(
        revision=revision or "main", cache_dir=str(cache), endpoint=endpoint,
        library_name="pneumozoo", library_version=__version__,
        allow_patterns=list(_model_files()), etag_timeout=seconds,
    )

    def from_cache(cause: BaseException | None) -> Path:
        try:
            return Path(snapshot_download(repo_id, local_files_only=True, **options))
        except Exception as e:
            if cause is None:
                raise DownloadError(f"{uri}: not in the Hugging Face cache ({cache}) and offline "
                                    "mode (HF_HUB_OFFLINE=1) forbids downloading it") from e
            raise DownloadError(_describe(cause, uri, endpoint, seconds)
                                + "; no cached copy either") from cause

    if _offline():
        folder = from_cache(None)
    else:
        api = HfApi(endpoint=endpoint, library_name="pneumozoo", library_version=__version__)
        try:  # resolve the revision with a bounded wait (snapshot_download's own call has none)
            api.model_info(repo_id, revision=options["revision"], timeout=seconds)
        except Exception as e:
            if not _unreachable(e):
                raise DownloadError(_describe(e, uri, endpoint, seconds)) from e
            folder = from_cache(e)
            logger.warning("%s; using the cached copy %s", _describe(e, uri, endpoint, seconds),
                           folder)
        else:
            try:
                folder = Path(snapshot_download(repo_id, **options))
            except Exception as e:
                raise DownloadError(_describe(e, uri, endpoint, seconds)) from e
    _verify_download(folder, uri, cache)
    return folder


def _clean_incomplete(cache: Path, repo_id: str) -> None:
    """Delete the ``*.incomplete`` files a killed download left in the repo's cache folder.

    A file whose download lock another process holds is still being written: it stays.
    """
    # lazy: only downloads need it
    from filelock import FileLock, Timeout
    from huggingface_hub.file_download import repo_folder_name

    folder_name = repo_folder_name(repo_id=repo_id, repo_type="model")
    blobs = cache / folder_name / "blobs"
    if not blobs.is_dir():
        return
    for leftover in blobs.glob("*.incomplete"):
        if leftover.is_symlink() or not leftover.is_file():
            continue
        etag = leftover.name.split(".", 1)[0]
        lock = cache / ".locks" / folder_name / f"{etag}.lock"
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(lock), timeout=0):
                leftover.unlink(missing_ok=True)
                logger.info("removed %s, left by an interrupted download", leftover)
        except (Timeout, OSError):
            continue  # another process is downloading it, or the cache is read-only


def _verify_download(folder: Path, uri: str, cache: Path) -> None:
    """Check sha256s against pneumozoo.json; delete bad files from the cache, then raise."""
    # lazy: loads Keras and its backend
    from pneumozoo.pretrained.folder import stored_files, verify_folder

    if not (folder / CONFIG_FILE).is_file():
        raise PneumozooError(f"{uri}: not a pneumozoo model repository (no {CONFIG_FILE})")
    files = stored_files(folder)
    try:
        verify_folder(folder)
    except IntegrityError as e:
        bad = [name for name in WEIGHT_FILES
               if (folder / name).is_file() and files.get(name)
               and sha256_file(folder / name) != files[name]]
        if not bad:
            raise IntegrityError(f"{uri}: {e}") from None
        _evict(folder, bad, cache)
        raise IntegrityError(
            f"{uri}: sha256 of {', '.join(bad)} does not match {CONFIG_FILE} (corrupt or tampered "
            "download); removed from the cache, nothing was loaded") from None


def _evict(folder: Path, names: list[str], cache: Path) -> None:
    """Delete snapshot entries and the blobs they point to, so the cache never serves them."""
    root = os.path.realpath(cache)
    for name in names:
        pointer = folder / name
        blob = os.path.realpath(pointer)
        pointer.unlink(missing_ok=True)
        if blob != str(pointer) and os.path.commonpath([root, blob]) == root:
            Path(blob).unlink(missing_ok=True)


# --- upload ------------------------------------------------------------------------------
def push_to_hub(
    model_or_folder: keras.Model | str | Path,
    repo_id: str,
    *,
    config: PretrainedConfig | None = None,
    revision: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
    token: str | None = None,
    create_pr: bool = False,
) -> str:
    """Publish a pneumozoo model folder to a Hub repo (created if missing).

    A folder is checked against its ``pneumozoo.json`` sha256s first (a corrupt folder is
    never published); a Keras model is written with
    :func:`~pneumozoo.pretrained.folder.save_folder` into a temporary folder. A model card
    (:func:`~pneumozoo.zoo.card.model_card`) is added when the folder has no
    ``README.md``. Only the model-folder files are uploaded.

    Args:
        model_or_folder: A model folder, or a pneumozoo model (its class names, size and
            threshold come from the model; pass ``config`` for provenance and metrics).
        repo_id: ``owner/name`` of the Hub repo.
        config: The :class:`~pneumozoo.zoo.config.PretrainedConfig` of a Keras model.
        revision: Branch to commit to (created from ``main`` if missing); default ``main``.
        private: Create the repo as private (an existing repo keeps its visibility).
        commit_message: Commit title (default ``"Upload <name> with pneumozoo"``).
        token: Hub token (default: the logged-in token or ``HF_TOKEN``).
        create_pr: Open a pull request against ``main`` instead of committing to it.

    Returns:
        The id of the new commit: load exactly this upload with ``hf://owner/name@<id>``.

    Raises:
        PneumozooError: Not a model folder, no config for a Keras model, or the Hub refused
            (one line: authentication, network, HTTP status).
        IntegrityError: The folder's files do not match its ``pneumozoo.json``.

    Example:
        >>> from pneumozoo import push_to_hub
        >>> commit = push_to_hub("runs/xraynet/model", "me/xraynet-binary")  # doctest: +SKIP
        >>> model = load_pretrained(f"hf://me/xraynet-binary@{commit}")  # doctest: +SKIP
    """
    # lazy: the Hub client: only downloads and uploads need it
    from huggingface_hub import HfApi

    # lazy: loads Keras and its backend
    from pneumozoo.pretrained.folder import save_folder, verify_folder

    uri = f"hf://{repo_id}"
    _check_repo_id(repo_id, uri)
    if revision is not None:
        check_revision(revision, uri)
    if create_pr and revision not in (None, "main"):
        raise PneumozooError(f"{uri}: create_pr opens a pull request against main; "
                             "do not combine it with revision")
    endpoint = _endpoint()
    with tempfile.TemporaryDirectory(prefix="pneumozoo-push-") as tmp:
        if isinstance(model_or_folder, (str, os.PathLike)):
            folder = Path(model_or_folder)
            if not folder.is_dir():
                raise PneumozooError(f"{folder}: no such model folder")
            cfg = PretrainedConfig.read(folder)
            verify_folder(folder, cfg)
            if not (folder / _README).is_file():
                staged = Path(tmp) / "model"
                staged.mkdir()
                for name in _model_files():
                    if (folder / name).is_file():
                        shutil.copy2(folder / name, staged / name)
                (staged / _README).write_text(model_card(cfg, repo_id=repo_id), encoding="utf-8")
                folder = staged
        else:
            cfg_or_none = config or PretrainedConfig.from_model(
                model_or_folder, name=repo_id.rsplit("/", 1)[-1])
            folder = Path(tmp) / "model"
            cfg = save_folder(model_or_folder, folder, cfg_or_none)
            (folder / _README).write_text(model_card(cfg, repo_id=repo_id), encoding="utf-8")
        api = HfApi(endpoint=endpoint, token=token, library_name="pneumozoo",
                    library_version=__version__)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            if revision not in (None, "main"):
                api.create_branch(repo_id, branch=str(revision), exist_ok=True)
            info = api.upload_folder(
                repo_id=repo_id, folder_path=folder, revision=revision,
                allow_patterns=list(_model_files()), create_pr=create_pr,
                commit_message=commit_message or f"Upload {cfg.name} with pneumozoo",
            )
        except Exception as e:
            text = _describe(e, uri, endpoint, _timeout(None)).replace("download failed", "failed")
            raise PneumozooError(f"push to {text}") from e
    return str(info.oid)

"""A small fake Hugging Face Hub for tests (no tests in here).

It speaks the endpoints the installed ``huggingface_hub`` (2.x, httpx2 client) calls:

downloads (``snapshot_download`` / ``hf_hub_download`` / ``HfApi.model_info``)
    GET  /api/models/{repo}/revision/{rev}        -> {"id", "sha", "siblings": [{"rfilename"}]}
    GET  /api/models/{repo}/tree/{rev}[?recursive] -> [{"type": "file", "path", "size", "oid", "lfs"?}]
    HEAD /{repo}/resolve/{rev}/{path}              -> X-Repo-Commit, ETag (git blob id), for LFS
                                                      files X-Linked-Etag (sha256) + X-Linked-Size
    GET  /{repo}/resolve/{rev}/{path}              -> the bytes; ``Range: bytes=S-[E]`` -> 206
    Unknown repo / revision / file -> 404 with ``X-Error-Code: RepoNotFound`` /
    ``RevisionNotFound`` / ``EntryNotFound``, as the real Hub answers.

uploads (``HfApi.create_repo``, ``create_branch``, ``upload_folder``)
    POST /api/repos/create                 -> {"url"}; 409 if it exists
    POST /api/validate-yaml                -> 400 unless the README's YAML block is a mapping
    POST /api/models/{repo}/branch/{name}  -> {}; 409 if it exists
    POST /api/models/{repo}/preupload/{rev} -> uploadMode "regular" for every file
    POST /api/models/{repo}/commit/{rev}   -> NDJSON (header + base64 files) stored as a new commit

Failure switches (``hub.failure``): ``"500"`` every request answers HTTP 500; ``"truncate"``
file GETs announce the full Content-Length but the connection drops at half the file (a resumed
``Range`` request gets nothing more); ``"slow"`` every request waits ``slow_seconds`` first;
``"tamper"`` file GETs serve bytes that differ from the published ones (same size, same ETag).
``failure_files`` limits truncate/tamper to some paths (None: all).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

LFS_SUFFIXES = (".h5", ".keras", ".safetensors", ".bin", ".zip")


def git_blob_id(data: bytes) -> str:
    """The git object id of a blob (what the Hub reports as ``oid`` / ``ETag``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    private: bool = False

    def resolve(self, rev: str) -> str | None:
        if rev in self.refs:
            return self.refs[rev]
        return rev if rev in self.commits else None


@dataclass
class Seen:
    """One request the hub received (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]


class FakeHub:
    """The fake Hub: ``with FakeHub() as hub: hub.add_folder("me/model", folder)``."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.failure: str | None = None
        self.failure_files: set[str] | None = None
        self.slow_seconds = 5.0
        self.requests: list[Seen] = []
        self.validated: list[dict[str, Any]] = []  # README metadata checked by validate-yaml
        self.lock = threading.Lock()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.hub = self  # type: ignore[attr-defined]
        # A short poll interval: stop() waits for the serving loop to notice (0.5 s by default).
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._release.set()  # wake "slow" handlers
        self._server.shutdown()
        self._server.server_close()

    # --- content -----------------------------------------------------------------------
    def add_files(self, repo_id: str, files: dict[str, bytes], *, branch: str = "main",
                  message: str = "add files") -> str:
        """Commit ``files`` (replacing the branch's tree) and return the new commit id."""
        with self.lock:
            repo = self.repos.setdefault(repo_id, Repo())
            parent = repo.refs.get(branch, "")
            h = hashlib.sha1(f"{repo_id}\0{parent}\0{message}\0".encode())
            for path in sorted(files):
                h.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
            sha = h.hexdigest()
            repo.commits[sha] = dict(files)
            repo.refs[branch] = sha
            return sha

    def add_folder(self, repo_id: str, folder: str | Path, *, branch: str = "main") -> str:
        """Commit every file of ``folder`` (recursively); returns the commit id."""
        root = Path(folder)
        files = {p.relative_to(root).as_posix(): p.read_bytes()
                 for p in sorted(root.rglob("*")) if p.is_file()}
        return self.add_files(repo_id, files, branch=branch, message=f"add {root.name}")

    def files(self, repo_id: str, rev: str = "main") -> dict[str, bytes]:
        """The files of a repo at a revision."""
        repo = self.repos[repo_id]
        sha = repo.resolve(rev)
        assert sha is not None, rev
        return repo.commits[sha]

    def wait(self, seconds: float) -> None:
        self._release.wait(seconds)

    @property
    def stopped(self) -> bool:
        return self._release.is_set()

    def affects(self, path: str) -> bool:
        return self.failure_files is None or path in self.failure_files


_REPO = r"(?P<repo>[^/]+/[^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(rf"^/api/models/{_REPO}/revision/(?P<rev>[^/]+)$"), "model_info"),
    ("GET", re.compile(rf"^/api/models/{_REPO}$"), "model_info"),
    ("GET", re.compile(rf"^/api/models/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$"), "tree"),
    ("HEAD", re.compile(rf"^/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), "resolve"),
    ("GET", re.compile(rf"^/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), "resolve"),
    ("POST", re.compile(r"^/api/repos/create$"), "create_repo"),
    ("POST", re.compile(r"^/api/validate-yaml$"), "validate_yaml"),
    ("POST", re.compile(rf"^/api/models/{_REPO}/branch/(?P<branch>[^/]+)$"), "create_branch"),
    ("POST", re.compile(rf"^/api/models/{_REPO}/preupload/(?P<rev>[^/]+)$"), "preupload"),
    ("POST", re.compile(rf"^/api/models/{_REPO}/commit/(?P<rev>[^/]+)$"), "post_commit"),
]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: simple, and closes are clean
    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    @property
    def hub(self) -> FakeHub:
        return self.server.hub  # type: ignore[no-any-return]

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # --- plumbing ------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        hub = self.hub
        path = urlsplit(self.path).path
        with hub.lock:
            hub.requests.append(Seen(method, self.path, {k.lower(): v for k, v in self.headers.items()}))
        if hub.failure == "slow":
            hub.wait(hub.slow_seconds)
            if hub.stopped:
                return  # the client gave up long ago; do not write to a dead socket
        if hub.failure == "500":
            self._json(500, {"error": "Internal Error - We're working hard to fix this"})
            return
        for verb, pattern, name in _ROUTES:
            m = pattern.match(path)
            if verb == method and m:
                params = {k: unquote(v) for k, v in m.groupdict().items() if v is not None}
                getattr(self, f"_{name}")(method, **params)
                return
        self._json(404, {"error": "not found"})

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, code: str, message: str, status: int = 404) -> None:
        self._json(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

    def _repo(self, repo_id: str) -> Repo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self._error("RepoNotFound", "Repository not found")
        return repo

    def _sha(self, repo: Repo, rev: str) -> str | None:
        sha = repo.resolve(rev)
        if sha is None:
            self._error("RevisionNotFound", "Invalid rev id: " + rev)
        return sha

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    # --- download endpoints ----------------------------------------------------------------
    def _model_info(self, method: str, repo: str, rev: str = "main") -> None:
        r = self._repo(repo)
        sha = r and self._sha(r, rev)
        if r is None or sha is None:
            return
        files = r.commits[sha]
        self._json(200, {"id": repo, "modelId": repo, "sha": sha, "private": r.private,
                         "siblings": [{"rfilename": p} for p in sorted(files)]})

    def _tree(self, method: str, repo: str, rev: str, path: str = "") -> None:
        r = self._repo(repo)
        sha = r and self._sha(r, rev)
        if r is None or sha is None:
            return
        entries = []
        for name, data in sorted(r.commits[sha].items()):
            if path and not name.startswith(path.rstrip("/") + "/"):
                continue
            entry: dict[str, Any] = {"type": "file", "path": name, "size": len(data),
                                     "oid": git_blob_id(data)}
            if name.endswith(LFS_SUFFIXES):
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                                "pointerSize": 134}
            entries.append(entry)
        self._json(200, entries)

    def _resolve(self, method: str, repo: str, rev: str, path: str) -> None:
        hub = self.hub
        r = self._repo(repo)
        sha = r and self._sha(r, rev)
        if r is None or sha is None:
            return
        data = r.commits[sha].get(path)
        if data is None:
            self._error("EntryNotFound", f"{path} does not exist on {rev!r}")
            return
        size = len(data)
        headers = {"X-Repo-Commit": sha, "ETag": f'"{git_blob_id(data)}"', "Accept-Ranges": "bytes"}
        if path.endswith(LFS_SUFFIXES):
            headers["X-Linked-Etag"] = f'"{hashlib.sha256(data).hexdigest()}"'
            headers["X-Linked-Size"] = str(size)
        if hub.failure == "tamper" and hub.affects(path) and method == "GET":
            data = bytes([data[0] ^ 0xFF]) + data[1:]  # same size and headers, other bytes
        start, end = 0, size - 1
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        status = 200
        if m and method == "GET":
            start, end = int(m.group(1)), int(m.group(2) or size - 1)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if method == "HEAD":
            return
        stop = end + 1
        if hub.failure == "truncate" and hub.affects(path):
            stop = min(stop, size // 2)  # the connection always drops at the same byte
        self.wfile.write(data[start:max(start, stop)])
        self.wfile.flush()
        self.close_connection = True

    # --- upload endpoints -------------------------------------------------------------------
    def _create_repo(self, method: str) -> None:
        body = json.loads(self._body() or b"{}")
        repo_id = f"{body.get('organization') or 'user'}/{body['name']}"
        url = f"{self.hub.url}/{repo_id}"
        if repo_id in self.hub.repos:
            self._json(409, {"error": "You already created this model repo", "url": url})
            return
        self.hub.add_files(repo_id, {".gitattributes": b"*.h5 filter=lfs diff=lfs merge=lfs -text\n"},
                           message="initial commit")
        self.hub.repos[repo_id].private = body.get("visibility") == "private"
        self._json(200, {"url": url, "name": repo_id})

    def _validate_yaml(self, method: str) -> None:
        text = json.loads(self._body())["content"]
        m = re.match(r"^---\n(.*?)\n---\n", text, re.S)
        try:
            meta = yaml.safe_load(m.group(1)) if m else {}
            assert isinstance(meta, dict), "metadata must be a mapping"
            self.hub.validated.append(meta)
            self._json(200, {"warnings": []})
        except (yaml.YAMLError, AssertionError) as e:
            self._json(400, {"errors": [{"message": str(e)}]})

    def _create_branch(self, method: str, repo: str, branch: str) -> None:
        r = self._repo(repo)
        if r is None:
            return
        body = json.loads(self._body() or b"{}")
        if branch in r.refs:
            self._json(409, {"error": f"Reference {branch} already exists"})
            return
        start = self._sha(r, body.get("startingPoint", "main"))
        if start is not None:
            r.refs[branch] = start
            self._json(200, {})

    def _preupload(self, method: str, repo: str, rev: str) -> None:
        r = self._repo(repo)
        if r is None:
            return
        files = json.loads(self._body())["files"]
        current = r.commits.get(r.resolve(rev) or "", {})
        self._json(200, {"files": [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
             "oid": git_blob_id(current[f["path"]]) if f["path"] in current else None}
            for f in files]})

    def _post_commit(self, method: str, repo: str, rev: str) -> None:
        r = self._repo(repo)
        if r is None:
            return
        if rev not in r.refs:
            self._error("RevisionNotFound", f"Invalid rev id: {rev}")
            return
        files = dict(r.commits[r.refs[rev]])
        message = "commit"
        for line in self._body().splitlines():
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                message = value["summary"]
            elif key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                files.pop(value["path"], None)
            else:
                self._json(400, {"error": f"fake hub does not support {key!r} operations"})
                return
        sha = self.hub.add_files(repo, files, branch=rev, message=message)
        self._json(200, {"success": True, "commitOid": sha,
                         "commitUrl": f"{self.hub.url}/{repo}/commit/{sha}"})

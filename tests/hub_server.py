"""A small Hugging Face Hub-compatible HTTP server for offline tests (stdlib only).

It answers the requests that `huggingface_hub` (1.x and 2.x) sends for repo creation, whoami,
commits in "regular" upload mode, downloads (HEAD/GET on `resolve`, with `Range`), tree listings,
paths-info, repo info, commit and ref listings, and repo deletion. See /work/shared/HUB_PROTOCOL.md.

Everything lives in memory: a repo is a branch map (name -> commit sha) and commits that each hold
a full snapshot (path -> bytes) and their parent. Faults can be injected per request kind, and
downloads can be cut short to exercise the client's resume logic.

    with HubServer().start() as hub:
        api = HfApi(endpoint=hub.url, token=hub.token)
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import itertools
import json
import re
import socket
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

DEFAULT_TOKEN = "hf_testtoken_AAAAAAAAAAAAAAAAAAAAAAAAAAAA"
REPO_TYPES = ("model", "dataset", "space")
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
FAULT_KINDS = frozenset(
    {
        "commit", "create", "whoami", "resolve", "resolve-wheel", "tree", "paths-info", "preupload", "repo-info",
        "commits", "refs", "delete", "validate-yaml",
    }
)  # fmt: skip
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def _git_blob_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


# ---------------------------------------------------------------- state


@dataclass
class _Commit:
    sha: str
    parent: str | None
    files: dict[str, bytes]
    title: str
    message: str
    date: str


@dataclass
class _Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, _Commit] = field(default_factory=dict)
    next_pr: int = 1


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    cut_after: int | None = None  # close the connection after this many body bytes

    @classmethod
    def json(cls, status: int, data: Any, headers: dict[str, str] | None = None) -> _Response:
        h = {"Content-Type": "application/json", **(headers or {})}
        return cls(status, json.dumps(data).encode(), h)

    @classmethod
    def error(cls, status: int, message: str, code: str | None = None, **headers: str) -> _Response:
        h = {"X-Error-Message": message, **headers}
        if code is not None:
            h["X-Error-Code"] = code
        return cls.json(status, {"error": message}, h)


class _HTTPError(Exception):
    def __init__(self, response: _Response) -> None:
        super().__init__(response.status)
        self.response = response


# ---------------------------------------------------------------- HTTP plumbing


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TestHub/1.0"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr
        pass

    def setup(self) -> None:
        super().setup()
        self.server.hub._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.hub._track(self.connection, add=False)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        hub = self.server.hub
        hub._record(method, self.path, dict(self.headers.items()))
        try:
            body = self._read_body()
        except (ValueError, OSError, EOFError) as exc:
            self.close_connection = True
            self._send(method, _Response.error(400, f"Unreadable request body: {exc}"))
            return
        try:
            response = hub._handle(method, self.path, self.headers, body)
        except _HTTPError as exc:
            response = exc.response
        except Exception as exc:  # a bug in this server: make it loud in the client's error
            response = _Response.error(500, f"test hub server crashed: {exc!r}")
        self._send(method, response)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size_line = self.rfile.readline(65537)
                if not size_line:
                    raise EOFError("connection closed inside a chunked body")
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)  # CRLF after each chunk
            data = b"".join(parts)
        else:
            length = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(length) if length else b""
        encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding == "gzip":
            return gzip.decompress(data)
        if encoding == "deflate":
            try:
                return zlib.decompress(data)
            except zlib.error:
                return zlib.decompress(data, -zlib.MAX_WBITS)
        if encoding not in ("", "identity"):
            raise ValueError(f"unsupported Content-Encoding {encoding!r}")
        return data

    def _send(self, method: str, response: _Response) -> None:
        self.send_response(response.status)
        headers = dict(response.headers)
        headers.setdefault("Content-Length", str(len(response.body)))
        for name, value in headers.items():
            self.send_header(name, value)
        if response.cut_after is not None:
            self.send_header("Connection", "close")
        self.end_headers()
        if method == "HEAD":
            return
        if response.cut_after is not None:
            self.wfile.write(response.body[: response.cut_after])
            self.wfile.flush()
            self.close_connection = True  # the client sees EOF before Content-Length bytes
            return
        self.wfile.write(response.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hub: HubServer


# ---------------------------------------------------------------- the server


class HubServer:
    """In-memory Hub on 127.0.0.1. `start()` binds a free port; `url` is then its base URL.

    `token` is the one valid token. Writes (create, preupload, commit, delete) and whoami need it;
    reads of private repos need it; reads of public repos work without any token.
    `page_size` caps tree and commit listing pages (paginated with a `Link: <...>; rel="next"`).
    `initial_files` is the snapshot of every repo's initial commit (the real Hub puts a
    `.gitattributes` there; by default it is empty here).
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        user: str = "tester",
        *,
        initial_files: dict[str, bytes] | None = None,
    ) -> None:
        self.token = token
        self.user = user
        self.page_size = 1000
        self.initial_files = dict(initial_files or {})
        self.url = ""
        self._lock = threading.RLock()
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._faults: dict[str, list[int]] = {}  # kind -> [status, remaining]
        self._always: dict[str, int] = {}
        self.faults_served: dict[str, int] = {}  # kind -> injected answers actually sent (observed)
        self._cuts: list[int] = []  # one after_bytes per cut still to come
        self.cuts_served: list[str] = []  # paths whose body was actually cut short (observed)
        self._hooks: dict[str, list[Any]] = {}  # kind -> callables to run before the next request
        self._log: list[tuple[str, str, dict[str, str]]] = []
        self._counter = itertools.count()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -------------------------------------------------------- lifecycle

    def start(self) -> HubServer:
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.hub = self
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="hub-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # keep-alive connections would otherwise outlive the server
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # -------------------------------------------------------- fault injection

    def fail_next(self, kind: str, status: int, times: int = 1) -> None:
        """The next `times` requests of `kind` answer `status` with a JSON error body."""
        self._check_kind(kind)
        with self._lock:
            self._faults[kind] = [status, times]

    def fail_always(self, kind: str, status: int) -> None:
        """Every request of `kind` answers `status` until `clear_faults()`."""
        self._check_kind(kind)
        with self._lock:
            self._always[kind] = status

    def cut_downloads(self, after_bytes: int, times: int = 1) -> None:
        """The next `times` GET resolve answers announce the full Content-Length but close the
        connection after `after_bytes` bytes of body."""
        with self._lock:
            self._cuts.extend([after_bytes] * times)

    def before_next(self, kind: str, action: Any) -> None:
        """Run ``action()`` (once) when the next request of ``kind`` arrives, before it is handled:
        e.g. another client's commit landing between a publisher's read and its commit."""
        self._check_kind(kind)
        with self._lock:
            self._hooks.setdefault(kind, []).append(action)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._always.clear()
            self._cuts.clear()

    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {sorted(FAULT_KINDS)}")

    def _take_fault(self, kind: str) -> int | None:
        with self._lock:
            if kind in self._always:
                return self._always[kind]
            fault = self._faults.get(kind)
            if fault is None:
                return None
            fault[1] -= 1
            if fault[1] <= 0:
                del self._faults[kind]
            return fault[0]

    # -------------------------------------------------------- inspection

    def requests_log(self) -> list[tuple[str, str, dict[str, str]]]:
        """(method, path with query, headers) of every request received, oldest first."""
        with self._lock:
            return [(m, p, dict(h)) for m, p, h in self._log]

    def _record(self, method: str, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self._log.append((method, path, headers))

    def repo_files(self, repo_id: str, repo_type: str = "dataset", revision: str = "main") -> dict[str, bytes]:
        with self._lock:
            repo = self._repos.get((repo_type, repo_id))
            if repo is None:
                raise KeyError(f"no {repo_type} repo {repo_id!r}")
            commit = self._commit_at(repo, revision)
            if commit is None:
                raise KeyError(f"no revision {revision!r} in {repo_type} repo {repo_id!r}")
            return dict(commit.files)

    def head_commit(self, repo_id: str, repo_type: str = "dataset", revision: str = "main") -> str | None:
        with self._lock:
            repo = self._repos.get((repo_type, repo_id))
            return None if repo is None else repo.branches.get(revision)

    def commit_count(self, repo_id: str, repo_type: str = "dataset") -> int:
        """Commits held by the repo, the initial one made at creation included; 0 if missing."""
        with self._lock:
            repo = self._repos.get((repo_type, repo_id))
            return 0 if repo is None else len(repo.commits)

    def put_files(
        self,
        repo_id: str,
        files: dict[str, bytes],
        repo_type: str = "dataset",
        private: bool = False,
    ) -> str:
        """Commit `files` (added or overwritten) on main, creating the repo (with `private`) if
        missing. Returns the new commit sha."""
        if repo_type not in REPO_TYPES:
            raise ValueError(f"repo_type must be one of {REPO_TYPES}")
        with self._lock:
            repo = self._repos.get((repo_type, repo_id)) or self._create_repo(repo_type, repo_id, private)
            head = repo.commits[repo.branches["main"]]
            snapshot = {**head.files, **{p.strip("/"): bytes(c) for p, c in files.items()}}
            return self._add_commit(repo, "main", snapshot, "Seed files", "").sha

    def set_private(self, repo_id: str, private: bool, repo_type: str = "dataset") -> None:
        with self._lock:
            self._repos[(repo_type, repo_id)].private = private

    # -------------------------------------------------------- state helpers (lock held)

    def _create_repo(self, repo_type: str, repo_id: str, private: bool) -> _Repo:
        repo = _Repo(repo_type, repo_id, private, _now())
        self._repos[(repo_type, repo_id)] = repo
        self._add_commit(repo, "main", dict(self.initial_files), "initial commit", "")
        return repo

    def _add_commit(self, repo: _Repo, branch: str, files: dict[str, bytes], title: str, message: str) -> _Commit:
        parent = repo.branches.get(branch)
        seed = f"{repo.repo_type}/{repo.repo_id}\0{parent}\0{next(self._counter)}\0{time.time_ns()}"
        sha = hashlib.sha1(seed.encode()).hexdigest()
        commit = _Commit(sha, parent, files, title, message, _now())
        repo.commits[sha] = commit
        repo.branches[branch] = sha
        return commit

    @staticmethod
    def _commit_at(repo: _Repo, revision: str) -> _Commit | None:
        sha = repo.branches.get(revision, revision)
        return repo.commits.get(sha)

    def _repo_url(self, repo: _Repo) -> str:
        return f"{self.url}/{URL_PREFIXES[repo.repo_type]}{repo.repo_id}"

    # -------------------------------------------------------- request handling

    def _handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> _Response:
        split = urlsplit(raw_path)
        query = parse_qs(split.query, keep_blank_values=True)
        kind, handler = self._route(method, split.path)
        if handler is None:
            return _Response.error(404, f"No route for {method} {split.path}")
        with self._lock:
            hooks = self._hooks.pop(kind, []) if kind else []
        for action in hooks:  # outside the lock: an action may send its own requests
            action()
        status = None
        if kind == "resolve" and split.path.endswith(".whl"):  # a wheel download, not index.json
            status = self._take_fault("resolve-wheel")
            kind_hit = "resolve-wheel"
        if status is None:
            status, kind_hit = (self._take_fault(kind) if kind else None), kind
        if status is not None:
            with self._lock:
                self.faults_served[kind_hit] = self.faults_served.get(kind_hit, 0) + 1
            return _Response.error(status, f"Injected fault: {kind_hit} answers {status}")
        auth = self._auth_state(headers.get("Authorization"))
        return handler(method=method, path=split.path, query=query, headers=headers, body=body, auth=auth)

    def _auth_state(self, value: str | None) -> str:
        if not value:
            return "none"
        scheme, _, token = value.partition(" ")
        if scheme.lower() == "bearer" and token.strip() == self.token:
            return "valid"
        return "invalid"

    def _route(self, method: str, path: str) -> tuple[str | None, Any]:
        segs = path.split("/")[1:]
        if path == "/api/whoami-v2" and method == "GET":
            return "whoami", self._whoami
        if path == "/api/repos/create" and method == "POST":
            return "create", self._create
        if path == "/api/repos/delete" and method == "DELETE":
            return "delete", self._delete
        if path == "/api/validate-yaml" and method == "POST":
            return "validate-yaml", self._validate_yaml
        if len(segs) >= 4 and segs[0] == "api" and segs[1] in ("models", "datasets", "spaces"):
            rest = segs[4:]
            op = rest[0] if rest else ""
            table = {
                ("", "GET"): ("repo-info", self._repo_info),
                ("revision", "GET"): ("repo-info", self._repo_info),
                ("preupload", "POST"): ("preupload", self._preupload),
                ("commit", "POST"): ("commit", self._commit),
                ("tree", "GET"): ("tree", self._tree),
                ("paths-info", "POST"): ("paths-info", self._paths_info),
                ("commits", "GET"): ("commits", self._commits),
                ("refs", "GET"): ("refs", self._refs),
            }
            if (op == "" and rest) or (op != "" and len(rest) < 2 and op != "refs"):
                return None, None
            return table.get((op, method), (None, None))
        if method in ("GET", "HEAD"):
            offset = 1 if segs and segs[0] in ("datasets", "spaces") else 0
            if len(segs) >= offset + 5 and segs[offset + 2] == "resolve":
                return "resolve", self._resolve
        return None, None

    def _parse_repo_path(self, path: str) -> tuple[str, str, list[str]]:
        """(repo_type, repo_id, remaining raw segments) of an /api/{type}s/ns/name/... path or a
        /{prefix}ns/name/resolve/... path."""
        segs = path.split("/")[1:]
        if segs[0] == "api":
            repo_type = segs[1][:-1]
            return repo_type, f"{unquote(segs[2])}/{unquote(segs[3])}", segs[4:]
        if segs[0] in ("datasets", "spaces"):
            return segs[0][:-1], f"{unquote(segs[1])}/{unquote(segs[2])}", segs[3:]
        return "model", f"{unquote(segs[0])}/{unquote(segs[1])}", segs[2:]

    def _readable_repo(self, repo_type: str, repo_id: str, auth: str) -> _Repo:
        repo = self._repos.get((repo_type, repo_id))
        if repo is None:
            raise _HTTPError(_Response.error(404, "Repository not found", "RepoNotFound"))
        if repo.private and auth != "valid":
            raise _HTTPError(_Response.error(401, "Repository not found", "RepoNotFound"))
        return repo

    def _writable_repo(self, repo_type: str, repo_id: str, auth: str) -> _Repo:
        self._require_token(auth)
        repo = self._repos.get((repo_type, repo_id))
        if repo is None:
            raise _HTTPError(_Response.error(404, "Repository not found", "RepoNotFound"))
        return repo

    @staticmethod
    def _require_token(auth: str) -> None:
        if auth != "valid":
            raise _HTTPError(
                _Response.json(401, {"error": "Invalid credentials"}, {"X-Error-Message": INVALID_CREDENTIALS})
            )

    @staticmethod
    def _split_revision(repo: _Repo, segs: list[str]) -> tuple[str, list[str]]:
        """The revision at the head of `segs` (URL-encoded, or a branch with bare slashes)."""
        for k in range(1, len(segs) + 1):
            candidate = unquote("/".join(segs[:k]))
            if candidate in repo.branches or candidate in repo.commits:
                return candidate, segs[k:]
        return (unquote(segs[0]), segs[1:]) if segs else ("main", [])

    @staticmethod
    def _revision_commit(repo: _Repo, revision: str) -> _Commit:
        commit = HubServer._commit_at(repo, revision)
        if commit is None:
            raise _HTTPError(_Response.error(404, f"Invalid rev id: {revision}", "RevisionNotFound"))
        return commit

    @staticmethod
    def _json_body(body: bytes) -> Any:
        try:
            return json.loads(body or b"{}")
        except ValueError as exc:
            raise _HTTPError(_Response.error(400, f"Invalid JSON body: {exc}")) from exc

    # -------------------------------------------------------- endpoints

    def _whoami(self, *, auth: str, **_: Any) -> _Response:
        self._require_token(auth)
        return _Response.json(
            200,
            {
                "type": "user",
                "name": self.user,
                "fullname": self.user,
                "orgs": [],
                "auth": {
                    "type": "access_token",
                    "accessToken": {"displayName": "test", "role": "write"},
                },
            },
        )

    def _validate_yaml(self, **_: Any) -> _Response:
        return _Response.json(200, {"errors": [], "warnings": []})

    def _create(self, *, auth: str, body: bytes, **_: Any) -> _Response:
        self._require_token(auth)
        payload = self._json_body(body)
        name = payload.get("name")
        repo_type = payload.get("type") or "model"
        if not name or repo_type not in REPO_TYPES:
            return _Response.error(400, f"Invalid repo name or type: {name!r}, {repo_type!r}")
        repo_id = f"{payload.get('organization') or self.user}/{name}"
        private = bool(payload.get("private")) or payload.get("visibility") == "private"
        with self._lock:
            repo = self._repos.get((repo_type, repo_id))
            if repo is not None:
                url = self._repo_url(repo)
                return _Response.json(409, {"error": f"You already created this {repo_type} repo", "url": url})
            repo = self._create_repo(repo_type, repo_id, private)
            return _Response.json(200, {"url": self._repo_url(repo), "name": repo_id, "id": repo_id})

    def _delete(self, *, auth: str, body: bytes, **_: Any) -> _Response:
        self._require_token(auth)
        payload = self._json_body(body)
        key = (
            payload.get("type") or "model",
            f"{payload.get('organization') or self.user}/{payload.get('name')}",
        )
        with self._lock:
            if self._repos.pop(key, None) is None:
                return _Response.error(404, "Repository not found", "RepoNotFound")
        return _Response.json(200, {})

    def _repo_info(self, *, path: str, query: dict[str, list[str]], auth: str, **_: Any) -> _Response:
        repo_type, repo_id, rest = self._parse_repo_path(path)
        with self._lock:
            repo = self._readable_repo(repo_type, repo_id, auth)
            revision, _rest = self._split_revision(repo, rest[1:]) if rest else ("main", [])
            commit = self._revision_commit(repo, revision)
            blobs = query.get("blobs", ["false"])[0].lower() in ("1", "true")
            siblings = []
            for p in sorted(commit.files):
                entry: dict[str, Any] = {"rfilename": p}
                if blobs:
                    entry.update(size=len(commit.files[p]), blobId=_git_blob_oid(commit.files[p]))
                siblings.append(entry)
            return _Response.json(
                200,
                {
                    "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
                    "id": repo_id,
                    "author": repo_id.split("/")[0],
                    "sha": commit.sha,
                    "private": repo.private,
                    "gated": False,
                    "disabled": False,
                    "downloads": 0,
                    "likes": 0,
                    "tags": [],
                    "createdAt": repo.created_at,
                    "lastModified": commit.date,
                    "siblings": siblings,
                },
            )

    def _preupload(self, *, path: str, body: bytes, auth: str, **_: Any) -> _Response:
        repo_type, repo_id, rest = self._parse_repo_path(path)
        payload = self._json_body(body)
        with self._lock:
            repo = self._writable_repo(repo_type, repo_id, auth)
            revision, _rest = self._split_revision(repo, rest[1:])
            self._revision_commit(repo, revision)
        files = [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
            for f in payload.get("files", [])
        ]
        return _Response.json(200, {"files": files, "commitOid": None})

    def _commit(self, *, path: str, query: dict[str, list[str]], body: bytes, auth: str, **_: Any) -> _Response:
        repo_type, repo_id, rest = self._parse_repo_path(path)
        header: dict[str, Any] | None = None
        operations: list[tuple[str, dict[str, Any]]] = []
        for line in body.splitlines():
            if not line.strip():
                continue
            item = self._json_body(line)
            key, value = item.get("key"), item.get("value") or {}
            if key == "header":
                header = value
            elif key in ("file", "deletedFile", "deletedFolder"):
                operations.append((key, value))
            elif key == "lfsFile":
                return _Response.error(400, "This test Hub only accepts regular (non-LFS) files")
            else:
                return _Response.error(400, f"Unknown commit operation {key!r}")
        if header is None:
            return _Response.error(400, "Commit payload has no header line")
        create_pr = query.get("create_pr", ["0"])[0].lower() in ("1", "true")
        with self._lock:
            repo = self._writable_repo(repo_type, repo_id, auth)
            revision, _rest = self._split_revision(repo, rest[1:])
            if revision not in repo.branches:
                if revision in repo.commits:
                    return _Response.error(400, f"Cannot commit to a commit id ({revision})")
                self._revision_commit(repo, revision)
            head = repo.branches[revision]
            parent = header.get("parentCommit")
            if parent is not None and parent != head:
                return _Response.error(412, "A commit has happened since. Please refresh and try again.")
            snapshot = dict(repo.commits[head].files)
            for key, value in operations:
                target = str(value.get("path", "")).strip("/")
                if key == "file":
                    content = value.get("content", "")
                    if value.get("encoding", "base64") == "base64":
                        snapshot[target] = base64.b64decode(content)
                    else:
                        snapshot[target] = str(content).encode()
                elif key == "deletedFile":
                    if snapshot.pop(target, None) is None:
                        return _Response.error(404, f"File not found: {target}", "EntryNotFound")
                else:
                    doomed = [p for p in snapshot if p.startswith(target + "/")] if target else list(snapshot)
                    if not doomed:
                        return _Response.error(404, f"Folder not found: {target}", "EntryNotFound")
                    for p in doomed:
                        del snapshot[p]
            branch = revision
            pr_url = None
            if create_pr:
                number = repo.next_pr
                repo.next_pr += 1
                branch = f"refs/pr/{number}"
                repo.branches[branch] = head
                pr_url = f"{self._repo_url(repo)}/discussions/{number}"
            commit = self._add_commit(
                repo, branch, snapshot, header.get("summary") or "", header.get("description") or ""
            )
            return _Response.json(
                200,
                {
                    "success": True,
                    "commitUrl": f"{self._repo_url(repo)}/commit/{commit.sha}",
                    "commitOid": commit.sha,
                    "commitMessage": commit.title,
                    "pullRequestUrl": pr_url,
                },
            )

    def _resolve(self, *, method: str, path: str, headers: Any, auth: str, **_: Any) -> _Response:
        repo_type, repo_id, rest = self._parse_repo_path(path)
        with self._lock:
            repo = self._readable_repo(repo_type, repo_id, auth)
            revision, file_segs = self._split_revision(repo, rest[1:])
            commit = self._revision_commit(repo, revision)
            target = unquote("/".join(file_segs))
            content = commit.files.get(target)
            if content is None:
                return _Response.error(
                    404,
                    f"Entry not found: {target}",
                    "EntryNotFound",
                    **{"X-Repo-Commit": commit.sha},
                )
            cut = self._cuts.pop(0) if method == "GET" and self._cuts else None
        size = len(content)
        out = {
            "Content-Type": "application/octet-stream",
            "X-Repo-Commit": commit.sha,
            "ETag": f'"{hashlib.sha256(content).hexdigest()}"',
            "Accept-Ranges": "bytes",
        }
        status, body = 200, content
        match = _RANGE.fullmatch(headers.get("Range", "").strip()) if method == "GET" else None
        if match is not None and match.group(1) + match.group(2):
            first, last = match.group(1), match.group(2)
            if first:
                start, end = int(first), min(int(last) if last else size - 1, size - 1)
            else:
                start, end = max(size - int(last), 0), size - 1
            if start >= size or start > end:
                out["Content-Range"] = f"bytes */{size}"
                return _Response(416, b"", out)
            status, body = 206, content[start : end + 1]
            out["Content-Range"] = f"bytes {start}-{end}/{size}"
        if cut is not None and cut < len(body):
            with self._lock:
                self.cuts_served.append(target)
        return _Response(status, body, out, cut_after=cut)

    @staticmethod
    def _file_entry(files: dict[str, bytes], p: str) -> dict[str, Any]:
        return {"type": "file", "path": p, "size": len(files[p]), "oid": _git_blob_oid(files[p])}

    @staticmethod
    def _dir_entry(files: dict[str, bytes], p: str) -> dict[str, Any]:
        inside = sorted(f"{k}\0{_git_blob_oid(v)}" for k, v in files.items() if k.startswith(p + "/"))
        oid = hashlib.sha1("\n".join(inside).encode()).hexdigest()
        return {"type": "directory", "path": p, "oid": oid}

    def _page(self, path: str, query: dict[str, list[str]], items: list[Any]) -> _Response:
        cursor = int(query.get("cursor", ["0"])[0] or 0)
        size = max(int(self.page_size), 1)
        headers = {}
        if cursor + size < len(items):
            params = [(k, v) for k, vs in query.items() if k != "cursor" for v in vs]
            params.append(("cursor", str(cursor + size)))
            headers["Link"] = f'<{self.url}{path}?{urlencode(params)}>; rel="next"'
        return _Response.json(200, items[cursor : cursor + size], headers)

    def _tree(self, *, path: str, query: dict[str, list[str]], auth: str, **_: Any) -> _Response:
        repo_type, repo_id, rest = self._parse_repo_path(path)
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        with self._lock:
            repo = self._readable_repo(repo_type, repo_id, auth)
            revision, dir_segs = self._split_revision(repo, rest[1:])
            files = self._revision_commit(repo, revision).files
        base = unquote("/".join(dir_segs)).strip("/")
        prefix = f"{base}/" if base else ""
        file_paths: list[str] = []
        dirs: set[str] = set()
        for p in files:
            if not p.startswith(prefix):
                continue
            parts = p[len(prefix) :].split("/")
            if recursive:
                file_paths.append(p)
                dirs.update(prefix + "/".join(parts[:i]) for i in range(1, len(parts)))
            elif len(parts) == 1:
                file_paths.append(p)
            else:
                dirs.add(prefix + parts[0])
        if base and not file_paths and not dirs:
            return _Response.error(404, f"Directory not found: {base}", "EntryNotFound")
        entries = [self._dir_entry(files, d) for d in dirs] + [self._file_entry(files, f) for f in file_paths]
        entries.sort(key=lambda e: e["path"])
        return self._page(path, query, entries)

    def _paths_info(self, *, path: str, headers: Any, body: bytes, auth: str, **_: Any) -> _Response:
        repo_type, repo_id, rest = self._parse_repo_path(path)
        if "json" in headers.get("Content-Type", ""):
            wanted = self._json_body(body).get("paths", [])
        else:
            wanted = parse_qs(body.decode(), keep_blank_values=True).get("paths", [])
        if isinstance(wanted, str):
            wanted = [wanted]
        with self._lock:
            repo = self._readable_repo(repo_type, repo_id, auth)
            revision, _rest = self._split_revision(repo, rest[1:])
            files = self._revision_commit(repo, revision).files
        entries, seen = [], set()
        for raw in wanted:
            p = str(raw).strip("/")
            if p in seen:
                continue
            seen.add(p)
            if p in files:
                entries.append(self._file_entry(files, p))
            elif p and any(k.startswith(p + "/") for k in files):
                entries.append(self._dir_entry(files, p))
        return _Response.json(200, entries)

    def _commits(self, *, path: str, query: dict[str, list[str]], auth: str, **_: Any) -> _Response:
        repo_type, repo_id, rest = self._parse_repo_path(path)
        with self._lock:
            repo = self._readable_repo(repo_type, repo_id, auth)
            revision, _rest = self._split_revision(repo, rest[1:])
            commit: _Commit | None = self._revision_commit(repo, revision)
            items = []
            while commit is not None:
                items.append(
                    {
                        "id": commit.sha,
                        "title": commit.title,
                        "message": commit.message,
                        "authors": [{"user": self.user}],
                        "date": commit.date,
                    }
                )
                commit = repo.commits.get(commit.parent) if commit.parent else None
        return self._page(path, query, items)

    def _refs(self, *, path: str, query: dict[str, list[str]], auth: str, **_: Any) -> _Response:
        repo_type, repo_id, _rest = self._parse_repo_path(path)
        with self._lock:
            repo = self._readable_repo(repo_type, repo_id, auth)
            branches, prs = [], []
            for name, sha in sorted(repo.branches.items()):
                if name.startswith("refs/pr/"):
                    prs.append({"name": name.rsplit("/", 1)[1], "ref": name, "targetCommit": sha})
                else:
                    branches.append({"name": name, "ref": f"refs/heads/{name}", "targetCommit": sha})
        data: dict[str, Any] = {"branches": branches, "converts": [], "tags": []}
        if query.get("include_prs", ["0"])[0].lower() in ("1", "true"):
            data["pullRequests"] = prs
        return _Response.json(200, data)

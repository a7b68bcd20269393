"""The local Hub server (tests/hub_server.py) against the real `huggingface_hub` client.

Every call passes `endpoint=hub.url` explicitly, so nothing depends on HF_ENDPOINT having been set
before huggingface_hub was imported, and nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    constants,
    hf_hub_download,
)
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from tests.hub_server import HubServer

REPO = "tester/wheels"
SHA1 = re.compile(r"[0-9a-f]{40}")


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with HubServer().start() as server:
        yield server


@pytest.fixture
def api(hub: HubServer) -> HfApi:
    return HfApi(endpoint=hub.url, token=hub.token)


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def _requests(hub: HubServer, method: str, fragment: str) -> list[tuple[str, str, dict[str, str]]]:
    return [r for r in hub.requests_log() if r[0] == method and fragment in r[1]]


def _download(hub: HubServer, cache: Path, filename: str, **kwargs: object) -> bytes:
    kwargs.setdefault("token", hub.token)
    path = hf_hub_download(REPO, filename, repo_type="dataset", endpoint=hub.url, cache_dir=cache, **kwargs)
    return Path(path).read_bytes()


# ---------------------------------------------------------------- repos and auth


def test_whoami_and_create_repo_twice(hub: HubServer, api: HfApi) -> None:
    assert api.whoami()["name"] == "tester"

    first = api.create_repo(REPO, repo_type="dataset", exist_ok=True)
    second = api.create_repo(REPO, repo_type="dataset", exist_ok=True)
    assert first == second == f"{hub.url}/datasets/{REPO}"
    assert first.repo_id == REPO and first.repo_type == "dataset"
    assert hub.commit_count(REPO) == 1  # the initial commit only
    assert SHA1.fullmatch(hub.head_commit(REPO) or "")
    assert hub.repo_files(REPO) == {}

    with pytest.raises(HfHubHTTPError) as info:
        api.create_repo(REPO, repo_type="dataset")
    assert info.value.response.status_code == 409

    model = api.create_repo("org/model", private=True)
    assert model == f"{hub.url}/org/model"
    assert hub.head_commit("org/model", repo_type="model") is not None
    assert api.repo_info("org/model").private is True
    api.delete_repo("org/model")
    assert hub.head_commit("org/model", repo_type="model") is None
    with pytest.raises(RepositoryNotFoundError):
        api.repo_info("org/model")


def test_wrong_token_is_refused(hub: HubServer) -> None:
    wrong = HfApi(endpoint=hub.url, token="hf_wrong_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBB")
    with pytest.raises(HfHubHTTPError) as info:
        wrong.whoami()
    assert info.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as info:
        wrong.create_repo(REPO, repo_type="dataset", exist_ok=True)
    assert info.value.response.status_code == 401
    assert hub.head_commit(REPO) is None

    hub.put_files(REPO, {"a.txt": b"a"})
    with pytest.raises(HfHubHTTPError) as info:
        wrong.upload_file(path_or_fileobj=b"x", path_in_repo="b.txt", repo_id=REPO, repo_type="dataset")
    assert info.value.response.status_code == 401
    assert hub.repo_files(REPO) == {"a.txt": b"a"}


def test_requests_log_holds_method_path_and_headers(hub: HubServer, api: HfApi) -> None:
    api.whoami()
    method, path, headers = hub.requests_log()[-1]
    assert (method, path) == ("GET", "/api/whoami-v2")
    assert _header(headers, "authorization") == f"Bearer {hub.token}"
    assert any(hub.token in v for _m, _p, h in hub.requests_log() for v in h.values())


# ---------------------------------------------------------------- commits


def test_commit_with_parent_then_stale_parent_gets_412(hub: HubServer, api: HfApi) -> None:
    api.create_repo(REPO, repo_type="dataset", exist_ok=True)
    initial = hub.head_commit(REPO)
    files = {"index.json": b"{}", "wheels/a.whl": b"A" * 100, "wheels/b.whl": bytes(range(256))}
    info = api.create_commit(
        REPO,
        repo_type="dataset",
        operations=[CommitOperationAdd(path_in_repo=p, path_or_fileobj=c) for p, c in files.items()],
        commit_message="add three",
        parent_commit=initial,
    )
    assert info.oid == hub.head_commit(REPO) != initial
    assert info.commit_url == f"{hub.url}/datasets/{REPO}/commit/{info.oid}"
    assert hub.repo_files(REPO) == files
    assert hub.commit_count(REPO) == 2

    with pytest.raises(HfHubHTTPError) as raised:
        api.create_commit(
            REPO,
            repo_type="dataset",
            operations=[CommitOperationAdd(path_in_repo="late.txt", path_or_fileobj=b"late")],
            commit_message="stale",
            parent_commit=initial,
        )
    assert raised.value.response.status_code == 412
    assert "A commit has happened since" in str(raised.value)
    assert hub.head_commit(REPO) == info.oid and hub.commit_count(REPO) == 2
    assert len(_requests(hub, "POST", f"/api/datasets/{REPO}/commit/main")) == 2  # no retry


def test_concurrent_commits_on_one_parent_one_wins(hub: HubServer, api: HfApi) -> None:
    parent = hub.put_files(REPO, {"a": b"a"})

    def commit(i: int) -> int:
        try:
            api.create_commit(
                REPO,
                repo_type="dataset",
                operations=[CommitOperationAdd(path_in_repo=f"f{i}", path_or_fileobj=b"x")],
                commit_message=f"c{i}",
                parent_commit=parent,
            )
        except HfHubHTTPError as exc:
            return exc.response.status_code
        return 200

    with ThreadPoolExecutor(4) as pool:
        statuses = sorted(pool.map(commit, range(4)))
    assert statuses == [200, 412, 412, 412]
    assert hub.commit_count(REPO) == 3 and len(hub.repo_files(REPO)) == 2


def test_commit_deletes_and_readme(hub: HubServer, api: HfApi) -> None:
    hub.put_files(REPO, {"a/1": b"1", "a/2": b"2", "b": b"b"})
    api.create_commit(
        REPO,
        repo_type="dataset",
        operations=[
            CommitOperationDelete(path_in_repo="a/"),
            CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=b"---\nlicense: mit\n---\n"),
        ],
        commit_message="replace a/ by a README",
    )
    assert set(hub.repo_files(REPO)) == {"b", "README.md"}
    assert _requests(hub, "POST", "/api/validate-yaml")

    with pytest.raises(HfHubHTTPError) as raised:
        api.delete_file("missing.txt", REPO, repo_type="dataset")
    assert raised.value.response.status_code == 404
    assert raised.value.response.headers["X-Error-Code"] == "EntryNotFound"


def test_fail_next_commit_503_is_not_retried(hub: HubServer, api: HfApi) -> None:
    hub.put_files(REPO, {"a": b"a"})
    head = hub.head_commit(REPO)
    hub.fail_next("commit", 503)
    with pytest.raises(HfHubHTTPError) as raised:
        api.upload_file(path_or_fileobj=b"b", path_in_repo="b", repo_id=REPO, repo_type="dataset")
    assert raised.value.response.status_code == 503
    assert len(_requests(hub, "POST", "/commit/")) == 1
    assert hub.head_commit(REPO) == head

    api.upload_file(path_or_fileobj=b"b", path_in_repo="b", repo_id=REPO, repo_type="dataset")
    assert hub.repo_files(REPO) == {"a": b"a", "b": b"b"}


def test_fail_always_until_cleared(hub: HubServer, api: HfApi) -> None:
    hub.fail_always("whoami", 500)
    for _ in range(2):
        with pytest.raises(HfHubHTTPError) as raised:
            api.whoami()
        assert raised.value.response.status_code == 500
    hub.clear_faults()
    assert api.whoami()["name"] == hub.user
    with pytest.raises(ValueError, match="unknown fault kind"):
        hub.fail_next("nonsense", 500)


def test_create_pr_and_encoded_revision(hub: HubServer, api: HfApi, tmp_path: Path) -> None:
    hub.put_files(REPO, {"a": b"main"})
    info = api.upload_file(path_or_fileobj=b"pr", path_in_repo="a", repo_id=REPO, repo_type="dataset", create_pr=True)
    assert info.pr_url == f"{hub.url}/datasets/{REPO}/discussions/1"
    assert hub.repo_files(REPO) == {"a": b"main"}
    assert hub.repo_files(REPO, revision="refs/pr/1") == {"a": b"pr"}
    assert _download(hub, tmp_path, "a", revision="refs/pr/1") == b"pr"
    assert any("refs%2Fpr%2F1" in p for _m, p, _h in hub.requests_log())


# ---------------------------------------------------------------- downloads


def test_download_twice_second_time_from_cache(hub: HubServer, tmp_path: Path) -> None:
    content = b"wheel bytes " * 1000
    sha = hub.put_files(REPO, {"dist/x.whl": content})
    assert _download(hub, tmp_path, "dist/x.whl") == content
    assert _download(hub, tmp_path, "dist/x.whl") == content
    assert len(_requests(hub, "GET", "/resolve/")) == 1
    assert len(_requests(hub, "HEAD", "/resolve/")) == 2  # the client re-checks the etag
    snapshot = tmp_path / "datasets--tester--wheels" / "snapshots" / sha / "dist" / "x.whl"
    assert snapshot.read_bytes() == content

    head = requests.head(f"{hub.url}/datasets/{REPO}/resolve/main/dist/x.whl", timeout=5)
    assert head.status_code == 200
    assert head.headers["X-Repo-Commit"] == sha
    assert head.headers["ETag"] == f'"{hashlib.sha256(content).hexdigest()}"'
    assert head.headers["Content-Length"] == str(len(content))

    hub.put_files(REPO, {"dist/x.whl": b"new"})  # a new etag: downloaded again
    assert _download(hub, tmp_path, "dist/x.whl") == b"new"
    assert len(_requests(hub, "GET", "/resolve/")) == 2


def test_cut_download_is_restarted_from_scratch(hub: HubServer, tmp_path: Path) -> None:
    # The client reads the body in DOWNLOAD_CHUNK_SIZE (10 MiB) pieces: a connection cut before the
    # first full piece loses what was received, so after `time.sleep(1)` it sends the GET again
    # without a Range header (up to 5 tries) and gets the whole file.
    content = bytes(range(256)) * 256
    hub.put_files(REPO, {"big.bin": content})
    hub.cut_downloads(1000)
    assert _download(hub, tmp_path, "big.bin") == content
    gets = _requests(hub, "GET", "/resolve/")
    assert len(gets) == 2
    assert all(_header(h, "range") is None for _m, _p, h in gets)


def test_cut_download_is_resumed_with_range(hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # With a smaller read size the bytes received before the cut reach the file, and the retry asks
    # for the rest with `Range: bytes=N-` (answered 206 + Content-Range).
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 1024)
    content = bytes(range(256)) * 256
    hub.put_files(REPO, {"big.bin": content})
    hub.cut_downloads(5000)
    assert _download(hub, tmp_path, "big.bin") == content
    gets = _requests(hub, "GET", "/resolve/")
    assert len(gets) == 2
    resumed = _header(gets[1][2], "range")
    assert resumed is not None
    start = int(re.fullmatch(r"bytes=(\d+)-", resumed).group(1))  # type: ignore[union-attr]
    assert 0 < start <= 5000


def test_range_requests(hub: HubServer) -> None:
    hub.put_files(REPO, {"f": b"0123456789"})
    url = f"{hub.url}/datasets/{REPO}/resolve/main/f"
    r = requests.get(url, headers={"Range": "bytes=4-"}, timeout=5)
    assert (r.status_code, r.content, r.headers["Content-Range"]) == (
        206,
        b"456789",
        "bytes 4-9/10",
    )
    r = requests.get(url, headers={"Range": "bytes=2-3"}, timeout=5)
    assert (r.status_code, r.content) == (206, b"23")
    r = requests.get(url, headers={"Range": "bytes=-3"}, timeout=5)
    assert (r.status_code, r.content) == (206, b"789")
    r = requests.get(url, headers={"Range": "bytes=10-"}, timeout=5)
    assert (r.status_code, r.headers["Content-Range"]) == (416, "bytes */10")


def test_missing_file_repo_and_revision(hub: HubServer) -> None:
    hub.put_files(REPO, {"f": b"f"})
    base = f"{hub.url}/datasets/{REPO}/resolve"
    r = requests.head(f"{base}/main/nope", timeout=5)
    assert (r.status_code, r.headers["X-Error-Code"]) == (404, "EntryNotFound")
    assert r.headers["X-Repo-Commit"] == hub.head_commit(REPO)
    r = requests.head(f"{hub.url}/datasets/tester/other/resolve/main/f", timeout=5)
    assert (r.status_code, r.headers["X-Error-Code"]) == (404, "RepoNotFound")
    r = requests.head(f"{base}/nobranch/f", timeout=5)
    assert (r.status_code, r.headers["X-Error-Code"]) == (404, "RevisionNotFound")
    r = requests.get(f"{hub.url}/api/nothing/here", timeout=5)
    assert r.status_code == 404 and "error" in r.json()


def test_private_repo_needs_the_token(hub: HubServer, tmp_path: Path) -> None:
    hub.put_files(REPO, {"secret.txt": b"s"}, private=True)
    with pytest.raises(RepositoryNotFoundError) as raised:
        _download(hub, tmp_path / "anon", "secret.txt", token=False)
    assert raised.value.response.status_code == 401
    assert not HfApi(endpoint=hub.url, token=False).file_exists(REPO, "secret.txt", repo_type="dataset")
    assert _download(hub, tmp_path / "auth", "secret.txt") == b"s"

    hub.set_private(REPO, False)
    assert _download(hub, tmp_path / "anon", "secret.txt", token=False) == b"s"


# ---------------------------------------------------------------- listings


def test_list_files_tree_and_pagination(hub: HubServer, api: HfApi) -> None:
    files = {"index.json": b"{}", "w/a/1.whl": b"1", "w/a/2.whl": b"22", "w/b.whl": b"333"}
    hub.put_files(REPO, files)
    assert sorted(api.list_repo_files(REPO, repo_type="dataset")) == sorted(files)

    tree = {e.path: type(e).__name__ for e in api.list_repo_tree(REPO, repo_type="dataset", recursive=True)}
    assert tree == {
        "index.json": "RepoFile", "w": "RepoFolder", "w/a": "RepoFolder",
        "w/a/1.whl": "RepoFile", "w/a/2.whl": "RepoFile", "w/b.whl": "RepoFile",
    }  # fmt: skip
    top = {e.path for e in api.list_repo_tree(REPO, repo_type="dataset")}
    assert top == {"index.json", "w"}
    sub = {e.path: getattr(e, "size", None) for e in api.list_repo_tree(REPO, "w", repo_type="dataset")}
    assert sub == {"w/a": None, "w/b.whl": 3}

    hub.page_size = 2
    before = len(_requests(hub, "GET", "/tree/"))
    listed = [e.path for e in api.list_repo_tree(REPO, repo_type="dataset", recursive=True)]
    assert sorted(listed) == sorted(tree)
    assert len(_requests(hub, "GET", "/tree/")) - before == 3


def test_file_exists_paths_info_and_repo_info(hub: HubServer, api: HfApi) -> None:
    sha = hub.put_files(REPO, {"w/a.whl": b"aa", "index.json": b"{}"})
    assert api.file_exists(REPO, "w/a.whl", repo_type="dataset")
    assert not api.file_exists(REPO, "w/zz.whl", repo_type="dataset")
    assert not api.file_exists("tester/none", "w/a.whl", repo_type="dataset")

    info = api.get_paths_info(REPO, ["w/a.whl", "w", "missing"], repo_type="dataset")
    assert [(type(e).__name__, e.path) for e in info] == [
        ("RepoFile", "w/a.whl"),
        ("RepoFolder", "w"),
    ]
    assert info[0].size == 2

    repo = api.repo_info(REPO, repo_type="dataset")
    assert (repo.id, repo.sha, repo.private) == (REPO, sha, False)
    assert sorted(s.rfilename for s in repo.siblings or []) == ["index.json", "w/a.whl"]
    assert api.repo_info(REPO, repo_type="dataset", revision=sha).sha == sha

    commits = api.list_repo_commits(REPO, repo_type="dataset")
    assert commits[0].commit_id == sha and len(commits) == hub.commit_count(REPO) == 2


def test_commit_body_chunked_and_gzip(hub: HubServer) -> None:
    """Bodies the client does not send today but a proxy or another version might."""
    hub.put_files(REPO, {})
    head = hub.head_commit(REPO)
    lines = [
        {"key": "header", "value": {"summary": "raw", "description": "", "parentCommit": head}},
        {"key": "file", "value": {"path": "x", "content": "eA==", "encoding": "base64"}},
    ]
    body = gzip.compress(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
    conn = http.client.HTTPConnection("127.0.0.1", int(hub.url.rsplit(":", 1)[1]), timeout=5)
    conn.request(
        "POST",
        f"/api/datasets/{REPO}/commit/main",
        body=iter([body[:10], body[10:]]),
        headers={
            "Authorization": f"Bearer {hub.token}",
            "Content-Type": "application/x-ndjson",
            "Content-Encoding": "gzip",
        },
        encode_chunked=True,
    )
    response = conn.getresponse()
    answer = json.loads(response.read())
    conn.close()
    assert response.status == 200, answer
    assert answer["commitOid"] == hub.head_commit(REPO)
    assert hub.repo_files(REPO) == {"x": b"x"}

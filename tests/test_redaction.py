"""Secrets never leave the process, in any shape: generated secrets as a URL's user or password
(with `@` and `:` in it), as signed-URL parameters, in `Authorization` headers, registered
tokens; checked in `redact`, in every log record (ours, huggingface_hub's, requests', urllib3's,
`warnings`), in error lines and in the files and output of real task runs."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import warnings

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sage_tasks.core import log as logsetup
from sage_tasks.core import redaction, render
from sage_tasks.core.errors import StoreError
from sage_tasks.store import manifest
from tests import support

# a secret: long enough to be one, with the characters URLs and passwords really hold
SECRET = st.text(
    alphabet=st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~+=%!$"),
    min_size=12,
    max_size=40,
).filter(lambda s: s.strip("._-~+=%!$") == s and not s.isdigit())
PARAMS = st.sampled_from(
    ["X-Amz-Signature", "X-Amz-Credential", "Signature", "sig", "token", "access_token", "x-amz-security-token"]
)
HOST = st.sampled_from(["huggingface.co", "bucket.s3.amazonaws.com", "mirror.example.org:8443", "127.0.0.1:9"])


@st.composite
def secret_in_a_shape(draw) -> tuple[str, str, str]:
    """(shape, text holding the secret, the secret)."""
    secret = draw(SECRET)
    host = draw(HOST)
    shape = draw(st.sampled_from(["user", "password", "password-with-at", "param", "bearer", "basic", "header-dict"]))
    if shape == "user":
        text = f"https://{secret}@{host}/whl/cu128"
    elif shape == "password":
        text = f"https://user:{secret}@{host}/x.whl"
    elif shape == "password-with-at":
        text = f"https://me:{secret[:6]}@:{secret[6:]}@{host}/x.whl"
        secret = f"{secret[:6]}@:{secret[6:]}"
    elif shape == "param":
        other = draw(st.sampled_from(["", "a=1&", "X-Amz-Date=20250101T000000Z&"]))
        text = f"https://{host}/w/x.whl?{other}{draw(PARAMS)}={secret}&after=1"
    elif shape == "bearer":
        text = f"Authorization: Bearer {secret}"
    elif shape == "basic":
        text = f"authorization: Basic {secret}"
    else:
        text = repr({"authorization": f"Bearer {secret}", "user-agent": "x"})
    prefix = draw(st.sampled_from(["", "GET ", "retrying ", "error at <", "("]))
    suffix = draw(st.sampled_from(["", " failed", ">", ")", "\n", '", "next": 1']))
    return shape, prefix + text + suffix, secret


def parts(secret: str) -> list[str]:
    """The pieces of a secret that must not show either (a password split at its `@`)."""
    return [p for p in secret.replace(":", "@").split("@") if len(p) >= 6]


@settings(max_examples=600, deadline=None)
@given(secret_in_a_shape())
def test_redact_removes_the_secret_in_every_shape(case):
    shape, text, secret = case
    out = redaction.redact(text)
    for piece in parts(secret):
        if piece not in text.replace(secret, ""):  # a piece that is also the host name is no leak
            assert piece not in out, (shape, text, out)


@settings(max_examples=300, deadline=None)
@given(case=secret_in_a_shape(), escape=st.sampled_from(['"', "\\", "\n", "é", ""]))
def test_json_we_write_or_print_stays_json_without_the_secret(case, escape):
    """Manifests, the index, run reports and --json output: redacted as data, so that a secret
    next to a character JSON escapes neither shows nor breaks the file (it once did: a yank
    reason ending in `sig=…"` left an index.json no reader could parse)."""
    shape, text, secret = case
    data = {"yanked": {"reason": text + escape, f"key {text}": [text, 1, None]}}
    printed = io.StringIO()
    render.emit_json(data, printed)
    for written in (manifest.dumps(data), printed.getvalue()):
        back = json.loads(written)
        assert set(back) == {"yanked"} and len(back["yanked"]) == 2
        for piece in parts(secret):
            if piece not in text.replace(secret, ""):
                assert piece not in written, (shape, written)


@settings(max_examples=200, deadline=None)
@given(
    secret=SECRET,
    field=st.sampled_from(["Authorization", "proxy-authorization", "X-Amz-Signature", "sig", "token", "Cookie"]),
    scheme=st.sampled_from(["", "token ", "Bearer ", "Basic ", "Digest "]),
)
def test_a_header_or_field_that_names_a_secret_is_redacted_whole_in_json(secret, field, scheme):
    """Headers echoed as data (``{"Authorization": "token …"}``): key and value are separate
    strings, so no text pattern sees them together; the key itself says the value is secret."""
    data = {"request": {"headers": {field: scheme + secret, "Accept": "application/json"}}}
    printed = io.StringIO()
    render.emit_json(data, printed)
    for written in (manifest.dumps(data), printed.getvalue()):
        assert secret not in written, written
        assert json.loads(written)["request"]["headers"]["Accept"] == "application/json"  # the rest kept


@settings(max_examples=150, deadline=None)
@given(case=secret_in_a_shape())
def test_every_log_record_and_warning_is_redacted(case):
    _, text, secret = case
    stream = io.StringIO()
    saved, sys.stderr = sys.stderr, stream
    logsetup.configure(verbose=True, env={})
    try:
        # huggingface_hub puts its own handler on its logger when imported: records reach it redacted too
        foreign = logging.getLogger("huggingface_hub.utils._http")
        own = logging.StreamHandler(stream)
        logging.getLogger("huggingface_hub").addHandler(own)
        foreign.warning("Retrying in 1s [Retry 1/5]: %s", text)
        logging.getLogger("urllib3.connectionpool").warning("Retrying (%r) after connection broken: %s", 1, text)
        logging.getLogger("requests").error(text)
        logging.getLogger("sage_tasks.stages.fetch").info("download of %s", text)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn(f"insecure request to {text}", UserWarning, stacklevel=1)
        line = StoreError(f"cannot read {text}").one_line()
        logging.getLogger("huggingface_hub").removeHandler(own)
    finally:
        sys.stderr = saved
        logging.setLogRecordFactory(logsetup._plain_factory)
        logging.captureWarnings(False)
    written = stream.getvalue()
    assert "Retrying" in written and "insecure request" in written
    ours = StoreError("cannot read").one_line()  # our own words (the hint names HF_REPO_ID...) are not the secret
    for piece in parts(secret):
        if piece not in text.replace(secret, "") and piece not in ours:
            assert piece not in written
            assert piece not in redaction.redact(line)


def test_tasks_never_print_or_write_a_secret(tmp_path):
    """Real runs: a token in HF_TOKEN, in WHEEL_URL's userinfo, as a signed-URL parameter of the
    torch index; stdout, stderr, the run report, the store's manifests, index and files."""
    token = "hf_" + "Q7x" * 10
    signature = "SIGabc123def456ghi789"
    store = tmp_path / "store"
    env = {
        **os.environ,
        "SAGE_STORE": str(store),
        "SAGE_TASKS_CACHE": str(tmp_path / "cache"),
        "HOME": str(tmp_path),
        "HF_TOKEN": token,
        "TORCH_INDEX_URL": f"https://mirror.invalid/whl/cu128?X-Amz-Signature={signature}",
    }
    wheel = support.demo_wheel(tmp_path / "dist")
    support.demo_manifest(wheel, torch_index_url=f"https://mirror.invalid/whl/cu128?sig={signature}")
    recipe = support.write_demo_recipe(tmp_path / "demo.toml", "file:///nonexistent", None)

    def invoke(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "invoke", "--search-root", str(support.REPO), *args],
            env={**env, **extra},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    runs = [
        invoke("publish", "--wheel", str(wheel), "--verbose"),
        invoke("pin", "--dry-run", "--arch", "12.0", "--recipe", str(recipe), "--verbose"),
        invoke("auto", "--dry-run", "--arch", "12.0", "--recipe", str(recipe), "--report", str(tmp_path / "r.json")),
        invoke(
            "fetch",
            "--dry-run",
            "--recipe",
            str(recipe),
            WHEEL_URL=f"https://me:{token}@files.invalid/x-1-py3-none-any.whl",
            WHEEL_SHA256="0" * 64,
        ),
        invoke("fetch", "--recipe", str(recipe), WHEEL_URL=f"https://{token}@files.invalid/x.whl"),
    ]
    assert runs[0].returncode == 0, runs[0].stderr
    assert (tmp_path / "r.json").is_file() and json.loads((tmp_path / "r.json").read_text())
    assert any(r.returncode != 0 for r in runs[3:]), "the URLs with credentials were accepted"
    channels = {f"run {i} {name}": getattr(r, name) for i, r in enumerate(runs) for name in ("stdout", "stderr")}
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".log", ".txt", "") and path.stat().st_size < 5_000_000:
            channels[str(path)] = path.read_text(errors="replace")
    assert any("mirror.invalid" in text for text in channels.values()), "the index URL was never shown"
    for where, text in channels.items():
        assert token not in text, where
        assert signature not in text, where


def test_hub_commit_messages_and_files_never_hold_a_secret(tmp_path):
    """A yank's reason is free text that goes into the Hub commit message and the index: a
    secret-shaped reason (a URL with a token, a signed URL, a header) must not reach either. Read
    back as the Hub holds them: commit titles and messages through the Hub API, every file at head."""
    from huggingface_hub import HfApi

    from sage_tasks.core.settings import StoreConfig
    from sage_tasks.stages import publish
    from sage_tasks.store.hub import HubStore
    from tests.hub_server import HubServer

    repo_id = "tester/secret-shapes"
    with HubServer().start() as hub:
        api = HfApi(endpoint=hub.url, token=hub.token)
        api.create_repo(repo_id, repo_type="dataset")
        config = StoreConfig(
            kind="hub", local_dir=tmp_path / "unused", remote_dir="sageattention", repo_id=repo_id, endpoint=hub.url
        )
        store = HubStore(config, {"HF_TOKEN": hub.token, "HF_ENDPOINT": hub.url, "SAGE_RETRY_BASE_S": "0.01"})
        wheel = support.demo_wheel(tmp_path / "dist")
        support.demo_manifest(wheel)
        publish.publish(store, wheel, wheel.with_name(wheel.name + ".json"))

        # what the store holds with no secret anywhere: a generated "secret" that is already in
        # it (e.g. `torch_versio`) is a word of the format, not a leak
        baseline = "\n".join(data.decode(errors="replace") for data in hub.repo_files(repo_id).values())

        @settings(max_examples=40, deadline=None)
        @given(case=secret_in_a_shape())
        def yank_with_a_secret_reason(case):
            shape, text, secret = case
            assume(not any(piece in baseline for piece in parts(secret)))
            commits = hub.commit_count(repo_id)
            yanked = publish.set_yanked(store, wheel.name, f"fetched from {text}")
            released = publish.set_yanked(store, wheel.name, None)
            assert yanked.changed and released.changed and hub.commit_count(repo_id) == commits + 2
            shown = [f"{c.title}\n{c.message}" for c in api.list_repo_commits(repo_id, repo_type="dataset")]
            assert any(wheel.name in line and line.startswith("yank") for line in shown), shown
            files = {path: data.decode(errors="replace") for path, data in hub.repo_files(repo_id).items()}
            channels = {
                **{f"commit {i}": line for i, line in enumerate(shown)},
                **{path: data for path, data in files.items() if not path.endswith(".whl")},
                "yank result": repr(yanked),
            }
            for piece in parts(secret):
                if piece in text.replace(secret, ""):  # a piece that is also the host name is no leak
                    continue
                for where, content in channels.items():
                    assert piece not in content, (shape, where, content[:400])

        yank_with_a_secret_reason()

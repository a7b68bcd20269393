"""When the pin would replace an installed torch, the plan says how much it downloads: asked of
the stack's index (the suite's stand-in index, over HTTP on loopback and as file://), and
"size unknown" when the index cannot be reached."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sage_tasks.core import settings
from sage_tasks.stages import plan, stack, stack_size
from sage_tasks.store.manifest import Index
from tests import support

WHEEL = "sageattention-2.2.0+cu128torch2.8.0-cp312-cp312-linux_x86_64.whl"
REPLACED = {"torch": "2.8.0+cpu", "torchvision": "0.22.0"}  # installed; the pin wants the cu128 builds


def _plan(index_url: str) -> plan.Plan:
    env = {"HOME": "/home/u", "TORCH_INDEX_URL": index_url, "SAGE_ALLOW_INSECURE_URLS": "1"}
    s = settings.resolve({}, env)
    pinned = stack.resolve(env, None, stack.lock_for_machine(("12.0",), s.default_stack, s.manifests_dir))
    found = support.machine(packages=REPLACED, torch_cuda=None)
    return plan.compute(s, found, Index(wheels=[support.entry(wheel_file=WHEEL)]), pinned, allow_unverified=False)


def _expected_bytes(torch_index: str) -> int:
    """The sizes of the files the pin would download, read from the index folder itself."""
    folder = Path(urlsplit(torch_index).path)
    files = [folder / "torch" / "torch-2.8.0+cu128-py3-none-any.whl",
             folder / "torchvision" / "torchvision-0.23.0+cu128-py3-none-any.whl"]  # fmt: skip
    return sum(f.stat().st_size for f in files)


def test_the_plan_line_shows_the_download_size_of_the_replacing_stack(torch_index, torch_index_http):
    decided = _plan(torch_index_http)
    assert decided.path == "fetch" and decided.problem is None
    assert decided.replaces == ("torch 2.8.0+cpu → 2.8.0+cu128", "torchvision 0.22.0 → 0.23.0+cu128")
    expected = _expected_bytes(torch_index)
    assert decided.download == expected and decided.to_dict()["download_bytes"] == expected
    assert f"0.23.0+cu128 ({stack_size.describe(expected)})" in decided.summary


def test_a_file_index_gives_the_same_size(torch_index):
    differences = [stack.Difference("torch", "2.8.0+cu128", "2.8.0+cpu", ""),
                   stack.Difference("torchvision", "0.23.0+cu128", "0.22.0", "")]  # fmt: skip
    tags = support.machine().target.tags
    assert stack_size.download_size(torch_index, differences, tags) == _expected_bytes(torch_index)


def test_an_unreachable_index_says_size_unknown_and_the_plan_goes_on():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    decided = _plan(f"http://127.0.0.1:{port}/whl/cu128")
    assert time.monotonic() - start < stack_size.BUDGET_S
    assert decided.problem is None and decided.download is None
    assert "0.23.0+cu128 (download size unknown)" in decided.summary
    assert str(port) not in decided.summary


def test_an_index_that_trickles_bytes_is_given_up_on_within_the_budget():
    """One byte every few seconds never trips a per-read timeout; the whole question still ends."""
    stop = threading.Event()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)

    def trickle() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n")
            for _ in range(int(3 * stack_size.BUDGET_S / (stack_size.TIMEOUT_S / 2))):  # then it ends the body
                if stop.wait(stack_size.TIMEOUT_S / 2):
                    break
                with contextlib.suppress(OSError):
                    conn.sendall(b"<")

    threading.Thread(target=trickle, daemon=True).start()
    differences = [stack.Difference("torch", "2.9.9+cu128", "2.8.0+cpu", "")]
    start = time.monotonic()
    try:
        size = stack_size.download_size(
            f"http://127.0.0.1:{server.getsockname()[1]}/whl/cu128", differences, support.machine().target.tags
        )
        took = time.monotonic() - start
    finally:
        stop.set()
        server.close()
    assert size is None
    assert stack_size.BUDGET_S <= took < stack_size.BUDGET_S + 2  # it waited for the budget, then no longer


def test_a_pep691_page_gives_sizes_without_asking_for_the_file():
    page = {
        "meta": {"api-version": "1.1"},
        "name": "torch",
        "files": [
            {"filename": "torch-2.8.0+cu128-cp312-cp312-manylinux_2_28_x86_64.whl", "url": "a.whl", "size": 900},
            {"filename": "torch-2.8.0+cu128-cp311-cp311-manylinux_2_28_x86_64.whl", "url": "b.whl", "size": 800},
            {"filename": "torch-2.8.0+cpu-cp312-cp312-manylinux_2_28_x86_64.whl", "url": "c.whl", "size": 100},
            {"filename": "torch-2.8.0+cu128.tar.gz", "url": "d.tar.gz", "size": 5},
        ],
    }
    files = stack_size.parse_page("application/vnd.pypi.simple.v1+json", json.dumps(page), "https://i.example/torch/")
    chosen = stack_size.pick(files, "torch", "2.8.0+cu128", support.machine().target.tags)
    assert chosen is not None and (chosen.url, chosen.size) == ("https://i.example/torch/a.whl", 900)


def test_an_html_page_picks_the_most_specific_tag_of_the_pinned_version():
    html = (
        '<a href="/whl/cu128/triton-3.4.0-py3-none-any.whl#sha256=00">x</a>'
        '<a href="triton-3.4.0-cp312-cp312-manylinux_2_28_x86_64.whl#sha256=11">y</a>'
        '<a href="triton-3.3.1-cp312-cp312-manylinux_2_28_x86_64.whl">z</a>'
    )
    files = stack_size.parse_page("text/html", html, "https://i.example/whl/cu128/triton/")
    tags = ("cp312-cp312-manylinux_2_28_x86_64", "py3-none-any")  # most specific first
    chosen = stack_size.pick(files, "triton", "3.4.0", tags)
    assert chosen is not None
    assert chosen.url == "https://i.example/whl/cu128/triton/triton-3.4.0-cp312-cp312-manylinux_2_28_x86_64.whl"
    assert (
        stack_size.pick(files, "triton", "3.4.0", tags[1:]).url
        == "https://i.example/whl/cu128/triton-3.4.0-py3-none-any.whl"
    )
    assert stack_size.pick(files, "triton", "3.5.0", tags) is None


@pytest.mark.slow
def test_pin_says_what_replacing_torch_downloads(tasks, tmp_path, torch_index, torch_index_http):
    venv = support.make_venv(tmp_path / "venv")
    subprocess.run(
        [str(venv), "-m", "pip", "install", "-q", "--index-url", torch_index, "torch==2.8.0+cpu"],
        check=True,
        env=support.offline_pip_env(os.environ),
    )
    env = {**os.environ, "TORCH_INDEX_URL": torch_index_http, "SAGE_ALLOW_INSECURE_URLS": "1"}
    done = tasks("pin", "--python", str(venv), "--dry-run", env=env)
    assert done.returncode == 0, done.stderr
    folder = Path(urlsplit(torch_index).path)
    expected = sum(
        (folder / name.split("-")[0] / name).stat().st_size
        for name in ("torch-2.8.0+cu128-py3-none-any.whl", "torchvision-0.23.0+cu128-py3-none-any.whl",
                     "torchaudio-2.8.0+cu128-py3-none-any.whl", "triton-3.4.0-py3-none-any.whl")
    )  # fmt: skip
    assert f"pin replaces torch 2.8.0+cpu with 2.8.0+cu128, {stack_size.describe(expected)}" in done.stderr

"""Our downloader shows bytes and rate when asked (a terminal) and nothing otherwise (--json, CI)."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest

from sage_tasks.core import download


@pytest.fixture
def server(tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "demo-1.0-py3-none-any.whl").write_bytes(b"x" * 3_000_000)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path / "www"), **kwargs)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.mark.parametrize("progress", [True, False])
def test_progress_only_when_asked(server, tmp_path, capsys, progress):
    got = download.fetch(
        f"{server}/demo-1.0-py3-none-any.whl", tmp_path / "got.whl", allow_http=True, progress=progress
    )
    assert Path(got).stat().st_size == 3_000_000
    err = capsys.readouterr().err
    if progress:
        assert "demo-1.0-py3-none-any.whl: 3.0 MB / 3.0 MB" in err and "MB/s" in err
    else:
        assert err == ""

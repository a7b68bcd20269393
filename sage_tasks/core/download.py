"""Download one file over HTTPS (or copy a file:// URL) into place, never leaving half a file.

Retries connection errors, 408/429 and 5xx with bounded backoff, resumes a partial body with a
Range request, and always verifies TLS. Plain ``http://`` is refused unless explicitly allowed.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from pathlib import Path
from typing import TextIO
from urllib.parse import unquote, urlparse, urlsplit

from . import redaction
from .errors import ConfigError, StoreError

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 429, 500, 502, 503, 504}


def file_name(url: str) -> str:
    """The (percent-decoded) last path segment of a URL."""
    return unquote(urlparse(url).path.rsplit("/", 1)[-1])


INSECURE_URL_VARS = ("SAGE_ALLOW_INSECURE_URLS", "SAGE_ALLOW_HTTP")  # the second: the older name


def check_url(url: str, allow_insecure: bool, what: str) -> str:
    """Refuse a URL before pip, uv or our downloader sees it: credentials in it (userinfo)
    always, ``http://`` and ``file://`` unless ``SAGE_ALLOW_INSECURE_URLS=1`` (offline mirrors,
    tests), anything else always. Returns the scheme."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if "@" in parts.netloc:
        raise ConfigError(
            f"{what} carries credentials in its address ({redaction.redact(url)})",
            "give credentials through ~/.netrc or a keyring, never inside the URL",
        )
    if scheme == "https" and parts.hostname:
        return scheme
    if scheme in ("http", "file") and (parts.hostname or scheme == "file"):
        if allow_insecure:
            return scheme
        kind = "plain-HTTP" if scheme == "http" else "file://"
        raise ConfigError(
            f"refusing {kind} URL {redaction.redact(url)} for {what}",
            "use https, or set SAGE_ALLOW_INSECURE_URLS=1 for a trusted offline mirror",
        )
    raise ConfigError(f"{what} {redaction.redact(url)!r} is not an https:// URL", "use an https:// URL")


def check_scheme(url: str, allow_http: bool) -> str:
    """``WHEEL_URL``'s check (``allow_http``: SAGE_ALLOW_INSECURE_URLS or SAGE_ALLOW_HTTP)."""
    return check_url(url, allow_http, "WHEEL_URL")


class Progress:
    """Bytes and rate of a download on one terminal line (stderr), at most five times a second.
    Off unless asked for: ``--json`` runs and CI logs stay quiet."""

    def __init__(self, name: str, total: int | None, start_at: int = 0, stream: TextIO | None = None) -> None:
        self.name, self.total, self.done = name, total, start_at
        self.stream = stream or sys.stderr
        self.start = self.last = time.perf_counter()
        self.first = start_at

    def add(self, count: int) -> None:
        self.done += count
        now = time.perf_counter()
        if now - self.last >= 0.2:
            self.last = now
            self._show(now)

    def _show(self, now: float) -> None:
        rate = (self.done - self.first) / max(now - self.start, 1e-6)
        of = f" / {self.total / 1e6:.1f} MB" if self.total else ""
        self.stream.write(f"\r  {self.name}: {self.done / 1e6:.1f} MB{of}  {rate / 1e6:.1f} MB/s ")
        self.stream.flush()

    def finish(self) -> None:
        self._show(time.perf_counter())
        self.stream.write("\n")
        self.stream.flush()


def fetch(
    url: str,
    dest: Path,
    *,
    allow_http: bool = False,
    headers: dict[str, str] | None = None,
    attempts: int = 5,
    timeout: float = 60.0,
    backoff: float = 1.0,
    progress: bool = False,
) -> Path:
    """``progress``: show bytes and rate on stderr (callers pass it only for a terminal, not
    with ``--json`` and not in CI)."""
    scheme = check_scheme(url, allow_http)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.part")
    if scheme == "file":
        source = Path(unquote(urlparse(url).path))
        try:
            shutil.copyfile(source, part)
        except OSError as e:
            part.unlink(missing_ok=True)
            raise StoreError(f"cannot read {source}: {e.strerror}") from e
        part.replace(dest)
        return dest

    import requests  # imported here: it costs a tenth of a second and only downloads need it

    last_error = ""
    for attempt in range(1, attempts + 1):
        have = part.stat().st_size if part.exists() else 0
        request_headers = dict(headers or {})
        if have:
            request_headers["Range"] = f"bytes={have}-"
        try:
            with requests.get(url, headers=request_headers, stream=True, timeout=timeout, verify=True) as response:
                if response.status_code in RETRY_STATUS:
                    last_error = f"HTTP {response.status_code}"
                elif response.status_code >= 400:
                    part.unlink(missing_ok=True)
                    raise StoreError(f"download of {url} failed: HTTP {response.status_code} {response.reason}")
                else:
                    resumed = response.status_code == 206
                    expected = response.headers.get("Content-Length")
                    total_hint = (have if resumed else 0) + int(expected) if expected else None
                    shown = Progress(file_name(url), total_hint, have if resumed else 0) if progress else None
                    with part.open("ab" if resumed else "wb") as out:
                        for block in response.iter_content(1 << 16):  # small blocks: a cut body keeps what arrived
                            out.write(block)
                            if shown is not None:
                                shown.add(len(block))
                    if shown is not None:
                        shown.finish()
                    got = part.stat().st_size
                    total = (have if resumed else 0) + int(expected) if expected else None
                    if total is None or got == total:
                        part.replace(dest)
                        return dest
                    last_error = f"short body ({got} of {total} bytes)"
        except requests.RequestException as e:
            last_error = type(e).__name__
        if attempt < attempts:
            delay = min(backoff * 2 ** (attempt - 1), 30.0)
            log.info(
                "download of %s: %s; retrying in %.0f s (%d/%d)", file_name(url), last_error, delay, attempt, attempts
            )
            time.sleep(delay)
    part.unlink(missing_ok=True)
    raise StoreError(
        f"download of {url} failed after {attempts} attempts: {last_error}", "check the network and try again"
    )


# ---------------------------------------------------------------- small reads (index pages, sizes)

SIMPLE_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"


def _local(url: str) -> Path:
    return Path(unquote(urlparse(url).path))


MAX_PAGE_BYTES = 32 << 20  # a project page of a simple index; PyTorch's torch page is well under this


def read_page(url: str, *, timeout: float = 5.0, accept: str = SIMPLE_ACCEPT) -> tuple[str, str]:
    """(content type, text) of a small page: a simple index's project page (PEP 691 JSON when
    the index offers it, else its HTML). A ``file://`` folder is read as its ``index.html``, as
    pip and uv read one. One request, ``timeout`` seconds to connect and between bytes; any
    failure is a ``StoreError`` naming the URL without secrets."""
    shown = redaction.redact(url)
    if urlsplit(url).scheme == "file":
        path = _local(url)
        page = path / "index.html" if path.is_dir() else path
        try:
            return "text/html", page.read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            raise StoreError(f"cannot read {shown}: {e.strerror}") from e
    import requests

    try:
        with requests.get(url, headers={"Accept": accept}, timeout=timeout, verify=True, stream=True) as response:
            if response.status_code >= 400:
                raise StoreError(f"cannot read {shown}: HTTP {response.status_code}")
            body = bytearray()
            for chunk in response.iter_content(1 << 16):
                body += chunk
                if len(body) > MAX_PAGE_BYTES:
                    raise StoreError(f"cannot read {shown}: larger than {MAX_PAGE_BYTES >> 20} MiB")
            encoding = response.encoding or "utf-8"
            return response.headers.get("Content-Type", ""), body.decode(encoding, errors="replace")
    except requests.RequestException as e:
        raise StoreError(f"cannot read {shown}: {type(e).__name__}") from e
    except LookupError:  # an encoding name Python does not know
        return response.headers.get("Content-Type", ""), body.decode("utf-8", errors="replace")


def remote_size(url: str, *, timeout: float = 5.0) -> int | None:
    """Bytes of a file behind a URL without downloading it: one HEAD's Content-Length (None when
    the server does not say), or a ``file://`` file's size. Failures are ``StoreError``."""
    shown = redaction.redact(url)
    if urlsplit(url).scheme == "file":
        try:
            return _local(url).stat().st_size
        except OSError as e:
            raise StoreError(f"cannot stat {shown}: {e.strerror}") from e
    import requests

    try:
        response = requests.head(url, timeout=timeout, allow_redirects=True, verify=True)
    except requests.RequestException as e:
        raise StoreError(f"cannot reach {shown}: {type(e).__name__}") from e
    if response.status_code >= 400:
        raise StoreError(f"cannot reach {shown}: HTTP {response.status_code}")
    length = response.headers.get("Content-Length", "")
    return int(length) if length.isdigit() else None

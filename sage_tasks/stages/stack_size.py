"""How much a pin would download: the size of the wheel each differing package would come from.

Read from the index the stack is installed from (the stack's torch index): one project page per
package — a PEP 691 JSON page gives each file's ``size`` (PEP 700); from an HTML (PEP 503)
page or a ``file://`` index, the one chosen file's size is asked for (a HEAD, or the file's
size). The file is the one pip or uv would pick for the target: the pinned version, the
target's most specific wheel tag. When anything is missing — no index, unreachable, no
fitting file, no length — the size is unknown (``None``); this never fails a plan.
``parse_page``, ``pick`` and ``describe`` are pure.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import TYPE_CHECKING
from urllib.parse import unquote, urljoin, urlsplit

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from ..core import download, redaction
from ..core.errors import SageTasksError

if TYPE_CHECKING:
    from .stack import Difference

log = logging.getLogger(__name__)

TIMEOUT_S = 4.0  # per request (connect, and between bytes)
BUDGET_S = 10.0  # for the whole question: after it, the size is unknown


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str
    size: int | None  # from a PEP 700 JSON page; None from HTML


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


def parse_page(content_type: str, text: str, page_url: str) -> list[IndexFile]:
    """The files of a simple-index project page (PEP 691 JSON or PEP 503 HTML)."""
    if "json" in content_type.split(";")[0]:
        data = json.loads(text)
        found = []
        for entry in data.get("files", []):
            size = entry.get("size")
            found.append(
                IndexFile(
                    str(entry["filename"]),
                    urljoin(page_url, str(entry["url"])),
                    size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
                )
            )
        return found
    links = _Links()
    links.feed(text)
    found = []
    for href in links.hrefs:
        url = urljoin(page_url, href).split("#", 1)[0]
        found.append(IndexFile(unquote(urlsplit(url).path.rsplit("/", 1)[-1]), url, None))
    return found


def pick(files: Sequence[IndexFile], package: str, wanted: str, tags: Sequence[str]) -> IndexFile | None:
    """The wheel an installer would take for ``package==wanted`` on a target with ``tags``
    (most specific first): the exact version (a pin without a local label also matches local
    builds, as ``==`` does), then the most specific tag."""
    want = Version(wanted)
    rank = {tag: i for i, tag in enumerate(tags)}
    best: tuple[tuple[int, int], IndexFile] | None = None
    for file in files:
        try:
            name, version, _, file_tags = parse_wheel_filename(file.filename)
        except InvalidWheelFilename:
            continue  # an sdist, or not a wheel
        if name != canonicalize_name(package):
            continue
        exact = version == want
        if not exact and (want.local is not None or version.public != want.public):
            continue
        fits = [rank[str(t)] for t in file_tags if str(t) in rank]
        if not fits:
            continue
        key = (0 if exact else 1, min(fits))
        if best is None or key < best[0]:
            best = (key, file)
    return best[1] if best else None


def describe(size: int | None) -> str:
    if size is None:
        return "download size unknown"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"download {size / scale:.1f} {unit}"
    return f"download {size} B"


_asked: dict[tuple[str, tuple[tuple[str, str], ...], tuple[str, ...]], int | None] = {}  # per process


def download_size(index_url: str | None, differences: Sequence[Difference], tags: Sequence[str]) -> int | None:
    """Total bytes of the wheels a pin of ``differences`` would download from ``index_url``, or
    None when it cannot be had (said once, at debug level, without secrets). Never longer than
    ``BUDGET_S`` (a resolver or a server that trickles bytes included); asked once per process
    (auto's plan and its pin step ask the same question)."""
    if not index_url or not differences:
        return None if differences else 0
    key = (index_url, tuple((d.package, d.wanted) for d in differences), tuple(tags))
    if key not in _asked:
        answer: list[int | None] = []
        worker = threading.Thread(
            target=lambda: answer.append(_total(index_url, differences, tags)), name="download-size", daemon=True
        )
        worker.start()
        worker.join(BUDGET_S)  # a request still hanging after it is left to end on its own
        if not answer:
            log.debug("download size: no answer within %.0f s", BUDGET_S)
        _asked[key] = answer[0] if answer else None
    return _asked[key]


def _total(index_url: str, differences: Sequence[Difference], tags: Sequence[str]) -> int | None:
    deadline = time.monotonic() + BUDGET_S
    total = 0
    for d in differences:
        if time.monotonic() > deadline:
            log.debug("download size: out of time before %s", d.package)
            return None
        page = f"{index_url.rstrip('/')}/{canonicalize_name(d.package)}/"
        try:
            content_type, text = download.read_page(page, timeout=TIMEOUT_S)
            chosen = pick(parse_page(content_type, text, page), d.package, d.wanted, tags)
            if chosen is None:
                log.debug("download size: no wheel of %s==%s for this target in %s", d.package, d.wanted,
                          redaction.redact(page))  # fmt: skip
                return None
            size = chosen.size if chosen.size is not None else download.remote_size(chosen.url, timeout=TIMEOUT_S)
        except (SageTasksError, ValueError, KeyError, TypeError) as e:  # unreachable, or a page we cannot read
            log.debug("download size of %s unknown: %s", d.package, redaction.redact(str(e)))
            return None
        if size is None:
            return None
        total += size
    return total

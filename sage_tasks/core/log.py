"""Logging set-up: human progress to stderr, secrets redacted, steps announced as steps."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping

from . import redaction

LOGGER_NAME = "sage_tasks"


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redaction.redact(super().format(record))


# Third-party loggers whose records can carry an endpoint with credentials or a signed URL
# (retry warnings print the URL). Their records, and `warnings`, go through our handler.
THIRD_PARTY = ("huggingface_hub", "requests", "urllib3", "httpx", "httpcore", "filelock", "py.warnings")
_plain_factory = logging.getLogRecordFactory()


def _redacting_record(*args: object, **kwargs: object) -> logging.LogRecord:
    """Every record, from any logger and for any handler (huggingface_hub installs its own
    stderr handler), carries its message already redacted."""
    record = _plain_factory(*args, **kwargs)
    try:
        text = record.getMessage()
    except Exception:  # a foreign record whose arguments do not fit its format: keep it as it is
        return record
    record.msg, record.args = redaction.redact(text), None
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        record.exc_text = redaction.redact(logging.Formatter().formatException(record.exc_info))
    return record


def configure(verbose: bool = False, env: Mapping[str, str] | None = None) -> None:
    """Send our log records to stderr. ``SAGE_TASKS_VERBOSE=1`` or ``verbose`` shows debug lines."""
    env = os.environ if env is None else env
    level = logging.DEBUG if verbose or env.get("SAGE_TASKS_VERBOSE") == "1" else logging.INFO
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter("%(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    logging.setLogRecordFactory(_redacting_record)
    logging.captureWarnings(True)
    for name in THIRD_PARTY:
        other = logging.getLogger(name)
        for old in list(other.handlers):
            other.removeHandler(old)
        other.addHandler(handler)
        other.setLevel(logging.DEBUG if level == logging.DEBUG else logging.WARNING)
        other.propagate = False


def step(logger: logging.Logger, title: str) -> None:
    """Announce a long step (folded into a group in GitHub Actions logs)."""
    if os.environ.get("GITHUB_ACTIONS") == "true":
        logger.info("::group::%s", title)
    else:
        logger.info("==> %s", title)


def end_step(logger: logging.Logger) -> None:
    if os.environ.get("GITHUB_ACTIONS") == "true":
        logger.info("::endgroup::")


class Stopwatch:
    """Seconds since creation, rounded for reports."""

    def __init__(self) -> None:
        self._start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self._start, 3)

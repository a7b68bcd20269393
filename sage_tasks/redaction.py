"""Keep secrets out of everything we print or write.

Every token we are handed is registered here; ``redact`` replaces registered values and
anything shaped like a Hugging Face token. Logging, error lines, reports and manifests pass
through ``redact`` before they leave the process.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_TOKEN_SHAPE = re.compile(r"hf_[A-Za-z0-9]{20,}")
_BEARER = re.compile(r"(?i)(authorization:\s*bearer\s+)\S+")
_REDACTED = "***"
_known: set[str] = set()

SECRET_ENV_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def register(value: str | None) -> None:
    """Remember a secret so that ``redact`` removes it wherever it shows up."""
    if value and len(value) >= 4:
        _known.add(value)


def register_from_env(env: Mapping[str, str]) -> None:
    for name in SECRET_ENV_VARS:
        register(env.get(name))


def redact(text: str) -> str:
    for value in sorted(_known, key=len, reverse=True):
        text = text.replace(value, _REDACTED)
    text = _BEARER.sub(lambda m: m.group(1) + _REDACTED, text)
    return _TOKEN_SHAPE.sub("hf_" + _REDACTED, text)

"""Keep secrets out of everything we print or write.

Every token we are handed is registered here; ``redact`` replaces registered values, anything
shaped like a Hugging Face token, credentials inside URLs (``tok@``, ``user:pass@``), signed-URL
query parameters (``X-Amz-Signature=``, ``sig=``, ``token=``…) and ``Authorization`` headers.
Every log record (ours, huggingface_hub's, requests' and urllib3's, and ``warnings``), error
lines, reports and manifests pass through ``redact`` before they leave the process.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

_TOKEN_SHAPE = re.compile(r"hf_[A-Za-z0-9]{20,}")
# `Authorization: Bearer …` / `Basic …` as headers are echoed (also as a dict's repr or JSON)
_AUTH_HEADER = re.compile(
    r"(?i)(\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)((?:bearer|basic|token|digest)\s+)?[^\s\"',}]+"
)
_BEARER = re.compile(r"(?i)\b((?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{8,}")
# user, or user and password, before the last `@` of a URL's authority (a password may hold `@` or `:`)
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s?#\"'<>]*@")
# signed-URL and token query parameters (S3/GCS/Azure presigned URLs, OAuth)
_SECRET_PARAMS = "|".join(
    ("token", "access_token", "refresh_token", "id_token", "api_key", "apikey", "key", "sig", "signature",
     "password", "secret", "x-amz-signature", "x-amz-credential", "x-amz-security-token", "x-goog-signature",
     "x-goog-credential")
)  # fmt: skip
_URL_SECRET_PARAM = re.compile(rf"(?i)([?&;](?:{_SECRET_PARAMS})=)[^&\s#\"'<>]+")
# a JSON key that says its value is a secret (headers echoed as data, signed-URL fields)
_SECRET_KEY = re.compile(rf"(?i)(?:(?:proxy-)?authorization|cookie|set-cookie|hf_token|{_SECRET_PARAMS})")
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


def without_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """The environment for third-party code (builds, kernel checks): our tokens left out."""
    return {k: v for k, v in env.items() if k not in SECRET_ENV_VARS}


def redact(text: str) -> str:
    for value in sorted(_known, key=len, reverse=True):
        text = text.replace(value, _REDACTED)
    text = _AUTH_HEADER.sub(lambda m: m.group(1) + (m.group(2) or "") + _REDACTED, text)
    text = _BEARER.sub(lambda m: m.group(1) + _REDACTED, text)
    text = _URL_USERINFO.sub(lambda m: m.group(1) + _REDACTED + "@", text)
    text = _URL_SECRET_PARAM.sub(lambda m: m.group(1) + _REDACTED, text)
    return _TOKEN_SHAPE.sub("hf_" + _REDACTED, text)


def redact_data(data: Any) -> Any:
    """``data`` (JSON-shaped: dicts, lists, strings...) with every string and key redacted, and
    the whole value of a key that names a secret (``Authorization``, ``X-Amz-Signature``...).
    Redact before serialising, never the JSON text: a pattern that ends inside an escape
    (``sig=abc\\"``) would eat the backslash and leave a file no parser reads."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, Mapping):
        return {
            redact(k) if isinstance(k, str) else k: (
                _REDACTED
                if isinstance(k, str) and isinstance(v, str) and v and _SECRET_KEY.fullmatch(k)
                else redact_data(v)
            )
            for k, v in data.items()
        }
    if isinstance(data, list | tuple):
        return [redact_data(v) for v in data]
    return data


def public_url(url: str | None) -> str | None:
    """A URL fit to be recorded in a published manifest: credentials and secret parameters are
    dropped (not masked), so that the URL still works for whoever brings their own."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    query = "&".join(p for p in parts.query.split("&") if p and not _URL_SECRET_PARAM.match("?" + p))
    return redact(urlunsplit((parts.scheme, host, parts.path, query, parts.fragment)))

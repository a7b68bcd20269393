"""What a failed Hub call was: its HTTP status, the server's own message (redacted), and whether
it was the connection rather than the server. Works on huggingface_hub's, requests' and
httpx's exceptions alike without importing them.
"""

from __future__ import annotations

from ..core import redaction


def status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def server_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    message = None
    if response is not None:
        message = response.headers.get("X-Error-Message") if hasattr(response, "headers") else None
        if not message:
            try:
                body = response.json()
                message = body.get("error") if isinstance(body, dict) else None
            except Exception:
                message = None
    text = message or str(exc).splitlines()[0]
    return redaction.redact(text)[:300]


def is_connection_error(exc: BaseException) -> bool:
    names = {c.__name__ for c in type(exc).__mro__}
    return bool(
        names
        & {
            "ConnectionError",
            "ConnectError",
            "TimeoutException",
            "ReadTimeout",
            "ConnectTimeout",
            "RemoteProtocolError",
            "ReadError",
        }
    ) or isinstance(exc, OSError)

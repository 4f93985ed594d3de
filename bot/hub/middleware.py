"""ASGI middleware of the hub: request body limits, security headers, secret-free logs.

Both middlewares are plain ASGI (not ``BaseHTTPMiddleware``): the console's event stream and
the widget's socket pass through untouched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

Scope = dict[str, Any]

# every response; a route that sets one of them itself keeps its own value
DEFAULT_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    # pages (demo, console) send their own policy; JSON, scripts and images need nothing
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)
HSTS = (b"strict-transport-security", b"max-age=31536000")


class SecurityHeaders:
    """Adds ``DEFAULT_HEADERS`` (and HSTS over https) to every HTTP response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = DEFAULT_HEADERS + ((HSTS,) if scope.get("scheme") == "https" else ())

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in extra if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuses request bodies larger than a limit with 413 and a JSON error: at once when
    ``Content-Length`` says so, and while reading when the body is streamed (chunked) and
    grows past it. Nothing beyond the limit is ever handed to the application, so a huge
    body costs no memory. ``per_path`` gives other limits to some paths (photo uploads)."""

    def __init__(self, app: Any, max_bytes: int, per_path: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.per_path = dict(per_path or {})

    def limit_for(self, path: str) -> int:
        return self.per_path.get(path, self.max_bytes)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = _content_length(scope.get("headers") or ())
        if declared is not None and declared > limit:
            await _too_large(send, limit)
            return
        state = {"received": 0, "started": False, "refused": False}

        async def limited_receive() -> dict[str, Any]:
            if state["refused"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body") or b"")
                if state["received"] > limit:
                    state["refused"] = True
                    if not state["started"]:
                        state["started"] = True
                        await _too_large(send, limit)
                    # the application sees a client that went away; the rest of the body is
                    # read and discarded by the server, never buffered
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            if state["refused"]:
                return  # our 413 went out; whatever the application answers is dropped
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if state["refused"]:  # the application choked on the cut body: already answered
                return
            raise


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Any, limit: int) -> None:
    message = f"request body larger than {limit} bytes"
    body = json.dumps({"error": "too_large", "message": message, "detail": message}).encode()
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


# --- logs ----------------------------------------------------------------------------------

# libraries that log every URL they call (httpx: Rasa's and Telegram's, with the bot token in
# the path): only their warnings reach our logs
CHATTY_LOGGERS = ("httpx", "httpcore", "hpack", "telegram.ext.ExtBot", "apscheduler")


class RedactingFormatter(logging.Formatter):
    """Replaces every known secret in the formatted line (message and traceback) by ``***``."""

    def __init__(self, secrets: Iterable[str], base: logging.Formatter | None = None) -> None:
        super().__init__()
        self.base = base or logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        # longest first: a secret that contains another is replaced whole
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        text = self.base.format(record)
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text


def protect_logs(secrets: Iterable[str]) -> None:
    """Quiet URL-logging libraries and redact secrets in every handler configured so far
    (root and uvicorn's)."""
    for name in CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)
    secrets = [s for s in secrets if s]
    loggers = [logging.getLogger()] + [logging.getLogger(n) for n in
                                       ("uvicorn", "uvicorn.error", "uvicorn.access")]
    for logger in loggers:
        for handler in logger.handlers:
            current = handler.formatter
            if isinstance(current, RedactingFormatter):
                current = current.base
            handler.setFormatter(RedactingFormatter(secrets, current))

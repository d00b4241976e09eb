"""Request body size limits, enforced while the body streams in (not after it has been buffered)."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

JSON_BODY_LIMIT = 1 << 20  # search and embed bodies are small; nobody needs megabytes of JSON
MULTIPART_OVERHEAD = 64 << 10  # form fields and part headers around an uploaded file


class BodyLimitMiddleware:
    """Answer 413 when a body is larger than its route allows.

    Uploads (``upload_paths``) may carry ``upload_limit`` bytes of file plus form overhead; every
    other request at most ``JSON_BODY_LIMIT``. A declared Content-Length over the limit is refused
    before reading; a chunked body is counted as it arrives and cut off at the limit.
    """

    def __init__(self, app: ASGIApp, upload_limit: int, upload_paths: frozenset[str]) -> None:
        self.app = app
        self.upload_limit = upload_limit + MULTIPART_OVERHEAD
        self.upload_paths = upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_limit if scope["path"] in self.upload_paths else JSON_BODY_LIMIT
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(send, limit)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the app: its exception handlers turn it into the JSON 413.
                    raise HTTPException(413, f"the request body is larger than the limit of {limit:,} bytes")
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "error": {
                "code": "payload_too_large",
                "message": f"the request body is larger than the limit of {limit:,} bytes",
                "status": 413,
            }
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

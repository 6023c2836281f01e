"""A bound on request bodies, checked before anything reads them.

Starlette parses a multipart upload into temporary files and a JSON body into memory before a
route runs, so a limit in the route comes too late: a body past the bound would already fill the
disk or the memory.  This middleware answers 413 at once when the declared ``content-length`` is
over the bound, and otherwise counts the bytes as the app receives them (a chunked upload declares
none), stopping the read with a 413 as soon as they pass it.  Dataset uploads get their own,
larger bound.
"""

from __future__ import annotations

import re

from fastapi import HTTPException, status
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UPLOAD_PATH = re.compile(r"/admin/datasets/[^/]+/import")


def too_large(limit: int) -> str:
    return f"request body too large: at most {limit:,} bytes here"


class BodyLimit:
    def __init__(self, app: ASGIApp, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_upload_bytes if UPLOAD_PATH.fullmatch(scope["path"]) else self.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await JSONResponse({"detail": too_large(limit)}, status.HTTP_413_CONTENT_TOO_LARGE)(
                    scope, receive, send)
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # raised in the route's reading: the app's handler answers the 413
                    raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, too_large(limit))
            return message

        await self.app(scope, counted, send)

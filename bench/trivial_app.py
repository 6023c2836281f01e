"""The ceiling of Python serving: a bare ASGI callable (no framework) answering fixed bytes.

``bench http`` writes the body of a real cache-hit answer of the API to a file and names it in
``RECOPS_BENCH_BODY``, so this app sends the same bytes with the same headers as the API does;
without it, a list of the same shape.  Every path and method gets the body (the health check too).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson


def _sample_body() -> bytes:
    items = [{"item_id": f"i{i:05d}", "title": f"Item {i}", "category": "books", "score": 1.0,
              "reason": "Popular right now"} for i in range(10)]
    return orjson.dumps({"user_id": "u00001", "items": items, "cached": True, "cache_tier": "l1",
                         "model": "als", "experiment": None, "variant": None, "fallback": False,
                         "request_id": "0" * 32})


_path = os.environ.get("RECOPS_BENCH_BODY")
BODY = Path(_path).read_bytes() if _path else _sample_body()
START = {"type": "http.response.start", "status": 200,
         "headers": [(b"content-length", str(len(BODY)).encode()), (b"content-type", b"application/json")]}
END = {"type": "http.response.body", "body": BODY}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send(START)
    await send(END)

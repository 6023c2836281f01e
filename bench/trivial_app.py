"""The framework's ceiling: a FastAPI endpoint that does nothing, served exactly like the API."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()
PAYLOAD = {"user_id": "u00001", "items": [{"item_id": f"i{i:05d}", "score": 1.0} for i in range(10)]}


@app.post("/recommendations")
async def recommendations(user_id: str = "u00001", n: int = 10) -> dict[str, object]:
    return PAYLOAD

"""Request bodies past their bound are a 413 before anything reads them whole, and store nothing.

In process, on a real engine and Redis, with bounds narrowed so that a test can pass them: 4,000
bytes for any body, 20,000 for a dataset upload.  A body with a ``content-length`` is refused at
once; a chunked one (no length declared) while it is read.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from pydantic import SecretStr
from starlette.testclient import TestClient

from engine.api.app import create_app
from engine.config import Settings
from engine.data.dataset_store import DatasetStore, datasets_root
from engine.runtime import Engine

TOKEN = "body-limit-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
BODY_BOUND, UPLOAD_BOUND = 4_000, 20_000
BOUNDARY = "recops-test-boundary"


@pytest.fixture
def engine_settings(engine_settings: Settings) -> Settings:
    return engine_settings.model_copy(update={"admin_token": SecretStr(TOKEN), "max_body_bytes": BODY_BOUND,
                                              "max_upload_bytes": UPLOAD_BOUND})


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine.settings, engine)) as c:
        yield c


def _csv(size: int) -> bytes:
    rows = [b"user_id,item_id"]
    while sum(len(r) + 1 for r in rows) < size:
        rows.append(f"u{len(rows) % 50:05d},i{len(rows) % 300:05d}".encode())
    return b"\n".join(rows) + b"\n"


def _stored(engine: Engine) -> dict[str, list[int]]:
    store = DatasetStore(datasets_root(engine.settings))
    return {name: store.versions(name) for name in store.names()}


def test_an_upload_past_its_bound_is_a_413_and_stores_nothing(client: TestClient, engine: Engine) -> None:
    before = _stored(engine)
    r = client.post("/admin/datasets/big/import", headers=ADMIN, files={"interactions": ("d.csv", _csv(30_000))})
    assert r.status_code == 413, r.text
    assert r.json()["detail"] == "request body too large: at most 20,000 bytes here"
    assert _stored(engine) == before


def test_a_chunked_upload_is_refused_by_counting_its_bytes(client: TestClient, engine: Engine) -> None:
    head = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="interactions"; filename="d.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n").encode()
    body = head + _csv(60_000) + f"\r\n--{BOUNDARY}--\r\n".encode()
    def chunks() -> Iterator[bytes]:  # no content-length: httpx sends it chunked
        for start in range(0, len(body), 4_096):
            yield body[start:start + 4_096]

    before = _stored(engine)
    r = client.post("/admin/datasets/big/import", headers={**ADMIN, "Content-Type":
                    f"multipart/form-data; boundary={BOUNDARY}"}, content=chunks())
    assert r.status_code == 413, r.text
    assert "content-length" not in r.request.headers, "the bytes were counted, no length was declared"
    assert _stored(engine) == before


def test_any_other_body_has_the_general_bound(client: TestClient, redis_client: redis.Redis) -> None:
    def events(n: int, tag: str) -> list[dict[str, str]]:
        return [{"event_id": f"{tag}-{i}", "user_id": "u00001", "item_id": "i00001", "type": "view"}
                for i in range(n)]

    assert client.post("/events/batch", json=events(5, "small")).status_code == 200
    r = client.post("/events/batch", json=events(100, "big"))  # ~8 kB
    assert r.status_code == 413 and r.json()["detail"] == "request body too large: at most 4,000 bytes here"
    stored = {fields["event_id"] for _, fields in redis_client.xrange("recops:events")}
    assert {f"small-{i}" for i in range(5)} <= stored and not any(e.startswith("big-") for e in stored)


def test_the_bounds_are_settings(engine: Engine) -> None:
    assert Settings().max_body_bytes == 16 << 20 and Settings().max_upload_bytes == 2 << 30
    assert engine.settings.max_upload_bytes == UPLOAD_BOUND

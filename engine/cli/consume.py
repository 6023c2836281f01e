"""``recops consume``: tracked events from the served dataset's Redis stream into its event log.

    recops consume                          # until Ctrl-C / SIGTERM (flushes and acknowledges first)
    recops consume --dataset shop --consumers 2
    recops consume --once --json            # what the stream holds now, then a summary

Several processes (``--consumers N``, or several commands) share the group ``event-log``; see
``engine.events.consumer`` for the delivery guarantees.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import redis

from engine.cli.experiments import USAGE_ERROR
from engine.cli.serve import prepare_multiprocess_dir
from engine.config import Settings, get_settings
from engine.data.dataset_store import DEMO, DatasetStore, datasets_root
from engine.data.event_log import EventLog
from engine.data.schema import DatasetError
from engine.events.consumer import ConsumerOptions, ConsumerStats, EventConsumer, consumer_name
from engine.runtime import dataset_keys


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def add_consume_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default=None, help="dataset whose events to log (default RECOPS_DATASET)")
    parser.add_argument("--consumers", type=_positive_int, default=1, help="consumer processes in the group")
    parser.add_argument("--batch-size", type=_positive_int, default=1_000,
                        help="write when this many events are buffered (else every RECOPS_CONSUMER_FLUSH_SECONDS)")
    parser.add_argument("--metrics-port", type=int, default=None,
                        help="serve Prometheus metrics on 127.0.0.1:PORT (summed over --consumers processes)")
    parser.add_argument("--once", action="store_true", help="drain what the stream holds now, print a summary, exit")
    parser.add_argument("--json", action="store_true", help="with --once: the summary as JSON")


def _fail(message: str) -> int:
    print("recops consume: " + " ".join(message.split()), file=sys.stderr)
    return USAGE_ERROR


def _check_dataset(settings: Settings) -> None:
    """``DatasetError`` when ``settings.dataset`` is neither the demo world nor an imported dataset
    (a bad name would otherwise create an empty log and group of a dataset that does not exist)."""
    if settings.dataset != DEMO:
        DatasetStore(datasets_root(settings)).resolve(settings.dataset)


def consume_once(settings: Settings, url: str, options: ConsumerOptions, consumers: int) -> ConsumerStats:
    """``consumers`` processes each draining the group; their stats summed."""
    if consumers == 1:
        return _consumer(settings, url, options).drain()
    return _in_processes(settings, url, options, consumers, once=True, stop=None)


def consume_until_stopped(settings: Settings, url: str, options: ConsumerOptions, consumers: int,
                          stop: threading.Event) -> ConsumerStats:
    if consumers == 1:
        return _consumer(settings, url, options).run(stop)
    return _in_processes(settings, url, options, consumers, once=False, stop=stop)


def _consumer(settings: Settings, url: str, options: ConsumerOptions) -> EventConsumer:
    return EventConsumer.for_dataset(settings, settings.dataset, dataset_keys(settings, settings.dataset),
                                     url, options)


def _child(settings: Settings, url: str, options: ConsumerOptions, once: bool, out: Any) -> None:
    """One consumer process (spawned): SIGTERM stops it cleanly; its stats go to ``out``."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # the parent's options carry the parent's name: this process is another consumer of the group
    consumer = _consumer(settings, url, replace(options, name=consumer_name()))
    stats = consumer.drain() if once else consumer.run(stop)
    out.put(stats.to_dict())


def _in_processes(settings: Settings, url: str, options: ConsumerOptions, consumers: int, once: bool,
                  stop: threading.Event | None) -> ConsumerStats:
    """``consumers`` spawned processes, each one consumer of the group; their stats summed.

    Until ``stop`` (or, with ``once``, until they have drained the stream); a process that dies
    stops the others and raises ``ConsumerFailed`` — its entries stay pending for the next start.
    """
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    children = [context.Process(target=_child, args=(settings, url, options, once, out)) for _ in range(consumers)]
    for child in children:
        child.start()
    reports: list[dict[str, int]] = []
    stopping = False
    try:
        while len(reports) < consumers:
            asked = stop is not None and stop.is_set()
            if not stopping and (asked or any(c.exitcode not in (None, 0) for c in children)):
                stopping = True
                for child in children:
                    child.terminate()  # SIGTERM: each flushes, acknowledges and reports
            try:
                reports.append(out.get(timeout=0.2))
            except queue.Empty:
                if not any(c.is_alive() for c in children):
                    break
    finally:
        for child in children:
            child.join()
    # SIGTERM/SIGINT end a process that had not installed its handlers yet (still importing): it had
    # read nothing, so that is a clean stop too
    failed = [c.exitcode for c in children if c.exitcode not in (0, -signal.SIGTERM, -signal.SIGINT)]
    if failed:
        raise ConsumerFailed(f"{len(failed)} of {consumers} consumer processes failed (exit codes "
                             f"{', '.join(map(str, failed))}); their entries stay pending for the next start")
    total = ConsumerStats()
    for report in reports:
        total.add(ConsumerStats(**report))
    return total


class ConsumerFailed(RuntimeError):
    pass


def _serve_metrics(settings: Settings, port: int, consumers: int) -> None:
    """Prometheus metrics on ``port``: this process's, or with several consumer processes their sum
    (prometheus_client's multiprocess mode, as ``recops serve --workers``)."""
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server

    registry = REGISTRY
    if consumers > 1:
        # read by the spawned processes' prometheus_client when they import it
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(prepare_multiprocess_dir(settings.data_dir, "consumer")))
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    start_http_server(port, addr="127.0.0.1", registry=registry)


def _stop_on_signals() -> tuple[threading.Event, Callable[[], None]]:
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return stop, restore


def consume_command(args: argparse.Namespace) -> int:
    from engine.storage.embedded_redis import ensure_redis_url, redact_url

    settings = get_settings()
    if args.dataset is not None:
        settings = settings.model_copy(update={"dataset": args.dataset})
    if args.json and not args.once:
        return _fail("--json needs --once (a running consumer prints nothing until it stops)")
    try:
        _check_dataset(settings)
    except DatasetError as exc:
        return _fail(str(exc))
    options = ConsumerOptions(batch_size=args.batch_size, flush_seconds=settings.consumer_flush_seconds)
    url, embedded = ensure_redis_url(settings.redis_url, settings.data_dir)
    try:
        if args.metrics_port is not None:
            _serve_metrics(settings, args.metrics_port, args.consumers)
        if args.once:
            stats = consume_once(settings, url, options, args.consumers)
        else:
            stop, restore = _stop_on_signals()
            try:
                stats = consume_until_stopped(settings, url, options, args.consumers, stop)
            finally:
                restore()
    except redis.RedisError as exc:
        print(f"recops consume: Redis at {redact_url(url)}: {exc}", file=sys.stderr)
        return 1
    except ConsumerFailed as exc:
        print(f"recops consume: {exc}", file=sys.stderr)
        return 1
    finally:
        if embedded is not None:
            embedded.stop()
    summary: dict[str, Any] = {**stats.to_dict(), "dataset": settings.dataset,
                               "event_log": EventLog.for_dataset(settings, settings.dataset).summary()}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        log = summary["event_log"]
        print(f"consumed {stats.consumed} entries: {stats.written} events written, "
              f"{stats.dead_lettered} dead-lettered, {stats.claimed} re-claimed; "
              f"event log {log['root']}: {log['events']} events in {log['files']} files")
    return 0

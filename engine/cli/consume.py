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
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import redis

from engine.cli.experiments import USAGE_ERROR
from engine.config import Settings, get_settings
from engine.data.dataset_store import DEMO, DatasetStore, datasets_root
from engine.data.event_log import EventLog
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
                        help="serve Prometheus metrics on this port (first consumer process only)")
    parser.add_argument("--once", action="store_true", help="drain what the stream holds now, print a summary, exit")
    parser.add_argument("--json", action="store_true", help="with --once: the summary as JSON")


def _fail(message: str) -> int:
    print("recops consume: " + " ".join(message.split()), file=sys.stderr)
    return USAGE_ERROR


def _check_dataset(settings: Settings) -> str | None:
    """Why ``settings.dataset`` cannot be consumed for (None: it can)."""
    if settings.dataset == DEMO:
        return None
    names = DatasetStore(datasets_root(settings)).names()
    if settings.dataset in names:
        return None
    return f"no dataset named {settings.dataset!r} (datasets: {', '.join(names) or 'none'})"


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
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    children = [context.Process(target=_child, args=(settings, url, options, once, out), daemon=False)
                for _ in range(consumers)]
    for child in children:
        child.start()
    total = ConsumerStats()
    try:
        if stop is not None:
            stop.wait()
            for child in children:
                child.terminate()  # SIGTERM: each flushes, acknowledges and reports
        for _ in children:
            total.add(ConsumerStats(**out.get()))
    finally:
        for child in children:
            child.join()
    return total


def _stop_on_signals() -> tuple[threading.Event, Callable[[], None]]:
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return stop, restore


def consume_command(args: argparse.Namespace) -> int:
    from engine.storage.embedded_redis import ensure_redis_url

    settings = get_settings()
    if args.dataset is not None:
        settings = settings.model_copy(update={"dataset": args.dataset})
    if args.json and not args.once:
        return _fail("--json needs --once (a running consumer prints nothing until it stops)")
    problem = _check_dataset(settings)
    if problem:
        return _fail(problem)
    options = ConsumerOptions(batch_size=args.batch_size, flush_seconds=settings.consumer_flush_seconds)
    url, embedded = ensure_redis_url(settings.redis_url, settings.data_dir)
    try:
        if args.metrics_port is not None:
            from prometheus_client import start_http_server

            start_http_server(args.metrics_port, addr="127.0.0.1")
        if args.once:
            stats = consume_once(settings, url, options, args.consumers)
        else:
            stop, restore = _stop_on_signals()
            try:
                stats = consume_until_stopped(settings, url, options, args.consumers, stop)
            finally:
                restore()
    except redis.RedisError as exc:
        print(f"recops consume: Redis at {settings.redis_url or 'the embedded server'}: {exc}", file=sys.stderr)
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

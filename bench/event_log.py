"""Stream consumer throughput: tracked events from the Redis stream to Parquet, by batch size.

    python -m bench event-log [--events 10000] [--batch-sizes 250,1000,5000] [--repeat 3]

Each repeat fills a fresh stream on a private embedded Redis with ``--events`` entries shaped as
the tracker writes them (``Event.stream_fields``), then measures, in the same run:

- **raw XREADGROUP** (baseline): one group reading the whole stream ``COUNT batch`` at a time and
  acknowledging each batch — the Redis side of consuming, nothing parsed or written;
- **consumer**: ``EventConsumer.drain`` of a second group into a fresh event log — reads, parses,
  appends each batch durably (Parquet + fsync + manifest), acknowledges, trims the stream.

Events/s are ``--events`` over the median time of ``--repeat`` runs; the ratio is consumer time over
raw time (how much the durable write costs per event on top of reading).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import redis

from bench.harness import table
from engine.data.event_log import EventLog
from engine.events.consumer import ConsumerOptions, EventConsumer
from engine.events.tracker import Event
from engine.storage.embedded_redis import EmbeddedRedis

STREAM = "bench:events"
TYPES = ("view", "view", "view", "click", "add_to_cart", "purchase")


def fill(client: redis.Redis, n: int) -> None:
    now = time.time()
    pipe = client.pipeline(transaction=False)
    for k in range(n):
        event = Event(event_id=f"e{k}", user_id=f"u{k % 997}", item_id=f"i{k % 4999}", type=TYPES[k % len(TYPES)],
                      timestamp=now - n + k, value=12.5 if TYPES[k % len(TYPES)] == "purchase" else None)
        pipe.xadd(STREAM, event.stream_fields())
        if len(pipe) >= 2_000:
            pipe.execute()
    pipe.execute()


def raw_read(client: redis.Redis, batch: int) -> float:
    client.xgroup_create(STREAM, "raw", id="0")
    started = time.perf_counter()
    while reply := client.xreadgroup("raw", "r1", {STREAM: ">"}, count=batch):
        client.xack(STREAM, "raw", *[entry_id for entry_id, _ in reply[0][1]])
    seconds = time.perf_counter() - started
    client.xgroup_destroy(STREAM, "raw")  # caught up: it would not hold the consumer's trim back anyway
    return seconds


def consume(client: redis.Redis, batch: int, root: Path) -> tuple[float, int]:
    options = ConsumerOptions(name="bench", batch_size=batch, flush_seconds=60, claim_idle_seconds=120)
    consumer = EventConsumer(client, STREAM, EventLog(root), options)
    started = time.perf_counter()
    stats = consumer.drain()
    return time.perf_counter() - started, stats.written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench event-log")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--batch-sizes", default="250,1000,5000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="recops-bench-event-log-") as tmp:
        server = EmbeddedRedis(data_dir=Path(tmp) / "redis", appendonly=False).start()
        client = redis.Redis.from_url(server.url, decode_responses=True)
        rows = []
        try:
            for batch in sizes:
                raw, durable = [], []
                for run in range(args.repeat):
                    client.delete(STREAM)
                    fill(client, args.events)
                    raw.append(raw_read(client, batch))
                    seconds, written = consume(client, batch, Path(tmp) / f"log-{batch}-{run}")
                    assert written == args.events and client.xlen(STREAM) == 0, (written, client.xlen(STREAM))
                    durable.append(seconds)
                raw_s, durable_s = statistics.median(raw), statistics.median(durable)
                rows.append([batch, f"{args.events / durable_s:,.0f}", f"{args.events / raw_s:,.0f}",
                             f"{durable_s / raw_s:.1f}", f"{1000 * durable_s / -(-args.events // batch):.1f}"])
        finally:
            client.close()
            server.stop()
    print(f"{args.events:,} events per run, median of {args.repeat} runs; "
          "consumer = read + parse + durable Parquet append + XACK + XTRIM")
    print(table(["batch", "consumer events/s", "raw XREADGROUP events/s", "time ratio", "ms per batch"], rows))
    return 0

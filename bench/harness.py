"""The benchmarks' harness: percentiles, timed calls, tables, a private engine on its own Redis."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from engine.config import Settings
from engine.runtime import Engine, build_engine, freeze_startup_heap
from engine.storage.embedded_redis import EmbeddedRedis

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def percentiles_ms(samples: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(samples, dtype=np.float64) * 1000.0
    return {f"p{q}": float(np.percentile(arr, q)) for q in (50, 95, 99)}


def time_calls(fn: Callable[[], object], repeat: int, before: Callable[[], object] | None = None) -> list[float]:
    out: list[float] = []
    for _ in range(repeat):
        if before is not None:
            before()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def metric_total(text: str, name: str, **labels: str) -> float:
    """Sum of one metric's samples in a Prometheus exposition whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


@contextlib.contextmanager
def bench_engine(n_items: int, n_users: int = 10_000, root: Path | None = None) -> Iterator[Engine]:
    """An engine on a world of the given size, with its own embedded Redis (reused data dir)."""
    root = root or Path(os.environ.get("RECOPS_BENCH_DIR", Path(tempfile.gettempdir()) / "recops-bench"))
    data_dir = root / f"items-{n_items}-users-{n_users}"
    server = EmbeddedRedis(data_dir=data_dir / "bench-redis", appendonly=False).start()
    engine = build_engine(Settings(data_dir=data_dir, redis_url=server.url, demo_items=n_items, demo_users=n_users))
    freeze_startup_heap()  # as `recops serve` does after start-up
    try:
        engine.redis.flushdb()
        yield engine
    finally:
        engine.close()
        server.stop()

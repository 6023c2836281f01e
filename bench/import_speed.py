"""``recops import`` throughput and peak memory against whole-file readers of the same CSV.

    python -m bench import [--rows 3000000] [--repeat 1] [--no-pandas]

A synthetic interactions CSV (user_id, item_id, timestamp, event; 0.1% of rows with an empty
item_id, so the reject path runs too) is generated once per size under ``RECOPS_BENCH_DIR``.
Every run is a fresh Python process, so its peak RSS (``VmHWM``) is that run's alone:

- ``recops import``: ``import_dataset`` — streamed, checked, written as Parquet, manifest, publish;
- ``pyarrow read_csv`` (baseline): ``pyarrow.csv.read_csv`` of the whole file, then one
  ``parquet.write_table`` — the same conversion without checks, holding the file in memory;
- ``pandas read_csv``: ``pandas.read_csv`` + ``to_parquet``, the usual first attempt;
- ``imports only``: the interpreter with pyarrow and pandas loaded, the floor under every RSS.

Ratios are against the pyarrow baseline measured in the same run: time ratio > 1 means slower,
RSS ratio < 1 means less memory.  CPU seconds (all threads) are reported beside wall time: on a
shared machine they move less with the load than the wall clock does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_ROWS = 3_000_000
_CHUNK = 1_000_000
EVENTS = ("view", "click", "add_to_cart", "purchase")
EVENT_SHARES = (0.70, 0.20, 0.07, 0.03)
METHODS = ("import", "pyarrow", "pandas", "floor")
LABELS = {
    "import": "recops import (streamed)",
    "pyarrow": "pyarrow read_csv (baseline)",
    "pandas": "pandas read_csv",
    "floor": "imports only",
}


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """``rows`` interactions: ~rows/20 users, Zipf-popular items over 200k, 90 days of Unix seconds."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    rng = np.random.default_rng(seed)
    schema = pa.schema([("user_id", pa.string()), ("item_id", pa.string()), ("timestamp", pa.int64()),
                        ("event", pa.string())])  # fmt: skip
    tmp = path.with_suffix(".partial")
    with pa_csv.CSVWriter(tmp, schema, write_options=pa_csv.WriteOptions(quoting_style="none")) as writer:
        for start in range(0, rows, _CHUNK):
            n = min(_CHUNK, rows - start)
            items = np.char.add("i", np.minimum(rng.zipf(1.3, n), 200_000).astype(str))
            items[rng.random(n) < 0.001] = ""
            writer.write_table(pa.table({
                "user_id": np.char.add("u", rng.integers(0, max(rows // 20, 1), n).astype(str)),
                "item_id": items,
                "timestamp": 1_700_000_000 + rng.integers(0, 90 * 86_400, n),
                "event": np.array(EVENTS)[rng.choice(len(EVENTS), n, p=EVENT_SHARES)],
            }, schema=schema))  # fmt: skip
    tmp.rename(path)


def _run(method: str, source: Path, work: Path) -> int:
    """One measured run in this (fresh) process; returns the rows it stored."""
    import pandas as pd
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    if method == "import":
        from engine.data.dataset_import import import_dataset
        from engine.data.dataset_store import DatasetStore

        result = import_dataset(DatasetStore(work / "datasets"), "bench", source)
        return int(result.manifest["rows"]["interactions"])
    if method == "pyarrow":
        table = pa_csv.read_csv(source)
        pq.write_table(table, work / "pyarrow.parquet", compression="zstd")
        return int(table.num_rows)
    if method == "pandas":
        frame = pd.read_csv(source, dtype={"user_id": str, "item_id": str})
        frame.to_parquet(work / "pandas.parquet", compression="zstd")
        return len(frame)
    return 0


def worker(method: str, source: Path, work: Path) -> None:
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    rows = _run(method, source, work)
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
    print(json.dumps({"rows": rows, "seconds": seconds, "cpu_seconds": cpu, "peak_mb": peak_rss_mb()}))


def _cpu_seconds() -> float:
    """User + system CPU time of this process, all threads: steadier than wall time on a busy machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """This process image's peak resident set: ``VmHWM``; ``ru_maxrss`` is not, after exec
    it still holds the high-water mark of the parent that forked us."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def measure(method: str, source: Path, work: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run(
        [sys.executable, "-m", "bench.import_speed", "--worker", method, str(source), str(work)],
        check=True, capture_output=True, text=True, env=env,
    )  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench import")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--repeat", type=int, default=1, help="runs per method (the table shows medians)")
    parser.add_argument("--no-pandas", action="store_true", help="skip the pandas run (slow and memory-hungry)")
    parser.add_argument("--worker", nargs=3, metavar=("METHOD", "SOURCE", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        method, source, work = args.worker
        worker(method, Path(source), Path(work))
        return 0

    from bench.common import table

    root = Path(os.environ.get("RECOPS_BENCH_DIR", Path(tempfile.gettempdir()) / "recops-bench"))
    root.mkdir(parents=True, exist_ok=True)
    source = root / f"interactions-{args.rows}.csv"
    if not source.exists():
        started = time.perf_counter()
        generate(source, args.rows)
        print(f"generated {source} ({source.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - started:.1f}s")
    methods = [m for m in METHODS if not (m == "pandas" and args.no_pandas)]
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    for _ in range(args.repeat):
        for method in methods:
            with tempfile.TemporaryDirectory(dir=root) as work:
                runs[method].append(measure(method, source, Path(work)))
    keys = ("rows", "seconds", "cpu_seconds", "peak_mb")
    med = {m: {k: statistics.median(r[k] for r in rs) for k in keys} for m, rs in runs.items()}
    base = med["pyarrow"]
    rows = []
    for method in methods:
        m = med[method]
        timed = method != "floor"
        rows.append([
            LABELS[method],
            f"{m['rows']:,.0f}" if timed else "-",
            m["seconds"] if timed else "-",
            m["cpu_seconds"] if timed else "-",
            f"{args.rows / m['seconds']:,.0f}" if timed else "-",
            f"{m['peak_mb']:,.0f}",
            f"{m['seconds'] / base['seconds']:.2f}" if timed else "-",
            f"{m['cpu_seconds'] / base['cpu_seconds']:.2f}" if timed else "-",
            f"{m['peak_mb'] / base['peak_mb']:.2f}",
        ])  # fmt: skip
    print(f"{args.rows:,} input rows, {source.stat().st_size / 1e6:,.0f} MB CSV, median of {args.repeat} run(s)")
    headers = ["method", "rows stored", "wall s", "CPU s", "rows/s", "peak RSS MB", "wall ratio", "CPU ratio"]
    print(table([*headers, "RSS ratio"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

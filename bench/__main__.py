"""``python -m bench [NAME ...]``: run the named benchmarks (all by default) and print their tables."""

from __future__ import annotations

import importlib
import os
import sys

# before numpy is imported anywhere: implicit's ALS and BLAS threads fight over 2 cores otherwise
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

BENCHMARKS = {
    "recommend": "bench.recommend_latency",
    "experiments": "bench.experiments",
    "interleaving": "bench.interleaving",
    "http": "bench.http",
    "soak": "bench.soak",
    "console": "bench.console",
    "import": "bench.import_speed",
    "training": "bench.training",
    "calibration": "bench.calibration",
    "event-log": "bench.event_log",
    "sensitivity": "bench.sensitivity",
    "interleaving-rules": "bench.interleaving_rules",
    "ope": "bench.ope",
    "ann": "bench.ann",
    "scale": "bench.scale",
    "hitratio": "bench.hitratio",
}
# minutes each; calibration, sensitivity and ope measure statistics, not speed
ONLY_WHEN_NAMED = ("soak", "calibration", "sensitivity", "interleaving-rules", "ope", "ann", "scale", "hitratio")


def main(argv: list[str]) -> int:
    if argv and argv[0] in BENCHMARKS:
        return int(importlib.import_module(BENCHMARKS[argv[0]]).main(argv[1:]))
    unknown = [a for a in argv if a not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHMARKS)}", file=sys.stderr)
        return 2
    for name in argv or [b for b in BENCHMARKS if b not in ONLY_WHEN_NAMED]:
        print(f"\n== {name} ==")
        importlib.import_module(BENCHMARKS[name]).main([])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

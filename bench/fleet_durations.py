"""The fleet's item durations at their bound: recording a run, the planner's figures, one scrape.

A ``DurationBook`` full to its capacity (500 item/version keys: far more than any region's releases
times items) is fed twenty runs per key; then measured, each as the median of ``--runs`` rounds:

* ``record``: one finished run taken from MQTT (the subscriber's cost per message);
* ``norms``: the figures handed to every plan (``PlanInput.item_norms``);
* ``scrape``: ``generate_latest`` of a registry holding ``DurationCollector`` (what Prometheus' scrape of
  the scheduler pays for this part), and the size of its text.

    .venv/bin/python bench/fleet_durations.py [--keys 500] [--runs 7]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest

from regional.planning.durations import CAPACITY, OUTCOMES, DurationBook
from regional.scheduler.item_durations import DurationCollector


def _filled(keys: int, rng: random.Random) -> DurationBook:
    book = DurationBook(capacity=keys)
    for n in range(keys):
        for _ in range(20):
            book.record(f"item-{n % 50}", f"1.{n // 50}.0", rng.choice(OUTCOMES), rng.uniform(1, 600))
    return book


def _median(rounds: int, work: Callable[[], object]) -> float:
    took = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        took.append(time.perf_counter() - started)
    return statistics.median(took)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=CAPACITY)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(1)
    book = _filled(args.keys, rng)
    registry = CollectorRegistry()
    registry.register(DurationCollector(book))

    per_record = _median(args.runs, lambda: [book.record("item-1", "1.0.0", "success", 42.0)
                                             for _ in range(1000)]) / 1000
    norms = _median(args.runs, book.norms)
    scrape = _median(args.runs, lambda: generate_latest(registry))
    size = len(generate_latest(registry))
    print(f"keys {len(book)}: record {per_record * 1e6:.1f} µs/run, norms {norms * 1e3:.1f} ms, "
          f"scrape {scrape * 1e3:.1f} ms ({size / 1024:.0f} KiB of text)")


if __name__ == "__main__":
    main()

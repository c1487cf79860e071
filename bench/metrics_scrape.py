"""Scrape time of lcm-scheduler's ``/metrics`` with 1,000 machines in its caches.

The scheduler computes its figures when scraped (``regional.scheduler.metrics``): one pass over the cached
machines and clusters, and over the liveness book. This measures that scrape as Prometheus sees it: an HTTP
GET of the endpoint, served on the event loop as in the process, with the caches holding the machines of
``bench/planner_cpu.py``'s converged fleet (every item done, the full spec and status of each) and the book
one entry per machine. The figure is the median wall time of ``--runs`` scrapes (and of the collection
alone, without HTTP), with the page's size and series count.

    .venv/bin/python bench/metrics_scrape.py [--machines 1000] [--runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

import aiohttp
from planner_cpu import fleets
from prometheus_client import CollectorRegistry, generate_latest

from agent.adapters.exposition import MetricsServer
from agent.kits.addresses import Address
from regional.planning.liveness import LivenessBook
from regional.planning.planner import plan
from regional.scheduler.controller import Controller
from regional.scheduler.metrics import AgentsCollector, SchedulerCollector, plan_histogram
from regional.scheduler.settings import SchedulerSettings

BUDGET_S = 0.1
"""Seconds: well inside Prometheus' default 10 s scrape timeout, and cheap beside a plan of the same fleet
(about 0.2 s), since the scrape runs on the event loop that plans."""


def caches(size: int) -> tuple[Controller, LivenessBook]:
    """A leadership term's controller whose caches hold ``size`` machines and their cluster, and a liveness
    book that heard every one of them."""
    converged = fleets(size)["converged"]
    # No I/O happens here: the caches are fed directly, nothing is watched, planned or written.
    controller = Controller(None, SchedulerSettings(), plan, fence=lambda: True)  # type: ignore[arg-type]
    book = LivenessBook(grace=1.5, settle=0.0, default_interval=10.0)
    for n, machine in enumerate(converged.machines):
        raw = machine.to_raw()
        raw["metadata"]["resourceVersion"] = str(n + 1)
        controller.machines.answered(raw)
        book.heard((raw["metadata"]["namespace"], raw["metadata"]["name"]), time.monotonic())
    cluster = converged.cluster.to_raw()
    cluster["metadata"]["resourceVersion"] = str(size + 1)
    controller.clusters.answered(cluster)
    return controller, book


async def measure(size: int, runs: int) -> tuple[list[float], list[float], int, int]:
    controller, book = caches(size)
    registry = CollectorRegistry()
    registry.register(SchedulerCollector([controller], lambda: True))
    registry.register(AgentsCollector(book))
    plan_histogram(registry).observe(0.2)
    server = MetricsServer(registry, Address("127.0.0.1", 0))
    if not await server.start() or server.bound is None:
        raise RuntimeError("cannot listen on loopback")
    scrapes, collections = [], []
    page = b""
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://{server.bound}/metrics"
            for _ in range(runs):
                start = time.perf_counter()
                async with session.get(url) as answer:
                    page = await answer.read()
                scrapes.append(time.perf_counter() - start)
                start = time.perf_counter()
                generate_latest(registry)
                collections.append(time.perf_counter() - start)
    finally:
        await server.stop()
    series = sum(1 for line in page.decode().splitlines() if line and not line.startswith("#"))
    return scrapes, collections, len(page), series


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--machines", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    scrapes, collections, size, series = asyncio.run(measure(args.machines, args.runs))
    scrape = statistics.median(scrapes)
    print(f"lcm-scheduler /metrics with {args.machines} machines cached, median of {args.runs} scrapes:")
    print(f"  scrape (HTTP GET) {scrape * 1000:7.2f} ms   (budget <= {BUDGET_S * 1000:g} ms)   "
          f"min {min(scrapes) * 1000:.2f}, max {max(scrapes) * 1000:.2f}")
    print(f"  collection alone  {statistics.median(collections) * 1000:7.2f} ms")
    print(f"  page {size / 1024:.1f} KiB, {series} series (no machine names: bounded labels)")
    within = scrape <= BUDGET_S
    print("within budget" if within else "OVER BUDGET")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())

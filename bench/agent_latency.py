"""Spec change → item started: how long after a spec patch the agent starts the item it asks for.

The API simulator runs as a subprocess on loopback (HTTPS); the agent runs in this process (its
``on_event`` hook timestamps the runner's ``started`` event) with a ServiceAccount limited to its own
LCMMachine. Each round patches the spec so that a cheap bash item's hash changes, takes the time just
before the patch is sent, and the time of the item's ``started`` event; then waits until the item is
reported done, so every round starts from an idle agent. The figure covers the patch request, the watch
event, the decision, the "in progress" status write and the runner's start.

    .venv/bin/python bench/agent_latency.py [--changes 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

from agent_idle import Bench, bash_item, bench_cluster

from agent.api.execution import ItemEvent
from agent.daemon.app import Hooks, run_daemon
from agent.daemon.config import load_config
from agent.daemon.own_machine import LCMMACHINES

BUDGET_P50_MS = 20.0
BUDGET_P99_MS = 100.0


class Starts:
    """The runner's ``started`` events, as an event loop primitive the bench can wait on."""

    def __init__(self) -> None:
        self.at = 0.0
        self.seen = asyncio.Event()

    def __call__(self, event: ItemEvent, /) -> None:
        if event.kind == "started":
            self.at = time.perf_counter()
            self.seen.set()


async def _done(bench: Bench) -> None:
    """Until the agent has reported on the latest spec (observedGeneration) and the machine is Ready."""
    while True:
        machine = await bench.machine()
        status = machine.get("status", {})
        if status.get("state") == "Ready" and status.get("observedGeneration") == machine["metadata"][
                "generation"]:
            return
        await asyncio.sleep(0.005)


async def rounds(bench: Bench, changes: int) -> list[float]:
    starts = Starts()
    stopping = asyncio.Event()
    agent = asyncio.create_task(run_daemon(load_config(bench.config, {}), stopping, Hooks(on_event=starts)))
    latencies = []
    try:
        await _done(bench)
        for n in range(changes):
            script = f"true {n}"
            starts.seen.clear()
            sent = time.perf_counter()
            patch = {"spec": {"stateItems": [bash_item("hello", script)]}}
            await bench.admin.patch(LCMMACHINES, bench.namespace, bench.name, patch)
            await asyncio.wait_for(starts.seen.wait(), 30)
            latencies.append((starts.at - sent) * 1000)
            await _done(bench)
    finally:
        stopping.set()
        await agent
    return latencies


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=200)
    args = parser.parse_args()
    async with bench_cluster([bash_item("hello", "true")]) as bench:
        latencies = await rounds(bench, args.changes)
    p50, p99 = statistics.median(latencies), _percentile(latencies, 0.99)
    print(f"spec change -> item started over {len(latencies)} changes:")
    print(f"  p50 {p50:6.1f} ms   (budget <= {BUDGET_P50_MS:g} ms)")
    print(f"  p99 {p99:6.1f} ms   (budget <= {BUDGET_P99_MS:g} ms)   max {max(latencies):.1f} ms")
    within = p50 <= BUDGET_P50_MS and p99 <= BUDGET_P99_MS
    print("within budget" if within else "OVER BUDGET")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

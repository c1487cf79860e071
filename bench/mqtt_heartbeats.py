"""1,000 nodes' heartbeats through one Mosquitto into the regional liveness subscriber.

A real Mosquitto (the repository's config and ACL, one broker user per node) runs on loopback; simulated
nodes (``--workers`` processes, each holding its share of MQTT connections with the agent's own link,
retained status and last will) beat every ``--interval`` seconds at random phases. The API simulator runs
in this process with one LCMMachine per node, already ``AgentReachable=True`` as a running fleet has it;
in steady state it serves nothing, so this process's CPU time is the liveness subscriber's.

Measured over ``--seconds`` of steady state: end-to-end latency (publish → taken by the subscriber) p50 and
p99, the subscriber's and the broker's CPU, and the liveness writes per minute (a healthy fleet should cost
none). Then one worker is killed (its nodes' connections die at once): how long until every one of them is
``AgentReachable=False`` on its LCMMachine, and how many writes that cost.

    .venv/bin/python bench/mqtt_heartbeats.py [--nodes 1000] [--workers 10] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from agent.adapters.kube import Kube, connect
from agent.adapters.mqtt import BrokerSettings, MqttLink, Outbox, Outgoing
from agent.api import telemetry as t
from regional.planning.liveness import CONDITION
from regional.scheduler.liveness import LCMMACHINES, Liveness, LivenessSettings
from testbed.lab.stack.mosquitto import REGIONAL_USER, Broker
from testbed.sim.testing import lcm_machine, open_kube_api

BUDGET_P50_MS = 20.0
BUDGET_P99_MS = 100.0
BUDGET_CPU_PERCENT = 10.0
"""The subscriber's share of one core for 100 heartbeats/s: liveness must stay a side job of the scheduler."""
BUDGET_WRITES_PER_MINUTE = 0.0
BUDGET_DEAD_SECONDS = 15.0
"""A tenth of the fleet dying at once is on the API within this (the wills are immediate; the writes are
paced at the liveness default of 10/s with a burst of 50)."""
HOST = t.HostLoad(load=(0.2, 0.1, 0.1), memory_total=8 << 30, memory_available=6 << 30, disk_path="/var",
                  disk_total=100 << 30, disk_free=50 << 30, uptime=1000.0)


def _name(n: int) -> str:
    return f"node-{n:04d}"


def _password(n: int) -> str:
    return f"pw-{n:04d}-bench"


async def _node(url: str, namespace: str, n: int, interval: float, stopping: asyncio.Event) -> None:
    """One simulated agent: its own broker user, hello and will as the agent makes them, a heartbeat loop."""
    subtree = t.Subtree(namespace, "bench", _name(n))
    seq = iter(range(1 << 62))

    def status(state: str, reason: str) -> Outgoing:
        body = t.status_message(state=state, reason=reason, agent_version="bench",
                                heartbeat_interval=interval, ts=time.time(), seq=next(seq))
        return Outgoing(subtree.topic("status"), t.encode(body), 1, True)

    outbox = Outbox(100)
    link = MqttLink(BrokerSettings(url, f"bench-{n}", _name(n), _password(n)), outbox=outbox,
                    will=lambda: status("offline", "lost"), hello=lambda: status("online", "connected"))
    task = asyncio.ensure_future(link.run(stopping))
    await asyncio.sleep(random.uniform(0, interval))
    while not stopping.is_set():
        beat = t.heartbeat_message(host=HOST, machine_state="Ready", step="idle", item=None,
                                   interval=interval, agent_uptime=1.0, dropped=outbox.dropped,
                                   buffered=len(outbox), ts=time.time(), seq=next(seq))
        outbox.put(Outgoing(subtree.topic("heartbeat"), t.encode(beat)), latest_only=True)
        await asyncio.sleep(interval)
    await task


async def _worker(url: str, namespace: str, first: int, count: int, interval: float) -> None:
    stopping = asyncio.Event()
    await asyncio.gather(*(_node(url, namespace, n, interval, stopping) for n in range(first, first + count)))


async def _fleet(admin: Kube, namespace: str, nodes: int) -> None:
    """One LCMMachine per node, already reachable: the state of a fleet the scheduler restarted into."""
    condition = {"type": CONDITION, "status": "True", "reason": "HeartbeatReceived", "message": "bench",
                 "lastTransitionTime": "2024-01-01T00:00:00Z"}
    semaphore = asyncio.Semaphore(32)

    async def one(n: int) -> None:
        async with semaphore:
            await admin.create(LCMMACHINES, namespace, lcm_machine(_name(n), namespace, clusterName="bench"))
            await admin.patch(LCMMACHINES, namespace, _name(n), {"status": {"conditions": [condition]}},
                              subresource="status")

    await asyncio.gather(*(one(n) for n in range(nodes)))


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def _unreachable(admin: Kube, namespace: str, names: set[str]) -> int:
    listed = await admin.list_objects(LCMMACHINES, namespace)
    return sum(1 for m in listed["items"] if m["metadata"]["name"] in names and any(
        c["type"] == CONDITION and c["status"] == "False" for c in m.get("status", {}).get("conditions", [])))


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--worker", nargs=4, metavar=("URL", "NAMESPACE", "FIRST", "COUNT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        url, namespace, first, count = args.worker
        await _worker(url, namespace, int(first), int(count), args.interval)
        return 0

    with tempfile.TemporaryDirectory(prefix="lcm-bench-mqtt-") as tmp:
        workdir = Path(tmp)
        users = {_name(n): _password(n) for n in range(args.nodes)} | {REGIONAL_USER: "regional-bench"}
        broker = Broker(workdir / "mosquitto", users)
        broker.start()
        workers: list[psutil.Popen] = []
        try:
            async with open_kube_api(workdir) as api, await connect(kubeconfig=api.kubeconfig_path) as admin:
                await _fleet(admin, api.namespace, args.nodes)
                share = -(-args.nodes // args.workers)
                for first in range(0, args.nodes, share):
                    workers.append(psutil.Popen([
                        sys.executable, __file__, "--interval", str(args.interval), "--worker", broker.url,
                        api.namespace, str(first), str(min(share, args.nodes - first))]))
                return await _measure(args, admin, api.namespace, broker, workers, share)
        finally:
            for worker in workers:
                worker.kill()
                worker.wait()
            broker.stop()


async def _fleet_up(broker: Broker, nodes: int) -> None:
    """Until every simulated node beat: the liveness subscriber then starts into a running fleet, as a
    restarted scheduler does (the node processes take a while to start on a busy host)."""
    beating: set[str] = set()

    def count(topic: str, payload: bytes) -> None:
        where = t.parse_topic(topic)
        if where is not None:
            beating.add(where[0].machine)

    stopping = asyncio.Event()
    counter = MqttLink(BrokerSettings(broker.url, "bench-counter", REGIONAL_USER, "regional-bench"),
                       subscriptions=[(t.topic_filter("heartbeat"), 0)], on_message=count)
    task = asyncio.ensure_future(counter.run(stopping))
    try:
        for _ in range(600):
            if len(beating) == nodes:
                return
            await asyncio.sleep(1.0)
        raise TimeoutError(f"only {len(beating)} of {nodes} simulated nodes ever beat")
    finally:
        stopping.set()
        await task


async def _measure(args: argparse.Namespace, admin: Kube, namespace: str, broker: Broker,
                   workers: list[psutil.Popen], share: int) -> int:
    latencies: list[float] = []

    def observe(subtree: t.Subtree, message: dict[str, Any]) -> None:
        if message["kind"] == "heartbeat":
            latencies.append(time.time() - message["ts"])

    settings = LivenessSettings(broker=BrokerSettings(broker.url, "bench-liveness", REGIONAL_USER,
                                                      "regional-bench"))
    await _fleet_up(broker, args.nodes)
    liveness = Liveness(admin, settings, observe=observe)
    stopping = asyncio.Event()
    task = asyncio.create_task(liveness.run(stopping))
    try:
        await asyncio.sleep(settings.settle + args.interval)  # past the settle: bad news would be written
        latencies.clear()
        me = psutil.Process()
        assert broker.process is not None
        mosquitto = psutil.Process(broker.process.pid)
        fleet0 = sum(_cpu(w) for w in workers)
        cpu0, broker0, writes0, t0 = _cpu(me), _cpu(mosquitto), liveness.writes, time.monotonic()
        await asyncio.sleep(args.seconds)
        elapsed = time.monotonic() - t0
        cpu = 100.0 * (_cpu(me) - cpu0) / elapsed
        broker_cpu = 100.0 * (_cpu(mosquitto) - broker0) / elapsed
        fleet_cpu = 100.0 * (sum(_cpu(w) for w in workers) - fleet0) / elapsed
        load = psutil.getloadavg()[0]
        writes_per_minute = (liveness.writes - writes0) * 60.0 / elapsed
        heard = len(latencies)

        dead = {_name(n) for n in range(share)}
        writes1 = liveness.writes
        workers[0].kill()
        killed = time.monotonic()
        for _ in range(480):  # two minutes at most
            if await _unreachable(admin, namespace, dead) == len(dead):
                break
            await asyncio.sleep(0.25)
        dead_seconds = time.monotonic() - killed
        dead_writes = liveness.writes - writes1
    finally:
        stopping.set()
        await task

    ms = sorted(v * 1000 for v in latencies)
    p50, p99 = statistics.median(ms), ms[int(len(ms) * 0.99)]
    print(f"{args.nodes} nodes, heartbeat every {args.interval:g}s, {heard} heartbeats over {elapsed:.0f}s:")
    print(f"  latency p50 {p50:6.1f} ms   (budget <= {BUDGET_P50_MS:g} ms)")
    print(f"  latency p99 {p99:6.1f} ms   (budget <= {BUDGET_P99_MS:g} ms)")
    print(f"  subscriber CPU {cpu:5.1f} % of a core   (budget <= {BUDGET_CPU_PERCENT:g} %); "
          f"broker CPU {broker_cpu:.1f} %; simulated nodes CPU {fleet_cpu:.0f} %; host load {load:.1f}")
    print(f"  liveness API writes {writes_per_minute:.1f}/min in steady state "
          f"(budget <= {BUDGET_WRITES_PER_MINUTE:g})")
    print(f"  {len(dead)} nodes killed at once: all AgentReachable=False after {dead_seconds:.1f}s "
          f"(budget <= {BUDGET_DEAD_SECONDS:g}s), {dead_writes} writes")
    within = (p50 <= BUDGET_P50_MS and p99 <= BUDGET_P99_MS and cpu <= BUDGET_CPU_PERCENT
              and writes_per_minute <= BUDGET_WRITES_PER_MINUTE and dead_seconds <= BUDGET_DEAD_SECONDS)
    print("within budget" if within else "OVER BUDGET")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

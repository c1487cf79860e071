"""Throughput of the regional API simulator, as clients see it over HTTPS.

Two figures, each the median of several runs against one simulator process (``lcmctl sim serve``, so the
server has its own process and core, as in the fleet benchmarks):

* **writes/s**: status merge patches on LCMMachines through the real kubernetes_asyncio client, from
  ``--writers`` concurrent tasks;
* **watch events/s**: ``--watchers`` concurrent watch streams on LCMMachines while one writer patches; the
  figure is events delivered to all watchers per second, from the first write until every watcher has seen
  every event.

The budgets come from the 1,000-agent benchmark (DESIGN.md: all Ready within 60 s on 2 cores): each machine
makes about 21 status writes (registration, then started + finished for ~10 items), so 21,000 writes in
60 s is 350 writes/s; each write is seen by two watchers (its agent, the scheduler), 700 events/s. The
budgets ask for headroom over that: 500 writes/s (the tighter one) and 5,000 events/s.

    .venv/bin/python bench/sim_throughput.py [--runs 5] [--writes 2000] [--watchers 100] [--events 300]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import socket
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from agent.adapters.kube import Kube, KubeError, Resource, connect

GROUP, VERSION, PLURAL, NS = "lcm.mirantis.com", "v1alpha1", "lcmmachines", "bench"
MACHINES = Resource(GROUP, VERSION, PLURAL)
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
WRITES_BUDGET = 500.0  # status writes per second, at least
EVENTS_BUDGET = 5_000.0  # watch events delivered per second across all watchers, at least


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(kubeconfig: Path, proc: asyncio.subprocess.Process, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise SystemExit(f"simulator exited with {proc.returncode}")
        if await asyncio.to_thread(kubeconfig.exists):
            with contextlib.suppress(KubeError, OSError, ValueError):
                async with await connect(kubeconfig=kubeconfig) as kube:
                    await kube.list_objects(MACHINES, NS)
                    return
        await asyncio.sleep(0.1)
    raise SystemExit("simulator did not come up in time")


def machine(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "LCMMachine",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"clusterName": "bench", "type": "worker"},
    }


async def setup(kube: Kube, count: int) -> None:
    with contextlib.suppress(KubeError):
        await kube.create(NAMESPACES, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    for i in range(count):
        with contextlib.suppress(KubeError):
            await kube.create(MACHINES, NS, machine(f"m{i:04d}"))


async def patch_status(kube: Kube, name: str, n: int) -> None:
    body = {"status": {"state": "Deploy", "progress": f"{n % 7}/7"}}
    await kube.patch(MACHINES, NS, name, body, subresource="status")


async def writes_per_second(kube: Kube, total: int, writers: int, machines: int) -> float:
    counter = iter(range(total))

    async def writer() -> None:
        for n in counter:
            await patch_status(kube, f"m{n % machines:04d}", n)

    start = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    return total / (time.perf_counter() - start)


def ssl_context(kubeconfig: Path) -> tuple[str, ssl.SSLContext, str]:
    """Server URL, a context trusting the simulator's CA, and the token, read from the kubeconfig."""
    cfg = yaml.safe_load(kubeconfig.read_text())
    cluster = cfg["clusters"][0]["cluster"]
    ctx = ssl.create_default_context()
    ctx.load_verify_locations(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    return cluster["server"], ctx, cfg["users"][0]["user"]["token"]


async def watch_events_per_second(kube: Kube, kubeconfig: Path, watchers: int, events: int) -> float:
    listing = await kube.list_objects(MACHINES, NS)
    rv = listing["metadata"]["resourceVersion"]
    server, ctx, token = ssl_context(kubeconfig)
    url = f"{server}/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}?watch=true&resourceVersion={rv}"
    connected = asyncio.Barrier(watchers + 1)

    async def watcher(session: aiohttp.ClientSession) -> float:
        async with session.get(url, headers={"Authorization": f"Bearer {token}"}, ssl=ctx) as resp:
            resp.raise_for_status()
            await connected.wait()
            seen = 0
            async for _line in resp.content:
                seen += 1
                if seen == events:
                    return time.perf_counter()
        raise RuntimeError(f"watch ended after {seen} of {events} events")

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        tasks = [asyncio.create_task(watcher(session)) for _ in range(watchers)]
        await connected.wait()
        start = time.perf_counter()
        for n in range(events):
            await patch_status(kube, f"m{n % 100:04d}", n + 1)
        finished = await asyncio.gather(*tasks)
    return watchers * events / (max(finished) - start)


async def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="lcm-bench-") as tmp:
        kubeconfig = Path(tmp) / "kubeconfig"
        lcmctl = Path(sys.executable).with_name("lcmctl")
        cmd = [str(lcmctl), "sim", "serve", "--port", str(free_port()), "--state-dir", tmp,
               "--kubeconfig", str(kubeconfig)]
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL)
        try:
            await wait_ready(kubeconfig, proc, time.monotonic() + 30)
            async with await connect(kubeconfig=kubeconfig) as kube:
                await setup(kube, 100)
                writes = [await writes_per_second(kube, args.writes, args.writers, 100)
                          for _ in range(args.runs)]
                events = [await watch_events_per_second(kube, kubeconfig, args.watchers, args.events)
                          for _ in range(args.runs)]
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 10)
    w, e = statistics.median(writes), statistics.median(events)
    print(f"writes/s       median {w:8.0f}  runs {[round(x) for x in writes]}  "
          f"budget >= {WRITES_BUDGET:.0f}  {'ok' if w >= WRITES_BUDGET else 'OVER BUDGET'}")
    print(f"watch events/s median {e:8.0f}  runs {[round(x) for x in events]}  ({args.watchers} watchers) "
          f"budget >= {EVENTS_BUDGET:.0f}  {'ok' if e >= EVENTS_BUDGET else 'OVER BUDGET'}")
    return 0 if w >= WRITES_BUDGET and e >= EVENTS_BUDGET else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--events", type=int, default=300)
    sys.exit(asyncio.run(main(parser.parse_args())))

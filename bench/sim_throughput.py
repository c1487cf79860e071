"""Throughput of the regional API simulator, as clients see it over HTTPS.

Two figures, each the median of several runs against one simulator process (``lcmctl sim serve``, so the
server has its own process and core, as in the fleet benchmarks):

* **writes/s**: status merge patches on LCMMachines through the real kubernetes_asyncio client, from
  ``--writers`` concurrent tasks;
* **watch events/s**: ``--watchers`` concurrent watch streams on LCMMachines while one writer patches; the
  figure is events delivered to all watchers per second, from the first write until every watcher has seen
  every event.

The budgets are what the 1,000-agent benchmark (DESIGN.md) needs from the simulator with headroom: every agent
watches its own object and writes about two status patches per item.

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
from kubernetes_asyncio import client, config

GROUP, VERSION, PLURAL, NS = "lcm.mirantis.com", "v1alpha1", "lcmmachines", "bench"
WRITES_BUDGET = 500.0  # status writes per second, at least
EVENTS_BUDGET = 20_000.0  # watch events delivered per second across all watchers, at least


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(kubeconfig: Path, proc: asyncio.subprocess.Process, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise SystemExit(f"simulator exited with {proc.returncode}")
        if await asyncio.to_thread(kubeconfig.exists):
            with contextlib.suppress(Exception):
                api = await new_client(kubeconfig)
                async with api:
                    await client.VersionApi(api).get_code()
                    return
        await asyncio.sleep(0.1)
    raise SystemExit("simulator did not come up in time")


async def new_client(kubeconfig: Path) -> client.ApiClient:
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    cfg.connection_pool_maxsize = 64
    return client.ApiClient(cfg)


def machine(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "LCMMachine",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"clusterName": "bench", "type": "worker"},
    }


async def setup(api: client.ApiClient, count: int) -> None:
    core = client.CoreV1Api(api)
    with contextlib.suppress(client.ApiException):
        await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    objs = client.CustomObjectsApi(api)
    for i in range(count):
        with contextlib.suppress(client.ApiException):
            await objs.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, machine(f"m{i:04d}"))


async def patch_status(objs: client.CustomObjectsApi, name: str, n: int) -> None:
    body = {"status": {"state": "Deploy", "progress": f"{n % 7}/7"}}
    await objs.patch_namespaced_custom_object_status(GROUP, VERSION, NS, PLURAL, name, body)


async def writes_per_second(api: client.ApiClient, total: int, writers: int, machines: int) -> float:
    objs = client.CustomObjectsApi(api)
    counter = iter(range(total))

    async def writer() -> None:
        for n in counter:
            await patch_status(objs, f"m{n % machines:04d}", n)

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


async def watch_events_per_second(
    api: client.ApiClient, kubeconfig: Path, watchers: int, events: int
) -> float:
    objs = client.CustomObjectsApi(api)
    listing = await objs.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)
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
            await patch_status(objs, f"m{n % 100:04d}", n + 1)
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
            api = await new_client(kubeconfig)
            async with api:
                await setup(api, 100)
                writes = [await writes_per_second(api, args.writes, args.writers, 100)
                          for _ in range(args.runs)]
                events = [await watch_events_per_second(api, kubeconfig, args.watchers, args.events)
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

"""Idle footprint of ``lcm-agent run``: RSS and CPU of an agent whose machine is Ready.

An API simulator runs as a subprocess on loopback (HTTPS); the agent runs as ``lcm-agent run`` with a
ServiceAccount limited to its own LCMMachine, configured exactly as on a node (server, CA, token file).
Once the machine is Ready (one cheap bash item done), the agent's RSS and CPU time are sampled for
``--seconds``; the figure is the median of ``--runs`` fresh agent processes. The watch stays open and the
simulator sends bookmarks at its default interval, so the measured idle includes what a real idle node does.

Metrics are on, as on a node: the agent serves ``/metrics`` on a free loopback port, scraped every
``--scrape-interval`` seconds while it is measured (Prometheus' default 15 s; 0: never scraped), and each
run first checks that the endpoint answers.

Beside it, in the same run, the floor: a bare python of the same venv importing only the libraries the
agent cannot idle without (``FLOOR``), each one's share of RSS printed; the agent's figure minus the floor
is what its own code and the rest cost.

When salt-minion is installed (``LCM_BENCH_SALT=<venv>``, or on ``PATH``), the same run measures it too,
connected to a salt-master of its own on loopback and idle, and prints the ratio.

    .venv/bin/python bench/agent_idle.py [--runs 3] [--seconds 30] [--scrape-interval 15]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import yaml

from agent.adapters.atomic import write_atomic
from agent.adapters.kube import Kube, Resource, connect
from agent.daemon.own_machine import LCMMACHINES
from testbed.lab.stack.mosquitto import free_port
from testbed.lab.stack.prometheus import fetch, parse, value
from testbed.sim.testing import KubeApi, lcm_machine

BUDGET_RSS_MIB = 80.0
BUDGET_CPU_PERCENT = 0.5
RBAC = "rbac.authorization.k8s.io"
FLOOR = ("pydantic", "aiohttp", "yaml", "psutil", "paho.mqtt.client", "docker",
         "pyudev", "prometheus_client")
"""What an idle agent holds by need: its API types (pydantic), its API client and watch (aiohttp;
kubernetes_asyncio only reads kubeconfigs, which a node does not use), config (yaml), host facts (psutil),
heartbeats (paho), the drift watch's engine checks and events (docker), the hardware monitor (pyudev) and
its metrics (prometheus_client, served by asyncio's own streams)."""
_FLOOR_SCRIPT = """
import importlib, json, sys
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
shares = [("python", rss())]
for name in sys.argv[1:]:
    importlib.import_module(name)
    shares.append((name, rss()))
print(json.dumps(shares))
"""


@dataclass
class Bench:
    """A simulator subprocess, an admin client, a namespace and one machine's agent config."""

    admin: Kube
    namespace: str
    name: str
    config: Path
    workdir: Path
    metrics: str
    """``host:port`` of the agent's metrics endpoint."""

    async def machine(self) -> dict[str, Any]:
        return await self.admin.get(LCMMACHINES, self.namespace, self.name)

    async def wait_state(self, state: str, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if (await self.machine()).get("status", {}).get("state") == state:
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"machine never reached {state}")

    async def wait_log(self, offset: int, text: str, within: float = 120.0) -> None:
        """Until the agent's log, past ``offset``, holds ``text``."""
        log = self.workdir / "agent.log"
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with log.open("rb") as file:
                file.seek(offset)
                if text.encode() in file.read():
                    return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"the agent never logged {text!r}")

    def spawn_agent(self) -> psutil.Popen:
        log = (self.workdir / "agent.log").open("ab")
        return psutil.Popen([sys.executable, "-m", "agent.cli.node", "run", "--config", str(self.config)],
                            stdout=log, stderr=log)


async def _simulator(workdir: Path) -> tuple[psutil.Popen, Path]:
    kubeconfig = workdir / "admin.kubeconfig"
    proc = psutil.Popen([sys.executable, "-m", "regional.cli.ctl", "sim", "serve", "--port", "0",
                         "--state-dir", str(workdir / "sim"), "--kubeconfig", str(kubeconfig)],
                        stdout=(workdir / "sim.log").open("ab"), stderr=(workdir / "sim.log").open("ab"))
    for _ in range(1200):  # a minute: a loaded machine takes its time to import the simulator
        if kubeconfig.exists():
            return proc, kubeconfig
        await asyncio.sleep(0.05)
    proc.kill()
    raise TimeoutError("the simulator did not start")


async def _grant(admin: Kube, api: KubeApi, namespace: str, name: str) -> str:
    """A ServiceAccount whose Role allows only its own LCMMachine, as the provider issues it: its token."""
    token = await api.service_account_token(namespace, name)
    rules = [{"apiGroups": ["lcm.mirantis.com"], "resources": ["lcmmachines"], "resourceNames": [name],
              "verbs": ["get", "list", "watch", "patch"]},
             {"apiGroups": ["lcm.mirantis.com"], "resources": ["lcmmachines/status"], "resourceNames": [name],
              "verbs": ["get", "patch", "update"]}]
    meta = {"name": name, "namespace": namespace}
    await admin.create(Resource(RBAC, "v1", "roles"), namespace,
                       {"apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": meta, "rules": rules})
    await admin.create(Resource(RBAC, "v1", "rolebindings"), namespace, {
        "apiVersion": f"{RBAC}/v1", "kind": "RoleBinding", "metadata": meta,
        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]})
    return token


@contextlib.asynccontextmanager
async def bench_cluster(items: list[dict[str, Any]], **timings: float) -> AsyncIterator[Bench]:
    """A simulator subprocess with one machine carrying ``items`` and a 0600 agent config for it."""
    with tempfile.TemporaryDirectory(prefix="lcm-bench-") as tmp:
        workdir = Path(tmp)
        sim, kubeconfig = await _simulator(workdir)
        try:
            api = KubeApi(kubeconfig, simulator=None, workdir=workdir)
            await api.create_namespace()
            admin = await connect(kubeconfig=kubeconfig)
            async with admin:
                name = "bench-node"
                # As on a node: the API's address and CA, and a 0600 token file (no kubeconfig).
                token_file = workdir / "token"
                write_atomic(token_file, (await _grant(admin, api, api.namespace, name)).encode(), 0o600)
                access = {"server": admin.endpoint.server, "ca_file": admin.endpoint.ca_file,
                          "token_file": str(token_file)}
                await admin.create(LCMMACHINES, api.namespace, lcm_machine(name, api.namespace,
                                                                           stateItems=items))
                config = workdir / "config.yaml"
                metrics = f"127.0.0.1:{free_port()}"
                doc = {"api": {**access, "namespace": api.namespace, "machine_name": name},
                       "metrics": {"address": metrics},
                       "timings": {"backoff_base": 0.2, "backoff_cap": 5.0, **timings},
                       "state_dir": str(workdir / "state"), "release_dir": str(workdir)}
                write_atomic(config, yaml.safe_dump(doc).encode(), 0o600)
                yield Bench(admin, api.namespace, name, config, workdir, metrics)
            await api.close()
        finally:
            sim.terminate()
            sim.wait(10)


def bash_item(name: str, script: str, phase: str = "deploy") -> dict[str, Any]:
    return {"runner": "bash", "name": name, "version": "1", "phase": phase, "params": {"script": script}}


async def measure(bench: Bench, seconds: float, scrape_interval: float) -> tuple[float, float]:
    """(RSS MiB at the end, CPU % of one core over ``seconds``, scraped every ``scrape_interval``) of a fresh
    agent once its machine is Ready."""
    log = bench.workdir / "agent.log"
    start = log.stat().st_size if log.exists() else 0
    agent = bench.spawn_agent()
    try:
        await bench.wait_state("Ready")
        # From the second run on the machine is Ready before the agent has even started: its own word that
        # it has nothing to do is what says its start-up is over.
        await bench.wait_log(start, "next step: idle")
        await asyncio.sleep(2.0)  # let the last start-up writes settle
        if value(parse(await asyncio.to_thread(fetch, bench.metrics)), "lcm_agent_build_info") != 1:
            raise RuntimeError(f"the agent serves no metrics on {bench.metrics}")
        cpu0, t0 = sum(agent.cpu_times()[:2]), time.monotonic()
        await _scraped(bench.metrics, seconds, scrape_interval)
        cpu1, t1 = sum(agent.cpu_times()[:2]), time.monotonic()
        rss = agent.memory_info().rss / 2**20
    finally:
        agent.terminate()
        agent.wait(30)
    return rss, 100.0 * (cpu1 - cpu0) / (t1 - t0)


async def _scraped(address: str, seconds: float, interval: float) -> None:
    """Let ``seconds`` pass, scraping ``address`` every ``interval`` (never when 0), as Prometheus would."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(left, interval) if interval else left)
        if interval and time.monotonic() < deadline:
            await asyncio.to_thread(fetch, address)


def salt_minion() -> Path | None:
    """salt-minion's executable, when installed (on ``PATH``, or the venv ``LCM_BENCH_SALT`` names)."""
    venv = os.environ.get("LCM_BENCH_SALT")
    found = str(Path(venv) / "bin" / "salt-minion") if venv else shutil.which("salt-minion")
    return Path(found) if found and Path(found).exists() else None


async def salt_idle(minion: Path, seconds: float) -> tuple[float, float, int, float]:
    """(RSS MiB, CPU %, processes, the first process's RSS MiB) of a salt-minion connected to its own
    master on loopback, idle for ``seconds`` once the master's ``test.ping`` has reached it: the Python node
    agent operators compare with, measured as ours is (the minion's whole process tree)."""
    bindir = minion.parent
    with tempfile.TemporaryDirectory(prefix="lcm-bench-salt-") as tmp:
        root, conf = Path(tmp), Path(tmp) / "etc"
        conf.mkdir()
        publish, ret = free_port(), free_port()
        common = {"root_dir": str(root), "user": "root", "sock_dir": str(root / "sock")}
        (conf / "master").write_text(yaml.safe_dump({
            **common, "interface": "127.0.0.1", "publish_port": publish, "ret_port": ret, "auto_accept": True,
            "pki_dir": str(root / "pki/master"), "log_file": str(root / "master.log")}))
        (conf / "minion").write_text(yaml.safe_dump({
            **common, "master": "127.0.0.1", "master_port": ret, "publish_port": publish,
            "id": "bench-minion", "pki_dir": str(root / "pki/minion"), "log_file": str(root / "minion.log")}))
        master, peer = (psutil.Popen([str(daemon), "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
                        for daemon in (bindir / "salt-master", minion))
        try:
            deadline = time.monotonic() + 120  # the master's first key generation, the minion's auth
            while True:
                ping = await asyncio.to_thread(subprocess.run, [
                    str(bindir / "salt"), "-c", str(conf), "bench-minion", "test.ping", "--out", "json",
                    "--timeout", "5"], capture_output=True, text=True, check=False)
                if '"bench-minion": true' in ping.stdout:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"salt-minion never answered its master's test.ping: {ping.stdout}")
            await asyncio.sleep(2.0)  # let the ping's work settle, as for the agent

            cpu0, t0 = sum(sum(p.cpu_times()[:2]) for p in _tree(peer)), time.monotonic()
            await asyncio.sleep(seconds)
            processes = _tree(peer)
            cpu1, t1 = sum(sum(p.cpu_times()[:2]) for p in processes), time.monotonic()
            rss = sum(p.memory_info().rss for p in processes) / 2**20
            first = peer.memory_info().rss / 2**20
        finally:
            for proc in (peer, master):
                for child in _tree(proc):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        child.kill()
                proc.wait(30)
    return rss, 100.0 * (cpu1 - cpu0) / (t1 - t0), len(processes), first


def _tree(process: psutil.Process) -> list[psutil.Process]:
    return [process, *process.children(recursive=True)]


def floor() -> list[tuple[str, float]]:
    """(library, RSS MiB once it is imported too), from a bare python importing ``FLOOR`` in order."""
    out = subprocess.run([sys.executable, "-c", _FLOOR_SCRIPT, *FLOOR], check=True, capture_output=True,
                         text=True).stdout
    return [(name, float(mib)) for name, mib in json.loads(out)]


def _version(executable: Path) -> str:
    return subprocess.run([str(executable), "--version"], capture_output=True, text=True,
                          check=False).stdout.split(" ", 1)[-1].strip()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--scrape-interval", type=float, default=15.0)
    args = parser.parse_args()
    async with bench_cluster([bash_item("hello", "true")]) as bench:
        samples = [await measure(bench, args.seconds, args.scrape_interval) for _ in range(args.runs)]
    rss = statistics.median(s[0] for s in samples)
    cpu = statistics.median(s[1] for s in samples)
    scraped = f"scraped every {args.scrape_interval:g}s" if args.scrape_interval else "never scraped"
    print(f"agent idle over {args.seconds:g}s with metrics on ({scraped}), median of {args.runs} runs:")
    print(f"  RSS {rss:6.1f} MiB   (budget <= {BUDGET_RSS_MIB:g} MiB)   runs: "
          + ", ".join(f"{s[0]:.1f}" for s in samples))
    print(f"  CPU {cpu:6.2f} %     (budget <= {BUDGET_CPU_PERCENT:g} %)    runs: "
          + ", ".join(f"{s[1]:.2f}" for s in samples))
    shares = floor()
    steps = ", ".join(f"{name} +{mib - was:.1f}" for (_, was), (name, mib) in itertools.pairwise(shares))
    print(f"  floor {shares[-1][1]:6.1f} MiB: a bare python {shares[0][1]:.1f}, {steps}; "
          f"the agent's own code and the rest {rss - shares[-1][1]:.1f} MiB")
    minion = salt_minion()
    if minion is None:
        print("  salt-minion: not installed (pip install salt into a venv; LCM_BENCH_SALT=<venv>)")
    else:
        peers = [await salt_idle(minion, args.seconds) for _ in range(args.runs)]
        peer_rss = statistics.median(p[0] for p in peers)
        print(f"  salt-minion {_version(minion)}, connected to its master and idle, median of {args.runs}: "
              f"RSS {peer_rss:.1f} MiB in {peers[0][2]} processes (the first "
              f"{statistics.median(p[3] for p in peers):.1f}), CPU "
              f"{statistics.median(p[1] for p in peers):.2f} %; the agent's RSS is {rss / peer_rss:.2f}x its")
    within = rss <= BUDGET_RSS_MIB and cpu <= BUDGET_CPU_PERCENT
    print("within budget" if within else "OVER BUDGET")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

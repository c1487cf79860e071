"""Rolling reboot of the 3-machine cluster: wall time, and a replicated service's availability during it.

The demo's stack on nspawn machines with the real control plane (one control, two workers; kube-apiserver,
lcm-scheduler and Mosquitto on the host), booted once; then ``--runs`` GracefulRebootRequests for the whole
cluster, one after another. Each reboots every machine for real (systemd goes down, nspawn exits 133 and is
started again): the control machine, then each worker drained, rebooted and undrained. Per run: the wall
time from the request's creation until the scheduler deleted it with every machine Ready, and the probe's
requests answered / tried (``testbed.lab.stack.service_probe``: two replicas of a busybox httpd, one per
worker, asked every 0.2 s from the host on either worker's address). Prints each run and the medians.

It uses the demo's fixed machine names and the shared cache: run it alone on the host, e.g.

    flock /tmp/lcm-lab.lock .venv/bin/python bench/reboots.py [--runs 3]
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import tempfile
from pathlib import Path

from machines_bench import machine_runs  # bench/, the script's directory (on sys.path when run)

from agent.adapters.kube import connect
from testbed.cli.demo import open_stack
from testbed.lab.stack.machines import MachineNodes
from testbed.lab.stack.rolling_reboot import rolling_reboot
from testbed.lab.stack.service_probe import start_service
from testbed.lab.stack.stack import StackSettings

RELEASE = "swarm-1.0.0"
PATIENCE = 1500.0


async def bench(runs: int, workdir: Path) -> list[tuple[float, int, int]]:
    """(seconds, answered, tried) per rolling reboot."""
    settings = StackSettings(workdir / "demo")
    results = []
    async with open_stack(settings, nodes="machines", api="kube") as (stack, server), \
            await connect(kubeconfig=server.kubeconfig_path) as kube:
        await stack.wait(kube, lambda r: r.ready(RELEASE), within=PATIENCE)
        nodes = stack.nodes
        assert isinstance(nodes, MachineNodes)
        control, *workers = settings.machines
        probe = await start_service(nodes, control, workers)
        for n in range(runs):
            start = len(probe.log)
            probing = asyncio.ensure_future(probe.run())
            try:
                run = await rolling_reboot(stack, kube, [], RELEASE, within=PATIENCE)
            finally:
                probing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await probing
            window = probe.log[start:]
            answered, tried = sum(ok for _, ok in window), len(window)
            print(f"run {n + 1}: {run.seconds:.1f}s, probe {answered}/{tried} answered", flush=True)
            print(await nodes.docker(control, "service", "ps", "web", "--no-trunc"), flush=True)
            results.append((run.seconds, answered, tried))
    return results


def main() -> int:
    runs = machine_runs(__doc__)
    if runs is None:
        return 2
    with tempfile.TemporaryDirectory(prefix="lcm-bench-reboots-") as tmp:
        results = asyncio.run(bench(runs, Path(tmp)))
    seconds = statistics.median(s for s, _, _ in results)
    ratio = statistics.median(a / t for _, a, t in results if t)
    print(f"median of {len(results)}: rolling reboot {seconds:.1f}s, probe answered {ratio:.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

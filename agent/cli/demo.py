"""``lcmctl demo``: the README's first command.

Today the demo is the regional side as far as it exists: the API simulator with the project's CRDs and the
sample cluster (a ClusterRelease, an LCMCluster, three LCMMachines), shown through kubectl exactly as an
operator would see a real regional cluster. It grows into the whole rollout (scheduler, agents on machines,
a swarm) as those parts land. State lives in ``--state-dir``, so a second run reuses it; ``--down`` removes
it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
from pathlib import Path

from agent.api.crds import crd_paths
from agent.sim.errors import ApiError
from agent.sim.runner import Simulator

SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"
SHOW = "clusterreleases,lcmclusters,lcmmachines"


def add_demo_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = groups.add_parser("demo", help="a demo regional cluster on this machine")
    demo.add_argument("--state-dir", type=Path, default=Path(".state/demo"),
                      help="simulator state, certificates and kubeconfig (default %(default)s)")
    demo.add_argument("--port", type=int, default=6443, help="API port (default %(default)s; 0: any free)")
    demo.add_argument("--samples", type=Path, default=SAMPLES,
                      help="objects to load (default: deploy/samples)")
    demo.add_argument("--once", action="store_true", help="show the cluster and exit instead of serving")
    demo.add_argument("--down", action="store_true", help="remove everything the demo made, then exit")
    demo.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    if args.down:
        shutil.rmtree(args.state_dir, ignore_errors=True)
        print(f"removed {args.state_dir}")
        return 0
    if not args.samples.is_dir():
        print(f"lcmctl demo: no sample objects at {args.samples} (give --samples DIR)", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_demo(args.state_dir, args.port, args.samples, once=args.once))
    except OSError as exc:
        print(f"lcmctl demo: cannot serve on port {args.port}: {exc} (try --port 0)", file=sys.stderr)
        return 1
    except ApiError as exc:
        print(f"lcmctl demo: {exc.message}", file=sys.stderr)
        return 1


async def _demo(state_dir: Path, port: int, samples: Path, *, once: bool) -> int:
    async with Simulator(state_dir / "sim", port=port, crd_paths=crd_paths(),
                         kubeconfig_path=state_dir / "kubeconfig") as sim:
        loaded = sim.load([samples])
        kubeconfig = sim.kubeconfig_path.resolve()
        print(f"API simulator on {sim.url} with {loaded} sample objects from {samples}\n")
        shown = await _kubectl(kubeconfig, "get", SHOW, "-A")
        print(f"\nLook around from another shell:\n  export KUBECONFIG={kubeconfig}\n"
              f"  kubectl get lcmmachines -A\n  kubectl get lcmm -n demo demo-worker-1 -o yaml\n")
        if once:
            return shown
        print("Serving until Ctrl-C.", flush=True)
        await _until_signal()
    return 0


async def _kubectl(kubeconfig: Path, *args: str) -> int:
    """kubectl against the simulator, run as a child so the simulator keeps serving meanwhile."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        print("kubectl is not installed (Debian: apt-get install kubernetes-client); skipping the listing")
        return 0
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    proc = await asyncio.create_subprocess_exec(kubectl, *args, env=env)
    return await proc.wait()


async def _until_signal() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

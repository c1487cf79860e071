"""``lcmctl demo``: the README's first command, the whole rollout on this machine.

The regional side (the API simulator with the CRDs, the samples of ``deploy/samples`` and the RBAC of
``deploy/rbac``, the scheduler, Mosquitto) and three nodes (network namespaces with their own dockerd), each
running the real agent; the rollout is shown live until every LCMMachine is Ready, then the swarm as its
manager sees it. ``agent.lab.stack`` is the composition (the end-to-end test uses the same one); this module
adds the API, the prerequisites check and the terminal. It installs nothing: ``./dev.sh demo`` does.

    lcmctl demo [--once] [--port 6443] [--state-dir .state/demo]
    lcmctl demo --down

Ctrl-C (or ``--once`` after the swarm is shown) takes everything down; ``--down`` does the same from
another shell, or after a crash.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.live import Live

from agent.adapters.kube import Kube, connect
from agent.api.crds import crd_paths
from agent.cli.watch import Board
from agent.lab import mosquitto, nodes
from agent.lab.netns import LabError
from agent.lab.stack import REPO, Rollout, Stack, StackSettings, teardown
from agent.sim.errors import ApiError
from agent.sim.runner import Simulator

SAMPLES = REPO / "deploy" / "samples"
RBAC = REPO / "deploy" / "rbac"
READY_WITHIN = 900.0
"""Seconds the first rollout may take: three nodes run some twenty Ansible items on two shared cores."""


def add_demo_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = groups.add_parser("demo", help="the whole rollout here: API, scheduler, broker, 3 nodes",
                             description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("--state-dir", type=Path, default=Path(".state/demo"),
                      help="API state, kubeconfig, configs, logs, nodes (default %(default)s)")
    demo.add_argument("--port", type=int, default=6443, help="API port (default %(default)s; 0: any free)")
    demo.add_argument("--samples", type=Path, default=SAMPLES,
                      help="objects to load (default: deploy/samples)")
    demo.add_argument("--prefix", default="lcmdemo", help="naming prefix of the nodes' namespaces and links")
    demo.add_argument("--once", action="store_true", help="exit (and clean up) once the swarm is shown")
    demo.add_argument("--down", action="store_true", help="remove everything the demo made, then exit")
    demo.set_defaults(func=run_demo)


def missing_prerequisites() -> list[str]:
    """What this host lacks for the demo, each with how to get it."""
    missing = []
    reason = nodes.missing_requirements()
    if reason:
        missing.append(f"{reason} (run as root; ./dev.sh setup installs docker.io, iproute2, util-linux)")
    reason = mosquitto.available()
    if reason:
        missing.append(reason)
    if shutil.which("docker") is None:
        missing.append("the docker CLI (apt-get install docker.io)")
    return missing


def run_demo(args: argparse.Namespace) -> int:
    if args.down:
        removed = teardown(args.state_dir, args.prefix)
        shutil.rmtree(args.state_dir, ignore_errors=True)
        print(f"removed {args.state_dir}" + (f" and {len(removed)} running part(s)" if removed else ""))
        return 0
    if not args.samples.is_dir():
        print(f"lcmctl demo: no sample objects at {args.samples} (give --samples DIR)", file=sys.stderr)
        return 2
    missing = missing_prerequisites()
    if missing:
        print("lcmctl demo: this host lacks:\n" + "\n".join(f"  - {m}" for m in missing), file=sys.stderr)
        return 2
    print("nodes: network namespaces, each with its own dockerd "
          "(nspawn machines booting the agent with cloud-init: `lcmctl machines up`, docs/machines.md)")
    settings = StackSettings(args.state_dir, prefix=args.prefix)
    try:
        return asyncio.run(_demo(settings, args.port, [args.samples], once=args.once))
    except OSError as exc:
        print(f"lcmctl demo: {exc} (a port in use? try --port 0)", file=sys.stderr)
        return 1
    except (ApiError, LabError, RuntimeError, TimeoutError) as exc:
        print(f"lcmctl demo: {exc}", file=sys.stderr)
        return 1


@contextlib.asynccontextmanager
async def open_stack(
    settings: StackSettings, *, port: int = 0, samples: Sequence[Path] = (SAMPLES,),
) -> AsyncIterator[tuple[Stack, Simulator]]:
    """Nodes, the API on their bridge with the CRDs, ``samples`` and the RBAC, then broker, scheduler and
    agents; all of it gone on exit, however the block ends."""
    stack = Stack(settings)
    sim: Simulator | None = None
    # The nodes are new on every run, so is the API: an old run's statuses would describe other nodes.
    shutil.rmtree(settings.state_dir / "sim", ignore_errors=True)
    try:
        gateway = await asyncio.to_thread(stack.bring_up_nodes)
        sim = Simulator(settings.state_dir / "sim", host=gateway, port=port, crd_paths=crd_paths(),
                        kubeconfig_path=settings.state_dir / "kubeconfig")
        await sim.start()
        sim.load([*samples, RBAC])
        await stack.start(sim.kubeconfig_path)
        yield stack, sim
    finally:
        await asyncio.to_thread(stack.down)
        if sim is not None:
            await sim.stop()


async def _demo(settings: StackSettings, port: int, samples: Sequence[Path], *, once: bool) -> int:
    stopping = _stop_on_signals()
    began = time.monotonic()
    async with open_stack(settings, port=port, samples=samples) as (stack, sim):
        kubeconfig = sim.kubeconfig_path.resolve()
        print(f"API simulator on {sim.url}; Mosquitto on {stack.broker.url if stack.broker else '-'}; "
              f"lcm-scheduler and {len(settings.machines)} agents started (logs: {settings.run_dir})",
              flush=True)
        async with await connect(kubeconfig=kubeconfig) as kube:
            release = (await stack.look(kube)).cluster["spec"]["release"]
            waiting = asyncio.ensure_future(_show_rollout(stack, kube, release))
            await asyncio.wait([waiting, asyncio.ensure_future(stopping.wait())],
                               return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                waiting.cancel()
                print("stopped before the rollout finished; taking everything down")
                return 130
            await waiting
        print(f"\nall {len(settings.machines)} machines Ready on {release} in {time.monotonic() - began:.0f}s"
              f"\n\nThe swarm, from {stack.control_node().name}'s engine:\n{stack.swarm()}")
        _print_hints(stack, settings, kubeconfig)
        if not once:
            print("Serving until Ctrl-C, which takes everything down.", flush=True)
            await stopping.wait()
    return 0


async def _show_rollout(stack: Stack, kube: Kube, release: str) -> Rollout:
    """Wait for all Ready, drawing ``lcmctl watch``'s table in a terminal, else a line per change."""
    board = Board(stack.settings.namespace, stack.settings.cluster)
    if sys.stdout.isatty():
        with Live(board.table(time.monotonic()), refresh_per_second=2, console=Console()) as live:
            return await stack.wait(kube, lambda r: r.ready(release), within=READY_WITHIN,
                                    on_look=_redraw(board, live))
    last = [""]

    def line(rollout: Rollout) -> None:
        summary = rollout.summary()
        if summary != last[0]:
            last[0] = summary
            print(f"  {summary}", flush=True)

    return await stack.wait(kube, lambda r: r.ready(release), within=READY_WITHIN, on_look=line)


def _redraw(board: Board, live: Live) -> Callable[[Rollout], None]:
    def redraw(rollout: Rollout) -> None:
        board.machines = list(rollout.machines.values())
        live.update(board.table(time.monotonic()))
    return redraw


def _print_hints(stack: Stack, settings: StackSettings, kubeconfig: Path) -> None:
    control = stack.control_node()
    mqtt = ""
    if stack.broker is not None:
        mqtt = (f" \\\n      --mqtt-url {stack.broker.url} --mqtt-password-file "
                f"{stack.regional_password_file.resolve()}")
    print(f"""Look around from another shell:
  export KUBECONFIG={kubeconfig}
  kubectl get lcmm,lcmc,lcmcs -n {settings.namespace} -o wide
  lcmctl watch --namespace {settings.namespace} --cluster {settings.cluster}{mqtt}
  docker -H {control.docker_host} node ls
  {" ".join(control.nsenter("bash"))}      # a shell on {control.name}
  lcmctl demo --down --state-dir {settings.state_dir} --prefix {settings.prefix}      # remove everything
""", flush=True)


def _stop_on_signals() -> asyncio.Event:
    """SIGINT/SIGTERM only set the event: the stack is taken down by the ``async with`` unwinding."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


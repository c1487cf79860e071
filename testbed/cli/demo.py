"""What ``lcmctl demo`` does (its usage and options: ``testbed/cli/commands.py``): the regional side, three
nodes and the terminal. ``testbed.lab.stack.stack`` is the composition (the end-to-end tests use the same
one); this module adds the API, the prerequisites check and the terminal. It installs nothing: ``./dev.sh
demo`` does."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Protocol

from rich.console import Console
from rich.live import Live

from agent.adapters.kube import Kube, KubeError, connect
from agent.api.crds import crd_paths
from agent.kits.tasks import first_of
from regional.cli.watch import Board
from regional.provisioning import ProvisioningError
from testbed import CHECKOUT
from testbed.cli.commands import SAMPLES
from testbed.kube.build import BuildError, ensure_built
from testbed.kube.objects import apply_documents, documents
from testbed.kube.plane import ControlPlane, PlaneError, PlaneSettings
from testbed.lab.machines import host as machines_host
from testbed.lab.machines.host import LabError as MachineLabError
from testbed.lab.netns import nodes
from testbed.lab.netns.namespaces import LabError
from testbed.lab.stack import machines as stack_machines
from testbed.lab.stack import mosquitto, ports
from testbed.lab.stack import netns as stack_netns
from testbed.lab.stack.runs import begin_run, remove_everything
from testbed.lab.stack.stack import NodeBackend, Rollout, Stack, StackSettings
from testbed.sim.errors import ApiError
from testbed.sim.runner import Simulator

log = logging.getLogger(__name__)

RBAC = CHECKOUT / "deploy" / "rbac"
READY_WITHIN = 1500.0
"""Seconds the first rollout may take: three machines install the agent (some 50 wheels each), then run
some twenty Ansible items, on two shared cores."""




def missing_prerequisites(kind: str = "netns") -> list[str]:
    """What this host lacks for the demo on ``kind`` nodes, each with how to get it."""
    missing = []
    if kind == "machines":
        missing += machines_host.missing_prerequisites()
    else:
        reason = nodes.missing_requirements()
        if reason:
            missing.append(f"{reason} (run as root; ./dev.sh setup installs docker.io, iproute2, util-linux)")
        if shutil.which("docker") is None:
            missing.append("the docker CLI (apt-get install docker.io)")
    reason = mosquitto.available()
    if reason:
        missing.append(reason)
    return missing


def choose_nodes(requested: str, lacking: Sequence[str]) -> tuple[str, str]:
    """The node kind to run and a line saying what it is (and, for ``auto`` falling back, why), given what
    this host ``lacking`` to run machines."""
    if requested != "auto":
        return requested, _NODE_LINES[requested]
    if not lacking:
        return "machines", _NODE_LINES["machines"]
    return "netns", (f"{_NODE_LINES['netns']}\n  not nspawn machines: this host lacks "
                     f"{'; '.join(lacking)} (install those, or pass --nodes machines to insist)")


_NODE_LINES = {
    "machines": "nodes: systemd-nspawn machines; cloud-init installs the agent from the lab's mirror and "
                "systemd runs it (docs/machines.md)",
    "netns": "nodes: network namespaces, each with its own dockerd; the agents run on this host",
}


def node_backend(kind: str, settings: StackSettings) -> NodeBackend:
    return stack_machines.MachineNodes(settings) if kind == "machines" else stack_netns.NetnsNodes(settings)


def run_demo(args: argparse.Namespace) -> int:
    if args.down:
        removed = asyncio.run(remove_everything(args.state_dir / "stack", args.prefix))
        shutil.rmtree(args.state_dir, ignore_errors=True)
        print(f"removed {args.state_dir}" + (f" and {len(removed)} running part(s)" if removed else ""))
        return 0
    if not args.samples.is_dir():
        print(f"lcmctl demo: no sample objects at {args.samples} (give --samples DIR)", file=sys.stderr)
        return 2
    kind, line = choose_nodes(args.nodes, machines_host.missing_prerequisites())
    missing = missing_prerequisites(kind)
    if missing:
        print("lcmctl demo: this host lacks:\n" + "\n".join(f"  - {m}" for m in missing), file=sys.stderr)
        return 2
    print(line, flush=True)
    settings = StackSettings(args.state_dir, prefix=args.prefix, apt_mirror=args.apt_mirror)
    try:
        return asyncio.run(_demo(settings, kind, args.port, [args.samples], once=args.once, api=args.api))
    except OSError as exc:
        print(f"lcmctl demo: {exc}", file=sys.stderr)
        return 1
    except (ApiError, KubeError, BuildError, PlaneError, LabError, MachineLabError, ProvisioningError,
            RuntimeError, TimeoutError) as exc:
        print(f"lcmctl demo: {exc}", file=sys.stderr)
        return 1


class RegionalServer(Protocol):
    """The demo's API, simulated or real: where it listens and its admin kubeconfig."""

    @property
    def url(self) -> str: ...

    @property
    def kubeconfig_path(self) -> Path: ...


@contextlib.asynccontextmanager
async def open_stack(
    settings: StackSettings, *, nodes: str = "netns", port: int = 0, samples: Sequence[Path] = (SAMPLES,),
    api: str = "sim",
) -> AsyncIterator[tuple[Stack, RegionalServer]]:
    """Nodes, the API (the simulator, or with ``api="kube"`` the real control plane) on their bridge with the
    CRDs, ``samples`` and the RBAC, then broker, scheduler and agents; all of it gone on exit, however the
    block ends. The state dir's per-run state is made anew first (and what a killed run left is removed)."""
    # Resolved: the agents' configs take absolute paths only.
    settings = dataclasses.replace(settings, state_dir=settings.state_dir.resolve())
    removed = await begin_run(settings, how_to_stop=f"lcmctl demo --down --state-dir {settings.state_dir}")
    if removed:
        log.info("the previous run in %s ended without its teardown; removed what it left: %s",
                 settings.state_dir, ", ".join(removed))
    stack = Stack(settings, node_backend(nodes, settings))
    try:
        gateway = await stack.bring_up_nodes()
        objects = [*stack.nodes.objects(samples), RBAC]
        async with _serve_api(api, settings.state_dir, gateway, port, objects) as server:
            stack.stages.done("API and objects")
            try:
                await stack.start(server.kubeconfig_path)
                yield stack, server
            finally:
                await stack.down()  # before the API goes: agents and scheduler stop cleanly
    finally:
        await stack.down()


@contextlib.asynccontextmanager
async def _serve_api(
    api: str, state_dir: Path, host: str, port: int, objects: Sequence[Path],
) -> AsyncIterator[RegionalServer]:
    """The API on ``host`` holding the CRDs and ``objects``, on state made anew by ``begin_run``: the nodes
    are new on every run, and an old run's statuses would describe other nodes."""
    if api == "kube":
        plane = ControlPlane(PlaneSettings(state_dir / "kube", host=host, port=port, crds=crd_paths()),
                             ensure_built(lambda line: print(f"lcmctl demo: {line}", flush=True)))
        try:
            await plane.start()
            async with await connect(kubeconfig=plane.kubeconfig_path) as kube:
                await apply_documents(kube, documents(objects))
            yield plane
        finally:
            plane.stop()
        return
    sim = Simulator(state_dir / "sim", host=host, port=port, crd_paths=crd_paths(),
                    kubeconfig_path=state_dir / "kubeconfig")
    await _listen(sim)
    try:
        sim.load(objects)
        yield sim
    finally:
        await sim.stop()


async def _listen(sim: Simulator) -> None:
    """Start the simulator; a port it cannot take is an error naming what holds it and what to do."""
    try:
        await sim.start()
    except OSError as exc:
        cause = ports.why_not_listening(sim.host, sim.port) or exc.strerror or str(exc)
        await sim.stop()
        raise RuntimeError(f"the API simulator cannot listen on {sim.host}:{sim.port}: {cause} "
                           "(--port 0 takes any free port)") from exc


async def _demo(settings: StackSettings, kind: str, port: int, samples: Sequence[Path], *, once: bool,
                api: str = "sim") -> int:
    stopping = stop_on_signals()
    async with open_stack(settings, nodes=kind, port=port, samples=samples, api=api) as (stack, server):
        code = await _roll_out(stack, server, kind, stopping, once=once, api=api)
        leaving = time.monotonic()
    # Only what is true now that the demo has ended: its parts are gone, its logs are not.
    print(f"taken down in {time.monotonic() - leaving:.0f}s: the {len(settings.machines)} nodes, their "
          f"agents, the scheduler, Mosquitto and the API are stopped; the logs stay in {settings.run_dir}",
          flush=True)
    return code


async def _roll_out(stack: Stack, server: RegionalServer, kind: str, stopping: asyncio.Event, *, once: bool,
                    api: str) -> int:
    """Show the rollout to all Ready, its stage times and the swarm; then serve until Ctrl-C unless
    ``once``. 130 when stopped before the rollout finished."""
    settings = stack.settings
    kubeconfig = server.kubeconfig_path.resolve()
    started = "agents started" if kind == "netns" else "machines booting"
    what = "kube-apiserver (etcd, kube-controller-manager)" if api == "kube" else "API simulator"
    print(f"{what} on {server.url}; Mosquitto on {stack.broker.url if stack.broker else '-'}; "
          f"lcm-scheduler and {len(settings.machines)} {started} (logs: {settings.run_dir})", flush=True)
    async with await connect(kubeconfig=kubeconfig) as kube:
        release = (await stack.look(kube)).cluster["spec"]["release"]
        waiting = asyncio.ensure_future(_show_rollout(stack, kube, release))
        await first_of(waiting, stopping.wait())
        if not waiting.done():
            waiting.cancel()
            print("stopped before the rollout finished; taking everything down")
            return 130
        await waiting
    stack.stages.done(READY)
    print(f"\nall {len(settings.machines)} machines Ready on {release}\nstages: {stack.stages.line()}"
          f"\n\nThe swarm, from {settings.control}'s engine:\n{await stack.swarm()}", flush=True)
    if not once:
        _print_hints(stack, settings, kubeconfig)
        print("Serving until Ctrl-C, which takes everything down.", flush=True)
        await stopping.wait()
    return 0


REGISTERED = {"machines": "boot → all registered", "netns": "agents' start → all registered"}
READY = "registered → all Ready"


async def _show_rollout(stack: Stack, kube: Kube, release: str) -> Rollout:
    """Wait for all Ready, drawing ``lcmctl watch``'s table in a terminal, else a line per change; the
    stage ``REGISTERED`` ends at the first look at which every machine has registered."""
    board = Board(stack.settings.namespace, stack.settings.cluster)
    registered = REGISTERED[stack.nodes.kind]

    def timed(show: Callable[[Rollout], None]) -> Callable[[Rollout], None]:
        def look(rollout: Rollout) -> None:
            if registered not in stack.stages.seconds and rollout.machines and not rollout.unregistered():
                stack.stages.done(registered)
            show(rollout)
        return look

    if sys.stdout.isatty():
        with Live(board.table(time.monotonic()), refresh_per_second=2, console=Console()) as live:
            return await stack.wait(kube, lambda r: r.ready(release), within=READY_WITHIN,
                                    on_look=timed(_redraw(board, live)))
    last = [""]

    def line(rollout: Rollout) -> None:
        summary = rollout.summary()
        if summary != last[0]:
            last[0] = summary
            print(f"  {summary}", flush=True)

    return await stack.wait(kube, lambda r: r.ready(release), within=READY_WITHIN, on_look=timed(line))


def _redraw(board: Board, live: Live) -> Callable[[Rollout], None]:
    def redraw(rollout: Rollout) -> None:
        board.machines = list(rollout.machines.values())
        live.update(board.table(time.monotonic()))
    return redraw


def _print_hints(stack: Stack, settings: StackSettings, kubeconfig: Path) -> None:
    mqtt = ""
    if stack.broker is not None:
        mqtt = (f" \\\n      --mqtt-url {stack.broker.url} --mqtt-password-file "
                f"{stack.regional_password_file.resolve()}")
    nodes_lines = "\n".join(f"  {line}" for line in stack.nodes.hints(settings.control))
    evidence = (f"\n  lcmctl diagnostics {settings.control} --namespace {settings.namespace}{mqtt}"
                "      # the evidence of an item flagged stuck") if mqtt else ""
    print(f"""Look around from another shell:
  export KUBECONFIG={kubeconfig}
  kubectl get lcmm,lcmc,lcmcs -n {settings.namespace} -o wide
  lcmctl watch --namespace {settings.namespace} --cluster {settings.cluster}{mqtt}{evidence}
{nodes_lines}
  lcmctl demo --down --state-dir {settings.state_dir} --prefix {settings.prefix}      # remove everything
""", flush=True)


def stop_on_signals() -> asyncio.Event:
    """SIGINT/SIGTERM only set the event: the stack is taken down by the ``async with`` unwinding."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


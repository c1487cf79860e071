"""The whole rollout on one host: three nodes, a real broker, the scheduler, and the real agent on every node,
against one regional API. The demo (``lcmctl demo``) and the end-to-end tests use this one composition.

The nodes come from a backend (``NodeBackend``): network-namespace nodes with the agent as a child process
in each (``testbed.lab.stack.netns``), or nspawn machines that cloud-init turns into nodes
(``testbed.lab.stack.machines``). This module is what both share. The API is not this module's
(``testbed.lab`` may not import ``testbed.sim``): the caller brings the nodes' network up first
(``Stack.bring_up_nodes`` returns the bridge's address), serves an API there, loads the objects (as
``NodeBackend.objects`` rewrites them), and hands the admin kubeconfig to ``Stack.start``. From there:

- every machine gets the token of its ServiceAccount (``deploy/rbac``: its LCMMachine, its join Secret);
- Mosquitto listens on the bridge with the repository's ACL, a password per machine and one for the
  regional side (``lcm_regional``);
- ``lcm-scheduler run`` is a child process with its log in the state directory; the backend starts the
  agents with their tokens and broker accounts.

State lives under one directory (``<state>/stack``: configs, tokens, logs, pid files), made anew by every
run (``testbed.lab.stack.runs``). ``Stack.stages`` times each stage of bringing it up. ``down`` stops the
scheduler first (it must release its Lease while the API is still there, and the machines' bridge the API
listens on goes with the nodes), then the nodes and the broker, and is idempotent; ``stop_recorded`` stops
a running stack from another process (``lcmctl demo --down``) by its pid files, and each backend removes
its own leftovers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agent.adapters.atomic import write_atomic
from agent.adapters.kube import Kube, Resource, connect
from agent.api.models import GROUP, VERSION
from agent.api.names import agent_account
from regional.provisioning import issue_token
from testbed import CHECKOUT
from testbed.lab.machines.sets import MqttAccess, RegionalApi, registered
from testbed.lab.stack import mosquitto
from testbed.lab.stack.stages import Stages

PLAYBOOKS = CHECKOUT / "playbooks"
LCMMACHINES = Resource(GROUP, VERSION, "lcmmachines")
LCMCLUSTERS = Resource(GROUP, VERSION, "lcmclusters")
LCMCLUSTERSTATES = Resource(GROUP, VERSION, "lcmclusterstates")
STOP_GRACE = 15.0
"""Seconds a child (agent, scheduler) gets after SIGTERM before its process group is killed."""
DEMO_GRACE = 120.0
"""Seconds a running demo gets, after ``stop_recorded``'s SIGTERM, to take its own stack down (machines
power off cleanly, which takes tens of seconds)."""


@dataclass(frozen=True)
class StackSettings:
    state_dir: Path
    machines: Sequence[str] = ("demo-control-0", "demo-worker-0", "demo-worker-1")
    """LCMMachine names, which are also the nodes' host names; the first is the control machine."""
    namespace: str = "demo"
    cluster: str = "demo"
    prefix: str = "lcmdemo"
    """The netns lab's naming prefix (network namespaces, links, /run/lcmlab record)."""
    agent_timings: dict[str, float] = field(default_factory=lambda: {"stop_grace_period": 10.0})
    reconcile: dict[str, float] = field(default_factory=dict)
    """``reconcile.*`` of every agent's config (docs/agent-config.md); empty: the defaults. Netns nodes
    only: a machine's config is the one its cloud-init user-data writes."""
    scheduler_metrics: str = ""
    """The scheduler's ``--metrics-address`` (``host:port``); "" leaves its metrics off."""
    agent_metrics_port: int = 0
    """Netns nodes only: every agent serves its metrics on its node's own address at this port, where a
    Prometheus on the host reaches it; 0 keeps the agent's default (the loopback of the node's namespace)."""
    apt_mirror: str = ""
    """Machines only: the Debian mirror the image and the lab's apt repository come from; "" takes the
    host's apt sources (``testbed.lab.machines.rootfs``)."""

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "stack"

    @property
    def control(self) -> str:
        return self.machines[0]

    def machine_type(self, name: str) -> str:
        return "control" if name == self.control else "worker"


@dataclass(frozen=True)
class AgentAccess:
    """What one machine's agent needs from the regional side: its API token and its broker account."""

    token: str = field(repr=False)
    mqtt: MqttAccess


class NodeBackend(Protocol):
    """The nodes of a stack and the few operations the demo and the end-to-end tests need on them."""

    kind: str
    """``netns`` or ``machines``."""

    async def up(self, stages: Stages) -> str:
        """The nodes' network (and whatever the nodes need before the API exists); the bridge address.
        Each stage of it is recorded in ``stages``."""
        ...

    def objects(self, paths: Sequence[Path]) -> list[Path]:
        """The objects to load into the API: ``paths`` themselves, or rewritten copies for these nodes."""
        ...

    async def start_agents(self, api: RegionalApi, agents: Mapping[str, AgentAccess]) -> None:
        """Start (or boot) every machine's agent against ``api``."""
        ...

    def exited(self) -> dict[str, str]:
        """Parts that ended on their own (name → how, and where to look): a rollout waiting for them would
        hang."""
        ...

    async def explain(self, rollout: Rollout) -> str:
        """Why machines that have not registered are stuck, read from the nodes ("" when none is)."""
        ...

    async def docker(self, machine: str, *args: str) -> str:
        """The docker CLI against the machine's engine; stdout. Raises on a non-zero exit."""
        ...

    async def stop_engine(self, machine: str) -> None:
        """Stop the machine's Docker Engine behind the agent's back (a drift)."""
        ...

    async def engine_running(self, machine: str) -> bool:
        ...

    async def daemon_json(self, machine: str) -> dict[str, Any]:
        """The engine's daemon.json on the machine."""
        ...

    def hints(self, machine: str) -> list[str]:
        """Shell lines to look at ``machine`` from another shell: its swarm, a shell in it."""
        ...

    async def down(self) -> list[str]:
        """Stop the agents and remove the nodes; idempotent. Returns what it stopped."""
        ...


@dataclass(frozen=True)
class Rollout:
    """One look at the cluster: its LCMCluster and its LCMMachines (by name)."""

    cluster: dict[str, Any]
    machines: dict[str, dict[str, Any]]

    def ready(self, release: str) -> bool:
        """Every machine Ready with the whole ``release`` (not only its prepare items), and the cluster
        done with it."""
        status = self.cluster.get("status") or {}
        machines_done = all((m.get("status") or {}).get("state") == "Ready"
                            and (m.get("spec") or {}).get("release") == release
                            for m in self.machines.values())
        return machines_done and status.get("release") == release and \
            status.get("readyNodes") == len(self.machines) > 0

    def stuck(self) -> str:
        """The LCMCluster's OperationStuck message while the rollout is halted, else "" (a halted rollout
        does not go on without someone fixing the cause)."""
        status = self.cluster.get("status") or {}
        if not status.get("lcmOperationStuck"):
            return ""
        found = [c for c in status.get("conditions") or [] if c.get("type") == "OperationStuck"]
        return str(found[0].get("message", "")) if found else "lcmOperationStuck"

    def unregistered(self) -> list[str]:
        """Machines whose agent has not reported an InternalIP yet."""
        return sorted(name for name, m in self.machines.items() if not registered(m))

    def summary(self) -> str:
        """One line: the cluster's progress and each machine's state and items."""
        parts = [f"{(self.cluster.get('status') or {}).get('progress', '…')}"]
        for name, machine in sorted(self.machines.items()):
            status = machine.get("status") or {}
            state = status.get("state") or "Uninitialized"
            parts.append(f"{name} {state} {status.get('progress', '')}".rstrip())
        return " | ".join(parts)


class Stack:
    """Broker, scheduler and the look at the rollout, around a node backend; ``settings.state_dir`` must be
    absolute (the agents' configs take absolute paths only)."""

    def __init__(self, settings: StackSettings, nodes: NodeBackend) -> None:
        self.settings = settings
        self.nodes = nodes
        self.broker: mosquitto.Broker | None = None
        self.api: RegionalApi | None = None
        self.regional_password_file = self.settings.run_dir / "mqtt-regional"
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._bridge = ""
        self.stages = Stages()

    # Bringing it up

    async def bring_up_nodes(self) -> str:
        """The nodes' network (netns nodes: the nodes too); returns the bridge's address for the API."""
        # The state directory holds the admin kubeconfig and the simulator's store: owner-only from the start.
        self.settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.settings.run_dir.mkdir(mode=0o700, exist_ok=True)
        write_pid(self.settings.run_dir, "stack", os.getpid())
        self._bridge = await self.nodes.up(self.stages)
        return self._bridge

    async def start(self, kubeconfig: Path) -> None:
        """Tokens, broker, scheduler and agents, once the API at ``kubeconfig`` holds the objects."""
        s = self.settings
        self.api = RegionalApi.from_kubeconfig(kubeconfig)
        async with await connect(kubeconfig=kubeconfig) as kube:
            tokens = {m: await issue_token(kube, s.namespace, agent_account(m)) for m in s.machines}
        passwords = {user: secrets.token_urlsafe(24) for user in (*s.machines, mosquitto.REGIONAL_USER)}
        write_atomic(self.regional_password_file, passwords[mosquitto.REGIONAL_USER].encode())
        self.broker = mosquitto.Broker(s.run_dir / "mqtt", passwords, host=self._bridge)
        self.broker.start()
        write_pid(s.run_dir, "mosquitto", self.broker.process.pid if self.broker.process else 0)
        self._children["scheduler"] = spawn(
            s.run_dir, "scheduler", [tool("lcm-scheduler"), "run", "--kubeconfig", str(kubeconfig),
                                     "--namespace", s.namespace, "--lease-namespace", s.namespace,
                                     "--mqtt-url", self.broker.url,
                                     "--mqtt-password-file", str(self.regional_password_file),
                                     *(("--metrics-address", s.scheduler_metrics) if s.scheduler_metrics
                                       else ())])
        self.stages.done("tokens, broker, scheduler")
        await self.nodes.start_agents(self.api, {
            m: AgentAccess(tokens[m], MqttAccess(self.broker.url, m, passwords[m])) for m in s.machines})

    # Looking at it

    def exited(self) -> dict[str, str]:
        """Parts that ended on their own (name → how, and where to look): a rollout waiting for them would
        hang."""
        mine = {name: exit_report(self.settings.run_dir, name, code)
                for name, child in self._children.items() if (code := child.poll()) is not None}
        return {**mine, **self.nodes.exited()}

    async def look(self, kube: Kube) -> Rollout:
        s = self.settings
        cluster = await kube.get(LCMCLUSTERS, s.namespace, s.cluster)
        listed = await kube.list_objects(LCMMACHINES, s.namespace)
        machines = {m["metadata"]["name"]: m for m in listed.get("items", [])
                    if (m.get("spec") or {}).get("clusterName") == s.cluster}
        return Rollout(cluster, machines)

    async def wait(self, kube: Kube, done: Callable[[Rollout], bool], *, within: float,
                   on_look: Callable[[Rollout], None] = lambda r: None, period: float = 1.0) -> Rollout:
        """Look every ``period`` until ``done``; TimeoutError (with the last look, and why unregistered
        machines are stuck) after ``within`` seconds, RuntimeError at once when a part died."""
        deadline = time.monotonic() + within
        while True:
            rollout = await self.look(kube)
            on_look(rollout)
            if done(rollout):
                return rollout
            if rollout.stuck():
                raise RuntimeError(f"the rollout halted: {rollout.stuck()} (logs: {self.settings.run_dir})")
            dead = self.exited()
            if dead:
                name, how = next(iter(dead.items()))
                raise RuntimeError(f"{name} {how}")
            if time.monotonic() > deadline:
                why = await self.nodes.explain(rollout)
                raise TimeoutError(f"not done within {within:.0f}s: {rollout.summary()}" + (
                    f"\n{why}" if why else ""))
            await asyncio.sleep(period)

    async def docker(self, machine: str, *args: str) -> str:
        return await self.nodes.docker(machine, *args)

    async def swarm(self) -> str:
        """``docker node ls`` on the control machine's engine, the swarm as its manager sees it."""
        return await self.docker(self.settings.control, "node", "ls")

    # Taking it down

    async def down(self) -> list[str]:
        """Stop the scheduler (it releases its Lease while the API is reachable), the agents and the nodes,
        then the broker."""
        stopped = []
        if "scheduler" in self._children:
            await asyncio.to_thread(stop_children, [self._children.pop("scheduler")])
            stopped.append("scheduler")
        stopped += await self.nodes.down()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
            stopped.append("mosquitto")
        for pid_file in self.settings.run_dir.glob("*.pid"):
            pid_file.unlink(missing_ok=True)
        return stopped


def stop_recorded(run_dir: Path) -> list[str]:
    """From another process: stop what the pid files under ``run_dir`` name (a running demo first, which
    then takes its own parts down). Idempotent; the backends remove their nodes' leftovers."""
    removed = []
    for name in ("stack", "scheduler", "mosquitto"):
        pid = recorded_pid(run_dir, name)
        if pid and pid != os.getpid() and _signal(pid, signal.SIGTERM):
            _wait_gone(pid, DEMO_GRACE if name == "stack" else STOP_GRACE)
            removed.append(f"{name} (pid {pid})")
    return removed


def tool(name: str) -> str:
    """An entry point of this venv (the agent and scheduler run the code of this checkout)."""
    return str(Path(sys.executable).with_name(name))


def spawn(run_dir: Path, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
    """A child in its own session, its output in ``<run_dir>/<name>.log``, its pid recorded."""
    log = open(run_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
    with log:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                 start_new_session=True, cwd="/")
    write_pid(run_dir, name, child.pid)
    return child


def exit_report(run_dir: Path, name: str, code: int) -> str:
    """How the child ``name`` of ``spawn`` ended, and its log."""
    return f"exited with {code}; its log: {run_dir / f'{name}.log'}"


def write_pid(run_dir: Path, name: str, pid: int) -> None:
    """``<name>.pid`` with the pid and its start time, so ``stop_recorded`` never signals a recycled pid."""
    (run_dir / f"{name}.pid").write_text(json.dumps({"pid": pid, "start": _start_time(pid)}))


def recorded_pid(run_dir: Path, name: str) -> int:
    """The pid recorded as ``name`` if that very process still runs, else 0."""
    try:
        record = json.loads((run_dir / f"{name}.pid").read_text())
    except (OSError, ValueError):
        return 0
    pid = int(record.get("pid", 0))
    return pid if pid and _start_time(pid) == record.get("start") else 0


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first); [] when the pid is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return stat[stat.rindex(")") + 2:].split()


def _start_time(pid: int) -> str:
    fields = _stat(pid)
    return fields[19] if fields else ""


def _signal(pid: int, sig: signal.Signals) -> bool:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def _running(pid: int) -> bool:
    """Alive and not a zombie: a demo started by another process (a test) stays one until it is reaped."""
    fields = _stat(pid)
    return bool(fields) and fields[0] != "Z"


def _wait_gone(pid: int, within: float) -> None:
    deadline = time.monotonic() + within
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _running(pid):
        _signal(pid, signal.SIGKILL)


def stop_children(children: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every child's process group at once, wait, then SIGKILL what is left."""
    for child in children:
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()

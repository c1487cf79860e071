"""The whole rollout on one host: lab nodes, a real broker, the scheduler, and the real agent on every node,
against one regional API. The demo (``lcmctl demo``) and the end-to-end test use this one composition.

The API is not this module's (``agent.lab`` may not import ``agent.sim``): the caller brings the lab nodes
up first (``Stack.bring_up_nodes``, which makes the bridge), serves an API on the bridge's address, loads
the objects, and hands the admin kubeconfig to ``Stack.start``. From there:

- every machine gets the token of its ServiceAccount (``deploy/rbac``: its LCMMachine, its join Secret);
- Mosquitto listens on the bridge with the repository's ACL, a password per machine and one for the
  regional side (``lcm_regional``);
- ``lcm-scheduler run`` and, inside each node's namespaces, ``lcm-agent run --config`` are child processes
  with their logs in the state directory; each agent's config names its node's dockerd (``docker.host``,
  ``playbook_vars``) and the repository's ``playbooks/`` as its release.

State lives under one directory (``<state>/stack``: configs, tokens, logs, pid files; the nodes' directories
in ``<state>/nodes`` when that path is short enough for unix sockets). ``down`` stops everything this stack
started and is idempotent; ``teardown`` does the same from another process (``lcmctl demo --down``), from
the pid files and the lab's naming prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.adapters.atomic import write_atomic
from agent.adapters.kube import Kube, Resource, connect
from agent.api.models import GROUP, VERSION
from agent.lab import mosquitto, nodes
from agent.lab.machines_access import issue_token
from agent.lab.machines_fleet import RegionalApi
from agent.lab.node import LabNode

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
LCMMACHINES = Resource(GROUP, VERSION, "lcmmachines")
LCMCLUSTERS = Resource(GROUP, VERSION, "lcmclusters")
LCMCLUSTERSTATES = Resource(GROUP, VERSION, "lcmclusterstates")
STOP_GRACE = 15.0
"""Seconds a child (agent, scheduler) gets after SIGTERM before its process group is killed."""
DEMO_GRACE = 60.0
"""Seconds a running demo gets, after ``teardown``'s SIGTERM, to take its own stack down."""
_SOCKET_DIR_MAX = 48
"""Longest node-directory root kept under the state dir: containerd's sockets below must fit 108 bytes."""


@dataclass(frozen=True)
class StackSettings:
    state_dir: Path
    machines: Sequence[str] = ("demo-control-0", "demo-worker-0", "demo-worker-1")
    """LCMMachine names, which are also the nodes' host names; the first is the control machine."""
    namespace: str = "demo"
    cluster: str = "demo"
    prefix: str = "lcmdemo"
    """The lab's naming prefix (network namespaces, links, /run/lcmlab record)."""
    agent_timings: dict[str, float] = field(default_factory=lambda: {"stop_grace_period": 10.0})
    reconcile: dict[str, float] = field(default_factory=dict)
    """``reconcile.*`` of every agent's config (docs/agent-config.md); empty: the defaults."""

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "stack"


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

    def summary(self) -> str:
        """One line: the cluster's progress and each machine's state and items."""
        parts = [f"{(self.cluster.get('status') or {}).get('progress', '…')}"]
        for name, machine in sorted(self.machines.items()):
            status = machine.get("status") or {}
            state = status.get("state") or "Uninitialized"
            parts.append(f"{name} {state} {status.get('progress', '')}".rstrip())
        return " | ".join(parts)


class Stack:
    def __init__(self, settings: StackSettings) -> None:
        # Resolved: the agents' configs take absolute paths only.
        self.settings = dataclasses.replace(settings, state_dir=settings.state_dir.resolve())
        self.lab: nodes.Lab | None = None
        self.broker: mosquitto.Broker | None = None
        self.api: RegionalApi | None = None
        self.regional_password_file = self.settings.run_dir / "mqtt-regional"
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    # Bringing it up

    def bring_up_nodes(self) -> str:
        """The lab nodes (a dockerd each) on a free subnet; returns the bridge's address for the API."""
        s = self.settings
        s.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_pid(s.run_dir, "stack", os.getpid())
        node_root = s.state_dir / "nodes"
        self.lab = nodes.up(list(s.machines), prefix=s.prefix,
                            state_dir=node_root if len(str(node_root)) <= _SOCKET_DIR_MAX else None)
        return str(self.lab.net.gateway)

    async def start(self, kubeconfig: Path) -> None:
        """Tokens, broker, scheduler and agents, once the API at ``kubeconfig`` holds the objects."""
        s, lab = self.settings, self._lab()
        self.api = RegionalApi.from_kubeconfig(kubeconfig)
        write_atomic(s.run_dir / "ca.pem", self.api.ca_pem.encode())
        async with await connect(kubeconfig=kubeconfig) as kube:
            tokens = {m: await issue_token(kube, s.namespace, f"lcm-agent-{m}") for m in s.machines}
        passwords = {user: secrets.token_urlsafe(24) for user in (*s.machines, mosquitto.REGIONAL_USER)}
        write_atomic(self.regional_password_file, passwords[mosquitto.REGIONAL_USER].encode())
        self.broker = mosquitto.Broker(s.run_dir / "mqtt", passwords, host=str(lab.net.gateway))
        self.broker.start()
        _write_pid(s.run_dir, "mosquitto", self.broker.process.pid if self.broker.process else 0)
        self._spawn("scheduler", [_tool("lcm-scheduler"), "run", "--kubeconfig", str(kubeconfig),
                                  "--namespace", s.namespace, "--lease-namespace", s.namespace,
                                  "--mqtt-url", self.broker.url,
                                  "--mqtt-password-file", str(self.regional_password_file)])
        for name in s.machines:
            config = self._agent_config(lab.node(name), tokens[name], passwords[name])
            self._spawn(f"agent-{name}", lab.node(name).nsenter(_tool("lcm-agent"), "run", "--config",
                                                                 str(config)))

    def _agent_config(self, node: LabNode, token: str, mqtt_password: str) -> Path:
        """The agent's config (docs/agent-config.md) with its token and broker password beside it, 0600."""
        s, api, broker = self.settings, self.api, self.broker
        assert api is not None
        assert broker is not None
        home = s.run_dir / "agents" / node.name
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(home / "token", token.encode())
        write_atomic(home / "mqtt-password", mqtt_password.encode())
        vars_ = {k: v for k, v in node.playbook_vars().items() if k != "lcm_docker_host"}
        doc: dict[str, Any] = {
            "state_dir": str(home / "state"), "release_dir": str(PLAYBOOKS),
            "api": {"server": api.server, "ca_file": str(s.run_dir / "ca.pem"),
                    "token_file": str(home / "token"), "namespace": s.namespace, "machine_name": node.name},
            "mqtt": {"url": broker.url, "username": node.name, "password_file": str(home / "mqtt-password")},
            "docker": {"host": node.docker_host},
            "playbook_vars": vars_,
            "timings": dict(s.agent_timings),
            "reconcile": dict(s.reconcile),
        }
        path = home / "config.yaml"
        write_atomic(path, yaml.safe_dump(doc).encode())
        return path.resolve()

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.settings.run_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        with log:
            child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     start_new_session=True, cwd="/")
        self._children[name] = child
        _write_pid(self.settings.run_dir, name, child.pid)

    # Looking at it

    def log_path(self, child: str) -> Path:
        return self.settings.run_dir / f"{child}.log"

    def exited(self) -> dict[str, int]:
        """Children that ended on their own (name → exit code): a rollout waiting for them would hang."""
        return {name: code for name, child in self._children.items() if (code := child.poll()) is not None}

    async def look(self, kube: Kube) -> Rollout:
        s = self.settings
        cluster = await kube.get(LCMCLUSTERS, s.namespace, s.cluster)
        listed = await kube.list_objects(LCMMACHINES, s.namespace)
        machines = {m["metadata"]["name"]: m for m in listed.get("items", [])
                    if (m.get("spec") or {}).get("clusterName") == s.cluster}
        return Rollout(cluster, machines)

    async def wait(self, kube: Kube, done: Callable[[Rollout], bool], *, within: float,
                   on_look: Callable[[Rollout], None] = lambda r: None, period: float = 1.0) -> Rollout:
        """Look every ``period`` until ``done``; TimeoutError (with the last look) after ``within`` seconds,
        RuntimeError at once when a child died (naming its log)."""
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
                name, code = next(iter(dead.items()))
                raise RuntimeError(f"{name} exited with {code}; its log: {self.log_path(name)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not done within {within:.0f}s: {rollout.summary()}")
            await asyncio.sleep(period)

    def node(self, name: str) -> LabNode:
        return self._lab().node(name)

    def control_node(self) -> LabNode:
        return self.node(self.settings.machines[0])

    def docker(self, node: LabNode, *args: str) -> str:
        """The docker CLI against a node's engine; stdout."""
        done = subprocess.run(["docker", "-H", node.docker_host, *args], capture_output=True, text=True,
                              check=True, timeout=60)
        return done.stdout

    def swarm(self) -> str:
        """``docker node ls`` on the control machine's engine, the swarm as its manager sees it."""
        return self.docker(self.control_node(), "node", "ls")

    def _lab(self) -> nodes.Lab:
        if self.lab is None:
            raise RuntimeError("the stack's nodes are not up")
        return self.lab

    # Taking it down

    def down(self) -> list[str]:
        """Stop the agents (so they leave the journal clean), the scheduler, the broker; remove the nodes."""
        stopped = []
        agents = [n for n in self._children if n.startswith("agent-")]
        for names in (agents, ["scheduler"]):
            _stop([self._children[n] for n in names if n in self._children])
            stopped += [n for n in names if n in self._children]
        self._children.clear()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
            stopped.append("mosquitto")
        if self.lab is not None:
            self.lab.down()
            self.lab = None
            stopped.append(f"lab {self.settings.prefix}")
        for pid_file in self.settings.run_dir.glob("*.pid"):
            pid_file.unlink(missing_ok=True)
        return stopped


def teardown(state_dir: Path, prefix: str) -> list[str]:
    """From another process: stop what the pid files under ``state_dir`` name (a running demo first, which
    then tears its own parts down), then whatever is left of the lab ``prefix``. Idempotent."""
    run_dir = state_dir / "stack"
    removed = []
    for name in ("stack", "scheduler", "mosquitto"):
        pid = _read_pid(run_dir, name)
        if pid and pid != os.getpid() and _signal(pid, signal.SIGTERM):
            _wait_gone(pid, DEMO_GRACE if name == "stack" else STOP_GRACE)
            removed.append(f"{name} (pid {pid})")
    removed += nodes.teardown(prefix)
    return removed


def _tool(name: str) -> str:
    """An entry point of this venv (the agent and scheduler run the code of this checkout)."""
    return str(Path(sys.executable).with_name(name))


def _write_pid(run_dir: Path, name: str, pid: int) -> None:
    """``<name>.pid`` with the pid and its start time, so ``teardown`` never signals a recycled pid."""
    (run_dir / f"{name}.pid").write_text(json.dumps({"pid": pid, "start": _start_time(pid)}))


def _read_pid(run_dir: Path, name: str) -> int:
    """The pid recorded as ``name`` if that very process still runs, else 0."""
    try:
        record = json.loads((run_dir / f"{name}.pid").read_text())
    except (OSError, ValueError):
        return 0
    pid = int(record.get("pid", 0))
    return pid if pid and _start_time(pid) == record.get("start") else 0


def _start_time(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rindex(")") + 2:].split()[19]


def _signal(pid: int, sig: signal.Signals) -> bool:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pid: int, within: float) -> None:
    deadline = time.monotonic() + within
    while _start_time(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _start_time(pid):
        _signal(pid, signal.SIGKILL)


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
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

"""The stack's nodes as network namespaces (``testbed.lab.netns.nodes``): each has its own dockerd, and its
agent is a child process of the stack running inside the node's namespaces.

Each agent's config (``<state>/stack/agents/<machine>/config.yaml``, with its token and broker password
beside it, 0600) names its node's dockerd (``docker.host``, ``playbook_vars``) and the repository's
``playbooks/`` as its release. The nodes' directories are ``<state>/nodes`` when that path is short enough
for unix sockets, else under /tmp. This backend needs only root, dockerd and iproute2: the demo's fallback
on hosts that cannot run nspawn machines.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from agent.adapters.atomic import write_atomic
from testbed.lab.machines.sets import RegionalApi
from testbed.lab.netns import dockerd, nodes
from testbed.lab.netns.node import LabNode
from testbed.lab.stack.stack import (
    PLAYBOOKS,
    AgentAccess,
    Rollout,
    StackSettings,
    exit_report,
    spawn,
    stop_children,
    tool,
)
from testbed.lab.stack.stages import Stages

_SOCKET_DIR_MAX = 48
"""Longest node-directory root kept under the state dir: containerd's sockets below must fit 108 bytes."""


class NetnsNodes:
    kind = "netns"

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.lab: nodes.Lab | None = None
        self._agents: dict[str, subprocess.Popen[bytes]] = {}

    async def up(self, stages: Stages) -> str:
        s = self.settings
        node_root = s.state_dir / "nodes"
        self.lab = await asyncio.to_thread(
            nodes.up, list(s.machines), prefix=s.prefix,
            state_dir=node_root if len(str(node_root)) <= _SOCKET_DIR_MAX else None)
        stages.done("netns nodes and their dockerd")
        return str(self.lab.net.gateway)

    def objects(self, paths: Sequence[Path]) -> list[Path]:
        return list(paths)

    async def start_agents(self, api: RegionalApi, agents: Mapping[str, AgentAccess]) -> None:
        write_atomic(self.settings.run_dir / "ca.pem", api.ca_pem.encode())
        for name, access in agents.items():
            node = self.node(name)
            config = self._agent_config(node, api, access)
            self._agents[name] = spawn(self.settings.run_dir, f"agent-{name}",
                                       node.nsenter(tool("lcm-agent"), "run", "--config", str(config)))

    def _agent_config(self, node: LabNode, api: RegionalApi, access: AgentAccess) -> Path:
        """The agent's config (docs/agent-config.md) with its token and broker password beside it, 0600."""
        s = self.settings
        home = s.run_dir / "agents" / node.name
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(home / "token", access.token.encode())
        write_atomic(home / "mqtt-password", access.mqtt.password.encode())
        vars_ = {k: v for k, v in node.playbook_vars().items() if k != "lcm_docker_host"}
        doc: dict[str, Any] = {
            "state_dir": str(home / "state"), "release_dir": str(PLAYBOOKS),
            "api": {"server": api.server, "ca_file": str(s.run_dir / "ca.pem"),
                    "token_file": str(home / "token"), "namespace": s.namespace, "machine_name": node.name},
            "mqtt": {"url": access.mqtt.url, "username": access.mqtt.username,
                     "password_file": str(home / "mqtt-password")},
            "docker": {"host": node.docker_host},
            "playbook_vars": vars_,
            "timings": dict(s.agent_timings),
            "reconcile": dict(s.reconcile),
            # A netns node shares the host's kernel: its "reboot" restarts its engine (never the host).
            "reboot": {"command": f"{node.service_script} restart", "restart_is_reboot": True},
        }
        if s.agent_metrics_port:
            doc["metrics"] = {"address": f"{node.address}:{s.agent_metrics_port}"}
        path = home / "config.yaml"
        write_atomic(path, yaml.safe_dump(doc).encode())
        return path.resolve()

    def exited(self) -> dict[str, str]:
        return {f"agent-{name}": exit_report(self.settings.run_dir, f"agent-{name}", code)
                for name, child in self._agents.items() if (code := child.poll()) is not None}

    async def explain(self, rollout: Rollout) -> str:
        return ""  # an agent that cannot register logs why in stack/agent-<machine>.log, named by ``exited``

    def node(self, name: str) -> LabNode:
        if self.lab is None:
            raise RuntimeError("the stack's nodes are not up")
        return self.lab.node(name)

    async def docker(self, machine: str, *args: str) -> str:
        argv = ["docker", "-H", self.node(machine).docker_host, *args]
        done = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, check=True,
                                       timeout=60)
        return done.stdout

    async def stop_engine(self, machine: str) -> None:
        await asyncio.to_thread(subprocess.run, [str(self.node(machine).service_script), "stop"], check=True,
                                capture_output=True, timeout=60)

    async def engine_running(self, machine: str) -> bool:
        return await asyncio.to_thread(dockerd.ping, self.node(machine))

    async def daemon_json(self, machine: str) -> dict[str, Any]:
        config: dict[str, Any] = json.loads(self.node(machine).config_path.read_text())
        return config

    def hints(self, machine: str) -> list[str]:
        node = self.node(machine)
        return [f"docker -H {node.docker_host} node ls",
                f"{' '.join(node.nsenter('bash'))}      # a shell on {machine}"]

    async def down(self) -> list[str]:
        """Stop the agents (so they leave the journal clean), then remove the nodes."""
        stopped = [f"agent-{name}" for name in self._agents]
        await asyncio.to_thread(stop_children, list(self._agents.values()))
        self._agents.clear()
        if self.lab is not None:
            await asyncio.to_thread(self.lab.down)
            self.lab = None
            stopped.append(f"lab {self.settings.prefix}")
        return stopped


def remove_leftovers(prefix: str) -> list[str]:
    """What is left of the netns lab ``prefix`` after a crash: processes, namespaces, links, mounts."""
    return nodes.teardown(prefix)

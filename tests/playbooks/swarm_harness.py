"""Helpers for the release-playbook tests: run one item of the release on a lab node through the agent's own
runner, and read the swarm as a manager sees it.

An item runs as the agent would run it on that node: ``run_item`` with the item's params plus the node's
``playbook_vars`` (docs/swarm.md), and ``ansible_python_interpreter`` pointing at the node's in-namespace
python, so modules act inside the node (its network, its hostname) while the test drives them from the host.
The join token goes in ``ItemInput.secrets``, exactly where the agent puts the Secret's value.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

from agent.adapters.runners import RunnerSettings, run_item
from agent.api.execution import ItemEvent, ItemInput, ItemResult
from testbed.lab.netns.node import LabNode

RELEASE = Path(__file__).resolve().parents[2] / "playbooks"
FAST = RunnerSettings(grace=2.0, poll_interval=0.05, drain_seconds=0.5)
PREPARE = ("preflight", "sysctl", "packages")
LAB_PREPARE = {"timeSync": "warn"}  # lab nodes share this host's clock, which nothing disciplines here


@dataclass(frozen=True)
class Run:
    """One item run: its result and Ansible's task counts (``changed`` is what idempotency is about)."""

    item: str
    node: str
    result: ItemResult
    counts: Mapping[str, int]
    started: float
    ended: float

    @property
    def changed(self) -> int:
        return self.counts.get("changed", 0)

    @property
    def ok(self) -> bool:
        return self.result.succeeded


@dataclass
class Release:
    """Runs the release's playbooks on lab nodes; keeps every run (for idempotency and timing checks)."""

    work_root: Path
    runs: list[Run] = field(default_factory=list)
    events: list[ItemEvent] = field(default_factory=list)
    _attempts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def work_dir(self, node: LabNode) -> Path:
        return self.work_root / node.name

    async def run(self, node: LabNode, playbook: str, params: Mapping[str, str] | None = None, *,
                  secrets: Mapping[str, str] | None = None, phase: str = "deploy") -> Run:
        name = Path(playbook).stem
        item = ItemInput(
            machine=node.name, name=name, runner="ansible", version="1.0.0", phase=phase,
            params={"playbook": playbook, **node.playbook_vars(),
                    "ansible_python_interpreter": str(node.python), **(params or {})},
            attempt=next(self._attempts), release_dir=RELEASE, work_dir=self.work_dir(node),
            secrets=secrets or {}, timeout=300,
        )
        counts: dict[str, int] = {}

        def sink(event: ItemEvent) -> None:
            self.events.append(event)
            if "counts" in event.data:
                counts.clear()
                counts.update(event.data["counts"])

        started = time.monotonic()
        result = await run_item(item, sink, settings=FAST)
        run = Run(name, node.name, result, dict(counts), started, time.monotonic())
        self.runs.append(run)
        return run

    async def must(self, node: LabNode, playbook: str, params: Mapping[str, str] | None = None,
                   **options: Any) -> Run:
        run = await self.run(node, playbook, params, **options)
        assert run.ok, f"{playbook} on {node.name}: {run.result.message}"
        return run

    async def prepare(self, nodes: Sequence[LabNode]) -> None:
        """The prepare phase on every node at once, as the scheduler releases it."""
        for name in PREPARE:
            await asyncio.gather(*(self.must(n, f"prepare/{name}.yml", LAB_PREPARE, phase="prepare")
                                   for n in nodes))

    async def engine(self, nodes: Sequence[LabNode], settings: Mapping[str, str]) -> None:
        await asyncio.gather(*(self.must(n, "prepare/docker-engine.yml", settings, phase="prepare")
                               for n in nodes))

    async def init(self, node: LabNode, availability: str = "") -> None:
        params = {"advertiseAddress": node.address, **_availability(availability)}
        await self.must(node, "deploy/swarm-init.yml", params)

    async def join(self, node: LabNode, managers: Sequence[LabNode], role: str,
                   availability: str = "") -> Run:
        params = {**join_params(node, managers, role), **_availability(availability)}
        return await self.run(node, "deploy/swarm-join.yml", params,
                              secrets={"JOIN_TOKEN": join_token(managers[0], role)})

    async def labels(self, node: LabNode, labels: str) -> Run:
        return await self.must(node, "reconfigure/node-labels.yml", {"labels": labels}, phase="reconfigure")


def _availability(value: str) -> dict[str, str]:
    """The planner's ``availability`` param, given to control machines only."""
    return {"availability": value} if value else {}


def join_params(node: LabNode, managers: Sequence[LabNode], role: str) -> dict[str, str]:
    return {"role": role, "advertiseAddress": node.address,
            "managerAddresses": ",".join(f"{m.address}:2377" for m in managers)}


def engine(node: LabNode) -> docker.DockerClient:
    return docker.DockerClient(base_url=node.docker_host, version="auto", timeout=30)


def join_token(manager: LabNode, role: str) -> str:
    """What the agent publishes after swarm-init (``swarm.attrs["JoinTokens"]``)."""
    client = engine(manager)
    try:
        client.swarm.reload()
        token: str = client.swarm.attrs["JoinTokens"]["Manager" if role == "manager" else "Worker"]
    finally:
        client.close()
    return token


@dataclass(frozen=True)
class SwarmNode:
    hostname: str
    role: str
    availability: str
    state: str
    address: str
    labels: Mapping[str, str]


def swarm_nodes(manager: LabNode) -> dict[str, SwarmNode]:
    """``docker node ls`` (and inspect) on a manager, by hostname."""
    client = engine(manager)
    try:
        found = {}
        for node in client.nodes.list():
            attrs = node.attrs
            found[attrs["Description"]["Hostname"]] = SwarmNode(
                hostname=attrs["Description"]["Hostname"], role=attrs["Spec"]["Role"],
                availability=attrs["Spec"]["Availability"], state=attrs["Status"]["State"],
                address=attrs["Status"].get("Addr", ""),
                labels=attrs["Description"]["Engine"].get("Labels") or {})
    finally:
        client.close()
    return found


async def eventually(check: Any, within: float = 60.0, interval: float = 0.5) -> Any:
    """Poll ``check`` (sync) until it returns something true; the last value otherwise."""
    deadline = time.monotonic() + within
    value = check()
    while not value and time.monotonic() < deadline:
        await asyncio.sleep(interval)
        value = check()
    return value

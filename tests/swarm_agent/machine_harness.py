"""The agent's swarm side under test: machines with the RBAC of ``deploy/rbac``, lab nodes (and the swarm's
view of them), captured logs.

``SwarmNode`` is the agent tests' ``Node`` (tests/agent/agent_harness.py) with what swarm tests add: its
ServiceAccount gets the Role the deploy/rbac sample gives that machine (machine names are the samples':
``demo-control-0``, ``demo-worker-0``...), its config names a Docker Engine and ``playbook_vars``, it may
stand for a lab node (its InternalIP is the node's address), and the daemon's log is captured through the
same redaction filter as in production, into ``agent.log``, so tests can grep it for secrets.

``deployed_swarm`` is the real-scheduler setup the lab tests share: three lab nodes deployed by the
scheduler, through their agents, from a small release of the repository's playbooks.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import logging
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import yaml
from agent_harness import FAST, Node, slot, stopped
from scheduler_harness import running

from agent.adapters.host import collect_host_info
from agent.adapters.kube import SECRETS, Kube, KubeError, Resource
from agent.api.host_facts import HostFacts, NetworkInterface
from agent.api.models import API_VERSION, GROUP, KAAS_API_VERSION, KAAS_GROUP, VERSION
from agent.daemon.app import ExitCode, Hooks, run_daemon
from agent.daemon.config import AgentSettings, load_config
from agent.kits.logs import JsonFormatter, RedactingFilter, SecretRegistry
from regional.planning.settings import PlanSettings
from regional.scheduler.leadership import LeaseSettings
from regional.scheduler.runtime import Scheduler
from regional.scheduler.settings import SchedulerSettings, Throttle
from testbed.lab.netns import dockerd
from testbed.lab.netns.node import LabNode
from testbed.lab.netns.nodes import Lab
from testbed.sim.testing import KubeApi, field_of

ROOT = Path(__file__).parents[2]
RBAC_DIR = ROOT / "deploy" / "rbac"
PLAYBOOKS = ROOT / "playbooks"
RELEASE = Path(__file__).parent / "release"
CLUSTER = "demo"
MANAGER_SECRET = f"{CLUSTER}-swarm-manager-token"
WORKER_SECRET = f"{CLUSTER}-swarm-worker-token"
PATIENCE = 120.0
"""Seconds any wait may take at least: one Ansible run takes tens of seconds on a loaded two-core host."""
RBAC_KINDS = {"Role": Resource("rbac.authorization.k8s.io", "v1", "roles"),
              "RoleBinding": Resource("rbac.authorization.k8s.io", "v1", "rolebindings")}


MakeNode = Callable[..., "SwarmNode"]


def rbac_objects(namespace: str) -> list[dict[str, Any]]:
    """The Roles and RoleBindings of deploy/rbac, moved into ``namespace``. The ServiceAccounts are left out:
    the test API's ``service_account_kubeconfig`` creates each one with its token."""
    docs: list[dict[str, Any]] = []
    for path in sorted(RBAC_DIR.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] in RBAC_KINDS]
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
        for subject in doc.get("subjects", []):
            subject["namespace"] = namespace
    return docs


async def apply_rbac(admin: Kube, namespace: str) -> None:
    for doc in rbac_objects(namespace):
        await admin.create(RBAC_KINDS[doc["kind"]], namespace, doc)


def lab_host_info(node: LabNode) -> HostFacts:
    """This host's facts, with the lab node's interface as the only NIC: the agent runs in the test's
    process, and must register the node's address, which is its swarm address."""
    info = collect_host_info()
    nic = NetworkInterface("eth0", f"02:00:00:00:00:{node.index:02x}", is_virtual=True,
                           addresses=(f"{node.address}/24",))
    return dataclasses.replace(info, hardware=dataclasses.replace(info.hardware, network=(nic,)),
                               default_interface="eth0")


class SwarmNode(Node):
    """One machine; ``lab`` is the lab node it stands for, if any (its engine, its address)."""

    def __init__(self, kube_api: KubeApi, admin: Kube, tmp: Path, name: str, *, lab: LabNode | None = None,
                 release: Iterable[Path] = (RELEASE,)) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        super().__init__(kube_api, admin, tmp, name)
        for extra in release:
            shutil.copytree(extra, self.release_dir, dirs_exist_ok=True)
        self.lab = lab
        self.secrets = SecretRegistry()
        self.log_path = tmp / "agent.log"
        self._kubeconfig: Path | None = None

    async def grant(self, *, create: bool = False) -> Path:
        """The token of ServiceAccount ``lcm-agent-<machine>``, bound by ``apply_rbac`` to its sample Role."""
        if self._kubeconfig is None:
            self._kubeconfig = await self.kube_api.service_account_kubeconfig(self.namespace,
                                                                             f"lcm-agent-{self.name}")
        return self._kubeconfig

    async def configure(self, *, playbook_vars: dict[str, str] | None = None, docker_host: str = "",
                        **timings: float) -> AgentSettings:
        kubeconfig = await self.grant()
        host = docker_host or (self.lab.docker_host if self.lab else "unix:///var/run/docker.sock")
        doc = {
            "api": {"kubeconfig": str(kubeconfig), "namespace": self.namespace, "machine_name": self.name},
            "timings": {**FAST, **timings},
            "state_dir": str(self.state_dir), "release_dir": str(self.release_dir),
            "docker": {"host": host},
            "playbook_vars": {**(self.lab.playbook_vars() if self.lab else {}), **(playbook_vars or {})},
        }
        doc["playbook_vars"].pop("lcm_docker_host", None)  # docker.host carries it
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            yaml.safe_dump(doc, file)
        return load_config(self.config_path, {})

    @contextlib.asynccontextmanager
    async def agent(
        self, cfg: AgentSettings, hooks: Hooks | None = None,
    ) -> AsyncIterator[asyncio.Task[ExitCode]]:
        """The daemon in this process, logging JSON through the redaction filter into ``agent.log``."""
        hooks = hooks or Hooks()
        if self.lab is not None:
            lab = self.lab
            hooks = dataclasses.replace(hooks, host_info=lambda: lab_host_info(lab))
        handler = logging.FileHandler(self.log_path)
        handler.addFilter(RedactingFilter(self.secrets))
        handler.setFormatter(JsonFormatter())
        root = logging.getLogger()
        level = root.level
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
        stopping = asyncio.Event()
        task = asyncio.create_task(run_daemon(cfg, stopping, hooks, secrets=self.secrets))
        try:
            yield task
        finally:
            stopping.set()
            code = await stopped(task)
            root.removeHandler(handler)
            root.setLevel(level)
            handler.close()
        assert code == ExitCode.OK

    async def wait_for(
        self, what: Callable[[dict[str, Any]], bool], within: float = PATIENCE, describe: str = "",
    ) -> dict[str, Any]:
        return await super().wait_for(what, max(within, PATIENCE), describe)

    async def wait_event(self, what: Callable[[dict[str, Any]], bool], within: float = PATIENCE,
                         describe: str = "") -> tuple[float, dict[str, Any]]:
        return await super().wait_event(what, max(within, PATIENCE), describe)

    async def failure(
        self, item: str, check: Callable[[dict[str, Any]], bool] = lambda s: True, describe: str = "",
    ) -> dict[str, Any]:
        """The item's first slot showing a failed run for which ``check`` holds (within ``recording``: a
        failure may last only until the retry's start mark, too short for polling to see)."""
        def failed(obj: dict[str, Any]) -> bool:
            found = slot(obj, item)
            return found.get("exitCode", 0) > 0 and check(found)

        _, obj = await self.wait_event(failed, describe=describe or f"{item} failing")
        return slot(obj, item)

    def everything_written(self) -> str:
        """Every file the agent wrote (journal, artifacts, ansible's own files) and its log, as one text."""
        texts = [self.log_path.read_text(errors="replace") if self.log_path.exists() else ""]
        for path in self.state_dir.rglob("*"):
            if path.is_file() and not path.is_symlink():
                texts.append(path.read_text(errors="replace"))
        return "\n".join(texts)


def engine(node: LabNode) -> docker.DockerClient:
    return docker.DockerClient(base_url=node.docker_host, timeout=30)


def swarm_node(manager: LabNode, address: str) -> dict[str, Any]:
    found = [n.attrs for n in engine(manager).nodes.list() if n.attrs["Status"]["Addr"] == address]
    assert len(found) == 1, f"no single swarm node at {address}"
    return found[0]


def tasks_running_on(manager: LabNode, service: Any, node_id: str) -> int:
    return sum(1 for t in service.tasks({"node": node_id, "desired-state": "running"})
               if t["Status"]["State"] == "running")


async def put_secret(admin: Kube, namespace: str, name: str, data: dict[str, str]) -> None:
    """Create or replace an Opaque Secret as an operator would (values base64-encoded here)."""
    body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
    try:
        await admin.replace(SECRETS, namespace, name, body)
    except KubeError as exc:
        if exc.status != 404:
            raise
        await admin.create(SECRETS, namespace, body)


def secret_token(secret: dict[str, Any]) -> str:
    return base64.b64decode(secret["data"]["token"]).decode()


RELEASES = Resource(KAAS_GROUP, VERSION, "clusterreleases", namespaced=False)
CLUSTERS = Resource(GROUP, VERSION, "lcmclusters")
MACHINES = Resource(GROUP, VERSION, "lcmmachines")
CONTROL, WORKER, OTHER = "demo-control-0", "demo-worker-0", "demo-worker-1"
LAB_RELEASE = "swarm-lab"


def playbook_item(name: str, **params: str) -> dict[str, Any]:
    return {"runner": "ansible", "name": name, "version": "1", "phase": "deploy",
            "params": {"playbook": f"deploy/{name}.yml", **params}}


def bash_item(name: str, script: str, *, version: str = "1", phase: str = "deploy") -> dict[str, Any]:
    return {"runner": "bash", "name": name, "version": version, "phase": phase, "params": {"script": script}}


PREPARE = bash_item("ready", "true", phase="prepare")
"""The planner lets a machine into the swarm rollout once its prepare items are done: this one does
nothing."""


def lab_release(name: str = LAB_RELEASE, version: str = "1.0.0", *, upgrade_from: Sequence[str] = (),
                worker_items: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The small release the lab tests deploy: a swarm of the repository's playbooks; ``worker_items``
    appended to the workers' items (what a new release changes)."""
    return {"apiVersion": KAAS_API_VERSION, "kind": "ClusterRelease", "metadata": {"name": name},
            "spec": {"version": version, "agent": {"version": "0.1.0"}, "upgradeFrom": list(upgrade_from),
                     "machineTypes": {
                         "control": [PREPARE, playbook_item("swarm-init"), playbook_item("swarm-join")],
                         "worker": [PREPARE, playbook_item("swarm-join", role="worker"), *worker_items]}}}


async def eventually(check: Callable[[], Any], what: str, within: float = PATIENCE * 2) -> None:
    """Until ``check`` (a function or a coroutine function) holds; fails naming ``what`` after ``within``."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def scheduler_running(admin: Kube, ns: str, *, planning: PlanSettings | None = None,
                            clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                            ) -> AsyncIterator[Scheduler]:
    """The real scheduler (leader election, controller, planner, writer) over ``ns``, until the block ends."""
    lease = LeaseSettings(name="lcm-scheduler", namespace=ns, identity="lab", lease_duration=15,
                          renew_deadline=10, retry_period=2)
    settings = SchedulerSettings(namespace=ns, writes=Throttle(200.0, 200), lease=lease,
                                 planning=planning or PlanSettings())
    scheduler = Scheduler(admin, settings, clock=clock)
    async with running(scheduler, stop_within=30):  # a loaded lab host stops it slower
        yield scheduler


async def cluster_status(admin: Kube, ns: str) -> dict[str, Any]:
    return dict((await admin.get(CLUSTERS, ns, "demo")).get("status") or {})


@contextlib.asynccontextmanager
async def deployed_swarm(machine: MakeNode, admin: Kube, lab: Lab, tmp: Path, *,
                         planning: PlanSettings | None = None,
                         clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                         ) -> AsyncIterator[tuple[str, Scheduler]]:
    """The lab's three nodes (control, worker, other, in ``lab``'s order) as machines of cluster ``demo``
    (planned with ``planning``), their agents running, deployed by the scheduler from ``lab_release()``
    until the cluster counts 3 ready nodes; busybox imported on the workers. Yields the namespace and the
    scheduler, both running until the block ends."""
    nodes = dict(zip((CONTROL, WORKER, OTHER), lab.nodes, strict=True))
    machines = {name: machine(name, lab=node, release=(PLAYBOOKS,)) for name, node in nodes.items()}
    ns = machines[CONTROL].namespace
    await admin.create(RELEASES, "", lab_release())
    await admin.create(CLUSTERS, ns, {"apiVersion": API_VERSION, "kind": "LCMCluster",
                                      "metadata": {"name": "demo"}, "spec": {"release": LAB_RELEASE}})
    for name, m in machines.items():
        await m.create([], type="control" if name == CONTROL else "worker")
    rootfs = dockerd.busybox_rootfs(tmp / "rootfs.tar")
    for name in (WORKER, OTHER):
        dockerd.import_image(nodes[name], rootfs, "busybox:lab")
    async with contextlib.AsyncExitStack() as stack:
        for m in machines.values():
            await stack.enter_async_context(m.agent(await m.configure()))
        scheduler = await stack.enter_async_context(scheduler_running(admin, ns, planning=planning,
                                                                      clock=clock))

        async def ready() -> bool:
            return await field_of(admin, CLUSTERS, ns, "demo", "status", "readyNodes") == 3

        await eventually(ready, "3 machines ready", within=PATIENCE * 4)
        yield ns, scheduler

"""A lab swarm for the reconciler's tests: managers ``m1`` and ``m2``, worker ``w1``, each a network namespace
with its own dockerd (``testbed.lab``), deployed by the release's own playbooks (swarm, engine labels, the
node-proxy container); desired states recorded the way the agent records them, and ``lcm-agent reconcile``
run the way the agent runs it."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.adapters.engine_access import EngineAccess
from agent.adapters.engine_checks import observe
from agent.adapters.kube import Kube, Resource
from agent.api.desired import DaemonConfig, DesiredState, ReconcileReport
from agent.api.models import LCMMachine
from agent.decisions.desired_state import derive_desired
from testbed.lab.netns import dockerd
from testbed.lab.netns.node import LabNode
from testbed.lab.netns.nodes import Lab

sys.path.insert(0, str(Path(__file__).parents[1] / "playbooks"))  # the release tests' harness, reused
from swarm_harness import Release, join_token

IMAGE = "busybox:lab"
PROXY_COMMAND = ["httpd", "-f", "-p", "18080", "-h", "/"]
PLAYBOOKS = Path(__file__).parents[2] / "playbooks"
PROXY = {"container": "node-proxy", "image": IMAGE, "command": json.dumps(PROXY_COMMAND)}
"""The node-proxy item's params (docs/reconciler.md)."""
RBAC = "rbac.authorization.k8s.io"
ROLES = Resource(RBAC, "v1", "roles")
ROLE_BINDINGS = Resource(RBAC, "v1", "rolebindings")


def docker(node: LabNode, *args: str, check: bool = True) -> str:
    done = subprocess.run(["docker", "-H", node.docker_host, *args], capture_output=True, text=True,
                          check=check)
    return done.stdout.strip()


def access(node: LabNode) -> EngineAccess:
    return EngineAccess.from_vars(node.docker_host, node.playbook_vars())


@dataclass
class SwarmLab:
    lab: Lab
    tokens: dict[str, str]
    """Join token per role."""
    records: Path

    def node(self, name: str) -> LabNode:
        return self.lab[name]

    def role(self, name: str) -> str:
        return "worker" if name.startswith("w") else "manager"

    def machine(self, name: str, *, manager_addresses: str = "") -> LCMMachine:
        """The LCMMachine the planner would give this node once it is Ready (docs/swarm.md params)."""
        node, first = self.node(name), self.node("m1")
        if name == "m1":
            swarm = {"name": "swarm-init", "params": {
                "advertiseAddress": node.address, "managerTokenSecret": "lab-swarm-manager-token",
                "workerTokenSecret": "lab-swarm-worker-token"}}
        else:
            swarm = {"name": "swarm-join", "params": {
                "role": self.role(name), "managerAddresses": manager_addresses or f"{first.address}:2377",
                "joinTokenSecret": f"lab-swarm-{self.role(name)}-token", "advertiseAddress": node.address}}
        items: list[dict[str, Any]] = [swarm, {"name": "node-labels", "params": {"labels": json.dumps(
            {"zone": f"z-{name}"})}}]
        if name != "m1":
            items.append({"name": "node-proxy", "params": PROXY})
        spec_items = [{"runner": "ansible", "version": "1.0.0", "phase": "deploy", **i} for i in items]
        return LCMMachine.from_raw({
            "metadata": {"name": name, "namespace": "lab"},
            "spec": {"type": "worker" if name.startswith("w") else "control", "release": "1.0.0",
                     "stateItems": spec_items},
            "status": {"stateItemStatuses": {i["name"]: {"hash": "h", "exitCode": 0} for i in items}}})

    def record(self, name: str, **machine: Any) -> Path:
        """The desired state as the agent records it (items' params + the engine's daemon.json now)."""
        node = self.node(name)
        seen = observe(access(node))
        config = DaemonConfig(content=node.config_path.read_text())
        desired = derive_desired(self.machine(name, **machine), config, cluster_id=seen.cluster_id,
                                 recorded_at="2024-01-01T00:00:00Z")
        assert desired is not None
        path = self.records / f"{name}-{len(list(self.records.iterdir()))}.json"
        path.write_text(json.dumps(desired.to_json()))
        return path

    def desired(self, path: Path) -> DesiredState:
        return DesiredState.from_json(json.loads(path.read_text()))

    def reconcile(self, name: str, desired: Path, *, dry_run: bool = False,
                  token: str | None = None) -> tuple[int, ReconcileReport | None, str]:
        """``lcm-agent reconcile`` as the agent starts it; (exit code, report, stdout)."""
        node = self.node(name)
        report = self.records / f"report-{name}.json"
        report.unlink(missing_ok=True)
        a = access(node)
        argv = [sys.executable, "-m", "agent.cli.node", "reconcile", "--desired", str(desired),
                "--docker-host", a.host, "--docker-config", a.config_path, "--service-manager",
                a.service_manager, "--docker-service", a.docker_service]
        argv += ["--dry-run"] if dry_run else ["--stdin-secrets", "--report", str(report)]
        secrets = json.dumps({"joinToken": self.tokens[self.role(name)] if token is None else token})
        done = subprocess.run(argv, input=None if dry_run else secrets, capture_output=True, text=True,
                              timeout=300, check=False)
        parsed = ReconcileReport.from_json(json.loads(report.read_text())) if report.exists() else None
        return done.returncode, parsed, done.stdout + done.stderr


def token_secret(role: str) -> str:
    return f"lab-swarm-{role}-token"


def release_items(swarm: SwarmLab, name: str) -> list[dict[str, Any]]:
    """A joining node's release items as an agent gets them (the node is deployed already: they change
    nothing, and the machine becomes Ready)."""
    node, role = swarm.node(name), swarm.role(name)
    join = {"playbook": "deploy/swarm-join.yml", "role": role, "joinTokenSecret": token_secret(role),
            "managerAddresses": f"{swarm.node('m1').address}:2377", "advertiseAddress": node.address}
    labels = {"playbook": "reconfigure/node-labels.yml", "labels": json.dumps({"zone": f"z-{name}"})}
    return [{"runner": "ansible", "name": "swarm-join", "version": "1", "phase": "deploy", "params": join},
            {"runner": "ansible", "name": "node-proxy", "version": "1.0.0", "phase": "deploy",
             "params": {"playbook": "deploy/node-proxy.yml", **PROXY}},
            {"runner": "ansible", "name": "node-labels", "version": "1", "phase": "reconfigure",
             "params": labels}]


def agent_settings(node: LabNode, reconcile: dict[str, float]) -> dict[str, Any]:
    """The agent config keys that point an agent at a lab node (its engine, its playbook vars)."""
    node_vars = {k: v for k, v in node.playbook_vars().items() if k != "lcm_docker_host"}
    return {"release_dir": str(PLAYBOOKS), "docker": {"host": node.docker_host}, "playbook_vars": node_vars,
            "reconcile": reconcile}


def agent_rules(role: str) -> list[dict[str, Any]]:
    """What the agent needs beyond its own LCMMachine: its role's join token, and Events."""
    return [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [token_secret(role)],
             "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}]


async def grant_agent_extras(admin: Kube, namespace: str, service_account: str, role: str) -> None:
    """A Role with ``agent_rules`` bound to the agent's ServiceAccount."""
    meta = {"name": f"{service_account}-extra", "namespace": namespace}
    await admin.create(ROLES, namespace, {"apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": meta,
                                          "rules": agent_rules(role)})
    await admin.create(ROLE_BINDINGS, namespace, {
        "apiVersion": f"{RBAC}/v1", "kind": "RoleBinding", "metadata": meta,
        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": meta["name"]},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}]})


def token_body(swarm: SwarmLab, role: str) -> dict[str, Any]:
    token = base64.b64encode(swarm.tokens[role].encode()).decode()
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": token_secret(role)},
            "data": {"token": token}}


def form(lab: Lab, tmp: Path) -> SwarmLab:
    """Deploy the lab as the release does, with its own playbooks (the release tests' ``Release``): ``m1``
    inits the swarm, ``m2`` joins as a manager and ``w1`` as a worker, each gets its engine label, and the
    joiners get busybox and the node-proxy container."""
    asyncio.run(_deploy(lab, tmp))
    records = tmp / "records"
    records.mkdir()
    return SwarmLab(lab, {role: join_token(lab["m1"], role) for role in ("manager", "worker")}, records)


async def _deploy(lab: Lab, tmp: Path) -> None:
    release, m1 = Release(tmp / "runs"), lab["m1"]
    await release.init(m1)
    for name, role in (("m2", "manager"), ("w1", "worker")):
        joined = await release.join(lab[name], [m1], role)
        assert joined.ok, joined.result.message
    rootfs = dockerd.busybox_rootfs(tmp / "busybox.tar")
    for node in lab.nodes:
        await release.labels(node, json.dumps({"zone": f"z-{node.name}"}))
        if node.name != "m1":
            dockerd.import_image(node, rootfs, IMAGE)
            await release.must(node, "deploy/node-proxy.yml", PROXY)  # its items are version 1.0.0

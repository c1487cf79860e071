"""Swarm join tokens: published by the first control machine from its engine, read by the joining machines
within their RBAC, handed to the playbook, and never written anywhere by the agent."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from agent_harness import slot, status
from machine_harness import (
    CLUSTER,
    MANAGER_SECRET,
    RBAC_KINDS,
    WORKER_SECRET,
    MakeNode,
    SwarmNode,
    put_secret,
    secret_token,
)

from agent.adapters.kube import SECRETS, Kube
from testbed.lab.netns.nodes import Lab

TOKEN = "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-aaaaaaaaaaaaaaaaaaaaaaaaa"
LabFactory = Callable[..., Lab]


def join_item(node: SwarmNode, secret: str, **params: str) -> dict[str, Any]:
    return {"runner": "ansible", "name": "swarm-join", "version": "1", "phase": "deploy",
            "params": {"playbook": "join.yml", "counter": str(node.counter("swarm-join")),
                       "record": str(node.tmp / "record"), "joinTokenSecret": secret, **params}}


def init_item(node: SwarmNode, address: str, playbook: str = "init.yml") -> dict[str, Any]:
    return {"runner": "ansible", "name": "swarm-init", "version": "1", "phase": "deploy",
            "params": {"playbook": playbook, "counter": str(node.counter("swarm-init")),
                       "advertiseAddress": address, "managerTokenSecret": MANAGER_SECRET,
                       "workerTokenSecret": WORKER_SECRET}}


async def test_the_token_reaches_the_playbook_and_nothing_the_agent_writes(
    machine: MakeNode, admin: Kube,
) -> None:
    node = machine("demo-worker-0")
    await put_secret(admin, node.namespace, WORKER_SECRET, {"token": TOKEN})
    await node.create([join_item(node, WORKER_SECRET, fail="yes")])
    async with node.recording(), node.agent(await node.configure()):
        failure = await node.failure("swarm-join")
        logging.getLogger("a.careless.module").error("about to join with %s", TOKEN)
        await node.patch_spec({"stateItemsOverwrites": {"swarm-join": {"fail": "no"}}})
        done = await node.wait_state("Ready")
    assert (node.tmp / "record").read_text() == hashlib.sha256(TOKEN.encode()).hexdigest()
    assert "join refused for token ***" in failure["message"]
    assert TOKEN not in json.dumps(done)
    written = node.everything_written()
    assert "about to join with ***" in written  # the agent registered the token with its log redaction
    assert "joining with ***" in written  # the playbook's output, in its artifacts
    assert TOKEN not in written


async def test_a_missing_secret_fails_the_item_without_running_it_until_the_secret_appears(
    machine: MakeNode, admin: Kube,
) -> None:
    node = machine("demo-worker-0")
    await node.create([join_item(node, WORKER_SECRET)])
    async with node.recording(), node.agent(await node.configure()):
        retried = await node.failure("swarm-join", lambda s: s["attempt"] >= 2)
        assert node.runs("swarm-join") == []
        await put_secret(admin, node.namespace, WORKER_SECRET, {"token": TOKEN})
        await node.wait_state("Ready")
    assert retried["exitCode"] == 1
    assert retried["message"] == (
        f"not run: join token Secret {node.namespace}/{WORKER_SECRET} does not exist (yet): the first "
        "control machine publishes it when its swarm-init item succeeds")
    assert len(node.runs("swarm-join")) == 1


@pytest.mark.parametrize(("secret", "data", "reason"), [
    (MANAGER_SECRET, {"token": TOKEN},
     f"not run: this machine may not read the join token Secret {{ns}}/{MANAGER_SECRET} "
     f'(secrets "{MANAGER_SECRET}" is forbidden: User "system:serviceaccount:{{ns}}:lcm-agent-demo-worker-0" '
     f'cannot get resource "secrets" in API group "" in the namespace "{{ns}}"): its RBAC must allow get on '
     "that Secret"),
    (WORKER_SECRET, {"tokn": TOKEN}, f"not run: join token Secret {{ns}}/{WORKER_SECRET} has no key 'token'"),
])
async def test_a_secret_the_machine_cannot_use_fails_the_item_clearly(
    machine: MakeNode, admin: Kube, secret: str, data: dict[str, str], reason: str,
) -> None:
    node = machine("demo-worker-0")
    await put_secret(admin, node.namespace, secret, data)
    await node.create([join_item(node, secret)])
    async with node.recording(), node.agent(await node.configure()):
        failure = await node.failure("swarm-join")
    assert failure["message"] == reason.format(ns=node.namespace)
    assert node.runs("swarm-join") == []


async def test_tokens_that_cannot_be_read_from_the_engine_fail_the_publishing_item(machine: MakeNode) -> None:
    node = machine("demo-control-0")
    item = init_item(node, "10.0.0.1", playbook="step.yml")
    await node.create([item], type="control")
    cfg = await node.configure(docker_host="unix:///nonexistent/docker.sock")
    async with node.recording(), node.agent(cfg):
        failure = await node.failure("swarm-init")
    assert failure["message"].startswith(
        "the playbook succeeded, but cannot reach the Docker Engine at unix:///nonexistent/docker.sock")
    # The failure is reported on the run that had it; the retry (short backoff here) may have begun since.
    assert node.runs("swarm-init")[0] == "swarm-init 1"


def engine_tokens(lab_node: Any) -> dict[str, str]:
    def token(role: str) -> str:
        return subprocess.run(["docker", "-H", lab_node.docker_host, "swarm", "join-token", "-q", role],
                              capture_output=True, text=True, check=True).stdout.strip()

    return {"manager": token("manager"), "worker": token("worker")}


async def test_the_first_control_machine_publishes_the_tokens_a_worker_then_joins_with(
    machine: MakeNode, admin: Kube, lab_nodes: LabFactory,
) -> None:
    lab_node = lab_nodes("c0")["c0"]
    control = machine("demo-control-0", lab=lab_node)
    await control.create([init_item(control, lab_node.address)], type="control")
    async with control.agent(await control.configure()):
        done = await control.wait_state("Ready")
    tokens = engine_tokens(lab_node)
    assert slot(done, "swarm-init")["message"].endswith(
        f"join tokens published to {control.namespace}/{MANAGER_SECRET}, {control.namespace}/{WORKER_SECRET}")
    for role, name in (("manager", MANAGER_SECRET), ("worker", WORKER_SECRET)):
        secret = await admin.get(SECRETS, control.namespace, name)
        assert secret["type"] == "Opaque"
        assert secret["metadata"]["labels"] == {"lcm.mirantis.com/cluster": CLUSTER}
        assert list(secret["data"]) == ["token"]
        assert secret_token(secret) == tokens[role]

    worker = machine("demo-worker-0")
    await worker.create([join_item(worker, WORKER_SECRET)])
    async with worker.agent(await worker.configure()):
        await worker.wait_state("Ready")
    assert (worker.tmp / "record").read_text() == hashlib.sha256(tokens["worker"].encode()).hexdigest()

    for node, obj in ((control, done), (worker, await worker.get())):
        for token in tokens.values():
            assert token not in node.everything_written()
            assert token not in json.dumps(obj)


async def test_a_refused_publication_fails_the_item_and_a_retry_publishes_once_allowed(
    machine: MakeNode, admin: Kube, lab_nodes: LabFactory,
) -> None:
    lab_node = lab_nodes("c1")["c1"]
    node = machine("demo-worker-1", lab=lab_node)  # a worker's RBAC: it may not write token Secrets
    await node.create([init_item(node, lab_node.address)])
    async with node.recording(), node.agent(await node.configure()):
        failure = await node.failure("swarm-init")
        role = await admin.get(RBAC_KINDS["Role"], node.namespace, "lcm-agent-demo-worker-1")
        role["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "update"]})
        await admin.replace(RBAC_KINDS["Role"], node.namespace, "lcm-agent-demo-worker-1", role)
        await node.wait_state("Ready")
    assert failure["message"].startswith(
        "the playbook succeeded, but publishing the join tokens failed: cannot write Secret "
        f"{node.namespace}/{MANAGER_SECRET} (403 Forbidden: ")
    assert failure["message"].endswith("): control machines need RBAC create and update on it")
    assert len(node.runs("swarm-init")) >= 2  # the playbook ran again: it is idempotent
    secret = await admin.get(SECRETS, node.namespace, WORKER_SECRET)
    assert secret_token(secret) == engine_tokens(lab_node)["worker"]
    assert status(await node.get())["state"] == "Ready"

"""Machines Ready under other rules stay Ready under lcm-agent, with nothing re-run.

Two such writers: Mirantis' own agent (status hashes are Mirantis' item hash, which ours reproduces:
tests/api/test_mirantis_vectors.py) and lcm-agent before it hashed as Mirantis does (the old sorted-key
hash, with the overwrites merged). In both cases the agent is given its chance to act: an item added at
the end of the spec runs only after every earlier item is done, so once it has run, any re-run of the
others would have happened.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from agent_harness import Node, slot, status

from agent.api.models import StateItem
from agent.daemon.own_machine import LCMMACHINES
from agent.decisions.hashing import item_hash, legacy_item_hash

DONE_AT = {"startedAt": "2023-02-01T10:00:00Z", "finishedAt": "2023-02-01T10:05:00Z"}


def _items(node: Node) -> list[dict[str, Any]]:
    return [node.item("setup", "prepare"), node.item("deploy", "deploy", mode="x"),
            node.item("reconfigure", "reconfigure")]


async def _ready_status(node: Node, hashes: dict[str, str], **extra: Any) -> None:
    slots = {name: {"hash": digest, "exitCode": 0, "attempt": 1, **DONE_AT}
             for name, digest in hashes.items()}
    await node.admin.patch(LCMMACHINES, node.namespace, node.name, {"status": {
        "stateItemStatuses": slots, "addresses": [{"type": "InternalIP", "address": "10.0.0.21"}],
        "components": {"ucpVersion": "1.0.0"}, "state": "Ready", **extra}}, subresource="status")


async def _late_item_runs(node: Node) -> dict[str, Any]:
    """Append an item and wait until it is done: the agent has decided on every item before it."""
    spec = (await node.get())["spec"]
    await node.patch_spec({"stateItems": [*spec["stateItems"], node.item("late", "reconfigure")]})
    await node.wait_slot("late", lambda s: s.get("exitCode") == 0, describe="the late item done")
    return await node.get()


async def test_a_mirantis_written_ready_machine_stays_ready_and_keeps_what_it_does_not_act_on(
    node: Node, caplog: pytest.LogCaptureFixture,
) -> None:
    items = _items(node)
    await node.create(items, deploymentSecretName="child-deployment", mcrVersion="20.10.13")
    hashes = {i["name"]: item_hash(StateItem.model_validate(i), "") for i in items}
    await _ready_status(node, hashes, mkeManagerReady=True, tokenSecret="child-token")
    with caplog.at_level(logging.INFO, logger="agent.daemon.worker"):
        async with node.agent(await node.configure()):
            after = await _late_item_runs(node)
    named = [r.getMessage() for r in caplog.records if "kept, not acted on" in r.getMessage()]
    assert named == ["spec fields kept, not acted on: deploymentSecretName, mcrVersion"]  # once
    assert [node.runs(i["name"]) for i in items] == [[], [], []]
    assert {name: slot(after, name) for name in hashes} == {
        name: {"hash": digest, "exitCode": 0, "attempt": 1, **DONE_AT} for name, digest in hashes.items()}
    assert status(after)["state"] == "Ready"
    assert (status(after)["mkeManagerReady"], status(after)["tokenSecret"]) == (True, "child-token")
    assert (after["spec"]["deploymentSecretName"], after["spec"]["mcrVersion"]) == ("child-deployment",
                                                                                    "20.10.13")


async def test_slots_done_under_the_old_hash_are_rewritten_not_re_run(node: Node) -> None:
    """A cluster Ready on the old rules meets the new agent: the slots get Mirantis' hash, nothing runs."""
    items = _items(node)
    overwrites = {"deploy": {"mode": "y", "advertiseAddress": "10.0.0.21"}}
    await node.create(items, stateItemsOverwrites=overwrites)
    models = [StateItem.model_validate(i) for i in items]
    await _ready_status(node, {m.name: legacy_item_hash(m, overwrites) for m in models})
    async with node.agent(await node.configure()):
        after = await _late_item_runs(node)
    assert [node.runs(m.name) for m in models] == [[], [], []]
    assert {m.name: slot(after, m.name)["hash"] for m in models} == {m.name: item_hash(m, "") for m in models}
    assert all(slot(after, m.name)["finishedAt"] == DONE_AT["finishedAt"] for m in models)
    assert status(after)["state"] == "Ready"

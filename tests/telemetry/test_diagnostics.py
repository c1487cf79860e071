"""Evidence on failure through the real broker: an agent whose item keeps failing is flagged stuck on its
LCMMachine (as the planner flags it), gathers a bundle, keeps it under its state dir and sends it retained;
``lcmctl diagnostics`` fetches it, and says so for a machine that has none."""

from __future__ import annotations

import asyncio
import json
import stat
import sys
from pathlib import Path
from typing import Any

from agent_harness import Node
from conftest import PASSWORDS, Listener, Received, kind, listening, telemetry_config

from agent.daemon.config import AgentSettings
from agent.daemon.own_machine import LCMMACHINES
from testbed.lab.stack.mosquitto import REGIONAL_USER, Broker

LCMCTL = str(Path(sys.executable).with_name("lcmctl"))


def _failed(slot: dict[str, Any]) -> bool:
    return slot.get("exitCode") not in (None, 0, -1)


async def _lcmctl(broker: Broker, namespace: str, machine: str, password_file: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        LCMCTL, "diagnostics", machine, "--namespace", namespace, "--mqtt-url", broker.url,
        "--mqtt-password-file", str(password_file),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _failing_agent(node: Node, broker: Broker, tmp_path: Path) -> AgentSettings:
    """A machine whose one item keeps failing, and its agent's config."""
    cfg = await telemetry_config(node, broker, heartbeat_period=0.5)
    marker = tmp_path / "broken"
    marker.touch()
    await node.create([node.item("engine", "deploy", playbook="flaky.yml", marker=str(marker))])
    return cfg


async def _sent_bundle(node: Node, regional: Listener) -> Received:
    """Once the item failed, the machine flagged stuck (as the planner flags it): the bundle sent."""
    await node.wait_slot("engine", _failed, describe="a failed attempt")
    flag = {"status": {"lcmOperationStuck": True}}
    await node.admin.patch(LCMMACHINES, node.namespace, node.name, flag, subresource="status")
    return await regional.wait_for(kind("diagnostics"), describe="the diagnostics bundle")


def _regional_password(tmp_path: Path) -> Path:
    password_file = tmp_path / "regional.password"
    password_file.write_text(PASSWORDS[REGIONAL_USER])
    password_file.chmod(0o600)
    return password_file


async def test_a_stuck_item_sends_its_evidence_and_lcmctl_fetches_it(
    node: Node, mqtt_broker: Broker, tmp_path: Path,
) -> None:
    cfg = await _failing_agent(node, mqtt_broker, tmp_path)
    async with listening(mqtt_broker) as regional, node.agent(cfg):
        sent = await _sent_bundle(node, regional)

    assert sent.topic == f"lcm/{node.namespace}/demo/node-1/diagnostics"
    message = sent.message
    assert (message["trigger"], message["item"]) == ("stuck", "engine")
    bundle = message["bundle"]
    assert bundle["task"]["task"] == "refuse while the marker exists"
    assert bundle["task"]["event"] == "runner_on_failed"
    assert "TASK [refuse while the marker exists]" in bundle["outputTail"]
    assert bundle["attempt"] >= 1
    assert bundle["truncated"] is False
    assert bundle["host"]["disk"]["path"] == str(node.state_dir)
    assert {"journal", "docker"} <= set(bundle)
    assert PASSWORDS[node.name] not in sent.payload.decode()

    kept = node.state_dir / "diagnostics" / "latest.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700
    assert json.loads(kept.read_text()) == bundle

    password_file = _regional_password(tmp_path)
    code, out, err = await _lcmctl(mqtt_broker, node.namespace, "node-1", password_file)
    assert code == 0, err
    assert json.loads(out)["bundle"] == bundle  # the broker kept it after the agent went
    code, out, err = await _lcmctl(mqtt_broker, node.namespace, "node-2", password_file)
    assert (code, out) == (1, "")
    assert "no bundle retained for" in err


async def test_a_machine_given_to_another_cluster_clears_its_old_bundle(
    node: Node, mqtt_broker: Broker, tmp_path: Path,
) -> None:
    cfg = await _failing_agent(node, mqtt_broker, tmp_path)
    async with listening(mqtt_broker) as regional, node.agent(cfg):
        sent = await _sent_bundle(node, regional)
        await node.patch_spec({"clusterName": "other"})
        await regional.wait_for_raw(lambda r: r.topic == sent.topic and r.payload == b"",
                                    describe="the old subtree's bundle cleared")
        await regional.wait_for(lambda r: kind("status", state="online")(r) and "/other/" in r.topic,
                                describe="online under the new subtree")
    code, _, err = await _lcmctl(mqtt_broker, node.namespace, "node-1", _regional_password(tmp_path))
    assert code == 1, err  # none shadows what the machine sends next, under its new cluster

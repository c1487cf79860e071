"""``lcmctl watch``: what an operator reads about a rollout, from the API and the MQTT plane."""

from __future__ import annotations

import asyncio
import os
import sys
import time

from agent_harness import Node
from conftest import PASSWORDS, kind, listening, telemetry_config
from rich.console import Console

from agent.api import telemetry as t
from regional.cli.watch import Board
from testbed.lab.stack.mosquitto import REGIONAL_USER, Broker


def _text(board: Board) -> str:
    console = Console(record=True, width=200)
    console.print(board.table(time.monotonic()))
    return console.export_text()


def test_the_board_shows_state_progress_the_running_task_and_the_last_error() -> None:
    board = Board("ns", "demo")
    board.machines = [
        {"metadata": {"name": "w-1"}, "spec": {"type": "worker"},
         "status": {"state": "Deploy", "progress": "2/5", "stateItemStatuses": {
             "join": {"exitCode": 2, "finishedAt": "2024-01-01T00:00:02Z",
                      "message": 'task "join swarm" failed on host localhost:\n  token rejected'},
             "old": {"exitCode": 1, "finishedAt": "2024-01-01T00:00:01Z", "message": "older failure"}}}},
        {"metadata": {"name": "c-1"}, "spec": {"type": "control"}, "status": {"state": "Ready"}},
        {"metadata": {"name": "w-2"}, "spec": {"type": "worker"}, "status": {"state": "Prepare"}},
    ]
    host = t.HostLoad((0.1, 0.1, 0.1), 1, 1, "/", 1, 1, 1.0)
    item = t.CurrentItem("install", "prepare", 2, 0.0, "install docker", {"ok": 4, "changed": 1})
    beat = t.heartbeat_message(host=host, machine_state="Prepare", step="running", item=item, interval=10.0,
                               agent_uptime=1.0, dropped=0, buffered=0, ts=0.0, seq=1)
    board.on_message("lcm/ns/demo/w-2/heartbeat", t.encode(beat))
    will = t.status_message(state="offline", reason="lost", agent_version="1", heartbeat_interval=10.0, ts=0,
                            seq=0)
    board.on_message("lcm/ns/demo/w-1/status", t.encode(will))
    board.on_message("lcm/other/demo/c-1/status", t.encode(will))  # another namespace: not this board
    lines = {line.split()[1]: line for line in _text(board).splitlines() if " w-" in line or " c-" in line}
    assert all(word in lines["c-1"] for word in ("control", "Ready"))
    assert "offline" not in lines["c-1"]
    assert all(word in lines["w-1"] for word in ("Deploy", "2/5", "offline", "join: task", "token rejected"))
    assert all(word in lines["w-2"] for word in ("online", "install #2: install docker (changed=1 ok=4)"))


async def test_lcmctl_watch_once_shows_a_live_agent(node: Node, mqtt_broker: Broker) -> None:
    cfg = await telemetry_config(node, mqtt_broker, heartbeat_period=0.5)
    await node.create([node.item("prep", "deploy")])
    secret = node.tmp / "regional-password"
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(PASSWORDS[REGIONAL_USER])
    async with listening(mqtt_broker) as regional, node.agent(cfg):
        await node.wait_state("Ready")
        await regional.wait_for(kind("heartbeat"), describe="a heartbeat")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "regional.cli.ctl", "watch", "--once", "--namespace", node.namespace,
            "--cluster", "demo", "--kubeconfig", str(node.kube_api.kubeconfig_path), "--mqtt-url",
            mqtt_broker.url, "--mqtt-password-file", str(secret), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "COLUMNS": "200"})
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    row = next(line for line in out.decode().splitlines() if "node-1" in line)
    assert all(word in row for word in ("Ready", "1/1", "online, beat")), row
    assert PASSWORDS[REGIONAL_USER] not in out.decode() + err.decode()

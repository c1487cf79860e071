"""``lcm-scheduler run --mqtt-url``: the liveness subscriber runs inside the scheduler process, so a node's
heartbeats show as ``AgentReachable`` on its LCMMachine with no agent writing it; the password comes from a
file and never shows in the process's command line or logs."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from conftest import PASSWORDS, broker_log, publishing, settings
from test_liveness import HOST

from agent.adapters.kube import Kube, connect
from agent.adapters.mqtt import Outgoing
from agent.api import telemetry as t
from agent.daemon.own_machine import LCMMACHINES
from regional.planning.liveness import CONDITION
from testbed.lab.stack.mosquitto import REGIONAL_USER, Broker
from testbed.sim.testing import KubeApi, lcm_machine

SCHEDULER = str(Path(sys.executable).with_name("lcm-scheduler"))


def _reachable(obj: dict[str, Any]) -> str:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c["status"] for c in conditions if c["type"] == CONDITION), "")


async def test_the_scheduler_reflects_heartbeats_as_agent_reachable(
    kube_api: KubeApi, mqtt_broker: Broker, tmp_path: Path,
) -> None:
    async with await connect(kubeconfig=kube_api.kubeconfig_path) as kube:
        await _heartbeats_make_it_reachable(kube, kube_api, mqtt_broker, tmp_path)


async def _heartbeats_make_it_reachable(
    kube: Kube, kube_api: KubeApi, mqtt_broker: Broker, tmp_path: Path,
) -> None:
    ns = kube_api.namespace
    machine = lcm_machine("node-2", ns)
    machine["spec"]["clusterName"] = "demo"
    await kube.create(LCMMACHINES, ns, machine)
    password_file = tmp_path / "regional.password"
    password_file.write_text(PASSWORDS[REGIONAL_USER])
    password_file.chmod(0o600)
    log_path = tmp_path / "scheduler.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            SCHEDULER, "run", "--kubeconfig", str(kube_api.kubeconfig_path), "--namespace", ns,
            "--mqtt-url", mqtt_broker.url, "--mqtt-password-file", str(password_file),
            stdout=asyncio.subprocess.DEVNULL, stderr=log)
        try:
            topic = f"lcm/{ns}/demo/node-2/heartbeat"
            deadline = time.monotonic() + 60
            async with publishing(settings(mqtt_broker, "node-2")) as outbox:
                seq = 0
                while _reachable(await kube.get(LCMMACHINES, ns, "node-2")) != "True":
                    assert time.monotonic() < deadline, "node-2 never shown reachable"
                    message = t.heartbeat_message(host=HOST, machine_state="Ready", step="idle", item=None,
                                                  interval=1.0, agent_uptime=1.0, dropped=0, buffered=0,
                                                  ts=time.time(), seq=seq)
                    outbox.put(Outgoing(topic, t.encode(message)))
                    seq += 1
                    await asyncio.sleep(0.5)
            # The password from the file was used (the broker let the scheduler in as the regional user,
            # and only that user reads the heartbeats), and the running process tree holds it nowhere a
            # `ps` or /proc reader sees: neither argv nor the environment.
            assert any("New client connected" in line and f"u'{REGIONAL_USER}'" in line
                       for line in broker_log(mqtt_broker, "lcm-scheduler-"))
            for pid in _tree(proc.pid):
                for view in ("cmdline", "environ"):
                    shown = await asyncio.to_thread(Path(f"/proc/{pid}/{view}").read_bytes)
                    assert password_file.read_bytes() not in shown, f"the password in {pid}'s {view}"
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 15)
    assert proc.returncode == 0
    assert PASSWORDS[REGIONAL_USER] not in log_path.read_text()


def _tree(pid: int) -> list[int]:
    """``pid`` and its live descendants."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(p for child in children for p in _tree(int(child)))]

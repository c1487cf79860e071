"""``lcm-scheduler run`` as an operator runs it: JSON logs, the Lease taken, SIGTERM a clean exit that hands
the Lease back."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest
from scheduler_harness import LEASES, eventually

from agent.adapters.kube import Kube, KubeError
from testbed.sim.testing import KubeApi

pytestmark = pytest.mark.kube

SCHEDULER = str(Path(sys.executable).with_name("lcm-scheduler"))


async def _holder(kube: Kube, ns: str) -> str | None:
    try:
        lease = await kube.get(LEASES, ns, "lcm-scheduler")
    except KubeError:
        return None
    return str(lease["spec"].get("holderIdentity") or "")


async def test_sigterm_stops_the_scheduler_cleanly_and_releases_the_lease(kube_api: KubeApi, kube: Kube,
                                                                          tmp_path: Path) -> None:
    ns = kube_api.namespace
    log_path = tmp_path / "scheduler.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            SCHEDULER, "run", "--kubeconfig", str(kube_api.kubeconfig_path), "--namespace", ns,
            "--identity", "replica-1", stdout=asyncio.subprocess.DEVNULL, stderr=log)
        try:
            await eventually(lambda: _is_holder(kube, ns), within=30, what="replica-1 holding the lease")
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 15)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert code == 0
    assert await _holder(kube, ns) == ""
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert lines[-1]["msg"] == "stopped"
    assert lines[-1]["exit_code"] == 0
    assert any(line["msg"] == "released the lease" for line in lines)


async def _is_holder(kube: Kube, ns: str) -> bool:
    return await _holder(kube, ns) == "replica-1"


async def test_an_unreadable_kubeconfig_is_a_usage_error(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        SCHEDULER, "run", "--kubeconfig", str(tmp_path / "missing"), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert b"cannot load kubeconfig" in err

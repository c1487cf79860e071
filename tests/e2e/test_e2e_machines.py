"""The whole product as production runs it, on systemd-nspawn machines (``testbed.lab.stack.stack`` with
``stack_machines``): kube-apiserver, lcm-scheduler and Mosquitto on the host; three machines (one
control, two workers) booted from the cached image, each made a node by cloud-init alone (the agent
installed from the lab's air-gapped mirror with its playbooks, run by systemd, talking to the broker with
its own account); the release's playbooks install Docker Engine from the lab's apt repository and form the
swarm across the machines. The same scenario as the netns test (tests/e2e/e2e_scenario.py): boot to a
three-node swarm, a reconfigure, a drift the reconciler repairs (a worker's docker.socket and
docker.service stopped), an upgrade to swarm-1.1.0 with drains. Each stage's wall time is printed.

Skips only where machines cannot run (not root, no systemd-nspawn, debootstrap, …); the first run on a
host builds the machine image (minutes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from e2e_scenario import rollout_reconfigure_drift_and_upgrade, staged_stack

from agent.adapters.kube import Kube
from testbed.cli.demo import missing_prerequisites
from testbed.lab.stack.machines import MachineNodes
from testbed.lab.stack.stack import Stack, StackSettings

missing = missing_prerequisites("machines")
pytestmark = [pytest.mark.machines,
              pytest.mark.skipif(bool(missing), reason="cannot run nspawn machines: " + "; ".join(missing))]

PATIENCE = 1500.0
"""Seconds a rollout stage may take: the first one includes three machines booting and installing the
agent (some 50 wheels each) before some twenty Ansible runs, on two cores shared with other work."""


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[Stack, Kube]]:
    async with staged_stack(StackSettings(tmp_path / "demo"), "machines") as running:
        yield running


async def test_rollout_reconfigure_drift_and_upgrade_on_machines(stack: tuple[Stack, Kube]) -> None:
    await rollout_reconfigure_drift_and_upgrade(*stack, patience=PATIENCE)
    machines = stack[0].nodes
    assert isinstance(machines, MachineNodes)
    for name in stack[0].settings.machines:  # air-gapped: the lab's mirror is every machine's only apt source
        _, sources = await machines.machine(name).exec(
            ["sh", "-c", "cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null; true"])
        assert [line for line in sources.splitlines() if line.startswith("deb")] == [
            machines.fleet.apt_source], name

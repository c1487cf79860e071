"""The whole product on one host, as the demo runs it on hosts without nspawn (``testbed.lab.stack.stack``
with network-namespace nodes): kube-apiserver, lcm-scheduler, Mosquitto, and three nodes (one control, two
workers) each with its own dockerd and the real agent in its namespaces, driving the release's playbooks. The
scenario (tests/e2e/e2e_scenario.py): from nothing to a three-node swarm; then a reconfigure (an engine
label), a drift the reconciler repairs (a worker's dockerd stopped), and an upgrade to swarm-1.1.0 that drains
each worker. Each stage's wall time is printed (tests/e2e/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from e2e_scenario import rollout_reconfigure_drift_and_upgrade, staged_stack

from agent.adapters.kube import Kube
from testbed.cli.demo import missing_prerequisites
from testbed.lab.netns.nodes import session_prefix
from testbed.lab.stack.stack import Stack, StackSettings

missing = missing_prerequisites("netns")
pytestmark = [pytest.mark.dockerd, pytest.mark.slow,
              pytest.mark.skipif(bool(missing), reason="; ".join(missing))]

PATIENCE = 900.0
"""Seconds a rollout stage may take: some twenty Ansible runs on two cores shared with other work."""


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[Stack, Kube]]:
    # A short reconcile period: the drift stage should not wait the default 30 s for the first check.
    settings = StackSettings(tmp_path / "demo", prefix=session_prefix("e2e"), reconcile={"check_period": 3.0})
    async with staged_stack(settings, "netns") as running:
        yield running


async def test_rollout_reconfigure_drift_and_upgrade(stack: tuple[Stack, Kube]) -> None:
    await rollout_reconfigure_drift_and_upgrade(*stack, patience=PATIENCE)

"""Fixtures of the agent tests (helpers live in ``agent_harness``, importable from the test modules)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from agent_harness import Node

from agent.adapters.kube import connect
from testbed.sim.testing import KubeApi


@pytest.fixture
async def node(kube_api: KubeApi, tmp_path: Path) -> AsyncIterator[Node]:
    admin = await connect(kubeconfig=kube_api.kubeconfig_path)
    async with admin:
        yield Node(kube_api, admin, tmp_path)

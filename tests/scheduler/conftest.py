"""Fixtures of the scheduler tests (helpers live in ``scheduler_harness``, importable from the tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agent.adapters.kube import Kube, connect
from testbed.sim.testing import KubeApi


@pytest.fixture
async def kube(kube_api: KubeApi) -> AsyncIterator[Kube]:
    """An admin client: the scheduler's, and the one tests create objects with as operator and provider."""
    async with await connect(kubeconfig=kube_api.kubeconfig_path) as client:
        yield client

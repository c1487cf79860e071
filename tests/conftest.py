"""Shared fixtures: ``kube_api`` (a fresh API simulator per test, or the real cluster of
``LCM_TEST_KUBECONFIG``) and ``faults`` (its fault injection; tests that need it skip on a real cluster)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.sim.faults import Faults
from agent.sim.testing import KubeApi, open_kube_api


@pytest.fixture
async def kube_api(tmp_path: Path) -> AsyncIterator[KubeApi]:
    async with open_kube_api(tmp_path) as api:
        yield api


@pytest.fixture
def faults(kube_api: KubeApi) -> Faults:
    if kube_api.faults is None:
        pytest.skip("fault injection needs the API simulator; LCM_TEST_KUBECONFIG points at a real cluster")
    return kube_api.faults

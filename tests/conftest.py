"""Shared fixtures: ``kube_api`` (a fresh API simulator per test, or the real cluster of
``LCM_TEST_KUBECONFIG``), ``faults`` (its fault injection; tests that need it skip on a real cluster) and
``lab_nodes`` (network-namespace nodes with their own dockerd, ``agent.lab``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from agent.lab.nodes import Lab, missing_requirements, session_prefix, up
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


@pytest.fixture
def lab_nodes() -> Iterator[Callable[..., Lab]]:
    """``lab_nodes("n1", "n2")`` starts network-namespace nodes, each with its own dockerd, on a private
    subnet; every lab made is torn down after the test. Skips where the host cannot run them."""
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)
    labs: list[Lab] = []

    def make(*names: str) -> Lab:
        labs.append(up(names, prefix=session_prefix()))
        return labs[-1]

    yield make
    for lab in labs:
        lab.down()

"""Fixtures of the metrics tests: the agent harness of ``tests/agent`` (``node``) and the scheduler harness of
``tests/scheduler`` (``kube``, an admin client), whose helpers the tests import."""

from __future__ import annotations

import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "agent"))  # the harnesses of the agent and scheduler tests
sys.path.insert(0, str(Path(__file__).parents[1] / "scheduler"))

from agent_harness import Node

from agent.adapters.kube import Kube, connect
from testbed.sim.testing import KubeApi


@pytest.fixture
async def node(kube_api: KubeApi, tmp_path: Path) -> AsyncIterator[Node]:
    admin = await connect(kubeconfig=kube_api.kubeconfig_path)
    async with admin:
        yield Node(kube_api, admin, tmp_path)


@pytest.fixture
async def kube(kube_api: KubeApi) -> AsyncIterator[Kube]:
    async with await connect(kubeconfig=kube_api.kubeconfig_path) as client:
        yield client


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port another socket listens on: a metrics port in use."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]

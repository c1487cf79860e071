"""Fixtures of the swarm agent tests: the admin client, the deploy/rbac Roles, and machines."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest


def _load_harness(folder: str, name: str) -> None:
    """Another test folder's harness is a module beside its tests, not in a package: load that file as
    ``name`` (what its tests import it as) without putting the folder, and its conftest, on ``sys.path``.
    The agent tests' harness gives the nodes (``Node``), the scheduler tests' the running scheduler."""
    if name not in sys.modules:
        path = Path(__file__).parents[1] / folder / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)


_load_harness("agent", "agent_harness")
_load_harness("scheduler", "scheduler_harness")

from machine_harness import MakeNode, SwarmNode, apply_rbac  # noqa: E402

from agent.adapters.kube import Kube, connect  # noqa: E402
from testbed.lab.netns.node import LabNode  # noqa: E402
from testbed.sim.testing import KubeApi  # noqa: E402


@pytest.fixture
async def admin(kube_api: KubeApi) -> AsyncIterator[Kube]:
    """The provider's view of the API, with the sample RBAC applied to the test's namespace."""
    client = await connect(kubeconfig=kube_api.kubeconfig_path)
    async with client:
        await apply_rbac(client, kube_api.namespace)
        yield client


@pytest.fixture
def machine(kube_api: KubeApi, admin: Kube, tmp_path: Path) -> MakeNode:
    """``machine("demo-worker-0", lab=node)``: a machine of the sample cluster, files under tmp/<name>."""

    def make(name: str, *, lab: LabNode | None = None, release: tuple[Path, ...] | None = None) -> SwarmNode:
        extra = {} if release is None else {"release": release}
        return SwarmNode(kube_api, admin, tmp_path / name, name, lab=lab, **extra)

    return make

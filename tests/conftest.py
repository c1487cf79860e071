"""Shared fixtures: ``kube_api`` (a namespace of its own on the session's real API server, or a fresh API
simulator), ``faults`` (the simulator's fault injection) and ``lab_nodes`` (network-namespace nodes with their
own dockerd, ``testbed.lab``).

The API server is, by default, the project's real control plane (``testbed.kube``: etcd, kube-apiserver,
kube-controller-manager), built on first use and started once per pytest session; ``LCM_TEST_KUBECONFIG``
points the same tests at the user's own cluster instead; ``LCM_TEST_API=sim`` runs them on the simulator, the
fast loop. A test that needs what only the simulator does on demand (injected outages, 410 storms, 409/5xx
bursts, latency, restarts) is marked ``simulator("why")`` and always runs there.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from agent.adapters.kube import connect
from agent.api.crds import crd_paths
from testbed.kube.build import ensure_built
from testbed.kube.crds import CRDS, deadline_wait, install_crds
from testbed.kube.plane import ControlPlane, PlaneSettings
from testbed.lab.netns.nodes import Lab, missing_requirements, session_prefix, up
from testbed.sim.faults import Faults
from testbed.sim.testing import KubeApi, open_kube_api

ENV_KUBECONFIG = "LCM_TEST_KUBECONFIG"
ENV_API = "LCM_TEST_API"
BACKENDS = ("kube", "sim")
CRD_WITHIN = 60.0
"""Seconds a user's cluster may take to establish the project's CRDs."""


def _announce(line: str) -> None:
    print(f"\nlcm tests: {line}", file=sys.__stderr__, flush=True)


@pytest.fixture(scope="session")
def real_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The admin kubeconfig of the session's real API server, with the project's CRDs Established."""
    user = os.environ.get(ENV_KUBECONFIG)
    if user:
        created = asyncio.run(_install_crds(Path(user)))
        yield Path(user)
        asyncio.run(_remove_crds(Path(user), created))
        return
    settings = PlaneSettings(tmp_path_factory.mktemp("kube"), crds=crd_paths(), die_with_parent=True)
    plane = ControlPlane(settings, ensure_built(_announce))
    asyncio.run(plane.start())
    try:
        yield plane.kubeconfig_path
    finally:
        plane.stop()


async def _install_crds(kubeconfig: Path) -> list[str]:
    async with await connect(kubeconfig=kubeconfig) as kube:
        return await install_crds(kube, crd_paths(), deadline_wait(CRD_WITHIN))


async def _remove_crds(kubeconfig: Path, names: list[str]) -> None:
    """The CRDs this session installed into the user's cluster (and so every object of theirs) go again."""
    async with await connect(kubeconfig=kubeconfig) as kube:
        for name in names:
            await kube.delete(CRDS, "", name)


@pytest.fixture
def api_backend(request: pytest.FixtureRequest) -> str:
    """"kube" (a real API server) or "sim"; a differential test gets each in turn as its parameter."""
    marker = request.node.get_closest_marker("simulator")
    if marker is not None:
        if os.environ.get(ENV_KUBECONFIG):
            pytest.skip(f"runs on the API simulator only ({marker.args[0]}); {ENV_KUBECONFIG} runs the "
                        "tests of a real cluster")
        return "sim"
    default = "sim" if os.environ.get(ENV_API) == "sim" else "kube"
    backend: str = getattr(request, "param", default)
    lacking = request.node.get_closest_marker("real_server")
    if lacking is not None and backend == "sim":
        pytest.skip(f"needs a real API server: the simulator has no {lacking.args[0]}")
    if backend == "kube" and os.environ.get(ENV_API) == "sim":
        pytest.skip(f"{ENV_API}=sim: the simulator only")
    if backend == "sim" and os.environ.get(ENV_KUBECONFIG):
        pytest.skip(f"the simulator's half of a differential test: {ENV_KUBECONFIG} runs the cluster's half")
    return backend


@pytest.fixture
def api_server(request: pytest.FixtureRequest, api_backend: str) -> Path | None:
    """The real server's admin kubeconfig for this test, or None for a simulator of its own. Resolved here,
    outside the test's event loop, since the session's server is started with a loop of its own."""
    return Path(request.getfixturevalue("real_api")) if api_backend == "kube" else None


@pytest.fixture
async def kube_api(api_server: Path | None, tmp_path: Path) -> AsyncIterator[KubeApi]:
    async with open_kube_api(tmp_path, api_server) as api:
        yield api


@pytest.fixture
def faults(kube_api: KubeApi) -> Faults:
    if kube_api.faults is None:
        pytest.fail("a test that injects faults must be marked simulator(reason): a real server has none")
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

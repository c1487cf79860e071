"""Shared fixtures: ``kube_api`` (a namespace of its own on the session's real API server, or a fresh API
simulator), ``faults`` (the simulator's fault injection) and ``lab_nodes`` (network-namespace nodes with their
own dockerd, ``testbed.lab``), and the markers that say what a test needs and costs (``root``, ``dockerd``,
``machines``, ``kube``, ``slow``: registered in pyproject.toml), applied here by the fixtures a test uses and
by its folder, so a new test is marked by what it touches rather than by remembering to.

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
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from slow_from_durations import listed

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

NEEDS_BY_FIXTURE: dict[str, tuple[str, ...]] = {
    "lab_nodes": ("root", "dockerd"),
    "swarm_lab": ("root", "dockerd"),
    "netns": ("root",),
    "kube_api": ("kube",),
}
"""Markers a test gets by using (directly or through another fixture) a fixture of this name."""
NEEDS_BY_PATH: dict[str, tuple[str, ...]] = {
    "playbooks": ("root", "dockerd"),
    "cli/test_demo.py": ("root", "dockerd"),
}
"""Markers of every test under ``tests/<path>`` (a folder or a module), whose tests build labs themselves (the
playbooks' swarms, ``lcmctl demo`` on netns nodes) rather than through a fixture above."""
MACHINE_FIXTURES = ("lab", "image")
"""The nspawn machine fixtures of ``tests/machines/conftest.py`` (named there; another folder's ``lab`` is not
a machine lab)."""
SLOW: dict[str, float] = {
    "agent/test_item_churn.py": 356,
    "cli/test_demo.py": 320,  # lcmctl demo on netns nodes, several times; like the e2e, under the lab lock
    "cli/test_secret_files.py": 28,
    "agent/test_local_cli.py::test_apply_runs_items_in_phase_order_and_a_second_apply_skips_what_is_done": 47,
    "agent/test_api_faults.py::test_api_down_for_30s_mid_item_reports_the_item_without_rerunning_it": 33,
    "agent/test_restarts.py::test_kill_9_mid_item_reruns_the_same_item_as_attempt_2": 32,
    "agent/test_restarts.py::test_sigterm_stops_gracefully_and_a_second_one_forces": 29,
    "agent/test_service_manager.py::test_sighup_rereads_the_config_and_refuses_a_broken_one": 36,
    "planning/test_rollout_properties.py": 227,  # generated rollouts to completion, each step a plan
    "planning/test_sample_plan.py::test_the_demo_deploys_upgrades_and_lets_a_worker_go": 80,
    "lab/test_kube_plane.py::test_kube_up_serves_kubectl_and_down_stops_it": 46,  # a second control plane
    "machines/test_provision.py": 44,
    "machines/test_release_playbooks.py::test_the_agent_wheel_carries_the_release_playbooks": 30,
    "machines/test_vagrantfile.py": 22,
    "playbooks": 280,  # three swarms deployed from nothing by the release's playbooks
    "reconciler/test_convergence.py": 0,  # a swarm formed per module
    "reconciler/test_agent_reconciles.py": 166,
    "swarm_agent/test_lab_swarm.py": 0,
    "swarm_agent/test_lab_maintenance.py": 90,  # three netns nodes deployed by the scheduler; maintenance
    "swarm_agent/test_lab_drain_safety.py": 140,  # real swarms: a rolling drain, a 30 s drain timeout
    "swarm_agent/test_lab_gates.py": 130,  # three scheduler-deployed swarms, each upgraded through a gate
}
"""Tests (a folder, a module, or one test: its node id without parameters, under ``tests/``) whose cost
dominates the suite, with the seconds the slowest took on the shared 2-core host (``pytest --durations``;
0: a module fixture's swarm, its cost spread over its tests); ``-m "not slow"`` is the fast inner loop. Every
test that boots machines is slow too, without being listed."""


SLOW.update(listed(Path(__file__).with_name("slow.txt")))
ONE_WORKER = "host-singletons"
"""The xdist group of the tests that use fixed host names (``demo-*`` machines, the shared image and cache):
under ``-n``, one worker runs them one after another."""


@pytest.hookimpl(tryfirst=True)  # before xdist's loadgroup reads the xdist_group marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for name in _needs(item):
            item.add_marker(name)
        group = _group(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))


def _needs(item: pytest.Item) -> set[str]:
    """The resource and cost markers ``item`` earns by its fixtures, its folder and the ``SLOW`` table."""
    needs = {mark.name for mark in item.iter_markers()}
    for name in getattr(item, "fixturenames", ()):
        needs.update(NEEDS_BY_FIXTURE.get(name, ()))
        if name in MACHINE_FIXTURES and _defined_under(item, name, "machines"):
            needs.update(("root", "machines"))
    module = item.path.relative_to(Path(__file__).parent).as_posix()
    test = f"{module}::{item.nodeid.split('[')[0].split('::')[-1]}"
    for prefix, marks in NEEDS_BY_PATH.items():
        if _within(test, prefix):
            needs.update(marks)
    if "machines" in needs or any(_within(test, prefix) for prefix in SLOW):
        needs.add("slow")
    if {"dockerd", "machines"} & needs:
        needs.add("root")
    return needs - {mark.name for mark in item.iter_markers()}


def _within(test: str, prefix: str) -> bool:
    """Whether ``test`` (``folder/module.py::name``) is ``prefix`` or in the folder or module it names."""
    return test == prefix or test.startswith((prefix + "/", prefix + "::"))


def _defined_under(item: pytest.Item, fixture: str, folder: str) -> bool:
    """Whether the fixture ``item`` gets under that name comes from ``tests/<folder>``."""
    definitions = item._fixtureinfo.name2fixturedefs.get(fixture, ())  # type: ignore[attr-defined]
    return any(Path(d.baseid.split("::")[0]).parts[1:2] == (folder,) for d in definitions[-1:])


def _group(item: pytest.Item) -> str:
    """The xdist group that keeps what ``item`` shares on one worker: fixed host names (``ONE_WORKER``), or a
    module's or session's costly fixture (a formed swarm, built wheels), which every worker would otherwise
    build again for its share of the tests. Cheap shared fixtures and the per-worker control plane
    (``real_api``) do not group."""
    if item.get_closest_marker("machines") is not None:
        return ONE_WORKER
    tests = Path(__file__).parent
    for name in getattr(item, "fixturenames", ()):
        for definition in item._fixtureinfo.name2fixturedefs.get(name, ())[-1:]:  # type: ignore[attr-defined]
            defined_in = definition.baseid.split("::")[0]
            if definition.scope == "function" or not defined_in.startswith(tests.name + "/"):
                continue
            return item.nodeid.split("::")[0] if definition.scope == "module" else f"{defined_in}:{name}"
    return ""


SECONDS_BY_FOLDER: defaultdict[str, float] = defaultdict(float)
"""Each folder's tests' setup, call and teardown seconds, summed (under xdist, over the workers)."""


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    parts = report.nodeid.split("::")[0].split("/")
    SECONDS_BY_FOLDER["/".join(parts[:2]) if len(parts) > 2 else parts[0]] += report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Where the suite's time went, folder by folder: what to make faster first."""
    if not SECONDS_BY_FOLDER:
        return
    terminalreporter.write_sep("=", "seconds by folder (setup + call + teardown)")
    for folder, seconds in sorted(SECONDS_BY_FOLDER.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{seconds:9.1f}  {folder}")
    terminalreporter.write_line(f"{sum(SECONDS_BY_FOLDER.values()):9.1f}  (all)")


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

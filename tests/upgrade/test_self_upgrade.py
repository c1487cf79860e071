"""The upgrade loop against the API server: what a node does with ``spec.agentConfig``, what the operator
sees in ``status.lcmAgentUpgradeStatus``, and what is on disk afterwards.

Two tests install for real (a clone of the test's own virtualenv plus a real wheel); the rest use fake
version directories, because what they check happens before or without a build.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from kubernetes_asyncio import client
from upgrade_harness import RUNNING, Wheel, fake_version

from agent.adapters.install import Layout
from agent.adapters.kube import Kube, connect
from agent.adapters.watching import WatchSettings
from agent.daemon.config import AgentSettings
from agent.daemon.own_machine import OwnMachine
from agent.daemon.self_upgrade import UpgradeSettings, upgrade_loop
from agent.kits.backoff import Backoff
from testbed.sim.testing import LCM_GROUP, LCM_VERSION, MACHINES, KubeApi, lcm_machine

NAME = "node-1"
GOOD = "lcm_agent-0.2.0-py3-none-any.whl"


@dataclass
class Outcome:
    status: dict[str, Any]
    """``status.lcmAgentUpgradeStatus`` once the loop has stopped."""
    writes_after_the_report: bool = False
    """The object changed again within a second of the attempt's report (a retry without backoff)."""
    restarts: list[str] = field(default_factory=list)


def start_upgrade_loop(
    kube: Kube, ns: str, stopping: asyncio.Event, *, restart: Callable[[], None], settings: UpgradeSettings,
) -> asyncio.Task[None]:
    """The upgrade loop with the machine's handle beside it, as the daemon runs them."""
    own = OwnMachine(kube, ns, NAME, watch=WatchSettings(), backoff=settings.backoff)
    loop = upgrade_loop(own, AgentSettings(), stopping, restart=restart, settings=settings)

    async def both() -> None:
        await asyncio.gather(own.run(stopping), loop)

    return asyncio.create_task(both())


async def upgrade_once(
    kube_api: KubeApi, tmp_path: Path, agent_config: dict[str, str], *, install_root: Path | None,
) -> Outcome:
    """Create the machine, run the loop until the first attempt is reported (and the restart it asks
    for, if any), then stop it."""
    ns = kube_api.namespace
    objs = client.CustomObjectsApi(await kube_api.client())
    await objs.create_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES,
                                               lcm_machine(NAME, ns, agentConfig=agent_config))
    stopping, outcome = asyncio.Event(), Outcome({})

    def restart() -> None:
        outcome.restarts.append(agent_config["version"])
        stopping.set()

    settings = UpgradeSettings(install_root=install_root, work_dir=tmp_path / "state" / "upgrade",
                               backoff=Backoff(base=60.0, cap=60.0), running_version=RUNNING,
                               source_prefix=Path(sys.prefix))
    async with await connect(kubeconfig=kube_api.kubeconfig_path) as kube:
        loop = start_upgrade_loop(kube, ns, stopping, restart=restart, settings=settings)
        async with asyncio.timeout(120):
            while True:  # the status is the only outward sign of an attempt's end: poll it
                reported = await _machine(objs, ns)
                if "finishedAt" in _upgrade_status(reported):
                    break
                await asyncio.sleep(0.1)
        # A success restarts right after its report; a failure must not try again before its backoff.
        await asyncio.wait([loop], timeout=1.0)
        stopping.set()
        await loop
    final = await _machine(objs, ns)
    outcome.status = _upgrade_status(final)
    outcome.writes_after_the_report = final["metadata"]["resourceVersion"] != reported["metadata"][
        "resourceVersion"]
    return outcome


async def _machine(objs: client.CustomObjectsApi, ns: str) -> dict[str, Any]:
    raw: dict[str, Any] = await objs.get_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES, NAME)
    return raw


def _upgrade_status(raw: dict[str, Any]) -> dict[str, Any]:
    status: dict[str, Any] = raw.get("status", {}).get("lcmAgentUpgradeStatus", {})
    return status


def version_of(executable: Path) -> str:
    return subprocess.run([str(executable), "--version"], capture_output=True, text=True, check=True,
                          cwd="/").stdout.strip()


async def test_good_upgrade_installs_the_new_version_switches_and_restarts(
    kube_api: KubeApi, layout: Layout, wheels: dict[str, Wheel], mirror: str, tmp_path: Path,
) -> None:
    older = fake_version(layout, "0.0.9")
    wheel = wheels["good"]
    outcome = await upgrade_once(kube_api, tmp_path, {
        "version": "0.2.0", "downloadURL": f"{mirror}/{GOOD}", "sha256": wheel.sha256},
        install_root=layout.root)

    assert outcome.status["error"] == ""
    assert outcome.status["attempt"] == 1
    assert outcome.status["startedAt"] <= outcome.status["finishedAt"]
    assert outcome.restarts == ["0.2.0"]
    new = layout.version_dir("0.2.0")
    assert layout.active() == new
    assert version_of(layout.current / "bin" / "lcm-agent") == "lcm-agent 0.2.0"
    for script in ("lcm-agent", "ansible-playbook"):  # pip's new script, and one cloned from the old venv
        assert (new / "bin" / script).read_text().splitlines()[0].startswith(f"#!{new}/bin/python")
    assert layout.version_dir(RUNNING).is_dir(), "the previous version is kept for a rollback"
    assert not older.exists(), "only two versions are kept"
    assert list((tmp_path / "state" / "upgrade").glob("*.whl")) == []


async def test_a_wheel_that_cannot_start_never_becomes_current(
    kube_api: KubeApi, layout: Layout, wheels: dict[str, Wheel], tmp_path: Path,
) -> None:
    wheel = wheels["broken"]
    outcome = await upgrade_once(kube_api, tmp_path, {
        "version": "0.2.1", "downloadURL": wheel.url, "sha256": wheel.sha256}, install_root=layout.root)

    assert "smoke test failed" in outcome.status["error"]
    assert "lcm_agent_dependency_that_is_not_installed" in outcome.status["error"]
    assert outcome.status["attempt"] == 1
    assert outcome.restarts == []
    assert layout.active() == layout.version_dir(RUNNING)
    assert not layout.version_dir("0.2.1").exists()


@pytest.mark.parametrize(
    ("config", "in_layout", "expected"),
    [
        pytest.param({"downloadURL": "{good_url}", "sha256": "0" * 64}, True, "sha256 mismatch",
                     id="bad checksum"),
        pytest.param({"downloadURL": f"http://bob:s3cret@127.0.0.1:9/{GOOD}", "sha256": "{good_sha}"}, True,
                     f"download of http://***@127.0.0.1:9/{GOOD} failed", id="mirror down, credentials"),
        pytest.param({"downloadURL": "file:///nonexistent/" + GOOD, "sha256": "{good_sha}"}, True,
                     "No such file", id="missing file"),
        pytest.param({"downloadURL": "{good_url}.tar.gz", "sha256": "{good_sha}"}, True,
                     "must name a wheel", id="not a wheel"),
        pytest.param({"version": "../../etc", "downloadURL": "{good_url}", "sha256": "{good_sha}"}, True,
                     "not a version name", id="version escaping the install root"),
        pytest.param({"downloadURL": "{good_url}", "sha256": "{good_sha}"}, False,
                     "self-upgrade needs the layout", id="agent not installed in the layout"),
    ],
)
async def test_a_failed_attempt_is_reported_and_changes_nothing(
    kube_api: KubeApi, layout: Layout, wheels: dict[str, Wheel], tmp_path: Path,
    config: dict[str, str], in_layout: bool, expected: str,
) -> None:
    good = wheels["good"]
    spec = {"version": "0.2.0",
            **{key: value.format(good_url=good.url, good_sha=good.sha256) for key, value in config.items()}}
    outcome = await upgrade_once(kube_api, tmp_path, spec, install_root=layout.root if in_layout else None)

    assert expected in outcome.status["error"]
    assert "s3cret" not in outcome.status["error"]
    assert outcome.status["attempt"] == 1
    assert not outcome.writes_after_the_report, "no retry before the backoff"
    assert outcome.restarts == []
    assert layout.active() == layout.version_dir(RUNNING)
    assert sorted(p.name for p in layout.versions.iterdir()) == [RUNNING]


async def test_rolling_back_to_a_kept_version_needs_no_download(
    kube_api: KubeApi, layout: Layout, tmp_path: Path,
) -> None:
    kept = fake_version(layout, "0.0.9", sha256="9" * 64)
    outcome = await upgrade_once(kube_api, tmp_path, {
        "version": "0.0.9", "downloadURL": "file:///mirror-is-gone/lcm_agent-0.0.9-py3-none-any.whl",
        "sha256": "9" * 64}, install_root=layout.root)

    assert outcome.status["error"] == ""
    assert outcome.restarts == ["0.0.9"]
    assert layout.active() == kept
    assert layout.version_dir(RUNNING).is_dir()


async def test_an_active_version_that_is_not_running_is_reported_instead_of_restarting_again(
    kube_api: KubeApi, layout: Layout, tmp_path: Path,
) -> None:
    fake_version(layout, "0.2.0", sha256="2" * 64)
    layout.current.unlink()
    layout.current.symlink_to(Path("versions") / "0.2.0")
    outcome = await upgrade_once(kube_api, tmp_path, {
        "version": "0.2.0", "downloadURL": f"file:///m/{GOOD}", "sha256": "2" * 64}, install_root=layout.root)

    assert "0.2.0 is already active" in outcome.status["error"]
    assert f"the service must run {layout.current}/bin/lcm-agent" in outcome.status["error"]
    assert outcome.restarts == []


async def test_a_kept_version_that_fails_its_smoke_test_is_not_switched_to(
    kube_api: KubeApi, layout: Layout, tmp_path: Path,
) -> None:
    fake_version(layout, "0.0.9", sha256="9" * 64, prints="0.0.8")
    outcome = await upgrade_once(kube_api, tmp_path, {
        "version": "0.0.9", "downloadURL": f"file:///m/{GOOD}", "sha256": "9" * 64}, install_root=layout.root)

    assert "smoke test failed" in outcome.status["error"]
    assert "'lcm-agent 0.0.8', expected 'lcm-agent 0.0.9'" in outcome.status["error"]
    assert layout.active() == layout.version_dir(RUNNING)


async def test_a_stop_during_an_attempt_ends_the_loop_at_once_and_leaves_nothing_behind(
    kube_api: KubeApi, layout: Layout, tmp_path: Path,
) -> None:
    requested = asyncio.Event()

    async def stall(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"PK")  # a download that has begun and then hangs
        requested.set()
        await asyncio.sleep(3600)
        return response

    app = web.Application()
    app.router.add_get("/{name}", stall)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    ns = kube_api.namespace
    objs = client.CustomObjectsApi(await kube_api.client())
    spec = {"version": "0.2.0", "downloadURL": f"http://{host}:{port}/{GOOD}", "sha256": "2" * 64}
    await objs.create_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES,
                                               lcm_machine(NAME, ns, agentConfig=spec))
    settings = UpgradeSettings(install_root=layout.root, work_dir=tmp_path / "upgrade",
                               backoff=Backoff(), running_version=RUNNING)
    stopping = asyncio.Event()
    try:
        async with await connect(kubeconfig=kube_api.kubeconfig_path) as kube:
            loop = start_upgrade_loop(kube, ns, stopping, restart=stopping.set, settings=settings)
            await asyncio.wait_for(requested.wait(), 30)
            stopping.set()
            await asyncio.wait_for(loop, 2.0)
    finally:
        await runner.cleanup()

    assert layout.active() == layout.version_dir(RUNNING)
    assert list((tmp_path / "upgrade").iterdir()) == [tmp_path / "upgrade" / "last-build.json"]
    status = _upgrade_status(await _machine(objs, ns))
    assert (status["attempt"], "finishedAt" in status) == (1, False), "an interrupted attempt shows no end"

"""Fixtures of the upgrade tests: the wheels (built once per session), an install root, a loopback mirror."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from upgrade_harness import RUNNING, Wheel, build_wheel, fake_version

from agent.adapters.install import Layout


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Wheel]:
    """``"good"``: lcm-agent 0.2.0; ``"broken"``: lcm-agent 0.2.1, which cannot start."""
    work = tmp_path_factory.mktemp("wheels")
    return {"good": build_wheel(work, "0.2.0"), "broken": build_wheel(work, "0.2.1", broken=True)}


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    """An install root whose ``current`` is the running version (a fake tree: the running venv is the
    test's own, which the upgrade clones)."""
    root = Layout(tmp_path / "opt" / "lcm-agent")
    fake_version(root, RUNNING)
    (root.current).symlink_to(Path("versions") / RUNNING)
    return root


@pytest.fixture
async def mirror(wheels: dict[str, Wheel]) -> AsyncIterator[str]:
    """``http://127.0.0.1:PORT`` serving the wheels' directory, as a release mirror would."""
    app = web.Application()
    app.router.add_static("/", wheels["good"].path.parent)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()

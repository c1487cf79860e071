"""Fixtures for tests that boot nspawn machines: ``lab`` (the shared image, bridge, package mirror and an
API simulator on the bridge, for one test module) and ``image`` (the cached machine image alone).

Booting is slow (the image is built once per host, minutes; each machine then takes tens of seconds to
install the agent), so a module shares its lab and its machines. Both skip, saying what is missing, on a
host that cannot run machines (not root, no systemd-nspawn, …).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from machines_harness import Lab

from testbed.cli.machines import open_lab, save_lab_info
from testbed.lab.machines.rootfs import ensure_rootfs
from testbed.lab.machines.sets import LabUnavailableError, check_host


def _require_host() -> None:
    try:
        check_host()
    except LabUnavailableError as exc:
        pytest.skip(str(exc))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def lab(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Lab]:
    _require_host()
    state = tmp_path_factory.mktemp("machines")
    tag = f"t{secrets.token_hex(2)}"
    async with open_lab(state, namespace=f"lab-{tag}") as fleet:
        save_lab_info(fleet, state)
        yield Lab(fleet, state, tag)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def image() -> Path:
    _require_host()
    return await ensure_rootfs()

"""The rendered user-data is valid for the cloud-init the machines run (``cloud-init schema``, 22.4)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from agent.decisions.cloudinit import UNIT_FILE, AgentBuild, MachineUserData, render_user_data
from testbed.lab.machines.rootfs import cloud_init_schema

pytestmark = pytest.mark.asyncio(loop_scope="session")

AGENT = AgentBuild(url="https://mirror.example.net/lcm/lcm_agent-0.1.0-py3-none-any.whl", sha256="0f" * 32,
                   index_url="https://mirror.example.net/pypi/simple/")
CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize("data", [
    MachineUserData(machine="ctl-1", namespace="cluster-a", api_server="https://regional.example.net:6443",
                    token="control-token", ca_pem=CA, agent=AGENT, unit=UNIT_FILE.read_text(),
                    mqtt_url="mqtts://regional.example.net:8883", mqtt_username="cluster-a.ctl-1",
                    mqtt_password="broker-password", mqtt_ca_pem=CA),
    MachineUserData(machine="wrk-1", namespace="cluster-a", api_server="https://regional.example.net:6443",
                    token="worker-token", agent=AGENT, unit=UNIT_FILE.read_text()),
    MachineUserData(machine="wrk-2", namespace="cluster-a", api_server="https://regional.example.net:6443",
                    token="worker-token", unit=UNIT_FILE.read_text(), agent=replace(
                        AGENT, tree_url="https://mirror.example.net/lcm/lcm_agent-0.1.0-py311-x86_64.tar.gz",
                        tree_sha256="1e" * 32)),
], ids=["control-with-mqtt", "worker", "worker-from-a-tree"])
async def test_cloud_init_schema_accepts_the_user_data(
    image: Path, tmp_path: Path, data: MachineUserData,
) -> None:
    path = tmp_path / "user-data"
    path.write_text(render_user_data(data))
    code, report = await cloud_init_schema(image, path)
    assert code == 0, report
    assert "Valid cloud-config" in report


async def test_cloud_init_schema_catches_a_broken_document(image: Path, tmp_path: Path) -> None:
    """The check can fail: a file mode cloud-init does not accept is reported."""
    path = tmp_path / "user-data"
    path.write_text("#cloud-config\nwrite_files:\n  - path: /etc/x\n    permissions: 600\n    nonsense: 1\n")
    code, report = await cloud_init_schema(image, path)
    assert code != 0
    assert "write_files" in report

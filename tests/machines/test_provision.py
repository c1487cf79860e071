"""``lcmctl cloud-init provision``: a machine's identity as a provider issues it. The token it writes reaches
the machine's own LCMMachine and nothing else."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from agent.adapters.kube import KubeError, connect
from regional.provisioning import LCMMACHINES, NAMESPACES
from testbed.sim.testing import KubeApi

pytestmark = pytest.mark.kube

LCMCTL = str(Path(sys.executable).with_name("lcmctl"))


async def provision(kube_api: KubeApi, machine: str, token: Path) -> subprocess.CompletedProcess[str]:
    argv = [LCMCTL, "cloud-init", "provision", "--kubeconfig", str(kube_api.kubeconfig_path),
            "--namespace", kube_api.namespace, "--machine", machine, "--type", "worker", "--cluster", "c1",
            "--token-file", str(token)]
    return await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=120,
                                   check=False)


async def test_the_token_reaches_its_own_machine_only(kube_api: KubeApi, tmp_path: Path) -> None:
    token = tmp_path / "ctl-1.token"
    done = await provision(kube_api, "ctl-1", token)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(os.stat(token).st_mode) == 0o600
    assert token.read_text().strip() not in done.stdout + done.stderr
    assert (await provision(kube_api, "ctl-2", tmp_path / "ctl-2.token")).returncode == 0
    assert (await provision(kube_api, "ctl-1", tmp_path / "again.token")).returncode == 0  # a rerun is fine

    server = (await kube_api.client()).configuration.host
    ca = (await kube_api.client()).configuration.ssl_ca_cert
    async with await connect(server=server, ca_file=Path(ca) if ca else None, token_file=token) as agent:
        mine = await agent.get(LCMMACHINES, kube_api.namespace, "ctl-1")
        spec = mine["spec"]
        assert (spec["clusterName"], spec["type"], spec["lcmType"]) == ("c1", "worker", "ucp")
        with pytest.raises(KubeError) as refused:
            await agent.get(LCMMACHINES, kube_api.namespace, "ctl-2")
        assert refused.value.status == 403


async def test_a_machine_name_taken_in_another_namespace_is_refused(
    kube_api: KubeApi, tmp_path: Path,
) -> None:
    """A machine's name is its MQTT broker user: a second machine of that name elsewhere could speak for it
    on the MQTT plane, so provisioning refuses it and writes no token."""
    assert (await provision(kube_api, "w-1", tmp_path / "first.token")).returncode == 0
    admin = await kube_api.kube()
    other = f"{kube_api.namespace}-b"
    await admin.create(NAMESPACES, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}})
    try:
        argv = [LCMCTL, "cloud-init", "provision", "--kubeconfig", str(kube_api.kubeconfig_path),
                "--namespace", other, "--machine", "w-1", "--token-file", str(tmp_path / "second.token")]
        done = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=120,
                                       check=False)
        assert done.returncode == 1
        assert f"already exists in namespace {kube_api.namespace}" in done.stderr
        assert not (tmp_path / "second.token").exists()
        with pytest.raises(KubeError) as absent:
            await admin.get(LCMMACHINES, other, "w-1")
        assert absent.value.status == 404
    finally:
        await admin.delete(NAMESPACES, "", other)

"""The real control plane (``testbed.kube``): built once per module digest, started by ``lcmctl kube up``
and stopped by ``down``, its controllers doing what the project relies on, and a failure that names the
component with its log instead of hanging."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from agent.adapters.kube import Kube, KubeError, Resource, connect
from agent.api.crds import load_crds
from testbed.kube import build
from testbed.kube.plane import ControlPlane, PlaneError, PlaneSettings
from testbed.sim.testing import LCM_GROUP, LCM_VERSION, KubeApi, lcm_machine

LCMCTL = str(Path(sys.executable).with_name("lcmctl"))
CONFIGMAPS = Resource("", "v1", "configmaps")
SECRETS = Resource("", "v1", "secrets")
MACHINES = Resource(LCM_GROUP, LCM_VERSION, "lcmmachines")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)


def test_the_cache_is_keyed_by_the_module(tmp_path: Path) -> None:
    module = tmp_path / "kube"
    shutil.copytree(build.MODULE, module)
    before = build.module_digest(module)
    assert before == build.module_digest(build.MODULE)
    with (module / "go.sum").open("a") as f:
        f.write("example.com/extra v1.0.0 h1:AAAA=\n")
    assert build.module_digest(module) != before
    assert build.kubernetes_version(module).startswith("v1.")


def test_without_go_the_build_says_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LCM_KUBE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(build.BuildError, match="no `go` is on PATH"):
        build.ensure_built(print)


@pytest.mark.real_server("kube-controller-manager's garbage collector")
async def test_garbage_collection_and_service_account_tokens(kube_api: KubeApi) -> None:
    ns = kube_api.namespace
    async with await connect(kubeconfig=kube_api.kubeconfig_path) as kube:
        owner = await kube.create(MACHINES, ns, lcm_machine("m1", ns))
        ref = {"apiVersion": f"{LCM_GROUP}/{LCM_VERSION}", "kind": "LCMMachine", "name": "m1",
               "uid": owner["metadata"]["uid"]}
        await kube.create(CONFIGMAPS, ns, {"apiVersion": "v1", "kind": "ConfigMap",
                                           "metadata": {"name": "owned", "ownerReferences": [ref]}})
        await kube.delete(MACHINES, ns, "m1")
        await _until_gone(kube, CONFIGMAPS, ns, "owned")
    account = await kube_api.service_account_kubeconfig(ns, "reader")
    async with await connect(kubeconfig=account) as as_account:
        with pytest.raises(KubeError) as refused:
            await as_account.get(SECRETS, ns, "reader-token")
        assert refused.value.status == 403  # the token is its own, and RBAC still applies to it


async def _until_gone(kube: Kube, res: Resource, ns: str, name: str) -> None:
    for _ in range(600):
        try:
            await kube.get(res, ns, name)
        except KubeError as exc:
            if exc.status == 404:
                return
            raise
        await asyncio.sleep(0.1)
    pytest.fail(f"{res.plural}/{name} outlived its owner")


def test_kube_up_serves_kubectl_and_down_stops_it(tmp_path: Path) -> None:
    state = tmp_path / "kube"
    up = subprocess.run([LCMCTL, "kube", "up", "--state-dir", str(state)], capture_output=True, text=True,
                        timeout=600, check=False)
    assert up.returncode == 0, up.stderr
    kubeconfig = state / "admin.kubeconfig"
    assert f"export KUBECONFIG={kubeconfig}" in up.stdout
    assert oct(kubeconfig.stat().st_mode & 0o777) == "0o600"
    pids = json.loads((state / "pids.json").read_text())["pids"]
    try:
        again = subprocess.run([LCMCTL, "kube", "up", "--state-dir", str(state)], capture_output=True,
                               text=True, timeout=60, check=True)
        assert "already running" in again.stdout
        crds = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "get", "crds", "-o", "name"],
                              capture_output=True, text=True, timeout=60, check=True)
        assert "customresourcedefinition.apiextensions.k8s.io/lcmmachines.lcm.mirantis.com" in crds.stdout
        token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
        assert token not in up.stdout + up.stderr
        assert token not in (state / "pids.json").read_text()
    finally:
        down = subprocess.run([LCMCTL, "kube", "down", "--state-dir", str(state)], capture_output=True,
                              text=True, timeout=120, check=False)
    assert down.stdout.startswith("stopped ")
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids.values())


async def test_a_component_that_cannot_start_is_named_with_its_log(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = PlaneSettings(tmp_path / "kube", port=taken.getsockname()[1])
        plane = ControlPlane(settings, build.ensure_built(print))
        with pytest.raises(PlaneError) as failed:
            await plane.start()
    message = str(failed.value)
    assert message.startswith("kube-apiserver exited")
    assert "address already in use" in message
    assert str(settings.log_dir / "kube-apiserver.log") in message
    assert not settings.pids_path.exists()
    assert plane.pids() == {}
    assert os.listdir(settings.log_dir)


@pytest.mark.real_server("CRD conditions (structural schema checks)")
async def test_the_crds_are_accepted_as_they_are(kube_api: KubeApi) -> None:
    crds = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)
    async with await connect(kubeconfig=kube_api.kubeconfig_path) as kube:
        for manifest in load_crds():
            stored = await kube.get(crds, "", manifest["metadata"]["name"])
            conditions = {c["type"]: c["status"] for c in stored["status"]["conditions"]}
            assert conditions.get("Established") == "True"
            assert conditions.get("NamesAccepted") == "True"
            assert "NonStructuralSchema" not in conditions
            assert stored["spec"]["names"].get("shortNames") == manifest["spec"]["names"].get("shortNames")
            for sent, kept in zip(manifest["spec"]["versions"], stored["spec"]["versions"], strict=True):
                assert kept["schema"] == sent["schema"], "the server changed the schema it was given"
                assert kept.get("additionalPrinterColumns") == sent.get("additionalPrinterColumns")


def test_a_killed_test_session_leaves_no_control_plane(tmp_path: Path) -> None:
    script = f"""
import asyncio, json, os, signal
from pathlib import Path
from testbed.kube import build
from testbed.kube.plane import ControlPlane, PlaneSettings
plane = ControlPlane(PlaneSettings(Path({str(tmp_path / "kube")!r}), die_with_parent=True),
                     build.ensure_built(print))
asyncio.run(plane.start())
print(json.dumps(plane.pids()), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == -9, done.stderr
    pids = json.loads(done.stdout.splitlines()[-1])
    assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager"}
    for _ in range(600):
        if not any(Path(f"/proc/{pid}/cmdline").exists() and Path(f"/proc/{pid}/cmdline").read_bytes()
                   for pid in pids.values()):
            return
        time.sleep(0.05)
    pytest.fail(f"components outlived the process that started them: {pids}")

"""kubectl, unchanged, against the simulator: discovery, client-side apply of the CRDs and samples, printer
columns, short names, JSON output, Secrets and delete."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from pathlib import Path

import pytest
import yaml

from agent.sim.testing import KubeApi

KUBECTL = shutil.which("kubectl")
ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.kube,
    pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (Debian package kubernetes-client)"),
]


async def kubectl(kube_api: KubeApi, *args: str) -> str:
    """Runs kubectl with the test's kubeconfig and a private discovery cache; fails on a non-zero exit."""
    cache = kube_api.kubeconfig_path.parent / "kubectl-cache"
    proc = await asyncio.create_subprocess_exec(
        str(KUBECTL), "--kubeconfig", str(kube_api.kubeconfig_path), "--cache-dir", str(cache), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, f"kubectl {' '.join(args)} failed: {err.decode()}"
    return out.decode()


@pytest.fixture
async def applied(kube_api: KubeApi) -> KubeApi:
    await kubectl(kube_api, "apply", "-f", str(ROOT / "deploy" / "crds"))
    await kubectl(kube_api, "apply", "-f", str(ROOT / "deploy" / "samples"))
    return kube_api


def sample_machines() -> list[tuple[str, str]]:
    """(namespace, name) of the LCMMachines in deploy/samples."""
    found = []
    for path in sorted((ROOT / "deploy" / "samples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "LCMMachine":
                found.append((doc["metadata"].get("namespace", "default"), doc["metadata"]["name"]))
    return found


async def test_get_shows_the_printer_columns(applied: KubeApi) -> None:
    namespace, name = sample_machines()[0]
    out = await kubectl(applied, "get", "lcmmachines", "-n", namespace)
    assert out.splitlines()[0].split() == ["NAME", "TYPE", "STATE", "PENDING", "ITEMS", "RELEASE", "AGE"]
    assert name in out
    everywhere = await kubectl(applied, "get", "lcmmachines", "-A")
    assert everywhere.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert len(everywhere.splitlines()) == len(sample_machines()) + 1


async def test_short_name_and_json_output(applied: KubeApi) -> None:
    namespace, name = sample_machines()[0]
    assert name in await kubectl(applied, "get", "lcmm", "-n", namespace)
    obj = json.loads(await kubectl(applied, "get", "lcmmachine", name, "-n", namespace, "-o", "json"))
    assert (obj["kind"], obj["metadata"]["name"]) == ("LCMMachine", name)
    again = json.loads(await kubectl(applied, "get", f"lcmmachines.lcm.mirantis.com/{name}", "-n", namespace,
                                     "-o", "json"))
    assert again == obj


async def test_apply_again_changes_nothing_and_edits_apply(applied: KubeApi) -> None:
    out = await kubectl(applied, "apply", "-f", str(ROOT / "deploy" / "samples"))
    assert "unchanged" in out
    namespace, name = sample_machines()[0]
    await kubectl(applied, "label", "lcmmachine", name, "-n", namespace, "tier=gold")
    labelled = json.loads(await kubectl(applied, "get", "lcmm", name, "-n", namespace, "-o", "json"))
    assert labelled["metadata"]["labels"]["tier"] == "gold"


async def test_secrets_apply_get_and_delete(kube_api: KubeApi) -> None:
    ns = kube_api.namespace
    manifest = await kubectl(kube_api, "create", "secret", "generic", "join", "-n", ns,
                             "--from-literal=token=abc", "--dry-run=client", "-o", "yaml")
    path = kube_api.kubeconfig_path.parent / "secret.yaml"
    await asyncio.to_thread(path.write_text, manifest)
    await kubectl(kube_api, "apply", "-f", str(path))
    assert "join" in await kubectl(kube_api, "get", "secret", "-n", ns)
    token = await kubectl(kube_api, "get", "secret", "join", "-n", ns, "-o", "jsonpath={.data.token}")
    assert base64.b64decode(token) == b"abc"
    await kubectl(kube_api, "delete", "secret", "join", "-n", ns)
    assert "join" not in await kubectl(kube_api, "get", "secrets", "-n", ns)


async def test_delete_a_machine_by_short_name(applied: KubeApi) -> None:
    namespace, name = sample_machines()[0]
    assert f'"{name}" deleted' in await kubectl(applied, "delete", "lcmm", name, "-n", namespace)
    assert name not in await kubectl(applied, "get", "lcmmachines", "-n", namespace)

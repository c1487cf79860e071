"""kubectl, unchanged, against the real API server and the simulator: discovery, client-side and server-side
apply of the CRDs and samples, printer columns, short names, JSON output, ``explain`` from the CRDs' OpenAPI
schemas, ``get -w``, ``auth can-i``, Secrets and delete.

The samples go into the test's own namespace (their ``demo`` rewritten), and kubectl's cache and every file
a test writes into its temporary folder: a shared or a user's cluster keeps nothing of these tests."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.sim.testing import KubeApi

KUBECTL = shutil.which("kubectl")
ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.kube,
    pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (Debian package kubernetes-client)"),
]


def kubectl_argv(kube_api: KubeApi, *args: str) -> list[str]:
    """kubectl with the test's kubeconfig and a discovery cache in the test's own folder."""
    cache = kube_api.workdir / "kubectl-cache"
    return [str(KUBECTL), "--kubeconfig", str(kube_api.kubeconfig_path), "--cache-dir", str(cache), *args]


async def run_kubectl(kube_api: KubeApi, *args: str, kubeconfig: Path | None = None) -> tuple[int, str, str]:
    """kubectl's exit status, stdout and stderr."""
    argv = kubectl_argv(kube_api, *args)
    if kubeconfig is not None:
        argv[2] = str(kubeconfig)
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def kubectl(kube_api: KubeApi, *args: str) -> str:
    """Runs kubectl; fails the test on a non-zero exit."""
    code, out, err = await run_kubectl(kube_api, *args)
    assert code == 0, f"kubectl {' '.join(args)} failed: {err}"
    return out


def samples_in(namespace: str) -> list[dict[str, Any]]:
    """deploy/samples, the demo namespace replaced by ``namespace`` (which exists: no Namespace object)."""
    docs = []
    for path in sorted((ROOT / "deploy" / "samples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc["kind"] == "Namespace":
                continue
            if "namespace" in doc["metadata"]:
                doc["metadata"]["namespace"] = namespace
            docs.append(doc)
    return docs


def sample_machines(namespace: str) -> list[str]:
    return [doc["metadata"]["name"] for doc in samples_in(namespace) if doc["kind"] == "LCMMachine"]


def write_samples(kube_api: KubeApi) -> Path:
    path = kube_api.workdir / "samples.yaml"
    path.write_text(yaml.safe_dump_all(samples_in(kube_api.namespace)))
    return path


@pytest.fixture
async def applied(kube_api: KubeApi) -> KubeApi:
    await kubectl(kube_api, "apply", "-f", str(ROOT / "deploy" / "crds"))
    await kubectl(kube_api, "apply", "-f", str(write_samples(kube_api)))
    return kube_api


async def test_get_shows_the_printer_columns(applied: KubeApi) -> None:
    namespace, names = applied.namespace, sample_machines(applied.namespace)
    out = await kubectl(applied, "get", "lcmmachines", "-n", namespace)
    columns = ["NAME", "TYPE", "STATE", "PENDING", "WAITING", "ITEMS", "RELEASE", "AGE"]
    assert out.splitlines()[0].split() == columns
    assert sorted(row.split()[0] for row in out.splitlines()[1:]) == sorted(names)
    everywhere = await kubectl(applied, "get", "lcmmachines", "-A")
    assert everywhere.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    ours = [row.split()[1] for row in everywhere.splitlines()[1:] if row.split()[0] == namespace]
    assert sorted(ours) == sorted(names)


async def test_short_name_and_json_output(applied: KubeApi) -> None:
    namespace, name = applied.namespace, sample_machines(applied.namespace)[0]
    assert name in await kubectl(applied, "get", "lcmm", "-n", namespace)
    obj = json.loads(await kubectl(applied, "get", "lcmmachine", name, "-n", namespace, "-o", "json"))
    assert (obj["kind"], obj["metadata"]["name"]) == ("LCMMachine", name)
    again = json.loads(await kubectl(applied, "get", f"lcmmachines.lcm.mirantis.com/{name}", "-n", namespace,
                                     "-o", "json"))
    assert again == obj


async def test_apply_again_changes_nothing_and_edits_apply(applied: KubeApi) -> None:
    out = await kubectl(applied, "apply", "-f", str(write_samples(applied)))
    assert "unchanged" in out
    namespace, name = applied.namespace, sample_machines(applied.namespace)[0]
    await kubectl(applied, "label", "lcmmachine", name, "-n", namespace, "tier=gold")
    labelled = json.loads(await kubectl(applied, "get", "lcmm", name, "-n", namespace, "-o", "json"))
    assert labelled["metadata"]["labels"]["tier"] == "gold"


async def test_secrets_apply_get_and_delete(kube_api: KubeApi) -> None:
    ns = kube_api.namespace
    manifest = await kubectl(kube_api, "create", "secret", "generic", "join", "-n", ns,
                             "--from-literal=token=abc", "--dry-run=client", "-o", "yaml")
    path = kube_api.workdir / "secret.yaml"
    await asyncio.to_thread(path.write_text, manifest)
    await kubectl(kube_api, "apply", "-f", str(path))
    assert "join" in await kubectl(kube_api, "get", "secret", "-n", ns)
    token = await kubectl(kube_api, "get", "secret", "join", "-n", ns, "-o", "jsonpath={.data.token}")
    assert base64.b64decode(token) == b"abc"
    await kubectl(kube_api, "delete", "secret", "join", "-n", ns)
    assert "join" not in await kubectl(kube_api, "get", "secrets", "-n", ns)


async def test_delete_a_machine_by_short_name(applied: KubeApi) -> None:
    namespace, name = applied.namespace, sample_machines(applied.namespace)[0]
    assert f'"{name}" deleted' in await kubectl(applied, "delete", "lcmm", name, "-n", namespace)
    assert name not in await kubectl(applied, "get", "lcmmachines", "-n", namespace)


@pytest.mark.real_server("server-side apply (managed fields)")
async def test_server_side_apply_owns_fields_and_reports_conflicts(kube_api: KubeApi) -> None:
    path = write_samples(kube_api)
    await kubectl(kube_api, "apply", "--server-side", "--field-manager=lcm-test", "-f", str(path))
    namespace, name = kube_api.namespace, sample_machines(kube_api.namespace)[0]
    obj = json.loads(await kubectl(kube_api, "get", "lcmm", name, "-n", namespace, "-o", "json",
                                   "--show-managed-fields"))
    assert "lcm-test" in {m["manager"] for m in obj["metadata"]["managedFields"]}
    assert obj["spec"]["type"] == "control"
    await kubectl(kube_api, "patch", "lcmm", name, "-n", namespace, "--type=merge",
                  "-p", '{"spec": {"type": "worker"}}', "--field-manager=someone-else")
    code, _, err = await run_kubectl(kube_api, "apply", "--server-side", "--field-manager=lcm-test",
                                     "-f", str(path))
    assert code != 0
    assert "conflict" in err.lower()
    assert ".spec.type" in err
    await kubectl(kube_api, "apply", "--server-side", "--force-conflicts", "--field-manager=lcm-test",
                  "-f", str(path))
    again = json.loads(await kubectl(kube_api, "get", "lcmm", name, "-n", namespace, "-o", "json"))
    assert again["spec"]["type"] == obj["spec"]["type"]


@pytest.mark.real_server("OpenAPI v3 documents")
async def test_explain_reads_the_crd_schema(kube_api: KubeApi) -> None:
    out = await kubectl(kube_api, "explain", "lcmmachine.spec.stateItems")
    assert "FIELDS:" in out
    for field in ("runner", "name", "version", "params", "phase"):
        assert f"\n  {field}\t" in out or f"\n  {field} " in out, out


@pytest.mark.real_server("SelfSubjectAccessReview")
async def test_auth_can_i_answers_for_the_admin_and_an_agent(kube_api: KubeApi) -> None:
    ns = kube_api.namespace
    assert (await kubectl(kube_api, "auth", "can-i", "delete", "lcmmachines", "-n", ns)).strip() == "yes"
    account = await kube_api.service_account_kubeconfig(ns, "nobody")
    code, out, _ = await run_kubectl(kube_api, "auth", "can-i", "delete", "lcmmachines", "-n", ns,
                                     kubeconfig=account)
    assert (out.strip(), code) == ("no", 1)


async def test_get_watch_prints_a_row_per_change(applied: KubeApi) -> None:
    namespace, name = applied.namespace, sample_machines(applied.namespace)[0]
    proc = await asyncio.create_subprocess_exec(
        *kubectl_argv(applied, "get", "lcmm", name, "-n", namespace, "-w", "--no-headers", "--show-labels"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    try:
        first = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert first.split()[0].decode() == name
        await kubectl(applied, "label", "lcmm", name, "-n", namespace, "tier=gold")
        changed = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert changed.split()[0].decode() == name
        assert "tier=gold" in changed.decode()
    finally:
        proc.kill()
        await proc.wait()

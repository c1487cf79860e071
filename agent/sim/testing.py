"""The ``kube_api`` test handle: a fresh simulator per test, or a real cluster when one is given.

With ``LCM_TEST_KUBECONFIG`` set, the same tests run against that cluster (kind, k3s): the handle then has
no simulator and no fault injection, and each test still gets its own namespace, deleted afterwards, so runs
do not see each other's objects. Clients come from kubeconfig files through kubernetes_asyncio, never from
the simulator's internals, so a test exercises exactly what the agent and scheduler use.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio import client, config

from agent.api.crds import crd_paths
from agent.sim.faults import Faults
from agent.sim.kubeconfig import write_kubeconfig
from agent.sim.runner import Simulator

ENV_KUBECONFIG = "LCM_TEST_KUBECONFIG"
LCM_GROUP, LCM_VERSION, MACHINES = "lcm.mirantis.com", "v1alpha1", "lcmmachines"
MERGE_PATCH = "application/merge-patch+json"
TEST_BOOKMARK_INTERVAL = 0.2
"""Seconds between bookmarks in tests: fast enough that a test sees one without waiting a minute."""


class KubeApi:
    """What a test gets: kubeconfig, admin token, a namespace of its own, clients, faults if simulated."""

    def __init__(self, kubeconfig_path: Path, *, simulator: Simulator | None, workdir: Path) -> None:
        self.kubeconfig_path = kubeconfig_path
        self.simulator = simulator
        self.namespace = f"lcm-test-{secrets.token_hex(3)}"
        self._workdir = workdir
        self._clients: list[client.ApiClient] = []

    @property
    def admin_token(self) -> str:
        """The kubeconfig's bearer token ("" for a real cluster reached with a client certificate)."""
        return str(_current(self.kubeconfig_path)[1].get("token", ""))

    @property
    def faults(self) -> Faults | None:
        """The simulator's fault handle; None against a real cluster, which has no fault injection."""
        return self.simulator.faults if self.simulator else None

    async def client(self, kubeconfig: Path | None = None) -> client.ApiClient:
        """A kubernetes_asyncio client for the admin (or for ``kubeconfig``), closed when the test ends."""
        cfg = client.Configuration()
        await config.load_kube_config(config_file=str(kubeconfig or self.kubeconfig_path),
                                      client_configuration=cfg)
        api = client.ApiClient(cfg)
        self._clients.append(api)
        return api

    async def service_account_kubeconfig(self, namespace: str, name: str) -> Path:
        """Creates a ServiceAccount and its token Secret; returns a kubeconfig that authenticates as it."""
        core = client.CoreV1Api(await self.client())
        await core.create_namespaced_service_account(
            namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name)))
        annotations = {"kubernetes.io/service-account.name": name}
        secret = client.V1Secret(metadata=client.V1ObjectMeta(name=f"{name}-token", annotations=annotations),
                                 type="kubernetes.io/service-account-token")
        await core.create_namespaced_secret(namespace, secret)
        for _ in range(100):
            found = await core.read_namespaced_secret(f"{name}-token", namespace)
            if found.data and found.data.get("token"):
                token = base64.b64decode(found.data["token"]).decode()
                break
            await asyncio.sleep(0.05)
        else:
            raise TimeoutError(f"the token of ServiceAccount {namespace}/{name} was never issued")
        cluster = _current(self.kubeconfig_path)[0]
        ca = cluster.get("certificate-authority-data")
        ca_pem = base64.b64decode(ca) if ca else _read_optional(cluster.get("certificate-authority"))
        path = self._workdir / f"kubeconfig-{namespace}-{name}"
        return write_kubeconfig(path, cluster["server"], token, ca_pem=ca_pem, user=name)

    async def restart(self) -> None:
        """Stops and starts the simulator on the same port and state (persistence, reconnects)."""
        if self.simulator is None:
            raise RuntimeError("restart needs the simulator")
        await self.simulator.stop()
        await self.simulator.start()

    async def create_namespace(self) -> None:
        core = client.CoreV1Api(await self.client())
        await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=self.namespace)))

    async def close(self) -> None:
        """Deletes the test's namespace on a real cluster, closes the clients, stops the simulator."""
        if self.simulator is None:
            with contextlib.suppress(client.ApiException):
                await client.CoreV1Api(await self.client()).delete_namespace(self.namespace)
        for api in self._clients:
            await api.close()
        if self.simulator is not None:
            await self.simulator.stop()


@contextlib.asynccontextmanager
async def open_kube_api(workdir: Path) -> AsyncIterator[KubeApi]:
    """A running simulator in ``workdir`` (or the cluster of ``LCM_TEST_KUBECONFIG``) for one test."""
    real = os.environ.get(ENV_KUBECONFIG)
    if real:
        simulator, kubeconfig = None, Path(real)
    else:
        simulator = Simulator(workdir / "sim", port=0, crd_paths=crd_paths(),
                              bookmark_interval=TEST_BOOKMARK_INTERVAL)
        await simulator.start()
        kubeconfig = simulator.kubeconfig_path
    api = KubeApi(kubeconfig, simulator=simulator, workdir=workdir)
    try:
        await api.create_namespace()
        yield api
    finally:
        await api.close()


def lcm_machine(name: str, namespace: str, *, labels: dict[str, str] | None = None,
                **spec: Any) -> dict[str, Any]:
    """A minimal valid LCMMachine body: a worker of cluster "demo" unless ``spec`` says otherwise, of the
    ``ucp`` family at stack version 1.0.0 as the scheduler writes it (so all items done means Ready)."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": f"{LCM_GROUP}/{LCM_VERSION}", "kind": "LCMMachine", "metadata": metadata,
            "spec": {"clusterName": "demo", "type": "worker", "lcmType": "ucp",
                     "components": {"ucpVersion": "1.0.0"}, **spec}}


async def merge_patch(
    objs: client.CustomObjectsApi, namespace: str, name: str, patch: dict[str, Any], *, status: bool = False,
) -> dict[str, Any]:
    """A JSON merge patch of an LCMMachine (or its status): CustomObjectsApi would send a dict as a JSON patch
    unless told the content type, which its typed signature does not declare."""
    method = objs.patch_namespaced_custom_object_status if status else objs.patch_namespaced_custom_object
    options: dict[str, Any] = {"_content_type": MERGE_PATCH}
    patched: dict[str, Any] = await method(LCM_GROUP, LCM_VERSION, namespace, MACHINES, name, patch,
                                           **options)
    return patched


def api_status(exc: client.ApiException) -> dict[str, Any]:
    """The ``Status`` body of a failed call."""
    status: dict[str, Any] = json.loads(exc.body or b"{}")
    return status


def _current(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The cluster and user entries of a kubeconfig's current context."""
    doc = yaml.safe_load(path.read_text())
    context = next(c for c in doc["contexts"] if c["name"] == doc["current-context"])["context"]
    cluster = next(c for c in doc["clusters"] if c["name"] == context["cluster"])["cluster"]
    user = next(u for u in doc["users"] if u["name"] == context["user"])["user"]
    return cluster, user


def _read_optional(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None

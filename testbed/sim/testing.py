"""The ``kube_api`` test handle: a fresh simulator per test, or a real API server shared by the session.

Against a real server (the project's own control plane, ``testbed.kube``, or the user's cluster of
``LCM_TEST_KUBECONFIG``) the handle has no simulator and no fault injection; each test gets its own
namespace, deleted afterwards, and every cluster-scoped object the test made (ClusterReleases, ClusterRoles
and their bindings, other namespaces) is deleted too, so tests sharing a server do not see each other's
objects. Clients come from kubeconfig files through kubernetes_asyncio, never from the simulator's
internals, so a test exercises exactly what the agent and scheduler use.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio import client, config

from agent.adapters.kube import Endpoint, Kube, KubeError, Resource, from_kubeconfig
from agent.adapters.watching import Change, watch_resource
from agent.api.crds import crd_paths, load_crds
from testbed.kubeconfig import write_kubeconfig
from testbed.sim.faults import Faults
from testbed.sim.runner import Simulator

LCM_GROUP, LCM_VERSION, MACHINES = "lcm.mirantis.com", "v1alpha1", "lcmmachines"
MERGE_PATCH = "application/merge-patch+json"
CLUSTER_SCOPED = (
    Resource("", "v1", "namespaces", namespaced=False),
    Resource("rbac.authorization.k8s.io", "v1", "clusterroles", namespaced=False),
    Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", namespaced=False),
    *(Resource(crd["spec"]["group"], crd["spec"]["versions"][0]["name"], crd["spec"]["names"]["plural"],
               namespaced=False) for crd in load_crds() if crd["spec"]["scope"] == "Cluster"),
)
"""What a test may create outside its namespace; on a shared server, whatever it made is deleted after it."""
TEST_BOOKMARK_INTERVAL = 0.2
"""Seconds between bookmarks in tests: fast enough that a test sees one without waiting a minute."""


class KubeApi:
    """What a test gets: kubeconfig, admin token, a namespace of its own, clients, faults if simulated."""

    def __init__(self, kubeconfig_path: Path, *, simulator: Simulator | None, workdir: Path) -> None:
        self.kubeconfig_path = kubeconfig_path
        self.simulator = simulator
        self.namespace = f"lcm-test-{secrets.token_hex(3)}"
        self.workdir = workdir
        """The test's own temporary folder: whatever it writes (kubeconfigs, manifests, caches) goes here."""
        self._clients: list[client.ApiClient | Kube] = []
        self._before: set[tuple[Resource, str]] = set()

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

    async def kube(self, kubeconfig: Path | None = None) -> Kube:
        """The project's own client for the admin (or for ``kubeconfig``), closed when the test ends."""
        kube = Kube(await from_kubeconfig(kubeconfig or self.kubeconfig_path))
        self._clients.append(kube)
        return kube

    async def service_account_token(self, namespace: str, name: str) -> str:
        """Creates a ServiceAccount and its token Secret; returns the token once the API has issued it."""
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
                return base64.b64decode(found.data["token"]).decode()
            await asyncio.sleep(0.05)
        raise TimeoutError(f"the token of ServiceAccount {namespace}/{name} was never issued")

    async def service_account_kubeconfig(self, namespace: str, name: str) -> Path:
        """Creates a ServiceAccount and its token Secret; returns a kubeconfig that authenticates as it."""
        token = await self.service_account_token(namespace, name)
        cluster = _current(self.kubeconfig_path)[0]
        ca = cluster.get("certificate-authority-data")
        ca_pem = base64.b64decode(ca) if ca else _read_optional(cluster.get("certificate-authority"))
        path = self.workdir / f"kubeconfig-{namespace}-{name}"
        return write_kubeconfig(path, cluster["server"], token, ca_pem=ca_pem, user=name)

    async def restart(self) -> None:
        """Stops and starts the simulator on the same port and state (persistence, reconnects)."""
        if self.simulator is None:
            raise RuntimeError("restart needs the simulator")
        await self.simulator.stop()
        await self.simulator.start()

    async def _cluster_objects(self) -> set[tuple[Resource, str]]:
        kube = await self.kube()
        found = set()
        for res in CLUSTER_SCOPED:
            try:
                listed = await kube.list_objects(res)
            except KubeError as exc:  # a kind this cluster does not serve (yet) holds nothing of ours
                if exc.status == 404:
                    continue
                raise
            found |= {(res, item["metadata"]["name"]) for item in listed.get("items", [])}
        return found

    async def create_namespace(self) -> None:
        core = client.CoreV1Api(await self.client())
        await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=self.namespace)))

    async def remember_cluster_objects(self) -> None:
        """Notes the cluster-scoped objects present before the test, so ``close`` deletes only its own."""
        if self.simulator is None:
            self._before = await self._cluster_objects()

    async def close(self) -> None:
        """On a real server deletes the test's namespace and cluster-scoped objects; closes the clients and
        stops the simulator."""
        if self.simulator is None:
            kube = await self.kube()
            for (res, name) in sorted(await self._cluster_objects() - self._before, key=str):
                with contextlib.suppress(KubeError):
                    await kube.delete(res, "", name)
        for api in self._clients:
            await api.close()
        if self.simulator is not None:
            await self.simulator.stop()


@contextlib.asynccontextmanager
async def open_kube_api(workdir: Path, server: Path | None = None) -> AsyncIterator[KubeApi]:
    """For one test: the real API server whose admin kubeconfig is ``server``, else a simulator of its own
    in ``workdir``."""
    simulator = None
    if server is None:
        simulator = Simulator(workdir / "sim", port=0, crd_paths=crd_paths(),
                              bookmark_interval=TEST_BOOKMARK_INTERVAL)
        await simulator.start()
        server = simulator.kubeconfig_path
    api = KubeApi(server, simulator=simulator, workdir=workdir)
    try:
        await api.remember_cluster_objects()
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


async def field_of(kube: Kube, res: Resource, namespace: str, name: str, *path: str) -> Any:
    """A field of an object as the API has it now (``status``, ``phase``...); None when the object or the
    field is absent, so a test can wait for an object to appear, change or go with one question."""
    try:
        node: Any = await kube.get(res, namespace, name)
    except KubeError as exc:
        if exc.status == 404:
            return None
        raise
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


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


def token_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT (a ServiceAccount token), unverified: what a test checks a token says."""
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


async def token_answer(admin: Kube, token: str, namespace: str) -> tuple[int, str]:
    """Status and message of a request with ``token`` (to the server ``admin`` reaches) that no node may
    make, listing Secrets: 403 naming the user when the token authenticates, 401 when it does not."""
    there = admin.endpoint
    endpoint = Endpoint.with_token(there.server, token, ca_file=there.ca_file, verify=there.verify)
    async with Kube(endpoint) as kube:
        try:
            await kube.list_objects(Resource("", "v1", "secrets"), namespace)
        except KubeError as exc:
            return exc.status, exc.message
    return 200, ""


def _current(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The cluster and user entries of a kubeconfig's current context."""
    doc = yaml.safe_load(path.read_text())
    context = next(c for c in doc["contexts"] if c["name"] == doc["current-context"])["context"]
    cluster = next(c for c in doc["clusters"] if c["name"] == context["cluster"])["cluster"]
    user = next(u for u in doc["users"] if u["name"] == context["user"])["user"]
    return cluster, user


def _read_optional(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


class Recorder:
    """Every version of every object of one kind in the namespace, in the order the API committed them."""

    def __init__(self, kube: Kube, res: Resource, namespace: str) -> None:
        self.kube, self.res, self.namespace = kube, res, namespace
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Event()

    async def __aenter__(self) -> Recorder:
        self._task = asyncio.create_task(self._run())
        await self._started.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        async for event in watch_resource(self.kube, self.res, self.namespace):
            self._started.set()
            if isinstance(event, Change):
                self.events.append((event.type, event.object))

    def versions(self, name: str) -> list[dict[str, Any]]:
        return [obj for _, obj in self.events if obj["metadata"]["name"] == name]


@dataclass
class Clock:
    """A scheduler's clock (``Scheduler(clock=...)``): real time moved by ``offset``, which the test sets, so
    that a maintenance window opens without anybody sleeping for it."""

    offset: timedelta = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def set(self, when: datetime) -> None:
        self.offset = when - datetime.now(UTC)

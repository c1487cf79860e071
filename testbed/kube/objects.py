"""YAML objects loaded into a real API server, as ``kubectl apply -f DIR`` would: namespaces first, then
the rest in file order, each created or (when it exists) replaced.

The kinds are those the project's manifests use (``deploy/samples``, ``deploy/rbac``): the core and RBAC kinds
below and the project's CRDs (read from their manifests). Any other kind is refused by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from agent.adapters.kube import Kube, KubeError, Resource
from agent.api.crds import load_crds

RBAC = "rbac.authorization.k8s.io"
_CORE = {
    ("v1", "Namespace"): Resource("", "v1", "namespaces", namespaced=False),
    ("v1", "ServiceAccount"): Resource("", "v1", "serviceaccounts"),
    ("v1", "Secret"): Resource("", "v1", "secrets"),
    ("v1", "ConfigMap"): Resource("", "v1", "configmaps"),
    (f"{RBAC}/v1", "Role"): Resource(RBAC, "v1", "roles"),
    (f"{RBAC}/v1", "RoleBinding"): Resource(RBAC, "v1", "rolebindings"),
    (f"{RBAC}/v1", "ClusterRole"): Resource(RBAC, "v1", "clusterroles", namespaced=False),
    (f"{RBAC}/v1", "ClusterRoleBinding"): Resource(RBAC, "v1", "clusterrolebindings", namespaced=False),
}


def documents(paths: Sequence[Path]) -> Iterator[dict[str, Any]]:
    """The objects of YAML files, and of the YAML files under directories (sorted by path)."""
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")) \
            if path.is_dir() else [path]
        for file in files:
            yield from (doc for doc in yaml.safe_load_all(file.read_text()) if isinstance(doc, dict))


def resources() -> dict[tuple[str, str], Resource]:
    """(apiVersion, kind) → where it lives, for the core kinds above and the project's CRDs."""
    found = dict(_CORE)
    for crd in load_crds():
        spec = crd["spec"]
        for version in spec["versions"]:
            namespaced = spec["scope"] == "Namespaced"
            found[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = Resource(
                spec["group"], version["name"], spec["names"]["plural"], namespaced=namespaced)
    return found


async def apply_documents(kube: Kube, docs: Iterable[dict[str, Any]]) -> int:
    """Creates or replaces every object (namespaces first); the number applied. Unknown kinds raise."""
    table = resources()
    ordered = sorted(docs, key=lambda d: d.get("kind") != "Namespace")
    for doc in ordered:
        res = table.get((doc.get("apiVersion", ""), doc.get("kind", "")))
        if res is None:
            raise KubeError(0, "UnknownKind", f"cannot load {doc.get('apiVersion')} {doc.get('kind')}: not a "
                                              "kind this loader knows")
        meta = doc.setdefault("metadata", {})
        namespace = meta.setdefault("namespace", "default") if res.namespaced else ""
        try:
            await create_or_replace(kube, res, namespace, doc)
        except KubeError as exc:
            raise KubeError(exc.status, exc.reason, f"cannot load {doc['kind']} {meta.get('name')!r}: "
                                                    f"{exc}") from exc
    return len(ordered)


async def create_or_replace(kube: Kube, res: Resource, namespace: str, body: dict[str, Any]) -> bool:
    """Creates ``body``, or replaces the object of its name when one exists (409), as ``kubectl apply``
    leaves it; True when it was created anew."""
    try:
        await kube.create(res, namespace, body)
        return True
    except KubeError as exc:
        if exc.status != 409:
            raise
    name = body["metadata"]["name"]
    current = await kube.get(res, namespace, name)
    version = current["metadata"]["resourceVersion"]
    metadata = {**body["metadata"], "resourceVersion": version}
    await kube.replace(res, namespace, name, {**body, "metadata": metadata})
    return False

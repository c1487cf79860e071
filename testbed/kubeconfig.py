"""Kubeconfig files for the simulator and the real control plane: what kubectl, kubernetes_asyncio and the
agents load to reach them.

A kubeconfig carries a bearer token, so it is written atomically with mode 0600, like any credential.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from testbed.tls import write_private


def kubeconfig_document(
    server: str, token: str, *, ca_pem: bytes | None = None, user: str = "admin", cluster: str = "lcm-sim",
    namespace: str = "",
) -> dict[str, Any]:
    """One cluster, one user, one current context; without a CA the server must be plain HTTP."""
    cluster_entry: dict[str, Any] = {"server": server}
    if ca_pem is not None:
        cluster_entry["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    context: dict[str, Any] = {"cluster": cluster, "user": user}
    if namespace:
        context["namespace"] = namespace
    context_name = f"{user}@{cluster}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": cluster_entry}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": context_name, "context": context}],
        "current-context": context_name,
        "preferences": {},
    }


def write_kubeconfig(
    path: Path, server: str, token: str, *, ca_pem: bytes | None = None, user: str = "admin",
    namespace: str = "", cluster: str = "lcm-sim",
) -> Path:
    """Writes a kubeconfig for ``token`` (the admin's, or a ServiceAccount's for an agent)."""
    doc = kubeconfig_document(server, token, ca_pem=ca_pem, user=user, namespace=namespace, cluster=cluster)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(path, yaml.safe_dump(doc, sort_keys=False).encode())
    return path

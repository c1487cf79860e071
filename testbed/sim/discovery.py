"""API discovery: the documents kubectl and dynamic clients read to learn which resources exist.

They are built on every request from the registry's current resource types, so a CRD created a moment ago
is discoverable at once (kubectl re-reads discovery when it meets a name it does not know). Only the legacy,
unaggregated documents are served: kubectl 1.32 asks for aggregated discovery first and falls back to these
when the answer is plain ``application/json``.

``/openapi/v3`` is served in the least form ``kubectl apply`` needs: per group/version, each resource's PATCH
operation with its kind and the ``fieldValidation`` parameter. That tells kubectl the server validates fields
itself (so it skips client-side validation, which needs the protobuf ``/openapi/v2`` not served here) and,
since no strategic merge patch is offered, makes it apply custom resources with JSON merge patches, exactly
as with a real cluster's CRDs. Built-in kinds still get strategic merge patches from kubectl's own types.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from testbed.sim.errors import ApiError
from testbed.sim.resources import ResourceType


def not_found_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


VERSION_INFO = {
    "major": "1", "minor": "32", "gitVersion": "v1.32.0-lcm-sim", "gitCommit": "", "gitTreeState": "clean",
    "buildDate": "1970-01-01T00:00:00Z", "goVersion": "", "compiler": "", "platform": "linux/amd64",
}
"""What ``/version`` reports: the Kubernetes minor whose client behaviour the simulator follows."""
MERGE_TYPES = ("application/json-patch+json", "application/merge-patch+json")


def discovery_document(parts: tuple[str, ...], types: list[ResourceType]) -> dict[str, Any]:
    """``/version``, ``/api``, ``/api/v1``, ``/apis``, ``/apis/GROUP`` or ``/apis/GROUP/VERSION``."""
    versions: dict[str, list[str]] = {}
    for rt in types:
        versions.setdefault(rt.group, [])
        if rt.version not in versions[rt.group]:
            versions[rt.group].append(rt.version)
    if parts == ("version",):
        return VERSION_INFO
    if parts[:2] == ("openapi", "v3"):
        return openapi_v3(parts[2:], types)
    if parts == ("api",):
        return {"kind": "APIVersions", "versions": versions.get("", []), "serverAddressByClientCIDRs": []}
    if parts == ("apis",):
        return {"kind": "APIGroupList", "apiVersion": "v1",
                "groups": [_group(g, vs) for g, vs in versions.items() if g]}
    if len(parts) == 2 and parts[0] == "apis" and parts[1] in versions:
        return {"kind": "APIGroup", "apiVersion": "v1", **_group(parts[1], versions[parts[1]])}
    if parts[:1] == ("api",) and len(parts) == 2:
        group, version = "", parts[1]
    elif parts[:1] == ("apis",) and len(parts) == 3:
        group, version = parts[1], parts[2]
    else:
        raise not_found_path()
    selected = [rt for rt in types if rt.group == group and rt.version == version]
    if not selected:
        raise not_found_path()
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": selected[0].group_version,
            "resources": [entry for rt in selected for entry in _resources(rt)]}


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def _resources(rt: ResourceType) -> list[dict[str, Any]]:
    """The ``APIResource`` entries of one type: itself, ``/status`` when it has that subresource, and
    ServiceAccounts' ``/token`` (TokenRequest)."""
    main = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced, "kind": rt.kind,
            "verbs": list(rt.verbs)}
    if rt.short_names:
        main["shortNames"] = list(rt.short_names)
    if rt.categories:
        main["categories"] = list(rt.categories)
    entries = [main]
    if rt.status_subresource:
        entries.append({"name": f"{rt.plural}/status", "singularName": "", "namespaced": rt.namespaced,
                        "kind": rt.kind, "verbs": ["get", "patch", "update"]})
    if rt.key == "serviceaccounts":
        entries.append({"name": "serviceaccounts/token", "singularName": "", "namespaced": True,
                        "group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest",
                        "verbs": ["create"]})
    return entries


def openapi_v3(parts: tuple[str, ...], types: list[ResourceType]) -> dict[str, Any]:
    """The ``/openapi/v3`` index (``parts`` empty) or one group/version's document."""
    by_path: dict[str, list[ResourceType]] = {}
    for rt in types:
        path = f"apis/{rt.group}/{rt.version}" if rt.group else f"api/{rt.version}"
        by_path.setdefault(path, []).append(rt)
    if not parts:
        return {"paths": {path: {"serverRelativeURL": f"/openapi/v3/{path}?hash={_hash(_gv_document(rts))}"}
                          for path, rts in by_path.items()}}
    selected = by_path.get("/".join(parts))
    if selected is None:
        raise not_found_path()
    return _gv_document(selected)


def _gv_document(types: list[ResourceType]) -> dict[str, Any]:
    paths = {}
    for rt in types:
        prefix = f"/apis/{rt.group}/{rt.version}" if rt.group else f"/api/{rt.version}"
        scope = "/namespaces/{namespace}" if rt.namespaced else ""
        paths[f"{prefix}{scope}/{rt.plural}/{{name}}"] = {"patch": {
            "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
            "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
            "requestBody": {"content": {t: {"schema": {"type": "object"}} for t in MERGE_TYPES}},
            "responses": {"200": {"description": "OK"}},
        }}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": VERSION_INFO["gitVersion"]},
            "paths": paths}


def _hash(document: dict[str, Any]) -> str:
    """Changes whenever the document does, so a client's cache of it never goes stale (a new CRD)."""
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:32].upper()

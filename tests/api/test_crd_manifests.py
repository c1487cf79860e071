"""The CRD manifests an operator applies: structural schemas the API server accepts, with the names, printer
columns and defaults `kubectl` users see, and field names that agree with the Python models."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import jsonschema
import pytest
from pydantic import BaseModel

from agent.api import crds as crds_module
from agent.api.crds import crd_paths, load_crds
from agent.api.models import (
    ApiObject,
    ClusterMaintenanceRequest,
    ClusterRelease,
    ClusterWorkloadLock,
    GracefulRebootRequest,
    KaaSRelease,
    LCMCluster,
    LCMClusterState,
    LCMMachine,
    NodeMaintenanceRequest,
    NodeWorkloadLock,
)

MODELS: dict[str, type[ApiObject]] = {
    "LCMMachine": LCMMachine,
    "LCMCluster": LCMCluster,
    "LCMClusterState": LCMClusterState,
    "ClusterRelease": ClusterRelease,
    "KaaSRelease": KaaSRelease,
    "NodeMaintenanceRequest": NodeMaintenanceRequest,
    "ClusterMaintenanceRequest": ClusterMaintenanceRequest,
    "NodeWorkloadLock": NodeWorkloadLock,
    "ClusterWorkloadLock": ClusterWorkloadLock,
    "GracefulRebootRequest": GracefulRebootRequest,
}
KINDS = tuple(MODELS)
Schemas = dict[str, dict[str, Any]]


def walk(node: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every schema node with its path (``.spec.stateItems[].name``, map values as ``{}``)."""
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), Mapping):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), Mapping):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def test_one_manifest_per_kind_is_found_and_loaded() -> None:
    paths = crd_paths()
    assert [p.name for p in paths] == sorted(p.name for p in paths)
    assert sorted(crd["spec"]["names"]["kind"] for crd in load_crds()) == sorted(KINDS)
    assert all(p.parent.name == "crds" for p in paths)


def test_installed_wheel_layout_is_preferred(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    packaged = tmp_path / "crds"
    packaged.mkdir()
    (packaged / "x.yaml").write_text("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n")
    monkeypatch.setattr(crds_module, "_PACKAGED", packaged)
    assert crd_paths() == [packaged / "x.yaml"]


def test_missing_manifests_are_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crds_module, "_PACKAGED", tmp_path / "nowhere")
    monkeypatch.setattr(crds_module, "_CHECKOUT", tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no CRD manifests"):
        crd_paths()


def test_a_stray_non_crd_manifest_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ns.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n")
    monkeypatch.setattr(crds_module, "_PACKAGED", tmp_path)
    with pytest.raises(ValueError, match="not a CustomResourceDefinition"):
        load_crds()


@pytest.mark.parametrize(
    ("kind", "plural", "short", "scope", "has_status"),
    [
        ("LCMMachine", "lcmmachines", "lcmm", "Namespaced", True),
        ("LCMCluster", "lcmclusters", "lcmc", "Namespaced", True),
        ("LCMClusterState", "lcmclusterstates", "lcmcs", "Namespaced", True),
        ("ClusterRelease", "clusterreleases", "clrel", "Cluster", False),
        ("KaaSRelease", "kaasreleases", "kaasrel", "Cluster", False),
        ("NodeMaintenanceRequest", "nodemaintenancerequests", "nmr", "Namespaced", True),
        ("ClusterMaintenanceRequest", "clustermaintenancerequests", "cmr", "Namespaced", True),
        ("NodeWorkloadLock", "nodeworkloadlocks", "nwl", "Namespaced", True),
        ("ClusterWorkloadLock", "clusterworkloadlocks", "cwl", "Namespaced", True),
        ("GracefulRebootRequest", "gracefulrebootrequests", "grr", "Namespaced", True),
    ],
)
def test_names_scope_and_version(
    crds: Schemas, kind: str, plural: str, short: str, scope: str, has_status: bool
) -> None:
    crd = crds[kind]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    group = MODELS[kind].GROUP  # lcm.mirantis.com; kaas.mirantis.com for the releases, as in Mirantis
    assert crd["metadata"]["name"] == f"{plural}.{group}"
    spec = crd["spec"]
    assert (spec["group"], spec["scope"]) == (group, scope)
    names = spec["names"]
    assert (names["plural"], names["singular"], names["listKind"]) == (plural, kind.lower(), f"{kind}List")
    assert (plural, scope == "Namespaced") == (MODELS[kind].PLURAL, MODELS[kind].NAMESPACED)
    assert names["shortNames"] == [short]
    assert names["categories"] == ["lcm"]
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    schema = version["schema"]["openAPIV3Schema"]
    assert ("status" in schema["properties"]) is has_status
    assert (version.get("subresources") == {"status": {}}) is has_status


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_structural(schemas: Schemas, kind: str) -> None:
    """What the API server demands of a structural schema (and what pruning and defaulting rely on)."""
    root = schemas[kind]
    assert root["properties"]["metadata"] == {"type": "object"}
    for path, node in walk(root):
        # A node that holds any JSON (status.stateItemStatuses{}.result) has no type, which only
        # x-kubernetes-preserve-unknown-fields allows; an integer-or-string (spec.rollout.maxFailures) has
        # none either, by x-kubernetes-int-or-string.
        untyped = node.get("x-kubernetes-preserve-unknown-fields") or node.get("x-kubernetes-int-or-string")
        assert "type" in node or untyped, f"{kind}{path} has no type"
        assert not ("properties" in node and "additionalProperties" in node), (
            f"{kind}{path}: both kinds of keys"
        )
        assert node.get("additionalProperties") is not False, f"{kind}{path}: additionalProperties false"
        for name in node.get("required", ()):
            assert name in node["properties"], f"{kind}{path}: requires unknown field {name!r}"
        if node.get("x-kubernetes-list-type") == "map":
            item = node["items"]
            for key in node["x-kubernetes-list-map-keys"]:
                assert key in item.get("required", ()) or "default" in item["properties"][key]
        if node.get("x-kubernetes-preserve-unknown-fields"):
            # Free-form only where the Go type is an object, or any JSON (runtime.RawExtension: no type).
            assert node.get("type", "object") == "object", f"{kind}{path}: free-form of a typed scalar"


@pytest.mark.parametrize("kind", KINDS)
def test_enums_and_defaults_are_valid_values(
    schemas: Schemas, json_schema: Callable[[Mapping[str, Any]], dict[str, Any]], kind: str
) -> None:
    for path, node in walk(schemas[kind]):
        if "enum" in node:
            assert node["enum"], f"{kind}{path}: empty enum"
            assert all(isinstance(v, str) for v in node["enum"]), f"{kind}{path}: enum of non-strings"
        if "default" in node:
            jsonschema.validate(node["default"], json_schema(node))


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("LCMMachine", ".spec.type", "unassigned"),
        ("LCMCluster", ".spec.maxWorkerPrepareCount", 50),
        ("LCMCluster", ".spec.maxWorkerUpgradeCount", 1),
        ("LCMCluster", ".spec.maxWorkerDeployCount", 50),
        ("LCMCluster", ".spec.dedicatedControlPlane", True),
    ],
)
def test_defaults(schemas: Schemas, kind: str, path: str, value: object) -> None:
    assert dict(walk(schemas[kind]))[path]["default"] == value


@pytest.mark.parametrize(
    ("kind", "columns"),
    [
        ("LCMMachine",
         ["Type", "State", "Pending", "Waiting", "Items", "Release", "Age", "Cluster", "Agent"]),
        ("LCMCluster", ["Release", "Requested", "Ready", "Progress", "Age", "Applied", "Stuck"]),
        ("LCMClusterState", ["Type", "Arg", "Value", "Actual", "Age", "Cluster", "Attempt", "Message"]),
        ("ClusterRelease", ["Version", "Agent", "Age"]),
        ("KaaSRelease", ["Version", "ClusterRelease", "Age"]),
        ("NodeMaintenanceRequest", ["Node", "Scope", "Phase", "Age", "Cluster", "Message"]),
        ("ClusterMaintenanceRequest", ["Cluster", "Scope", "Phase", "Age", "Message"]),
        ("NodeWorkloadLock", ["Node", "Controller", "State", "Age", "Cluster", "Error"]),
        ("ClusterWorkloadLock", ["Cluster", "Controller", "State", "Age", "Error"]),
    ],
)
def test_printer_columns_point_at_fields_of_their_type(
    crds: Schemas, schemas: Schemas, kind: str, columns: list[str]
) -> None:
    (version,) = crds[kind]["spec"]["versions"]
    printed = version["additionalPrinterColumns"]
    assert [c["name"] for c in printed] == columns
    nodes = dict(walk(schemas[kind]))
    for column in printed:
        if column["jsonPath"] == ".metadata.creationTimestamp":
            assert column["type"] == "date"
            continue
        assert column["jsonPath"] in nodes, f"{kind} column {column['name']} shows a field the schema lacks"
        assert nodes[column["jsonPath"]]["type"] == column["type"]
        assert column.get("priority", 0) in (0, 1)
    # Age closes the default view; the -o wide extras follow it.
    assert [c["name"] for c in printed if c.get("priority", 0) == 0][-1] == "Age"


def test_short_names_do_not_collide(crds: Schemas) -> None:
    shorts = [s for crd in crds.values() for s in crd["spec"]["names"]["shortNames"]]
    assert len(shorts) == len(set(shorts))


def _strip_docs(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {k: _strip_docs(v) for k, v in node.items() if k != "description"}
    return node


def test_state_items_have_one_schema_in_machines_and_clusters(schemas: Schemas) -> None:
    """The scheduler copies LCMCluster.machineTypes items into LCMMachine.stateItems verbatim."""
    machine = dict(walk(schemas["LCMMachine"]))[".spec.stateItems[]"]
    cluster = dict(walk(schemas["LCMCluster"]))[".spec.machineTypes{}[]"]
    release = dict(walk(schemas["ClusterRelease"]))[".spec.machineTypes{}[]"]
    assert _strip_docs(machine) == _strip_docs(cluster)
    # Release templates may hold decommission items (which the scheduler hands out as reconfigure items);
    # otherwise identical.
    template = _strip_docs(release)
    assert template["required"] == ["runner", "name", "version"]
    expected = _strip_docs(machine)
    expected["properties"]["phase"]["enum"] = [*expected["properties"]["phase"]["enum"], "decommission"]
    assert template["properties"] == expected["properties"]


def _annotation_nodes(
    tp: Any, node: Mapping[str, Any], path: str
) -> Iterator[tuple[str, Any, Mapping[str, Any]]]:
    """Pairs each Python annotation under ``tp`` with the schema node it must agree with."""
    origin = get_origin(tp)
    if origin is typing.Annotated:
        yield from _annotation_nodes(get_args(tp)[0], node, path)
    elif origin in (Union, types.UnionType):
        for arg in get_args(tp):
            if arg is not type(None):
                yield from _annotation_nodes(arg, node, path)
    elif origin is tuple:
        assert node["type"] == "array", path
        yield from _annotation_nodes(get_args(tp)[0], node["items"], f"{path}[]")
    elif origin in (Mapping, dict) and get_args(tp)[1] is Any:
        assert node["type"] == "object", path  # data the models leave untyped; the CRD may type it
    elif origin in (Mapping, dict):
        assert node["type"] == "object", path
        yield from _annotation_nodes(get_args(tp)[1], node["additionalProperties"], f"{path}{{}}")
    elif isinstance(tp, type) and issubclass(tp, BaseModel) and path != ".metadata":
        for name, field in tp.model_fields.items():
            alias = field.alias or name
            assert alias in node.get("properties", {}), f"model field {path}.{alias} is not in the CRD schema"
            yield from _annotation_nodes(field.annotation, node["properties"][alias], f"{path}.{alias}")
    else:
        yield path, tp, node


@pytest.mark.parametrize("kind", KINDS)
def test_models_and_schemas_agree_on_names_types_and_enums(schemas: Schemas, kind: str) -> None:
    """Every modelled field exists in the CRD under the same JSON name, type and allowed values."""
    scalar_types = {str: "string", int: "integer", bool: "boolean"}
    for path, tp, node in _annotation_nodes(MODELS[kind], schemas[kind], ""):
        if path == ".metadata" or path.startswith(".metadata.") or tp is Any:
            continue
        if get_origin(tp) is Literal:
            if path in (".apiVersion", ".kind"):
                continue
            assert sorted(node["enum"]) == sorted(get_args(tp)), path
        elif node.get("x-kubernetes-int-or-string"):
            assert tp in (int, str), path
        else:
            assert node["type"] == scalar_types[tp], path

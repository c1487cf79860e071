"""Mirantis' maintenance requests and workload locks: their documented examples read, round-trip and pass
the CRD schemas as they are; bad values are refused by both, naming the field."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import jsonschema
import pytest

from agent.api.models import (
    ApiObject,
    ClusterMaintenanceRequest,
    ClusterWorkloadLock,
    InvalidObjectError,
    NodeMaintenanceRequest,
    NodeWorkloadLock,
)

API = "lcm.mirantis.com/v1alpha1"
LOCK_STATUS = {"state": "active", "errorMessage": "", "release": "6.16.0+21.3"}
EXAMPLES: list[tuple[type[ApiObject], dict[str, Any]]] = [
    # Mirantis' examples (MOSK docs, "Node maintenance API objects"), in a namespace.
    (ClusterWorkloadLock, {"apiVersion": API, "kind": "ClusterWorkloadLock",
                           "metadata": {"name": "cluster-1-openstack", "namespace": "demo"},
                           "spec": {"controllerName": "openstack"}, "status": LOCK_STATUS}),
    (NodeWorkloadLock, {"apiVersion": API, "kind": "NodeWorkloadLock",
                        "metadata": {"name": "node-1-openstack", "namespace": "demo"},
                        "spec": {"nodeName": "node-1", "controllerName": "openstack"},
                        "status": LOCK_STATUS}),
    (ClusterMaintenanceRequest, {"apiVersion": API, "kind": "ClusterMaintenanceRequest",
                                 "metadata": {"name": "cluster-1", "namespace": "demo"},
                                 "spec": {"scope": "drain"}}),
    (NodeMaintenanceRequest, {"apiVersion": API, "kind": "NodeMaintenanceRequest",
                              "metadata": {"name": "node-1", "namespace": "demo"},
                              "spec": {"nodeName": "node-1", "scope": "os"}}),
]


@pytest.mark.parametrize(("model", "raw"), EXAMPLES, ids=[m.__name__ for m, _ in EXAMPLES])
def test_mirantis_examples_read_round_trip_and_pass_the_schema(
    model: type[ApiObject], raw: dict[str, Any], schemas: dict[str, dict[str, Any]],
    json_schema: Callable[[Mapping[str, Any]], dict[str, Any]],
) -> None:
    before = copy.deepcopy(raw)
    assert model.from_raw(raw).to_raw() == raw
    assert raw == before
    schema = json_schema(schemas[raw["kind"]])
    schema["properties"]["metadata"]["additionalProperties"] = True
    jsonschema.validate(raw, schema)


def test_a_lock_without_a_status_is_active_as_in_mirantis() -> None:
    raw = {**EXAMPLES[1][1]}
    del raw["status"]
    assert NodeWorkloadLock.from_raw(raw).status.state == "active"
    assert "status" not in NodeWorkloadLock.from_raw(raw).to_raw()  # the default is not written back


@pytest.mark.parametrize(("index", "path", "value", "field"), [
    (1, ("status", "state"), "paused", "status.state"),
    (3, ("spec", "scope"), "reboot", "spec.scope"),
    (3, ("spec",), {"scope": "os"}, "spec.nodeName"),
])
def test_bad_values_are_refused_by_the_model_and_the_schema(
    index: int, path: tuple[str, ...], value: Any, field: str, schemas: dict[str, dict[str, Any]],
    json_schema: Callable[[Mapping[str, Any]], dict[str, Any]],
) -> None:
    model, raw = EXAMPLES[index]
    bad = copy.deepcopy(raw)
    node = bad
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(InvalidObjectError) as caught:
        model.from_raw(bad)
    assert field in [cause for cause, _ in caught.value.causes]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json_schema(schemas[raw["kind"]]))

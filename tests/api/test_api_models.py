"""Objects read through the models come back out unchanged; malformed ones are refused, naming the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from agent.api.models import (
    ApiObject,
    ClusterRelease,
    InvalidObjectError,
    LCMCluster,
    LCMClusterState,
    LCMMachine,
    LCMMachineSpec,
    ObjectMeta,
    StateItem,
)
from agent.api.names import cluster_state_name

API = "lcm.mirantis.com/v1alpha1"
SHA = "ab" * 32
ITEM = {"runner": "ansible", "name": "docker-engine", "version": "1", "params": {"playbook": "deploy/x.yml"}}

MACHINE: dict[str, Any] = {
    "apiVersion": API,
    "kind": "LCMMachine",
    "metadata": {
        "name": "demo-worker-0",
        "namespace": "demo",
        "resourceVersion": "42",
        "generation": 3,
        "creationTimestamp": "2024-05-01T10:00:00Z",
        "managedFields": [{"manager": "kubectl", "operation": "Update"}],  # unknown to the model
        "ownerReferences": [{"kind": "Machine", "name": "w0", "uid": "u"}],
    },
    "spec": {
        "clusterName": "demo",
        "type": "worker",
        "stateItems": [{**ITEM, "phase": "deploy", "futureField": {"nested": [1, 2]}}],  # unknown in an item
        "stateItemsOverwrites": {"docker-engine": {"role": "worker"}},
        "agentConfig": {"version": "0.2.0", "downloadURL": "http://m/a.whl", "sha256": SHA, "args": ["-v"]},
        "mcrVersion": "23.0.9",  # an mcc-api field the models do not name
        "lcmType": "ucp",
    },
    "status": {
        "state": "Deploy",
        "stateItemStatuses": {
            "docker-engine": {
                "hash": "h",
                "exitCode": 0,
                "attempt": 2,
                "result": {"changed": 3, "facts": {"a": None}},
                "startedAt": "2024-05-01T10:01:00Z",
                "finishedAt": None,
            }
        },
        "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}, {"type": "Hostname", "address": "w0"}],
        "hostInfo": {
            "bootTime": "2024-05-01T09:00:00.123456Z",  # kept verbatim, not reformatted
            "os": {"family": "debian", "name": "Debian GNU/Linux", "major": 12},
            "hardware": {"cpu": {"count": 4, "threads": 8}, "gpu": [{"model": "x"}]},
            "rebootRequired": False,
        },
        "Distribution": ["debian/12"],
        "progress": "1/1",
        "conditions": [
            {
                "type": "Reconciled",
                "status": "True",
                "reason": "Converged",
                "message": "",
                "lastTransitionTime": "t",
            }
        ],
    },
    "unknownTopLevel": {"kept": True},
}

CLUSTER: dict[str, Any] = {
    "apiVersion": API,
    "kind": "LCMCluster",
    "metadata": {"name": "demo", "namespace": "demo"},
    "spec": {
        "release": "swarm-1.0.0",
        "machineTypes": {"control": [ITEM], "worker": [{**ITEM, "phase": "prepare"}]},
        "agentVesrion": "0.1.0",
        "oidc": {"url": "u", "caCert": "c", "clientID": "i", "adminRole": "a", "groupsClaim": "g"},
    },
    "status": {"requestedNodes": 3, "readyNodes": 1, "helmControllerDeployed": False, "progress": "5/21"},
}

CLUSTER_STATE: dict[str, Any] = {
    "apiVersion": API,
    "kind": "LCMClusterState",
    "metadata": {"name": "sd-demo-worker-0", "namespace": "demo"},
    "spec": {"clusterName": "demo", "type": "swarm-drain", "arg": "demo-worker-0", "value": "true"},
    "status": {"value": "false", "attempt": 1, "message": "node busy"},
}

RELEASE: dict[str, Any] = {
    "apiVersion": "kaas.mirantis.com/v1alpha1",
    "kind": "ClusterRelease",
    "metadata": {"name": "swarm-1.0.0"},
    "spec": {
        "version": "1.0.0",
        "agent": {"version": "0.1.0", "downloadURL": "http://m/a.whl", "sha256": SHA},
        "machineTypes": {"control": [{**ITEM, "phase": "deploy"}]},
        "upgradeFrom": ["swarm-0.9.0"],
        "helmReleases": [{"name": "future"}],
    },
}


@pytest.mark.parametrize(
    ("model", "raw"),
    [
        (LCMMachine, MACHINE),
        (LCMCluster, CLUSTER),
        (LCMClusterState, CLUSTER_STATE),
        (ClusterRelease, RELEASE),
    ],
    ids=["LCMMachine", "LCMCluster", "LCMClusterState", "ClusterRelease"],
)
def test_round_trip_keeps_every_field_and_invents_none(model: type[ApiObject], raw: dict[str, Any]) -> None:
    before = copy.deepcopy(raw)
    assert model.from_raw(raw).to_raw() == raw
    assert raw == before  # parsing does not touch the caller's data


def test_defaults_apply_on_read_but_are_not_written_back() -> None:
    cluster = LCMCluster.from_raw({"metadata": {"name": "c"}, "spec": {"release": "r"}})
    assert cluster.spec.max_worker_prepare_count == 50
    assert cluster.spec.max_worker_upgrade_count == 1
    assert cluster.spec.dedicated_control_plane is True
    assert cluster.to_raw() == {
        "apiVersion": API,
        "kind": "LCMCluster",
        "metadata": {"name": "c"},
        "spec": {"release": "r"},
    }
    item = StateItem.model_validate({"runner": "bash", "name": "x", "version": "1"})
    assert item.phase == ""  # no phase: counts in none (Mirantis), never defaulted
    assert "phase" not in item.model_dump(by_alias=True, exclude_unset=True)


def test_objects_built_in_code_serialise_with_json_names_and_their_kind() -> None:
    machine = LCMMachine(
        metadata=ObjectMeta(name="m", namespace="demo"),
        spec=LCMMachineSpec(cluster_name="demo", state_items_overwrites={"a": {"k": "v"}}, halt_agent=True),
    )
    assert machine.to_raw() == {
        "apiVersion": API,
        "kind": "LCMMachine",
        "metadata": {"name": "m", "namespace": "demo"},
        "spec": {"clusterName": "demo", "stateItemsOverwrites": {"a": {"k": "v"}}, "haltAgent": True},
    }


def test_models_are_frozen() -> None:
    machine = LCMMachine.from_raw(MACHINE)
    with pytest.raises(ValidationError, match="frozen"):
        machine.spec.type = "control"  # type: ignore[misc]


def test_accessors() -> None:
    machine = LCMMachine.from_raw(MACHINE)
    assert machine.status.internal_ip == "10.0.0.5"
    assert machine.spec.agent_config.download_url == "http://m/a.whl"
    assert machine.status.state_item_statuses["docker-engine"].result == {"changed": 3, "facts": {"a": None}}
    assert LCMClusterState.from_raw(CLUSTER_STATE).spec.requested is True
    assert LCMMachine.from_raw({"metadata": {"name": "x"}}).status.internal_ip is None


def _with(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``raw`` with the dotted ``path`` (list indexes as numbers) set to ``value``."""
    out = copy.deepcopy(raw)
    *parents, last = path.split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value
    return out


@pytest.mark.parametrize(
    ("model", "raw", "field", "message"),
    [
        (
            LCMMachine,
            _with(MACHINE, "spec.stateItems.0.params", {"n": 1}),
            "spec.stateItems[0].params.n",
            "string",
        ),
        (LCMMachine, _with(MACHINE, "spec.type", "master"), "spec.type", "'unassigned'"),
        (LCMMachine, _with(MACHINE, "spec.rebootRequired", "true"), "spec.rebootRequired", "boolean"),
        (
            LCMMachine,
            _with(MACHINE, "spec.stateItemsOverwrites", {"a": "b"}),
            "spec.stateItemsOverwrites.a",
            "dict",
        ),
        (
            LCMMachine,
            _with(MACHINE, "status.stateItemStatuses.docker-engine.exitCode", "0"),
            "status.stateItemStatuses.docker-engine.exitCode",
            "integer",
        ),
        (
            LCMMachine,
            _with(MACHINE, "status.stateItemStatuses.docker-engine.startedAt", "yesterday"),
            "status.stateItemStatuses.docker-engine.startedAt",
            "pattern",
        ),
        (LCMMachine, _with(MACHINE, "status.state", "Running"), "status.state", "'Ready'"),
        (LCMMachine, _with(MACHINE, "kind", "LCMCluster"), "kind", "'LCMMachine'"),
        (LCMMachine, _with(MACHINE, "apiVersion", "lcm.mirantis.com/v1"), "apiVersion", "v1alpha1"),
        (LCMCluster, _with(CLUSTER, "spec.maxWorkerPrepareCount", 0), "spec.maxWorkerPrepareCount", "1"),
        (
            LCMCluster,
            _with(CLUSTER, "spec.maxWorkerUpgradeCount", "2"),
            "spec.maxWorkerUpgradeCount",
            "integer",
        ),
        (
            LCMCluster,
            _with(CLUSTER, "spec.machineTypes.worker", [ITEM, ITEM]),
            "spec.machineTypes",
            "duplicate",
        ),
        (LCMClusterState, _with(CLUSTER_STATE, "spec.value", True), "spec.value", "'true'"),
        (LCMClusterState, _with(CLUSTER_STATE, "spec.type", "drain"), "spec.type", "'swarm-drain'"),
        (LCMClusterState, _with(CLUSTER_STATE, "spec", {"type": "swarm-drain"}), "spec.arg", "required"),
        (
            ClusterRelease,
            _with(RELEASE, "spec.machineTypes", {"wroker": []}),
            "spec.machineTypes.wroker",
            "'worker'",
        ),
        (ClusterRelease, _with(RELEASE, "spec.machineTypes", {}), "spec.machineTypes", "at least 1"),
        (
            ClusterRelease,
            _with(RELEASE, "spec.machineTypes.control", []),
            "spec.machineTypes",
            "no state items",
        ),
        (ClusterRelease, _with(RELEASE, "spec.agent.sha256", "abc"), "spec.agent.sha256", "pattern"),
        (ClusterRelease, _with(RELEASE, "spec.version", "v1"), "spec.version", "pattern"),
    ],
)
def test_malformed_objects_are_refused_naming_the_field(
    model: type[ApiObject], raw: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(InvalidObjectError) as caught:
        model.from_raw(raw)
    error = caught.value
    assert error.name == raw["metadata"]["name"]
    assert any(path == field and message.lower() in text.lower() for path, text in error.causes), error.causes
    assert f"{field}: " in str(error)


def test_every_bad_field_is_reported_at_once() -> None:
    raw = _with(_with(MACHINE, "spec.type", "master"), "spec.stateItems.0.params", {"n": 1})
    with pytest.raises(InvalidObjectError) as caught:
        LCMMachine.from_raw(raw)
    assert {path for path, _ in caught.value.causes} == {"spec.type", "spec.stateItems[0].params.n"}


@pytest.mark.parametrize("raw", [None, [], "LCMMachine", {"metadata": "m"}], ids=repr)
def test_garbage_is_refused_without_crashing(raw: Any) -> None:
    with pytest.raises(InvalidObjectError, match="<unnamed>"):
        LCMMachine.from_raw(raw)


@pytest.mark.parametrize(
    ("operation", "machine", "name"),
    [
        ("swarm-drain", "demo-worker-0", "sd-demo-worker-0"),
        ("swarm-remove", "demo-worker-0", "sr-demo-worker-0"),
        ("cordon-drain", "Demo-Worker-0", "cd-demo-worker-0"),
        ("swarm-drain", "c" * 60 + "-w1", "sd-" + "c" * 57 + "-w1"),  # the distinctive tail survives
        ("swarm-drain", "m" * 60, "sd-" + "m" * 60),  # exactly 63
    ],
)
def test_cluster_state_names(operation: Any, machine: str, name: str) -> None:
    assert cluster_state_name(operation, machine) == name
    assert len(name) <= 63

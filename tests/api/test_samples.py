"""The demo objects in deploy/samples: accepted by the CRDs as an API server would check them, nothing pruned,
and a release a Swarm cluster can actually be built from."""

from __future__ import annotations

from typing import Any

import pytest

from agent.api.models import PHASES, ApiObject, ClusterRelease, LCMCluster, LCMMachine
from agent.sim.schema import StructuralSchema

MODELS: dict[str, type[ApiObject]] = {
    "ClusterRelease": ClusterRelease,
    "LCMCluster": LCMCluster,
    "LCMMachine": LCMMachine,
}
Samples = list[dict[str, Any]]


def _lcm(samples: Samples) -> list[dict[str, Any]]:
    return [doc for doc in samples if doc["apiVersion"].startswith("lcm.mirantis.com/")]


def _subset(small: Any, big: Any) -> bool:
    """Every field of ``small`` is in ``big`` with the same value (``big`` may add defaults)."""
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and _subset(v, big[k]) for k, v in small.items())
    return bool(small == big)


def test_the_demo_is_a_namespace_a_release_a_cluster_and_three_machines(samples: Samples) -> None:
    assert [(d["kind"], d["metadata"]["name"]) for d in samples] == [
        ("Namespace", "demo"),
        ("ClusterRelease", "swarm-1.0.0"),
        ("LCMCluster", "demo"),
        ("LCMMachine", "demo-control-0"),
        ("LCMMachine", "demo-worker-0"),
        ("LCMMachine", "demo-worker-1"),
    ]


def test_samples_pass_the_crd_schemas_and_lose_nothing_to_pruning(
    samples: Samples, schemas: dict[str, dict[str, Any]]
) -> None:
    for doc in _lcm(samples):
        schema = StructuralSchema(schemas[doc["kind"]])
        assert schema.validate(doc) == [], doc["metadata"]["name"]
        assert _subset(doc, schema.default_and_prune(doc)), (
            f"{doc['metadata']['name']}: a field would be pruned"
        )


def test_a_broken_sample_is_refused_with_the_api_servers_words(
    samples: Samples, schemas: dict[str, dict[str, Any]]
) -> None:
    release = next(d for d in samples if d["kind"] == "ClusterRelease")
    broken = {
        **release,
        "spec": {**release["spec"], "machineTypes": {"control": [{"name": "x", "runner": "salt"}]}},
    }
    messages = [c.message for c in StructuralSchema(schemas["ClusterRelease"]).validate(broken)]
    unsupported = 'Unsupported value: "salt": supported values: "ansible", "downloader", "bash"'
    assert f"spec.machineTypes.control[0].runner: {unsupported}" in messages
    assert "spec.machineTypes.control[0].version: Required value" in messages


@pytest.mark.parametrize("index", range(1, 6))
def test_samples_read_through_the_models_unchanged(samples: Samples, index: int) -> None:
    doc = samples[index]
    assert MODELS[doc["kind"]].from_raw(doc).to_raw() == doc


def test_the_objects_refer_to_each_other(samples: Samples) -> None:
    release = ClusterRelease.from_raw(samples[1])
    cluster = LCMCluster.from_raw(samples[2])
    machines = [LCMMachine.from_raw(d) for d in samples[3:]]
    assert cluster.spec.release == release.metadata.name
    assert {m.metadata.namespace for m in machines} == {cluster.metadata.namespace} == {"demo"}
    assert {m.spec.cluster_name for m in machines} == {cluster.metadata.name}
    assert [m.spec.type for m in machines] == ["control", "worker", "worker"]
    assert {m.spec.type for m in machines} <= set(release.spec.machine_types)


@pytest.mark.parametrize(
    ("machine_type", "expected"),
    [
        (
            "control",
            [
                "preflight",
                "sysctl",
                "packages",
                "docker-engine",
                "swarm-init",
                "daemon-config",
                "node-labels",
            ],
        ),
        (
            "worker",
            [
                "preflight",
                "sysctl",
                "packages",
                "docker-engine",
                "swarm-join",
                "daemon-config",
                "node-labels",
            ],
        ),
    ],
)
def test_release_items_run_phase_by_phase_from_playbooks(
    samples: Samples, machine_type: Any, expected: list[str]
) -> None:
    items = ClusterRelease.from_raw(samples[1]).spec.machine_types[machine_type]
    assert [i.name for i in items] == expected
    assert [PHASES.index(i.phase) for i in items] == sorted(PHASES.index(i.phase) for i in items)
    for item in items:
        assert item.runner == "ansible"
        assert item.params["playbook"] == f"{item.phase}/{item.name}.yml"

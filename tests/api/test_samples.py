"""The demo objects in deploy/samples: accepted by the CRDs as an API server would check them, nothing pruned,
and a release a Swarm cluster can actually be built from."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from agent.api.models import ApiObject, ClusterRelease, KaaSRelease, LCMCluster, LCMMachine, ReleasePhase
from testbed.sim.schema import StructuralSchema

MODELS: dict[str, type[ApiObject]] = {
    "ClusterRelease": ClusterRelease,
    "KaaSRelease": KaaSRelease,
    "LCMCluster": LCMCluster,
    "LCMMachine": LCMMachine,
}
Samples = list[dict[str, Any]]
RELEASE_PHASES: tuple[str, ...] = get_args(ReleasePhase)


def _one(samples: Samples, kind: str, name: str | None = None) -> dict[str, Any]:
    return next(d for d in samples if d["kind"] == kind and name in (None, d["metadata"]["name"]))


def _lcm(samples: Samples) -> list[dict[str, Any]]:
    return [doc for doc in samples if doc["apiVersion"].startswith("lcm.mirantis.com/")]


def _subset(small: Any, big: Any) -> bool:
    """Every field of ``small`` is in ``big`` with the same value (``big`` may add defaults)."""
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and _subset(v, big[k]) for k, v in small.items())
    return bool(small == big)


def test_the_demo_is_a_namespace_two_releases_a_cluster_and_three_machines(samples: Samples) -> None:
    assert [(d["kind"], d["metadata"]["name"]) for d in samples] == [
        ("Namespace", "demo"),
        ("ClusterRelease", "swarm-1.0.0"),
        ("ClusterRelease", "swarm-1.1.0"),
        ("KaaSRelease", "kaas-1-0-0"),
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


@pytest.mark.parametrize("index", range(1, 7))
def test_samples_read_through_the_models_unchanged(samples: Samples, index: int) -> None:
    doc = samples[index]
    assert MODELS[doc["kind"]].from_raw(doc).to_raw() == doc


def test_the_objects_refer_to_each_other(samples: Samples) -> None:
    release = ClusterRelease.from_raw(_one(samples, "ClusterRelease", "swarm-1.0.0"))
    upgrade = ClusterRelease.from_raw(_one(samples, "ClusterRelease", "swarm-1.1.0"))
    cluster = LCMCluster.from_raw(_one(samples, "LCMCluster"))
    machines = [LCMMachine.from_raw(d) for d in samples if d["kind"] == "LCMMachine"]
    assert cluster.spec.release == release.metadata.name
    assert release.metadata.name in upgrade.spec.upgrade_from
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
                "swarm-join",
                "daemon-config",
                "node-labels",
                "swarm-leave",
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
                "swarm-leave",
            ],
        ),
    ],
)
def test_release_items_run_phase_by_phase_from_playbooks(
    samples: Samples, machine_type: Any, expected: list[str]
) -> None:
    for release in (d for d in samples if d["kind"] == "ClusterRelease"):
        items = ClusterRelease.from_raw(release).spec.machine_types[machine_type]
        assert [i.name for i in items] == expected
        order = [RELEASE_PHASES.index(i.phase) for i in items]
        assert order == sorted(order)
        for item in items:
            assert item.runner == "ansible"
            assert item.params["playbook"] == f"{item.phase}/{item.name}.yml"

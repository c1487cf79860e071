"""``phase: decommission``: a ClusterRelease template may hold it; a machine's or cluster's item may not (the
scheduler hands decommission templates to a leaving machine as reconfigure items)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from agent.api.models import ClusterRelease, InvalidObjectError, LCMCluster, LCMMachine
from testbed.sim.schema import StructuralSchema

LEAVE = {"runner": "ansible", "name": "swarm-leave", "version": "1.0.0", "phase": "decommission",
         "params": {"playbook": "decommission/swarm-leave.yml"}}


def _release(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "kaas.mirantis.com/v1alpha1", "kind": "ClusterRelease", "metadata": {"name": name},
            "spec": spec}


RELEASE = _release(
    "swarm-1.0.0", version="1.0.0",
    agent={"version": "0.1.0", "downloadURL": "http://m/a.whl", "sha256": "0" * 64},
    machineTypes={"worker": [
        {"runner": "ansible", "name": "swarm-join", "version": "1.0.0", "phase": "deploy"}, LEAVE]},
)


def test_a_release_template_may_be_a_decommission_item(schemas: dict[str, dict[str, Any]]) -> None:
    release = ClusterRelease.from_raw(RELEASE)
    assert [i.phase for i in release.spec.machine_types["worker"]] == ["deploy", "decommission"]
    assert release.to_raw() == RELEASE
    assert StructuralSchema(schemas["ClusterRelease"]).validate(RELEASE) == []


def test_a_decommission_item_keeps_its_name_unique_among_the_others() -> None:
    raw = copy.deepcopy(RELEASE)
    raw["spec"]["machineTypes"]["worker"].append({**LEAVE, "phase": "deploy"})
    with pytest.raises(InvalidObjectError, match="duplicate state item name 'swarm-leave'"):
        ClusterRelease.from_raw(raw)


@pytest.mark.parametrize(
    ("kind", "model", "raw", "path"),
    [
        ("LCMMachine", LCMMachine,
         {"metadata": {"name": "m"}, "spec": {"stateItems": [LEAVE]}}, "spec.stateItems[0].phase"),
        ("LCMCluster", LCMCluster,
         {"metadata": {"name": "c"}, "spec": {"machineTypes": {"worker": [LEAVE]}}},
         "spec.machineTypes.worker[0].phase"),
    ],
)
def test_machines_and_clusters_never_hold_decommission_items(
    schemas: dict[str, dict[str, Any]], kind: str, model: type[LCMMachine | LCMCluster], raw: dict[str, Any],
    path: str,
) -> None:
    """The CRD refuses them; a Go client reads one anyway (the phase is any string there), and so do we: it
    counts in no phase, so nothing runs it."""
    body = {"apiVersion": "lcm.mirantis.com/v1alpha1", "kind": kind, **raw}
    assert model.from_raw(body).to_raw() == body
    messages = [c.message for c in StructuralSchema(schemas[kind]).validate(body)]
    assert any(m.startswith(f'{path}: Unsupported value: "decommission"') for m in messages), messages


MIRANTIS_RELEASE = _release(
    "mke-11-7-0-3-5-7", version="11.7.0+3.5.7", description="MKE 3.5.7",
    releaseNotes=[{"version": "11.7.0", "notes": [{"text": "fixes"}]}],
    agent={"version": "v0.3.0-300-g1a2b3c4d", "downloadURL": "https://example.invalid/lcm-agent"},
    machineTypes={"control": [{"runner": "downloader", "name": "download lcm ansible", "version": "0.17.1",
                               "params": {"path": "/root/lcm-ansible"}}]},
    helm={"releases": [{"name": "stacklight", "chart": "stacklight/stacklight"}]},
    images={"kubernetes": "mirantis/ucp:3.5.7"},
    lcmType="ucp",
    allowedNodeLabels=[{"key": "stacklight", "value": "enabled", "displayName": "StackLight"}],
    allowedDistributions=[{"id": "ubuntu/focal", "version": "20.04", "default": True,
                           "image": {"url": "https://example.invalid/focal.img", "checksum": "sha256:0"}}],
)


def test_a_mirantis_cluster_release_reads_validates_and_loses_nothing(
    schemas: dict[str, dict[str, Any]],
) -> None:
    """No sha256, an item without a phase, Mirantis' fields lcm-agent does not act on: all kept."""
    release = ClusterRelease.from_raw(MIRANTIS_RELEASE)
    assert release.to_raw() == MIRANTIS_RELEASE
    assert release.spec.machine_types["control"][0].phase is None
    schema = StructuralSchema(schemas["ClusterRelease"])
    assert schema.validate(MIRANTIS_RELEASE) == []
    assert schema.default_and_prune(copy.deepcopy(MIRANTIS_RELEASE)) == MIRANTIS_RELEASE

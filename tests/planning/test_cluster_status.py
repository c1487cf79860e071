"""The LCMCluster status an operator reads: counts, progress, conditions, release digests."""

from __future__ import annotations

import pytest
from planning_world import World, cluster_raw, machine_raw, plan_for, release

from agent.api.crds import load_crds
from regional.planning.releases import release_digest
from testbed.sim.schema import StructuralSchema


def _world(**machines: str | None) -> World:
    raws = [machine_raw(n, "control" if n.startswith("c") else "worker", ip=ip) for n, ip in machines.items()]
    return World.of(cluster_raw(), raws)


@pytest.mark.parametrize(
    ("steps", "progress", "requested", "ready"),
    [
        (0, "deploy 0/3 ready", 3, 0),
        (6, "deploy 1/3 ready", 3, 1),
        (30, "deploy 2/3 ready", 3, 2),  # w1 has no address yet: requested, not ready, nothing to do for it
    ],
)
def test_progress_and_counts(steps: int, progress: str, requested: int, ready: int) -> None:
    world = _world(c1="10.0.0.1", w0="10.0.0.2", w1=None)
    for _ in range(steps + 1):
        world.step()
    status = world.cluster["status"]
    assert status["progress"] == progress
    assert (status["requestedNodes"], status["readyNodes"]) == (requested, ready)


def test_all_machines_ready_sets_release_and_the_ready_condition() -> None:
    world = _world(c1="10.0.0.1", w0="10.0.0.2")
    world.converge()
    status = world.cluster["status"]
    assert (status["release"], status["progress"]) == ("swarm-1.0.0", "ready 2/2")
    assert status["lcmOperationStuck"] is False
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions == {
        "Ready": ("True", "AllMachinesReady"),
        "ReleaseAccepted": ("True", "Accepted"),
        "OperationStuck": ("False", "NotStuck"),
        "Paused": ("False", "NotPaused"),
    }
    assert status["releaseDigests"] == {"swarm-1.0.0": release_digest(release())}


def test_conditions_keep_their_transition_time_while_unchanged() -> None:
    world = _world(c1="10.0.0.1")
    world.step()
    first = {c["type"]: c["lastTransitionTime"] for c in world.cluster["status"]["conditions"]}
    world.converge()
    later = {c["type"]: c["lastTransitionTime"] for c in world.cluster["status"]["conditions"]}
    assert later["ReleaseAccepted"] == first["ReleaseAccepted"]
    assert later["Ready"] > first["Ready"]  # False → True


def test_every_status_patch_passes_the_crd_schema() -> None:
    crd = next(c for c in load_crds() if c["spec"]["names"]["kind"] == "LCMCluster")
    schema = StructuralSchema(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    world = _world(c1="10.0.0.1", w0="10.0.0.2")
    world.converge()
    assert schema.validate(world.cluster) == []
    pruned = schema.default_and_prune(world.cluster)
    assert pruned["status"] == world.cluster["status"], "a status field the CRD does not declare"


def test_status_is_not_rewritten_when_nothing_changed() -> None:
    world = _world(c1="10.0.0.1")
    world.converge()
    assert plan_for(world).actions == ()

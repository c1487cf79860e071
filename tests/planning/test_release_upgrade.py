"""Rolling upgrades to a new ClusterRelease, settings changes, and the halt on failure."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from planning_world import World, cluster_raw, machine_raw, plan_for, release

from agent.api.models import KaaSRelease
from agent.decisions.hashing import item_hash
from regional.planning.actions import Create, Delete, Patch, Plan

V1 = release()
V2 = release("swarm-1.1.0", "1.1.0", agent="0.2.0", upgrade_from=["swarm-1.0.0"])


def _cluster(spec: dict[str, Any] | None = None, controls: int = 2, workers: int = 3) -> World:
    raws = [machine_raw(f"c{n}", "control", ip=f"10.0.0.{n + 1}") for n in range(controls)]
    raws += [machine_raw(f"w{n}", "worker", ip=f"10.0.1.{n + 1}") for n in range(workers)]
    world = World.of(cluster_raw(**(spec or {})), raws, V1, V2)
    world.converge()
    return world


def _upgrade(world: World, to: str = "swarm-1.1.0") -> None:
    world.cluster["spec"]["release"] = to
    world.cluster["metadata"]["generation"] += 1


def _events(plan: Plan) -> list[str]:
    """The plan's writes as short words: "c0 upgrade", "sd-w0 drain", "sd-w0 undrain", "sd-w0 delete"."""
    out = []
    for a in plan.actions:
        if a.resource not in ("lcmmachines", "lcmclusterstates"):
            continue  # the scheduler's own workload locks: tests/planning/test_maintenance_rules.py
        if isinstance(a, Create):
            out.append(f"{a.body['metadata']['name']} drain" if a.body["spec"]["value"] == "true" else "?")
        elif isinstance(a, Delete):
            out.append(f"{a.name} delete")
        elif isinstance(a, Patch) and a.resource == "lcmclusterstates":
            out.append(f"{a.name} {'drain' if a.patch['spec']['value'] == 'true' else 'undrain'}")
        elif isinstance(a, Patch) and a.resource == "lcmmachines" and a.subresource is None:
            out.append(f"{a.name} {'upgrade' if 'release' in a.patch['spec'] else 'change'}")
    return out


def _story(world: World, steps: int = 80) -> list[str]:
    return [event for _ in range(steps) for event in _events(world.step())]


def test_control_machines_one_at_a_time_then_workers_drained_one_at_a_time() -> None:
    world = _cluster()
    _upgrade(world)
    assert _story(world) == [
        "c0 upgrade", "c1 upgrade",  # a dedicated control plane runs no workloads: no drain
        "sd-w0 drain", "w0 upgrade", "sd-w0 undrain", "sd-w0 delete",
        "sd-w1 drain", "w1 upgrade", "sd-w1 undrain", "sd-w1 delete",
        "sd-w2 drain", "w2 upgrade", "sd-w2 undrain", "sd-w2 delete",
    ]
    assert {world.machine(n).spec.release for n in world.machines} == {"swarm-1.1.0"}
    assert {world.machine(n).spec.agent_config.version for n in world.machines} == {"0.2.0"}
    assert {world.state(n) for n in world.machines} == {"Ready"}


def test_max_worker_upgrade_count_workers_are_drained_at_once() -> None:
    world = _cluster({"maxWorkerUpgradeCount": 2}, controls=1, workers=3)
    _upgrade(world)
    story = _story(world)
    assert story[:4] == ["c0 upgrade", "sd-w0 drain", "sd-w1 drain", "w0 upgrade"]
    assert story.index("sd-w2 drain") > story.index("sd-w0 delete")


def test_without_a_dedicated_control_plane_control_machines_are_drained_too() -> None:
    world = _cluster({"dedicatedControlPlane": False}, controls=2, workers=1)
    assert world.params("c0", "swarm-init")["availability"] == "active"
    _upgrade(world)
    assert _story(world)[:5] == ["sd-c0 drain", "c0 upgrade", "sd-c0 undrain", "sd-c0 delete", "sd-c1 drain"]


def _kaas(source: str, *versions: str) -> KaaSRelease:
    return KaaSRelease.from_raw({
        "apiVersion": "kaas.mirantis.com/v1alpha1", "kind": "KaaSRelease", "metadata": {"name": "kaas-1"},
        "spec": {"version": "1.0.0", "clusterRelease": "swarm-1.1.0", "management": {"helmReleases": []},
                 "supportedClusterReleases": [{"name": source, "version": "1.0.0",
                                               "availableUpgrades": [{"version": v} for v in versions]}]},
    })


@pytest.mark.parametrize(("kaas", "allowed"), [
    ([], False),
    ([_kaas("swarm-1.0.0", "1.1.0")], True),
    ([_kaas("swarm-1.0.0", "1.2.0")], False),  # another version
    ([_kaas("swarm-0.9.0", "1.1.0")], False),  # from another release
])
def test_a_kaas_release_lists_the_upgrades_allowed_the_mirantis_way(
    kaas: list[KaaSRelease], allowed: bool,
) -> None:
    bare = release("swarm-1.1.0", "1.1.0")  # no upgradeFrom of its own
    world = World.of(cluster_raw(), [machine_raw("c0", "control", ip="10.0.0.1")], V1, bare)
    world.converge()
    world.kaas_releases = kaas
    _upgrade(world)
    world.converge()
    assert (world.machine("c0").spec.release == "swarm-1.1.0") is allowed
    accepted = next(c for c in world.cluster["status"]["conditions"] if c["type"] == "ReleaseAccepted")
    assert (accepted["status"] == "True") is allowed


def test_the_cluster_shows_the_old_release_until_every_machine_is_done() -> None:
    world = _cluster(controls=1, workers=2)
    _upgrade(world)
    seen = set()
    for _ in range(60):
        world.step()
        status = world.cluster["status"]
        seen.add((status["release"], status["progress"].split(" ")[0]))
    assert seen >= {("swarm-1.0.0", "upgrade"), ("swarm-1.1.0", "ready")}
    assert ("swarm-1.1.0", "upgrade") not in seen


def test_an_upgrade_path_the_release_does_not_list_is_refused_and_nothing_changes() -> None:
    world = _cluster(controls=1, workers=1)
    world.releases["swarm-2.0.0"] = release("swarm-2.0.0", "2.0.0", upgrade_from=["swarm-1.1.0"])
    _upgrade(world, "swarm-2.0.0")
    plan = plan_for(world)
    assert [(a.resource, a.subresource) for a in plan.actions if isinstance(a, Patch)] == [
        ("lcmclusters", "status")
    ]
    world.apply(plan)
    accepted = next(c for c in world.cluster["status"]["conditions"] if c["type"] == "ReleaseAccepted")
    assert (accepted["status"], accepted["reason"]) == ("False", "UpgradeNotAllowed")
    assert "swarm-1.0.0" in accepted["message"]
    assert "upgradeFrom" in accepted["message"]
    assert world.cluster["status"]["progress"] == "refused: UpgradeNotAllowed"


def test_a_settings_change_rewrites_only_the_machines_and_items_it_concerns() -> None:
    world = _cluster(controls=1, workers=2)
    before = {n: dict(world.machine(n).status.state_item_statuses) for n in world.machines}
    world.machines["w1"]["metadata"]["labels"] = {"swarm.lcm.mirantis.com/zone": "b", "team": "x"}
    assert _story(world, 10) == ["w1 change"]
    labels = world.params("w1", "node-labels")["labels"]
    assert labels == '{"zone":"b"}'
    after = world.machine("w1").status.state_item_statuses
    rerun = {name for name, entry in after.items() if entry != before["w1"][name]}
    assert rerun == {"node-labels"}


def test_a_cluster_item_override_reaches_one_machine_type_one_control_machine_at_a_time() -> None:
    world = _cluster(controls=2, workers=2)
    override = {"runner": "ansible", "name": "node-labels", "version": "1.0.1", "phase": "reconfigure",
                "params": {"verbosity": "2"}}
    world.cluster["spec"]["machineTypes"] = {"control": [override]}
    assert _story(world, 20) == ["c0 change", "c1 change"]
    item = next(i for i in world.machine("c1").spec.state_items if i.name == "node-labels")
    assert (item.version, dict(item.params)) == ("1.0.1", {"playbook": "reconfigure/node-labels.yml",
                                                           "verbosity": "2", "labels": "{}"})
    assert next(i for i in world.machine("w0").spec.state_items if i.name == "node-labels").version == "1.0.0"


def _stuck(world: World) -> tuple[bool, str]:
    condition = next(c for c in world.cluster["status"]["conditions"] if c["type"] == "OperationStuck")
    return world.cluster["status"]["lcmOperationStuck"], condition["message"]


def test_a_failing_upgrade_halts_the_rollout_with_the_reason_and_a_fix_reaches_the_machine() -> None:
    world = _cluster(controls=1, workers=3)
    world.broken = {("w0", "docker-engine")}
    _upgrade(world)
    story = _story(world, 40)
    assert story == ["c0 upgrade", "sd-w0 drain", "w0 upgrade"]  # w0 stays drained, nobody else moves
    assert _stuck(world) == (True, "w0: item docker-engine failed 5 times or more: boom")
    assert world.machine("w0").status.lcm_operation_stuck is True
    assert world.cluster["status"]["progress"] == "halted, upgrade to swarm-1.1.0 1/4"

    world.broken = set()  # e.g. a mirror is back: the next attempt succeeds and the rollout goes on
    story = _story(world, 60)
    assert story[:3] == ["sd-w0 undrain", "sd-w0 delete", "sd-w1 drain"]
    assert _stuck(world) == (False, "")
    assert world.machine("w0").status.lcm_operation_stuck is False


def test_an_item_running_too_long_halts_and_the_plan_asks_to_be_woken_for_it() -> None:
    world = _cluster(controls=1, workers=1)
    _upgrade(world)
    world.step(movers=[])
    started = world.now
    entry = {"hash": "x", "exitCode": -1, "attempt": 1, "startedAt": started.strftime("%Y-%m-%dT%H:%M:%SZ")}
    first_item = world.machine("c0").spec.state_items[0]
    entry["hash"] = item_hash(first_item, world.machine("c0").spec.agent_config.version)
    world.machines["c0"]["status"]["stateItemStatuses"][first_item.name] = entry
    assert plan_for(world).requeue_after == pytest.approx(3600)
    world.now = started + timedelta(seconds=3601)
    world.apply(plan_for(world))
    assert _stuck(world) == (True, "c0: item preflight has run for more than 3600s")


def test_a_modified_release_is_refused_until_it_is_restored() -> None:
    world = _cluster(controls=1, workers=1)
    original = world.releases["swarm-1.0.0"]
    raw = original.to_raw()
    raw["spec"]["machineTypes"]["worker"][0]["params"]["playbook"] = "prepare/other.yml"
    world.releases["swarm-1.0.0"] = type(original).from_raw(raw)
    plan = plan_for(world)
    assert [a.resource for a in plan.actions] == ["lcmclusters"]
    world.apply(plan)
    accepted = next(c for c in world.cluster["status"]["conditions"] if c["type"] == "ReleaseAccepted")
    assert (accepted["status"], accepted["reason"]) == ("False", "ReleaseModified")
    world.releases["swarm-1.0.0"] = original
    world.apply(plan_for(world))
    accepted = next(c for c in world.cluster["status"]["conditions"] if c["type"] == "ReleaseAccepted")
    assert accepted["status"] == "True"
    assert plan_for(world).actions == ()


def test_a_paused_cluster_changes_nothing_but_says_so() -> None:
    world = _cluster(controls=1, workers=1)
    world.cluster["metadata"]["annotations"] = {"lcm.mirantis.com/paused": "true"}
    _upgrade(world)
    plan = plan_for(world)
    assert {(a.resource, a.subresource) for a in plan.actions} == {("lcmclusters", "status"),
                                                                    ("lcmmachines", "status")}
    world.apply(plan)
    assert world.machines["c0"]["status"]["waiting"]["reason"] == "Paused"  # the one the upgrade would move
    assert world.machines["w0"]["status"]["waiting"]["reason"] == "WaitingForControlPlane"
    paused = next(c for c in world.cluster["status"]["conditions"] if c["type"] == "Paused")
    assert paused["status"] == "True"
    assert world.cluster["status"]["progress"] == "paused, upgrade to swarm-1.1.0 0/2"
    del world.cluster["metadata"]["annotations"]
    told = []  # first other controllers are told (maintenance of the cluster, then of c0), then c0 moves
    while not _events(unpaused := plan_for(world)):
        told += [(a.resource, a.body["metadata"]["name"]) for a in unpaused.actions if isinstance(a, Create)]
        world.apply(unpaused)
    assert told == [("clustermaintenancerequests", "demo"), ("nodemaintenancerequests", "c0")]
    assert _events(unpaused) == ["c0 upgrade"]

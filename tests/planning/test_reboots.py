"""Rolling reboots: which machine is drained, rebooted and undrained when, and what stops the rollout.

The world's agents reboot a machine as soon as its spec asks (``World._reboot``) and come back at once,
except the machines in ``world.down``, which never come back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from planning_world import NS, World, cluster_raw, machine_raw, release

from regional.planning.actions import Create, Delete, Patch, Plan
from regional.planning.contract import GRACEFUL_REBOOT_ANNOTATION
from regional.planning.settings import PlanSettings


def _cluster(controls: int = 2, workers: int = 3, **spec: Any) -> World:
    raws = [machine_raw(f"c{n}", "control", ip=f"10.0.0.{n + 1}") for n in range(controls)]
    raws += [machine_raw(f"w{n}", "worker", ip=f"10.0.1.{n + 1}") for n in range(workers)]
    world = World.of(cluster_raw(**spec), raws, release())
    world.settings = PlanSettings(reboot_time_limit=60)
    world.converge()
    return world


def _request(world: World, *machines: str, name: str = "demo") -> None:
    world.reboot_requests[name] = {
        "apiVersion": "kaas.mirantis.com/v1alpha1", "kind": "GracefulRebootRequest",
        "metadata": {"name": name, "namespace": NS}, "spec": {"machines": list(machines)}}


def _events(plan: Plan) -> list[str]:
    """The plan's reboot writes as short words: "w0 start", "w0 reboot", "w0 back", "sd-w0 drain"... (the
    NodeMaintenanceRequests that go with them: ``_requested``)."""
    out = []
    for a in plan.actions:
        if isinstance(a, Create) and a.resource == "lcmclusterstates":
            out.append(f"{a.body['metadata']['name']} drain")
        elif isinstance(a, Delete) and a.resource != "nodemaintenancerequests":
            out.append(f"{a.name} delete")
        elif isinstance(a, Patch) and a.resource == "lcmclusterstates":
            out.append(f"{a.name} {'drain' if a.patch['spec']['value'] == 'true' else 'undrain'}")
        elif isinstance(a, Patch) and a.resource == "lcmmachines" and a.subresource is None:
            annotations = a.patch.get("metadata", {}).get("annotations", {})
            if a.patch.get("spec", {}).get("rebootRequired") is True:
                out.append(f"{a.name} reboot")
            elif annotations.get(GRACEFUL_REBOOT_ANNOTATION) == "true":
                out.append(f"{a.name} start")
            elif GRACEFUL_REBOOT_ANNOTATION in annotations:
                out.append(f"{a.name} back")
    return out


def _rebooting(world: World) -> set[str]:
    return {n for n, m in world.machines.items()
            if m["metadata"].get("annotations", {}).get(GRACEFUL_REBOOT_ANNOTATION) == "true"}


def _drained(world: World) -> set[str]:
    return {s["spec"]["arg"] for s in world.states.values() if s["spec"]["value"] == "true"}


def _story(world: World, steps: int = 120) -> tuple[list[str], list[set[str]]]:
    """The events of ``steps`` plans, and after each plan the machines in a reboot."""
    events, rebooting = [], []
    for _ in range(steps):
        events += _events(world.step())
        rebooting.append(_rebooting(world))
    return events, rebooting


def test_a_request_for_the_whole_cluster_reboots_controls_one_at_a_time_then_workers_drained() -> None:
    world = _cluster()
    _request(world)
    events, _ = _story(world)
    assert events == [
        "c0 start", "c0 reboot", "c0 back",  # a dedicated control plane runs no workloads: no drain
        "c1 start", "c1 reboot", "c1 back",
        "w0 start", "sd-w0 drain", "w0 reboot", "sd-w0 undrain", "w0 back", "sd-w0 delete",
        "w1 start", "sd-w1 drain", "w1 reboot", "sd-w1 undrain", "w1 back", "sd-w1 delete",
        "w2 start", "sd-w2 drain", "w2 reboot", "sd-w2 undrain", "w2 back", "sd-w2 delete",
        "demo delete",  # the request, once every machine is back
    ]
    assert not world.reboot_requests
    assert not world.states
    assert all(not m["spec"].get("rebootRequired") for m in world.machines.values())


def test_the_cluster_status_says_how_many_machines_are_rebooting() -> None:
    world = _cluster(controls=1, workers=2)
    world.down.add("w1")
    _request(world, "w1")
    _story(world, 4)
    assert world.cluster["status"]["progress"] == "ready 2/3, 1 rebooting"
    world.down.discard("w1")
    _story(world, 20)
    assert world.cluster["status"]["progress"] == "ready 3/3"


@pytest.mark.parametrize("budget", [1, 2, 3])
def test_workers_reboot_within_the_upgrade_budget(budget: int) -> None:
    world = _cluster(controls=1, workers=4, maxWorkerUpgradeCount=budget)
    _request(world, "w0", "w1", "w2", "w3")
    most = 0
    for _ in range(120):
        world.step()
        drained = _drained(world)
        most = max(most, len(drained))
        assert drained <= _rebooting(world)
    assert most == budget
    assert not world.reboot_requests


def test_a_control_machine_reboots_only_while_the_other_managers_are_ready() -> None:
    world = _cluster(controls=3, workers=0)
    world.down.add("c2")
    world.machines["c2"]["spec"]["rebootRequired"] = True  # asked by hand, and it has not come back
    _request(world, "c0")
    events, rebooting = _story(world, 10)
    assert world.reboot_requests["demo"]["status"]["pending"] == ["c0"]  # the planner saw the request
    assert events == []
    assert rebooting[-1] == set()

    world.down.discard("c2")
    world.machines["c2"]["spec"]["rebootRequired"] = False
    events, _ = _story(world, 20)
    assert events == ["c0 start", "c0 reboot", "c0 back", "demo delete"]


@pytest.mark.parametrize(("spec", "limit"), [({}, 60), ({"rebootTimeoutSeconds": 40}, 40)],
                         ids=["the scheduler's limit", "the cluster's rebootTimeoutSeconds"])
def test_a_machine_is_not_undrained_before_it_is_back_and_one_that_stays_down_halts_the_rollout(
    spec: dict[str, Any], limit: int,
) -> None:
    world = _cluster(controls=1, workers=3, **spec)
    world.down.add("w0")
    _request(world)
    events, _ = _story(world, 30)
    assert "sd-w0 undrain" not in events
    assert "w1 start" not in events
    assert _drained(world) == {"w0"}
    status = world.cluster["status"]
    assert status["lcmOperationStuck"] is True
    stuck = next(c for c in status["conditions"] if c["type"] == "OperationStuck")
    assert stuck["status"] == "True"
    assert f"w0: reboot not back after {limit}s" in stuck["message"]
    assert world.machines["w0"]["status"]["lcmOperationStuck"] is True
    assert world.reboot_requests["demo"]["status"]["pending"] == ["w0", "w1", "w2"]

    world.down.discard("w0")  # it comes back after all: the rollout goes on by itself
    events, _ = _story(world, 80)
    assert events[:3] == ["sd-w0 undrain", "w0 back", "sd-w0 delete"]
    assert "w2 back" in events
    assert not world.reboot_requests
    assert world.cluster["status"]["lcmOperationStuck"] is False


def test_a_failed_reboot_command_halts_the_rollout_with_the_agents_message() -> None:
    world = _cluster(controls=1, workers=2)
    world.down.add("w0")
    _request(world, "w0", "w1")
    _story(world, 4)
    world.machines["w0"]["status"]["reboot"]["errorMessage"] = "systemctl reboot: exit code 1"
    world.step()
    stuck = next(c for c in world.cluster["status"]["conditions"] if c["type"] == "OperationStuck")
    assert "w0: reboot failed: systemctl reboot: exit code 1" in stuck["message"]


def test_the_os_asking_for_a_reboot_reboots_that_machine_alone() -> None:
    world = _cluster(controls=1, workers=3)
    world.machines["w1"]["status"].setdefault("hostInfo", {})["rebootRequired"] = True
    events, _ = _story(world, 30)
    assert events == ["w1 start", "sd-w1 drain", "w1 reboot", "sd-w1 undrain", "w1 back", "sd-w1 delete"]


def test_a_reboot_starts_only_inside_the_maintenance_windows() -> None:
    world = _cluster(controls=1, workers=2)
    world.cluster["spec"]["rollout"] = {"windows": [{"days": ["Sat"], "start": "22:00", "end": "23:00"}]}
    world.now = datetime(2026, 12, 12, 12, tzinfo=UTC)  # a Saturday, noon UTC: closed until 22:00
    world.machines["w1"]["status"].setdefault("hostInfo", {})["rebootRequired"] = True
    events, _ = _story(world, 10)
    assert events == []
    assert world.machines["w1"]["status"]["waiting"]["reason"] == "WindowClosed"
    world.now = datetime(2026, 12, 12, 22, 5, tzinfo=UTC)
    events, _ = _story(world, 30)
    assert events == ["w1 start", "sd-w1 drain", "w1 reboot", "sd-w1 undrain", "w1 back", "sd-w1 delete"]


def _requested(world: World) -> dict[str, str]:
    """The scheduler's NodeMaintenanceRequests: node → scope."""
    return {r["spec"]["nodeName"]: r["spec"]["scope"]
            for r in world.maintenance["nodemaintenancerequests"].values()}


def test_a_reboot_tells_other_controllers_by_a_maintenance_request_and_withdraws_it_once_back() -> None:
    world = _cluster(controls=1, workers=2)
    world.machines["w1"]["status"].setdefault("hostInfo", {})["rebootRequired"] = True
    world.step()
    assert _requested(world) == {"w1": "os"}  # before anything is disrupted
    assert world.machines["w1"]["status"]["waiting"]["reason"] == "MaintenanceRequested"
    assert "w1" not in _rebooting(world)
    events, _ = _story(world, 30)
    assert events == ["w1 start", "sd-w1 drain", "w1 reboot", "sd-w1 undrain", "w1 back", "sd-w1 delete"]
    assert _requested(world) == {}


def test_another_controllers_active_lock_holds_the_reboot_until_it_goes_inactive() -> None:
    world = _cluster(controls=1, workers=2)
    lock = {"apiVersion": "lcm.mirantis.com/v1alpha1", "kind": "NodeWorkloadLock",
            "metadata": {"name": "w1-ceph", "namespace": NS},
            "spec": {"controllerName": "ceph", "nodeName": "w1"}, "status": {"state": "active"}}
    world.maintenance["nodeworkloadlocks"]["w1-ceph"] = lock
    world.machines["w1"]["status"].setdefault("hostInfo", {})["rebootRequired"] = True
    events, _ = _story(world, 10)
    assert events == []
    waiting = world.machines["w1"]["status"]["waiting"]
    assert (waiting["reason"], waiting["message"]) == ("LockHeld", "active: NodeWorkloadLock w1-ceph of ceph")
    assert _requested(world) == {"w1": "os"}  # what tells ceph to release its lock
    lock["status"]["state"] = "inactive"
    events, _ = _story(world, 30)
    assert events[:3] == ["w1 start", "sd-w1 drain", "w1 reboot"]


def test_a_request_naming_machines_the_cluster_does_not_have_is_refused_and_reboots_nothing() -> None:
    world = _cluster(controls=1, workers=1)
    _request(world, "w0", "other-cluster-w7", "ghost")
    events, _ = _story(world, 10)
    assert events == []
    accepted = world.reboot_requests["demo"]["status"]["conditions"][0]
    assert (accepted["type"], accepted["status"]) == ("Accepted", "False")
    assert accepted["reason"] == "UnknownMachines"
    assert accepted["message"] == "not machines of cluster demo: ghost, other-cluster-w7"

    world.reboot_requests["demo"]["spec"]["machines"] = ["w0"]  # corrected: it goes ahead
    events, _ = _story(world, 30)
    assert "w0 back" in events
    assert not world.reboot_requests


def test_a_machine_already_rebooting_for_its_os_is_not_rebooted_again_for_a_request() -> None:
    world = _cluster(controls=1, workers=2)
    world.machines["w0"]["status"].setdefault("hostInfo", {})["rebootRequired"] = True
    world.step()  # its NodeMaintenanceRequest made
    world.step()
    assert _rebooting(world) == {"w0"}
    _request(world, "w0")
    events, _ = _story(world, 30)
    assert events.count("w0 reboot") == 1
    assert not world.reboot_requests


def test_a_request_of_another_cluster_name_is_not_this_clusters() -> None:
    world = _cluster(controls=1, workers=1)
    _request(world, "w0", name="other")
    events, _ = _story(world, 10)
    assert events == []
    assert "status" not in world.reboot_requests["other"]


def test_an_upgrade_waits_for_a_reboot_under_way_and_the_reboot_for_a_pending_change() -> None:
    world = _cluster(controls=1, workers=2)
    world.releases["swarm-1.1.0"] = release("swarm-1.1.0", "1.1.0", upgrade_from=["swarm-1.0.0"])
    _request(world, "w0")
    _story(world, 2)  # w0 is drained for its reboot
    world.cluster["spec"]["release"] = "swarm-1.1.0"
    world.cluster["metadata"]["generation"] += 1
    events, _ = _story(world, 80)
    assert events.index("w0 back") < events.index("sd-w0 drain", events.index("w0 back"))
    assert {world.machine(n).spec.release for n in world.machines} == {"swarm-1.1.0"}

"""Maintenance and workload locks, planned: who is drained, who is held, what the requests and locks say."""

from __future__ import annotations

from typing import Any

import pytest
from planning_world import API, NS, World, cluster_raw, machine_raw, release

from regional.planning.locks import LOCK_CONTROLLER, node_lock_name

V1 = release()
V2 = release("swarm-1.1.0", "1.1.0", agent="0.2.0", upgrade_from=["swarm-1.0.0"])
T = "2026-01-01T00:00:00Z"


def _cluster(workers: int = 2, **spec: Any) -> World:
    raws = [machine_raw("c0", "control", ip="10.0.0.1")]
    raws += [machine_raw(f"w{n}", "worker", ip=f"10.0.1.{n + 1}") for n in range(workers)]
    world = World.of(cluster_raw(**spec), raws, V1, V2)
    world.converge()
    return world


def _request(world: World, name: str, node: str, *, created: str = T, **spec: Any) -> None:
    world.maintenance["nodemaintenancerequests"][name] = {
        "apiVersion": API, "kind": "NodeMaintenanceRequest",
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": created},
        "spec": {"nodeName": node, "scope": "os", **spec}}


def _lock(world: World, node: str | None, controller: str, state: str | None, message: str = "") -> None:
    kind = "NodeWorkloadLock" if node else "ClusterWorkloadLock"
    body: dict[str, Any] = {
        "apiVersion": API, "kind": kind,
        "metadata": {"name": f"{node or 'demo'}-{controller}", "namespace": NS},
        "spec": {"controllerName": controller, **({"nodeName": node} if node else {})}}
    if state is not None:
        body["status"] = {"state": state, "errorMessage": message}
    kinds = "nodeworkloadlocks" if node else "clusterworkloadlocks"
    world.maintenance[kinds][body["metadata"]["name"]] = body


def _status(world: World, kind: str, name: str) -> dict[str, Any]:
    return dict(world.maintenance[kind][name].get("status", {}))


def _own_lock(world: World, machine: str) -> str | None:
    lock = world.maintenance["nodeworkloadlocks"].get(node_lock_name(machine))
    return None if lock is None else lock.get("status", {}).get("state")


def test_a_machine_in_maintenance_is_drained_held_out_of_an_upgrade_and_back_afterwards() -> None:
    world = _cluster(maxWorkerUpgradeCount=2)  # the node in maintenance keeps one drain slot
    world.machines["w0"]["spec"]["maintenance"] = True
    world.converge()
    assert world.machine("w0").status.maintenance is True
    assert world.cluster["status"]["progress"].endswith(", 1 in maintenance")
    assert world.states["sd-w0"]["spec"]["value"] == "true"
    assert world.machine("w0").status.swarm_cordon_drain == "cordondrained"
    assert _own_lock(world, "w0") == "active"  # the scheduler's own lock says its drain is in flight
    cluster_lock = world.maintenance["clusterworkloadlocks"][f"demo-{LOCK_CONTROLLER}"]
    assert cluster_lock["status"]["state"] == "active"

    world.cluster["spec"]["release"] = "swarm-1.1.0"
    world.converge()
    assert {n: world.machine(n).spec.release for n in world.machines} == {
        "c0": "swarm-1.1.0", "w0": "swarm-1.0.0", "w1": "swarm-1.1.0"}  # held out of the rollout
    assert world.cluster["status"]["release"] == "swarm-1.0.0"  # not every machine is done with the new one

    world.machines["w0"]["spec"]["maintenance"] = False
    world.converge()
    w0 = world.machine("w0")
    assert (w0.status.maintenance, w0.spec.release, world.state("w0")) == (False, "swarm-1.1.0", "Ready")
    assert "sd-w0" not in world.states
    assert w0.status.swarm_cordon_drain is None  # nothing left cordoned
    assert _own_lock(world, "w0") == "inactive"
    assert world.cluster["status"]["release"] == "swarm-1.1.0"
    assert "w0" not in world.maintenance["nodemaintenancerequests"]  # removed once the node was undrained


def test_a_machine_that_steps_into_maintenance_says_why_it_waits_from_that_step_on() -> None:
    """The plan that sets ``status.maintenance`` holds the machine too: its ``status.waiting`` never goes
    blank in between (an e2e look caught it between two writes, in maintenance and not waiting)."""
    world = _cluster()
    world.machines["w0"]["spec"]["maintenance"] = True
    seen = []
    for _ in range(40):
        world.step()
        w0 = world.machine("w0")
        seen.append((w0.status.maintenance, w0.status.waiting.reason if w0.status.waiting else None))
    inside = [reason for maintenance, reason in seen if maintenance]
    assert inside, seen  # it did get in
    assert set(inside) == {"Maintenance"}, seen


def test_the_flag_makes_a_request_other_controllers_answer_before_the_drain() -> None:
    """Mirantis' flow: LCM requests maintenance, an application controller makes its workloads safe and sets
    its lock inactive, then LCM drains."""
    world = _cluster()
    _lock(world, "w0", "openstack", "active")
    world.machines["w0"]["spec"]["maintenance"] = True
    world.converge()
    request = world.maintenance["nodemaintenancerequests"]["w0"]
    assert request["spec"] == {"nodeName": "w0", "scope": "os", "clusterName": "demo"}
    assert request["metadata"]["labels"] == {"app.kubernetes.io/managed-by": LOCK_CONTROLLER}
    assert "sd-w0" not in world.states  # the controller has not answered yet
    world.maintenance["nodeworkloadlocks"]["w0-openstack"]["status"]["state"] = "inactive"
    world.converge()
    assert world.machine("w0").status.maintenance is True
    assert "status" not in world.maintenance["nodemaintenancerequests"]["w0"]  # ours is not an operator's


@pytest.mark.parametrize(("state", "phase_message"), [
    (None, "active: NodeWorkloadLock w0-ceph of ceph"),  # a lock without a status is active, as in Mirantis
    ("active", "active: NodeWorkloadLock w0-ceph of ceph"),
    ("failed", "NodeWorkloadLock w0-ceph of ceph failed: osd.3 cannot move"),
])
def test_another_controllers_lock_keeps_the_machine_out_of_maintenance(state: str | None,
                                                                      phase_message: str) -> None:
    world = _cluster()
    _lock(world, "w0", "ceph", state, "osd.3 cannot move" if state == "failed" else "")
    _request(world, "fix-w0", "w0")
    world.converge()
    assert "sd-w0" not in world.states  # never drained
    assert world.machine("w0").status.maintenance is False
    waiting = {"phase": "Waiting", "message": phase_message}
    assert _status(world, "nodemaintenancerequests", "fix-w0") == waiting
    why = world.machines["w0"]["status"]["waiting"]  # what kubectl get lcmm and lcmctl explain show
    reason = "LockFailed" if state == "failed" else "LockHeld"
    assert (why["reason"], why["message"]) == (reason, phase_message)

    world.maintenance["nodeworkloadlocks"]["w0-ceph"]["status"] = {"state": "inactive"}
    world.converge()
    assert world.machine("w0").status.maintenance is True
    assert _status(world, "nodemaintenancerequests", "fix-w0") == {"phase": "InMaintenance", "message": ""}

    del world.maintenance["nodemaintenancerequests"]["fix-w0"]  # maintenance over: the request goes
    world.converge()
    assert (world.machine("w0").status.maintenance, "sd-w0" in world.states) == (False, False)


def test_an_active_lock_holds_an_upgrade_of_its_node_and_a_cluster_lock_all_of_them() -> None:
    world = _cluster()
    _lock(world, "w1", "openstack", "active")
    world.cluster["spec"]["release"] = "swarm-1.1.0"
    world.converge()
    assert {n: world.machine(n).spec.release for n in world.machines} == {
        "c0": "swarm-1.1.0", "w0": "swarm-1.1.0", "w1": "swarm-1.0.0"}
    assert "sd-w1" not in world.states

    world = _cluster()
    _lock(world, None, "openstack", "active")
    world.cluster["spec"]["release"] = "swarm-1.1.0"
    world.converge()
    assert {world.machine(n).spec.release for n in world.machines} == {"swarm-1.0.0"}
    world.maintenance["clusterworkloadlocks"]["demo-openstack"]["status"]["state"] = "inactive"
    world.converge()
    assert {world.machine(n).spec.release for n in world.machines} == {"swarm-1.1.0"}


def test_a_lock_is_waited_for_even_while_the_last_maintenance_is_being_undone() -> None:
    world = _cluster()
    world.machines["w0"]["spec"]["maintenance"] = True
    world.converge()
    world.machines["w0"]["spec"]["maintenance"] = False
    while world.states["sd-w0"]["spec"]["value"] == "true":
        world.step()
    assert "sd-w0" in world.states  # the undrain is asked for, the state not yet gone
    _lock(world, "w0", "ceph", "active")
    _request(world, "again", "w0")
    world.converge()
    waiting = _status(world, "nodemaintenancerequests", "again")
    assert waiting["message"] == "active: NodeWorkloadLock w0-ceph of ceph"
    assert "sd-w0" not in world.states  # not drained again past the lock; the undone drain went


def test_skip_maintenance_waits_for_no_lock() -> None:
    world = _cluster()
    _lock(world, "w0", "ceph", "active")
    world.machines["w0"]["metadata"]["annotations"] = {"lcm.mirantis.com/skip-maintenance": "true"}
    world.machines["w0"]["spec"]["maintenance"] = True
    world.converge()
    assert world.machine("w0").status.maintenance is True
    assert world.maintenance["nodemaintenancerequests"] == {}  # "a maintenance won't be initiated"


@pytest.mark.parametrize(("spec", "message"), [
    ({}, "no machine w9"),
    ({"clusterName": "demo"}, "no machine w9 in cluster demo"),
])
def test_a_request_for_a_machine_that_is_not_there_is_refused_naming_it(spec: dict[str, str],
                                                                        message: str) -> None:
    world = _cluster()
    _request(world, "typo", "w9", **spec)
    world.converge()
    assert _status(world, "nodemaintenancerequests", "typo") == {"phase": "Refused", "message": message}
    assert not world.states  # nobody was drained


def test_of_two_requests_for_one_node_the_older_serves_and_the_other_waits_for_it() -> None:
    world = _cluster()
    _request(world, "second", "w0", created="2026-01-01T00:00:05Z", scope="drain")
    _request(world, "first", "w0")
    world.converge()
    assert _status(world, "nodemaintenancerequests", "first")["phase"] == "InMaintenance"
    assert _status(world, "nodemaintenancerequests", "second") == {
        "phase": "Waiting", "message": "waits for NodeMaintenanceRequest first"}
    del world.maintenance["nodemaintenancerequests"]["first"]
    world.converge()
    assert _status(world, "nodemaintenancerequests", "second")["phase"] == "InMaintenance"
    assert world.machine("w0").status.maintenance is True  # in maintenance all along


def test_maintenance_drains_within_the_worker_drain_budget() -> None:
    world = _cluster(workers=3)
    for name in ("w0", "w1"):
        world.machines[name]["spec"]["maintenance"] = True
    world.converge()
    assert [n for n in ("w0", "w1") if world.machine(n).status.maintenance] == ["w0"]
    assert "sd-w1" not in world.states  # maxWorkerUpgradeCount 1: the drain slot is w0's
    assert world.machines["w1"]["status"]["waiting"]["reason"] == "UpgradeSlotTaken"
    assert world.machines["w0"]["status"]["waiting"]["reason"] == "Maintenance"
    world.machines["w0"]["spec"]["maintenance"] = False
    world.converge()
    assert [n for n in ("w0", "w1") if world.machine(n).status.maintenance] == ["w1"]


def test_a_dedicated_control_plane_machine_goes_in_without_a_drain() -> None:
    world = _cluster()
    world.machines["c0"]["spec"]["maintenance"] = True
    world.converge()
    assert world.machine("c0").status.maintenance is True
    assert "sd-c0" not in world.states  # it runs no workloads


def test_a_machine_deleted_in_maintenance_leaves_and_nothing_is_left_drained() -> None:
    world = _cluster()
    _request(world, "fix-w0", "w0")
    world.converge()
    assert world.machine("w0").status.maintenance is True
    world.machines["w0"]["spec"]["prepareDeletion"] = True
    world.converge()
    assert world.machine("w0").metadata.finalizers == ()  # it left the swarm and may go
    assert _status(world, "nodemaintenancerequests", "fix-w0") == {
        "phase": "Refused", "message": "machine w0 is being deleted"}
    del world.machines["w0"]
    world.converge()
    assert not world.states  # no drain state of it is left behind
    assert node_lock_name("w0") not in world.maintenance["nodeworkloadlocks"]


def test_cluster_maintenance_starts_nothing_new_once_other_controllers_let_it() -> None:
    world = _cluster()
    _lock(world, None, "openstack", "active")
    world.maintenance["clustermaintenancerequests"]["demo"] = {
        "apiVersion": API, "kind": "ClusterMaintenanceRequest",
        "metadata": {"name": "demo", "namespace": NS, "creationTimestamp": T}, "spec": {"scope": "drain"}}
    world.cluster["spec"]["release"] = "swarm-1.1.0"
    world.converge()
    assert _status(world, "clustermaintenancerequests", "demo") == {
        "phase": "Waiting", "message": "active: ClusterWorkloadLock demo-openstack of openstack"}
    assert world.cluster["status"].get("maintenance") is not True
    world.maintenance["clusterworkloadlocks"]["demo-openstack"]["status"]["state"] = "inactive"
    world.converge()
    assert world.cluster["status"]["maintenance"] is True
    assert {world.machine(n).spec.release for n in world.machines} == {"swarm-1.0.0"}  # no upgrade meanwhile
    world.machines["w0"]["spec"]["maintenance"] = True  # machines still go in and out
    world.converge()
    assert world.machine("w0").status.maintenance is True
    world.machines["w0"]["spec"]["maintenance"] = False
    del world.maintenance["clustermaintenancerequests"]["demo"]
    world.converge()
    assert world.cluster["status"]["maintenance"] is False
    assert {world.machine(n).spec.release for n in world.machines} == {"swarm-1.1.0"}


def test_the_clusters_flag_requests_cluster_maintenance_of_the_other_controllers() -> None:
    world = _cluster()
    world.cluster["spec"]["maintenance"] = True
    world.converge()
    request = world.maintenance["clustermaintenancerequests"]["demo"]
    assert (request["spec"], world.cluster["status"]["maintenance"]) == (
        {"scope": "drain", "clusterName": "demo"}, True)
    world.cluster["spec"]["maintenance"] = False
    world.converge()
    assert (world.maintenance["clustermaintenancerequests"], world.cluster["status"]["maintenance"]) == (
        {}, False)


def test_an_upgrade_asks_other_controllers_node_by_node_as_mirantis_does() -> None:
    """An application controller keeps its locks active until a maintenance request names their cluster or
    node (MOSK's do): the upgrade requests maintenance of the cluster, then of one node at a time, and goes
    on as the controller answers each ("Requested cluster maintenance", "Node maintenance requested"...)."""
    world = _cluster()
    _lock(world, None, "openstack", "active")
    for name in world.machines:
        _lock(world, name, "openstack", "active")
    world.cluster["spec"]["release"] = "swarm-1.1.0"
    requested_at_once = []
    for _ in range(150):
        named = {r["spec"]["nodeName"] for r in world.maintenance["nodemaintenancerequests"].values()}
        cluster_asked = bool(world.maintenance["clustermaintenancerequests"])
        for lock in world.maintenance["nodeworkloadlocks"].values():  # the controller answers
            lock["status"]["state"] = "inactive" if lock["spec"]["nodeName"] in named else "active"
        world.maintenance["clusterworkloadlocks"]["demo-openstack"]["status"]["state"] = \
            "inactive" if cluster_asked else "active"
        assert cluster_asked or not named  # the cluster is asked first
        requested_at_once.append(len(named))
        world.step()
    assert {world.machine(n).spec.release for n in world.machines} == {"swarm-1.1.0"}
    assert max(requested_at_once) == 1  # one node disrupted at a time, each after its controller's answer
    assert world.maintenance["nodemaintenancerequests"] == {}  # each removed when its node was done
    assert world.maintenance["clustermaintenancerequests"] == {}  # and the cluster's once all were

"""Drains that end and drains that protect, from the planner's side: the cluster's drain timeout, the
executor's reasons quoted (the services that did not move, the budget it waits for), bad budget labels in the
cluster's status, and the quorum guard before a control machine's upgrade or removal."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from planning_world import World, cluster_raw, machine_raw, plan_for, release

from agent.kits.timestamps import rfc3339
from regional.planning.actions import Create, Plan
from regional.planning.contract import GRACEFUL_REBOOT_ANNOTATION
from regional.planning.machines import view
from regional.planning.quorum import quorum_refusal

V1 = release()
V2 = release("swarm-1.1.0", "1.1.0", upgrade_from=["swarm-1.0.0"])
TIMEOUT = "lcm.mirantis.com/drain-timeout-seconds"


def _world(spec: dict[str, Any] | None = None, controls: int = 1, workers: int = 2) -> World:
    raws = [machine_raw(f"c{n}", "control", ip=f"10.0.0.{n + 1}", index=n) for n in range(controls)]
    raws += [machine_raw(f"w{n}", "worker", ip=f"10.0.1.{n + 1}", index=10 + n) for n in range(workers)]
    world = World.of(cluster_raw(**(spec or {})), raws, V1, V2)
    world.converge()
    return world


def _upgrade(world: World) -> None:
    world.cluster["spec"]["release"] = "swarm-1.1.0"
    world.cluster["metadata"]["generation"] += 1


def _until_drain_asked(world: World, machine: str, steps: int = 30) -> dict[str, Any]:
    """Steps the world (the executor idle) until the machine's drain exists; its state."""
    for _ in range(steps):
        world.apply(plan_for(world))
        for name in world.machines:
            world.run_agent(name)
        world.now += timedelta(seconds=10)
        if f"sd-{machine}" in world.states:
            return world.states[f"sd-{machine}"]
    raise AssertionError(f"sd-{machine} never asked for")


def _waiting(world: World, machine: str) -> tuple[str, str] | None:
    """The machine's ``status.waiting`` as the planner wrote it: (reason, message)."""
    found = world.machines[machine]["status"].get("waiting")
    return None if found is None else (found["reason"], found["message"])


def _condition(world: World, kind: str) -> dict[str, Any]:
    return next(c for c in world.cluster["status"]["conditions"] if c["type"] == kind)


@pytest.mark.parametrize(("spec", "seconds"), [({}, 1800), ({"drainTimeoutSeconds": 600}, 600)])
def test_every_drain_carries_the_clusters_timeout_and_the_plan_wakes_for_it(spec: dict[str, Any],
                                                                            seconds: int) -> None:
    world = _world(spec)
    _upgrade(world)
    state = _until_drain_asked(world, "w0")
    assert state["metadata"]["annotations"] == {TIMEOUT: str(seconds)}
    assert plan_for(world).requeue_after == pytest.approx(seconds - 10, abs=10)


def test_a_drain_that_does_not_finish_stops_the_rollout_naming_the_services_and_the_node_left_drained(
) -> None:
    world = _world({"drainTimeoutSeconds": 600})
    _upgrade(world)
    state = _until_drain_asked(world, "w0")
    # The executor's attempt ran out of time: its playbook named the service whose tasks stayed.
    state["status"] = {"message": "node 10.0.1.1 still runs tasks of service pinned (1 task) after 600 s of "
                                  "draining; it stays drained (availability drain)", "attempt": 1}
    world.machines["w0"]["status"]["swarmCordonDrain"] = "cordondraining"
    world.now = world.now + timedelta(seconds=601)
    world.apply(plan_for(world))
    stuck = _condition(world, "OperationStuck")
    assert stuck["status"] == "True"
    assert stuck["message"] == ("w0: drain of w0 not done after 600s: node 10.0.1.1 still runs tasks of "
                                "service pinned (1 task) after 600 s of draining; it stays drained "
                                "(availability drain)")
    assert world.machine("w0").status.lcm_operation_stuck is True
    assert world.cluster["status"]["progress"].startswith("halted, ")
    assert "sd-w1" not in world.states  # nobody else is drained meanwhile


def test_a_drain_held_by_a_budget_makes_the_machine_wait_with_the_service_named_then_times_out() -> None:
    world = _world({"drainTimeoutSeconds": 300})
    _upgrade(world)
    state = _until_drain_asked(world, "w0")
    message = ("disruption budget: service web: draining would stop 2 running task(s) and leave 0, below its "
               "budget (min-available 1 (the default))")
    state["status"] = {"waiting": {"reason": "DisruptionBudget", "message": message}}
    world.apply(plan_for(world))
    assert _waiting(world, "w0") == ("DisruptionBudget", message)
    world.now = world.now + timedelta(seconds=301)
    world.apply(plan_for(world))
    stuck = _condition(world, "OperationStuck")["message"]
    assert stuck == f"w0: drain of w0 not done after 300s: not drained, {message}"


def test_a_bad_budget_label_is_in_the_clusters_status_until_the_drain_is_over() -> None:
    world = _world()
    _upgrade(world)
    state = _until_drain_asked(world, "w0")
    warning = ("service web: label lcm.mirantis.com/min-available='all' is not an integer from 0 to its 2 "
               "replicas; the default applies (min-available 1)")
    state["status"] = {"warnings": [warning]}
    world.apply(plan_for(world))
    labels = _condition(world, "DisruptionBudgetLabels")
    assert (labels["status"], labels["reason"], labels["message"]) == ("False", "InvalidLabel", warning)
    world.converge()
    labels = _condition(world, "DisruptionBudgetLabels")
    assert (labels["status"], labels["reason"]) == ("True", "Valid")


def test_a_cluster_that_never_had_a_bad_label_shows_no_such_condition() -> None:
    world = _world()
    assert "DisruptionBudgetLabels" not in {c["type"] for c in world.cluster["status"]["conditions"]}


def _states_created(plan: Plan) -> list[str]:
    return [a.body["metadata"]["name"] for a in plan.actions
            if isinstance(a, Create) and a.resource == "lcmclusterstates"]


def _unreachable(world: World, name: str) -> None:
    world.machines[name]["status"]["conditions"] = [{
        "type": "AgentReachable", "status": "False", "reason": "HeartbeatMissed", "message": "no heartbeat",
        "lastTransitionTime": rfc3339(world.now)}]


def test_with_one_of_three_managers_down_no_other_manager_is_upgraded() -> None:
    world = _world(controls=3, workers=1)
    _unreachable(world, "c2")
    _upgrade(world)
    for _ in range(20):
        world.apply(plan_for(world))
        for name in ("c0", "c1", "w0"):  # c2's agent is gone
            world.run_agent(name)
        world.run_executor()
        world.now += timedelta(seconds=10)
    assert world.machine("c0").spec.release == world.machine("c1").spec.release == "swarm-1.0.0"
    assert _waiting(world, "c0") == ("QuorumGuard", "quorum guard: taking out manager c0 would leave 1 of 3 "
                                     "managers reachable, below the Raft quorum of 2 (unreachable: c2)")
    assert (_waiting(world, "c1") or ("",))[0] == "QuorumGuard"
    assert world.machine("c2").spec.release == "swarm-1.1.0"  # the dead one may go: it takes nothing out
    assert world.machine("w0").spec.release == "swarm-1.0.0"  # workers wait for the control plane


def test_with_every_manager_reachable_the_upgrade_goes_on() -> None:
    world = _world(controls=3, workers=1)
    _upgrade(world)
    world.converge()
    assert {world.machine(n).spec.release for n in world.machines} == {"swarm-1.1.0"}


def test_a_manager_whose_removal_would_lose_quorum_does_not_start_leaving() -> None:
    world = _world(controls=3, workers=0)
    _unreachable(world, "c2")
    world.machines["c1"]["spec"]["prepareDeletion"] = True
    plan = plan_for(world)
    assert not _states_created(plan)  # no drain, no removal
    world.apply(plan)
    reason, message = _waiting(world, "c1") or ("", "")
    assert reason == "QuorumGuard"
    assert message.startswith("quorum guard: removing manager c1 would leave 1 of 3")
    world.machines["c2"]["spec"]["prepareDeletion"] = True  # the operator takes the dead one out first
    world.machines["c1"]["spec"]["prepareDeletion"] = False
    plan = plan_for(world)
    assert _states_created(plan) == ["sd-c2"]


@pytest.mark.parametrize(("down", "target", "refused"), [
    ((), "c0", False), (("c2",), "c0", True), (("c2",), "c2", False),
    (("c1", "c2"), "c0", True),  # the quorum is lost already: nothing is taken out to make it worse
])
def test_reachable_managers_are_control_machines_in_the_swarm_whose_agent_is_alive(
    down: tuple[str, ...], target: str, refused: bool,
) -> None:
    world = _world(controls=3, workers=1)
    for name in down:
        _unreachable(world, name)
    views = [v for m in world.input().machines if (v := view(m)) is not None]
    machine = next(v for v in views if v.name == target)
    assert bool(quorum_refusal(views, machine, removal=False)) is refused
    worker = next(v for v in views if v.name == "w0")
    assert quorum_refusal(views, worker, removal=False) == ""


def test_with_one_of_three_managers_down_no_other_manager_reboots() -> None:
    world = _world(controls=3, workers=1)
    _unreachable(world, "c2")
    world.machines["c0"]["status"].setdefault("hostInfo", {})["rebootRequired"] = True
    world.apply(plan_for(world))
    reason, message = _waiting(world, "c0") or ("", "")
    assert (reason, message.split(":")[0]) == ("QuorumGuard", "quorum guard")
    assert not world.machines["c0"]["metadata"].get("annotations", {}).get(GRACEFUL_REBOOT_ANNOTATION)
    assert not world.machine("c0").spec.reboot_required


def test_with_one_of_three_managers_down_no_other_manager_goes_into_maintenance() -> None:
    world = _world(controls=3, workers=1)
    _unreachable(world, "c2")
    world.machines["c1"]["spec"]["maintenance"] = True
    for _ in range(5):
        plan = plan_for(world)
        assert "sd-c1" not in _states_created(plan)
        world.apply(plan)
    assert (_waiting(world, "c1") or ("",))[0] == "QuorumGuard"
    assert not world.machine("c1").status.maintenance

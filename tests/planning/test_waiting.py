"""Why a machine waits: one reason in status.waiting, kept while it stays, gone as it moves."""

from __future__ import annotations

from typing import Any

import pytest
from planning_world import TICK, World, cluster_raw, machine_raw, plan_for, release

from agent.kits.timestamps import rfc3339
from regional.planning.fleet import Hold
from regional.planning.machines import view
from regional.planning.waiting import waiting_patches

V1 = release()


def _world(controls: int = 1, workers: int = 3, **spec: Any) -> World:
    raws = [machine_raw(f"c{n}", "control", ip=f"10.0.0.{n + 1}") for n in range(controls)]
    raws += [machine_raw(f"w{n}", "worker", ip=f"10.0.1.{n + 1}") for n in range(workers)]
    return World.of(cluster_raw(**spec), raws, V1)


def _waiting(world: World) -> dict[str, str]:
    return {name: m["status"]["waiting"]["reason"] for name, m in world.machines.items()
            if m["status"].get("waiting")}


@pytest.mark.parametrize(("spec", "controls", "workers", "expected"), [
    # the first plan: controls prepare at once, workers within the prepare budget
    ({}, 1, 2, {}),
    ({"maxWorkerPrepareCount": 1}, 1, 3, {"w1": "PrepareSlotTaken", "w2": "PrepareSlotTaken"}),
])
def test_the_first_plan_holds_what_the_budgets_do_not_admit(
        spec: dict[str, Any], controls: int, workers: int, expected: dict[str, str]) -> None:
    world = _world(controls, workers, **spec)
    world.apply(plan_for(world))
    assert _waiting(world) == expected


def test_prepared_workers_wait_for_the_control_plane_then_for_deploy_slots() -> None:
    world = _world(workers=3, maxWorkerDeployCount=1)
    reasons: set[str] = set()
    for _ in range(60):
        world.step()
        reasons |= set(_waiting(world).values())
    assert {"WaitingForControlPlane", "DeploySlotTaken"} <= reasons
    world.converge()
    assert _waiting(world) == {}  # everyone moved on: every reason cleared


def test_a_second_control_machine_waits_while_the_first_changes() -> None:
    world = _world(controls=2, workers=0)
    reasons: set[str] = set()
    for _ in range(40):
        world.step()
        reasons.add(_waiting(world).get("c1", ""))
    assert "ControlPlaneBusy" in reasons  # c0 deploys the swarm first


def test_a_stuck_machine_holds_the_others_with_halted() -> None:
    world = _world(workers=3, maxWorkerDeployCount=1)
    world.broken = {("w0", "docker-engine")}
    for _ in range(80):
        world.step()
    assert world.cluster["status"]["lcmOperationStuck"] is True
    assert _waiting(world) == {"w1": "Halted", "w2": "Halted"}
    message = world.machines["w1"]["status"]["waiting"]["message"]
    assert "OperationStuck" in message


def test_since_stays_while_the_reason_stays_and_the_field_goes_when_the_machine_moves() -> None:
    world = _world(workers=2, maxWorkerPrepareCount=1)
    world.apply(plan_for(world))
    assert _waiting(world) == {"w1": "PrepareSlotTaken"}
    world.now += TICK
    assert not [a for a in plan_for(world).actions if a.name == "w1"]  # same reason: nothing to write
    for _ in range(len(world.items("w0")) + 1):
        world.run_agent("w0")  # its agent version, then its prepare items: w0's prepare slot frees
    world.apply(plan_for(world))
    assert "waiting" not in world.machines["w1"]["status"]
    assert world.items("w1") == ["preflight", "packages"]


def test_a_changed_message_keeps_since_and_a_new_reason_resets_it() -> None:
    world = _world(workers=1)
    world.machines["w0"]["status"]["waiting"] = {"reason": "WindowClosed", "message": "old",
                                                 "since": "2025-12-31T00:00:00Z"}
    held = view(world.machine("w0"))
    assert held is not None
    same = waiting_patches([held], {"w0": Hold("WindowClosed", "new")}, world.now)
    assert same[0].patch == {"status": {"waiting": {"reason": "WindowClosed", "message": "new",
                                                    "since": "2025-12-31T00:00:00Z"}}}
    other = waiting_patches([held], {"w0": Hold("Canary", "x")}, world.now)
    assert other[0].patch["status"]["waiting"]["since"] == rfc3339(world.now)
    assert waiting_patches([held], {"w0": Hold("WindowClosed", "old")}, world.now) == []
    assert waiting_patches([held], {}, world.now)[0].patch == {"status": {"waiting": None}}

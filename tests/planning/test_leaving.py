"""A machine leaving: drain, decommission items, removal, then the finalizer goes."""

from __future__ import annotations

from planning_world import World, cluster_raw, machine_raw, plan_for, release

from regional.planning.actions import Create, Delete, Patch, Plan

FINALIZER = "lcm.mirantis.com/swarm-member"


def _cluster(controls: int = 2, workers: int = 2, spec: dict[str, object] | None = None) -> World:
    raws = [machine_raw(f"c{n}", "control", ip=f"10.0.0.{n + 1}") for n in range(controls)]
    raws += [machine_raw(f"w{n}", "worker", ip=f"10.0.1.{n + 1}") for n in range(workers)]
    world = World.of(cluster_raw(**(spec or {})), raws)
    world.converge()
    return world


def _events(plan: Plan) -> list[str]:
    out = []
    for a in plan.actions:
        if a.resource not in ("lcmmachines", "lcmclusterstates"):
            continue  # the scheduler's own workload locks: tests/planning/test_maintenance_rules.py
        if isinstance(a, Create):
            executor = a.body["metadata"]["labels"]["lcm.mirantis.com/executor"]
            out.append(f"{a.body['metadata']['name']} by {executor}")
        elif isinstance(a, Delete):
            out.append(f"{a.name} delete")
        elif isinstance(a, Patch) and a.resource == "lcmmachines" and a.subresource is None:
            if "metadata" in a.patch:
                out.append(f"{a.name} finalizers {a.patch['metadata']['finalizers']}")
            else:
                out.append(f"{a.name} items +{[i['name'] for i in a.patch['spec']['stateItems']][-1]}")
    return out


def _story(world: World, steps: int = 20) -> list[str]:
    return [event for _ in range(steps) for event in _events(world.step())]


def test_every_released_machine_holds_the_finalizer() -> None:
    world = _cluster()
    assert {n: world.machine(n).metadata.finalizers for n in world.machines} == dict.fromkeys(
        world.machines, (FINALIZER,)
    )


def test_a_worker_is_drained_leaves_is_removed_and_may_go() -> None:
    world = _cluster()
    world.machines["w1"]["spec"]["prepareDeletion"] = True
    assert _story(world) == [
        "sd-w1 by c0",
        "w1 items +swarm-leave",
        "sr-w1 by c0",
        "w1 finalizers []", "sd-w1 delete", "sr-w1 delete",
    ]
    item = world.machine("w1").spec.state_items[-1]
    assert (item.name, item.phase) == ("swarm-leave", "reconfigure")
    assert world.cluster["status"]["requestedNodes"] == 3


def _phases(world: World, name: str, steps: int = 20) -> list[str | None]:
    """Each change of the machine's ``status.prepareDeletionPhase``, as the planner writes it."""
    seen: list[str | None] = []
    for _ in range(steps):
        for a in world.step().actions:
            if a.resource == "lcmmachines" and a.name == name and "prepareDeletionPhase" in a.patch.get(
                    "status", {}):
                seen.append(a.patch["status"]["prepareDeletionPhase"])
    return seen


def test_the_deletion_phase_goes_started_then_completed() -> None:
    world = _cluster()
    world.machines["w1"]["spec"]["prepareDeletion"] = True
    assert _phases(world, "w1") == ["started", "completed"]
    assert world.machines["w1"]["status"]["prepareDeletionPhase"] == "completed"


def test_a_deletion_called_off_is_aborting_until_its_drain_is_gone() -> None:
    world = _cluster()
    world.machines["w1"]["spec"]["prepareDeletion"] = True
    world.step()
    assert world.machines["w1"]["status"]["prepareDeletionPhase"] == "started"
    world.machines["w1"]["spec"]["prepareDeletion"] = False
    assert _phases(world, "w1") == ["aborting", None]
    assert "prepareDeletionPhase" not in world.machines["w1"]["status"]


def test_a_failing_decommission_item_shows_the_deletion_failed() -> None:
    world = _cluster()
    world.broken = {("w1", "swarm-leave")}
    world.machines["w1"]["spec"]["prepareDeletion"] = True
    assert _phases(world, "w1", 40) == ["started", "failed"]


def test_a_deleted_object_is_held_until_its_node_is_out_of_the_swarm() -> None:
    world = _cluster()
    world.machines["w0"]["metadata"]["deletionTimestamp"] = "2026-01-01T01:00:00Z"
    assert _story(world)[-3:] == ["w0 finalizers []", "sd-w0 delete", "sr-w0 delete"]


def test_leaving_the_first_control_machine_lets_another_manager_carry_it_out() -> None:
    world = _cluster(controls=2, workers=1)
    world.machines["c0"]["spec"]["prepareDeletion"] = True
    assert _story(world)[:3] == ["sd-c0 by c1", "c0 items +swarm-leave", "sr-c0 by c1"]
    world.machines["w9"] = machine_raw("w9", "worker", ip="10.0.1.9")
    world.converge()
    joined = world.params("w9", "swarm-join")
    assert joined["managerAddresses"] == "10.0.0.2:2377"
    assert "swarm-init" not in world.items("c1")  # the swarm exists: nobody initialises another one


def test_worker_drains_for_leaving_share_the_upgrade_budget() -> None:
    world = _cluster(controls=1, workers=3)
    for name in ("w0", "w1", "w2"):
        world.machines[name]["spec"]["prepareDeletion"] = True
    first = _events(world.step())
    assert first == ["sd-w0 by c0"]


def test_a_machine_that_never_joined_has_nothing_to_leave() -> None:
    machines = [machine_raw("c0", "control", ip="10.0.0.1"), machine_raw("w0", "worker")]
    world = World.of(cluster_raw(), machines)
    world.converge()
    world.machines["w0"]["spec"]["prepareDeletion"] = True
    actions = plan_for(world).actions  # it no longer counts; its deletion is complete at once
    assert [(a.resource, a.patch) for a in actions if a.resource == "lcmmachines"] == [
        ("lcmmachines", {"status": {"prepareDeletionPhase": "completed"}})]
    assert [a.resource for a in actions] == ["lcmmachines", "lcmclusters"]
    assert world.items("w0") == []
    assert world.machine("w0").metadata.finalizers == ()


def test_leaving_goes_on_while_the_rollout_is_halted() -> None:
    world = World.of(cluster_raw(), [machine_raw("c0", "control", ip="10.0.0.1"),
                                     machine_raw("w0", "worker", ip="10.0.1.1")], release())
    world.converge()
    world.machines["w1"] = machine_raw("w1", "worker", ip="10.0.1.2")
    world.broken = {("w1", "swarm-join")}
    for _ in range(30):
        world.step()
    assert world.cluster["status"]["lcmOperationStuck"] is True
    world.machines["w1"]["spec"]["prepareDeletion"] = True  # the operator takes the broken machine out
    world.broken = set()
    _story(world, 30)
    assert world.machine("w1").metadata.finalizers == ()
    assert world.cluster["status"]["lcmOperationStuck"] is False


def test_a_second_leaving_worker_waits_for_the_drain_budget_and_says_so() -> None:
    world = _cluster(workers=2)
    for name in ("w0", "w1"):
        world.machines[name]["spec"]["prepareDeletion"] = True
    world.apply(plan_for(world))
    assert {s["spec"]["arg"] for s in world.states.values()} == {"w0"}
    assert world.machines["w1"]["status"]["waiting"]["reason"] == "UpgradeSlotTaken"
    assert "sd-w1 by c0" in _story(world)  # w0 gone, w1's turn
    assert world.machines["w1"]["status"].get("waiting") is None
    assert world.machine("w1").metadata.finalizers == ()

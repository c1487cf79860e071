"""The first deploy, rule by rule: given these machines, the plan writes these items to these machines.

Each table row is a cluster in a given situation (built by letting the world's agents move) and the
machines the next plan gives items to, with the phase they may run up to.
"""

from __future__ import annotations

from typing import Any

import pytest
from planning_world import World, cluster_raw, machine_raw, plan_for, release, templates

from regional.planning.actions import Patch, Plan
from regional.planning.planner import plan


def _given(spec: dict[str, Any] | None = None, **machines: str | None) -> World:
    """Machines by name → type (``c…`` control, ``w…`` worker) with an InternalIP, or None for no address."""
    raws = [
        machine_raw(name, "control" if name.startswith("c") else "worker",
                    ip=None if kind is None else f"10.0.0.{n + 1}")
        for n, (name, kind) in enumerate(machines.items())
    ]
    return World.of(cluster_raw(**(spec or {})), raws)


def _written(plan: Plan) -> dict[str, str]:
    """Machine → the last phase of the items it is given ("prepare", "deploy", "reconfigure")."""
    out = {}
    for action in plan.actions:
        if isinstance(action, Patch) and action.resource == "lcmmachines":
            items = action.patch.get("spec", {}).get("stateItems")
            if items:
                out[action.name] = items[-1]["phase"]
    return out


def _step_until(world: World, steps: int) -> None:
    for _ in range(steps):
        world.step()


def test_a_machine_without_an_address_gets_nothing() -> None:
    world = _given(c1="ip", w1=None)
    assert _written(plan_for(world)) == {"c1": "prepare"}


def test_prepare_is_for_every_control_machine_and_a_bounded_number_of_workers() -> None:
    machines = {"c1": "ip", "c2": "ip", "c3": "ip", "w1": "ip", "w2": "ip", "w3": "ip", "w4": "ip"}
    world = _given({"maxWorkerPrepareCount": 2}, **machines)
    assert _written(world.step()) == {
        "c1": "prepare", "c2": "prepare", "c3": "prepare", "w1": "prepare", "w2": "prepare",
    }
    assert _written(world.step()) == {}  # w1, w2 still preparing: no room for w3
    world.step()
    assert _written(world.step()) == {"w3": "prepare", "w4": "prepare", "c1": "reconfigure"}


@pytest.mark.parametrize(
    ("steps", "given"),
    [
        (0, {"c1": "prepare", "c2": "prepare", "w1": "prepare"}),
        (3, {"c1": "reconfigure"}),  # all prepared: only the first control machine deploys (swarm init)
        (4, {}),  # the first manager is not Ready yet: nobody joins
        (6, {"c2": "reconfigure"}),  # it is: the other control machine joins, alone
        (9, {"w1": "reconfigure"}),  # every control machine is done: workers join
        (12, {}),
    ],
    ids=["prepare", "first-control", "wait-for-first", "other-control", "workers", "done"],
)
def test_deploy_order_first_control_then_others_then_workers(steps: int, given: dict[str, str]) -> None:
    world = _given(c1="ip", c2="ip", w1="ip")
    _step_until(world, steps)
    assert _written(world.step()) == given


def test_the_first_control_machine_is_chosen_by_index_then_name() -> None:
    raws = [
        machine_raw("c-a", "control", ip="10.0.0.1"),
        machine_raw("c-b", "control", ip="10.0.0.2", index=1),
        machine_raw("c-c", "control", ip="10.0.0.3", index=0),
    ]
    world = World.of(cluster_raw(), raws)
    _step_until(world, 3)
    assert _written(world.step()) == {"c-c": "reconfigure"}
    assert "swarm-init" in world.items("c-c")


def test_control_machines_join_one_at_a_time() -> None:
    world = _given(c1="ip", c2="ip", c3="ip")
    joins = [sorted(_written(world.step())) for _ in range(12)]
    assert [j for j in joins if j] == [["c1", "c2", "c3"], ["c1"], ["c2"], ["c3"]]


def test_workers_deploy_in_a_sliding_batch_of_max_worker_deploy_count() -> None:
    world = _given({"maxWorkerDeployCount": 2}, c1="ip", w1="ip", w2="ip", w3="ip", w4="ip", w5="ip")
    _step_until(world, 6)
    assert _written(world.step()) == {"w1": "reconfigure", "w2": "reconfigure"}
    # w1 finishes first: its place goes to w3 while w2 is still deploying.
    world.run_agent("w1"), world.run_agent("w1"), world.run_agent("w1")
    world.run_agent("w2")
    assert _written(world.step(movers=[])) == {"w3": "reconfigure"}


def test_the_batch_default_is_50_workers() -> None:
    machines = {"c1": "ip", **{f"w{n:02d}": "ip" for n in range(60)}}
    world = _given(None, **machines)
    _step_until(world, 6)
    assert len(_written(world.step())) == 50


def test_a_machine_that_reports_in_late_is_picked_up() -> None:
    world = _given(c1="ip", w1=None)
    world.converge()
    assert world.items("w1") == []
    world.machines["w1"]["status"]["addresses"] = [{"type": "InternalIP", "address": "10.0.0.9"}]
    world.converge()
    assert world.state("w1") == "Ready"
    params = world.params("w1", "swarm-join")
    assert params["managerAddresses"] == "10.0.0.1:2377"
    assert params["advertiseAddress"] == "10.0.0.9"


def test_each_machine_is_written_twice_in_a_whole_deploy() -> None:
    """Prepare items, then all items: one merge patch each, never a rewrite of the same content."""
    world = _given(c1="ip", c2="ip", w1="ip", w2="ip")
    writes: dict[str, int] = {}
    for _ in range(30):
        for action in world.step().actions:
            if isinstance(action, Patch) and action.resource == "lcmmachines" and action.subresource is None:
                writes[action.name] = writes.get(action.name, 0) + 1
    assert writes == {"c1": 2, "c2": 2, "w1": 2, "w2": 2}
    assert {world.state(n) for n in world.machines} == {"Ready"}


def test_a_converged_cluster_plans_nothing_and_planning_is_repeatable() -> None:
    world = _given(c1="ip", w1="ip")
    world.converge()
    inp = world.input()
    assert plan(inp).actions == ()
    assert plan(inp) == plan(inp)
    assert world.cluster["status"]["readyNodes"] == 2


def test_a_release_with_no_prepare_items_deploys_every_machine() -> None:
    no_prepare = {t: [i for i in items if i["phase"] != "prepare"] for t, items in templates().items()}
    world = World.of(cluster_raw(), [machine_raw("c0", "control", ip="10.0.0.1"),
                                     machine_raw("w0", "worker", ip="10.0.0.2")],
                     release(machine_types=no_prepare))
    world.converge()
    for name in ("c0", "w0"):
        statuses = world.machines[name]["status"]["stateItemStatuses"]
        assert statuses["node-labels"]["exitCode"] == 0, name  # its last item ran: deployed and reconfigured

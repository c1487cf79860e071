"""A cluster Ready under lcm-agent's old rules meets the new scheduler and agents: nothing re-runs.

The old rules: machine-specific params in ``stateItemsOverwrites``, the old sorted-key hash of the item with
its overwrites in each status slot, no ``lcmType``. The new scheduler renders those params into the items;
the new agent (its real decision, ``next_step``) finds every slot done under the old hash of the same item
and rewrites it, running nothing; the machine is then Ready to Mirantis' rules.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from planning_world import World, cluster_raw, machine_raw, plan_for

from agent.api.models import LCMMachine, StateItem
from agent.decisions.execution import Idle, LocalRecord, Rehash, next_step, rehash_patch
from agent.decisions.hashing import legacy_item_hash
from agent.decisions.state import counts_done, machine_state
from agent.kits.backoff import Backoff
from regional.planning.contract import PLANNED_PARAMS
from testbed.sim.patching import merge_patch

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _ready_cluster() -> World:
    raws = [machine_raw("c0", "control", ip="10.0.0.1"), machine_raw("c1", "control", ip="10.0.0.2"),
            machine_raw("w0", "worker", ip="10.0.1.1")]
    world = World.of(cluster_raw(), raws)
    world.converge()
    assert {world.state(n) for n in world.machines} == {"Ready"}
    return world


def _as_the_old_scheduler_and_agent_left_it(raw: dict[str, Any]) -> dict[str, Any]:
    """The machine as the old rules wrote it: planner params in the overwrites, old hashes, no lcmType."""
    old = copy.deepcopy(raw)
    spec, status = old["spec"], old["status"]
    overwrites: dict[str, dict[str, str]] = spec.setdefault("stateItemsOverwrites", {})
    for item in spec["stateItems"]:
        owned = PLANNED_PARAMS.get(item["name"], frozenset())
        moved = {k: v for k, v in item.get("params", {}).items() if k in owned}
        item["params"] = {k: v for k, v in item["params"].items() if k not in owned}
        if moved:
            overwrites[item["name"]] = {**overwrites.get(item["name"], {}), **moved}
    for key in ("lcmType", "components"):
        spec.pop(key, None)
    status.pop("components", None)
    for item in spec["stateItems"]:
        status["stateItemStatuses"][item["name"]]["hash"] = legacy_item_hash(
            StateItem.model_validate(item), overwrites)
    return old


def _new_agents_act(world: World) -> None:
    """Each machine's new agent takes its one next step: a rewrite of old hashes, never a run."""
    for name, raw in world.machines.items():
        machine = LCMMachine.from_raw(raw)
        step = next_step(machine, LocalRecord({}), NOW, Backoff())
        assert isinstance(step, Rehash | Idle), (name, step)
        if isinstance(step, Rehash):
            world.machines[name] = merge_patch(raw, rehash_patch(machine, step))


def test_a_cluster_ready_on_the_old_rules_re_runs_nothing_after_the_upgrade() -> None:
    world = _ready_cluster()
    world.machines = {n: _as_the_old_scheduler_and_agent_left_it(m) for n, m in world.machines.items()}
    before = {n: copy.deepcopy(m["status"]["stateItemStatuses"]) for n, m in world.machines.items()}
    for _ in range(10):  # the new scheduler re-renders one control machine at a time
        plan = plan_for(world)
        if not plan.actions:
            break
        world.apply(plan)
        for raw in world.machines.values():
            machine = LCMMachine.from_raw(raw)
            assert all(counts_done(machine.spec, machine.status, i) for i in machine.spec.state_items)
        _new_agents_act(world)
    assert not plan_for(world).actions

    for name, raw in world.machines.items():
        machine = LCMMachine.from_raw(raw)
        assert machine.spec.lcm_type == "ucp"
        assert machine_state(machine.spec, machine.status) == raw["status"]["state"] == "Ready", name
        assert isinstance(next_step(machine, LocalRecord({}), NOW, Backoff()), Idle)
        slots = raw["status"]["stateItemStatuses"]
        assert {n: {k: v for k, v in s.items() if k != "hash"} for n, s in slots.items()} == {
            n: {k: v for k, v in s.items() if k != "hash"} for n, s in before[name].items()}
